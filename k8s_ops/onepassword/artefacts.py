"""The four files a cluster cannot be recovered without, where they live, and their 1Password item titles.

Item titles (op://-safe: cluster names are `[a-z0-9-]`):

    kubeconfig     kubeconfig-<cluster>      k8s_ops.core.paths.kubeconfig_path(cluster)
    talosconfig    talosconfig-<cluster>     k8s_ops.core.paths.talosconfig_path(cluster)
    age-key        sops-age-key-<cluster>    see `local_age_key` (push) / `age_key_pull_target` (pull)
    talos-secrets  talos-secrets-<cluster>   k8s_ops.core.paths.secrets_bundle_path(cluster), SOPS-encrypted as is

The age key gets one item per cluster even when clusters share a key: pushing one cluster never touches
another cluster's items, and a copy too many costs nothing. Its `public-key` field shows which key it is.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from k8s_ops.core import paths
from k8s_ops.core.errors import Problem, ProblemsError, SecretError
from k8s_ops.core.secret import Secret
from k8s_ops.tools.sops import AGE_IDENTITY_PREFIX

__all__ = [
    "KINDS",
    "Artefact",
    "ClusterLike",
    "Kind",
    "LocalAgeKey",
    "age_key_pull_target",
    "age_recipients",
    "artefacts",
    "content_problem",
    "item_title",
    "local_age_key",
    "parse_what",
    "read_file",
]

AGE_KEY_ENV = "SOPS_AGE_KEY_FILE"


class Kind(StrEnum):
    KUBECONFIG = "kubeconfig"
    TALOSCONFIG = "talosconfig"
    AGE_KEY = "age-key"
    TALOS_SECRETS = "talos-secrets"


KINDS: tuple[Kind, ...] = tuple(Kind)


class ClusterLike(Protocol):
    """What this package needs from the inventory's Cluster (k8s_ops.talos.inventory.Cluster fits)."""

    @property
    def name(self) -> str: ...

    @property
    def age_key_file(self) -> Path | None:
        """`sops.ageKeyFile` resolved against the cluster directory, if set."""
        ...


def item_title(kind: Kind, cluster: str) -> str:
    prefix = "sops-age-key" if kind is Kind.AGE_KEY else kind.value
    return f"{prefix}-{cluster}"


def parse_what(what: str | Iterable[Kind | str]) -> tuple[Kind, ...]:
    """`all`, one kind, or a comma-separated list, in canonical order. ProblemsError names bad values."""
    words = [w.strip() for w in what.split(",")] if isinstance(what, str) else [str(w) for w in what]
    words = [w for w in words if w]
    if not words or "all" in words:
        return KINDS
    valid = {k.value for k in KINDS}
    bad = [w for w in words if w not in valid]
    if bad:
        choices = "|".join([*valid, "all"])
        raise ProblemsError([Problem("command line", "--what", f"unknown item {w!r}; choose {choices}") for w in bad])
    return tuple(k for k in KINDS if k.value in words)


@dataclass(frozen=True)
class LocalAgeKey:
    """The age key this machine decrypts the cluster's secrets with: a file, or `$SOPS_AGE_KEY` itself."""

    path: Path | None  # None: the key is inline in $SOPS_AGE_KEY
    inline: Secret | None = field(default=None, repr=False)


def local_age_key(cluster: ClusterLike) -> LocalAgeKey:
    """The key `k8s_ops.talos.secrets.age_key_for` picks for this cluster, i.e. the one sops decrypts with.

    `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, the inventory's `sops.ageKeyFile`, then the default key file. When
    there is none, the local side is missing, at the pull target.
    """
    from k8s_ops.talos.secrets import age_key_for

    try:
        key = age_key_for(cluster)
    except SecretError:
        return LocalAgeKey(path=age_key_pull_target())
    if key.file is not None:
        return LocalAgeKey(path=key.file)
    return LocalAgeKey(path=None, inline=key.value)


def age_key_pull_target() -> Path:
    """Where `op.pull` writes the age key: `SOPS_AGE_KEY_FILE` if set, else the default key file.

    Never into the inventory's `sops.ageKeyFile`: that sits in the repository, and a pulled key must not be
    one `git add` away from being committed.
    """
    env = os.environ.get(AGE_KEY_ENV)
    return Path(env).expanduser() if env else paths.default_age_key_file()


@dataclass(frozen=True)
class Artefact:
    """One file and its item. `path` is pushed and compared; `pull_path` is where a pull writes."""

    kind: Kind
    cluster: str
    title: str
    path: Path | None  # None only for an age key given inline in $SOPS_AGE_KEY (then `inline` holds it)
    pull_path: Path
    inline: Secret | None = field(default=None, repr=False, compare=False)
    restore_only_if_missing: bool = False  # the committed secrets bundle: replaced only with --force

    @property
    def location(self) -> str:
        return str(self.path) if self.path is not None else "$SOPS_AGE_KEY"

    def read(self) -> bytes | None:
        """The local content, None when there is no local file."""
        if self.path is None:
            return self.inline.reveal() if self.inline is not None else None
        return read_file(self.path)

    def mtime(self) -> datetime | None:
        try:
            return datetime.fromtimestamp(self.path.stat().st_mtime, UTC) if self.path is not None else None
        except OSError:
            return None

    def meta(self, content: bytes) -> dict[str, str]:
        """Descriptive, non-secret fields stored beside the content."""
        meta = {"kind": self.kind.value, "cluster": self.cluster, "pushed-from": socket.gethostname()}
        if self.kind is Kind.AGE_KEY:
            recipients = age_recipients(content)
            if recipients:
                meta["public-key"] = " ".join(recipients)
        return meta


def read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretError(f"cannot read {path}: {exc.strerror or exc}") from None


def artefacts(cluster: ClusterLike, kinds: Iterable[Kind] = KINDS) -> tuple[Artefact, ...]:
    wanted = set(kinds)
    out: list[Artefact] = []
    for kind in KINDS:
        if kind not in wanted:
            continue
        title = item_title(kind, cluster.name)
        if kind is Kind.AGE_KEY:
            key = local_age_key(cluster)
            out.append(Artefact(kind, cluster.name, title, key.path, age_key_pull_target(), inline=key.inline))
            continue
        if kind is Kind.KUBECONFIG:
            path = paths.kubeconfig_path(cluster.name)
        elif kind is Kind.TALOSCONFIG:
            path = paths.talosconfig_path(cluster.name)
        else:
            path = paths.secrets_bundle_path(cluster.name)
        out.append(Artefact(kind, cluster.name, title, path, path, restore_only_if_missing=kind is Kind.TALOS_SECRETS))
    return tuple(out)


_AGE_IDENTITY = re.compile(rb"^" + re.escape(AGE_IDENTITY_PREFIX.encode()) + rb"[0-9A-Z]+(?=\r?$)", re.MULTILINE)
_SOPS_METADATA = re.compile(rb"^sops:\s*$|^\s*\"sops\"\s*:", re.MULTILINE)


def age_recipients(content: bytes) -> list[str]:
    """Public keys of the identities in an age key file (empty if pyrage cannot parse them)."""
    import pyrage

    out: list[str] = []
    for match in _AGE_IDENTITY.finditer(content):
        try:
            out.append(str(pyrage.x25519.Identity.from_str(match.group().decode("ascii")).to_public()))
        except Exception:  # pyrage raises its own error types for malformed keys
            continue
    return out


def content_problem(kind: Kind, content: bytes) -> str | None:
    """Why `content` must not be pushed as `kind` (a plaintext secrets bundle, a key file without a key)."""
    if not content.strip():
        return "the file is empty"
    if kind is Kind.AGE_KEY and not _AGE_IDENTITY.search(content):
        return f"no {AGE_IDENTITY_PREFIX}… line: not an age key file"
    if kind is Kind.TALOS_SECRETS and not (_SOPS_METADATA.search(content) and b"ENC[" in content):
        return "not SOPS-encrypted (no sops metadata / ENC[...] values): refusing to store a plaintext bundle"
    return None
