"""The secrets the bootstrap hands to the cluster: the SOPS age key, the git credentials, and the extra Secrets of
`onepassword.connect` and `bootstrap.secrets` (`extra_secrets`, values from 1Password items or SOPS files).

Git credentials live SOPS-encrypted next to the inventory, in `clusters/<c>/bootstrap/git-credentials.sops.yaml`
(a flat mapping, decrypted once and kept in memory as `Secret`s). The keys are the ones Flux's source-controller
reads from a GitRepository's `secretRef` (fluxcd/source-controller v1.7.4 docs/spec/v1/gitrepositories.md, the
version Flux 2.7.5 ships):

* `ssh://` repository: `identity` (private key) and `known_hosts` (must name the repository host), optional
  `identity.pub`, and `password` for a passphrase-protected key ("For password-protected SSH private keys, the
  password must be provided via an additional `password` field in the secret");
* `https://` repository: `username` + `password` (a token), or `bearerToken`, or a GitHub App (`githubAppID`,
  `githubAppInstallationID`, `githubAppPrivateKey`, optional `githubAppBaseURL` for GitHub Enterprise Server).
  A GitHub App needs `spec.provider: github` on the GitRepository — source-controller fails a secret with
  `githubAppID` under any other provider ("has github app data but provider is not set to github",
  internal/controller/gitrepository_controller.go) — so `GitCredentials.provider` says so and the GitRepository
  gets it. The app's token is an HTTPS credential: GitHub App keys with an `ssh://` URL are rejected.
  `githubAppInstallationOwner` (instead of the ID) exists only from source-controller v1.8.0 (Flux 2.8);
* no file at all means a public repository (no secretRef).

Keys ending in `_unencrypted` stay readable in the file (sops' default unencrypted suffix) and are ignored:
use them for notes such as "TEST-ONLY".
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import urlsplit

import yaml

from k8s_ops.core.errors import Problem, ProblemsError, SecretError
from k8s_ops.core.secret import Secret
from k8s_ops.talos import yamlio

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Cluster
    from k8s_ops.talos.inventory.models import ItemField
    from k8s_ops.tools.sops import AgeKey

__all__ = [
    "GIT_CREDENTIALS_FILE",
    "ExtraSecret",
    "FieldReader",
    "GitCredentials",
    "connect_credentials_value",
    "connect_secrets",
    "extra_secrets",
    "git_credentials_path",
    "git_host",
    "load_git_credentials",
    "repository_problems",
    "validate_git_credentials",
]

GIT_CREDENTIALS_FILE: Final = "bootstrap/git-credentials.sops.yaml"
_SSH_KEYS: Final = ("identity", "known_hosts")
_SSH_OPTIONAL: Final = ("identity.pub", "password")
GITHUB_APP_ID: Final = "githubAppID"
_GITHUB_APP: Final = (GITHUB_APP_ID, "githubAppInstallationID", "githubAppPrivateKey")
_GITHUB_OWNER: Final = "githubAppInstallationOwner"
_GITHUB_KEYS: Final = (*_GITHUB_APP, _GITHUB_OWNER, "githubAppBaseURL")
_GITHUB_OWNER_SINCE: Final = (2, 8)  # Flux 2.8 ships source-controller v1.8.0, the first to read the owner key
_HTTPS_SETS: Final = (
    ("username", "password"),
    ("bearerToken",),
)
_SCP_LIKE: Final = re.compile(r"^[\w.-]+@[\w.-]+:(?!//)")
_OPENSSH_MAGIC: Final = b"openssh-key-v1\0"


@dataclass(frozen=True)
class GitCredentials:
    """Decrypted git credentials (values masked) and the file they came from."""

    data: Mapping[str, Secret] = field(repr=False)
    source: Path

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(sorted(self.data))

    @property
    def provider(self) -> str | None:
        """The GitRepository `spec.provider` these credentials need: `github` for a GitHub App, else None."""
        return "github" if GITHUB_APP_ID in self.data else None


def git_credentials_path(cluster: Cluster) -> Path:
    """`clusters/<c>/bootstrap/git-credentials.sops.yaml`."""
    return cluster.path / GIT_CREDENTIALS_FILE


def git_host(url: str) -> str | None:
    """The host of an `ssh://` or `https://` repository URL."""
    return urlsplit(url).hostname


def repository_problems(cluster: Cluster) -> list[Problem]:
    """What is wrong with `gitops.repository` for Flux (scheme, scp form, host)."""
    url = cluster.gitops.repository
    file = str(cluster.file)
    if _SCP_LIKE.match(url):
        user_host, path = url.split(":", 1)
        return [
            Problem(
                file,
                "gitops.repository",
                f"{url!r} is the scp form, which Flux rejects; write ssh://{user_host}/{path}",
            )
        ]
    parts = urlsplit(url)
    if parts.scheme not in ("ssh", "https", "http"):
        return [Problem(file, "gitops.repository", f"{url!r}: Flux needs an ssh:// or https:// URL")]
    if not parts.hostname:
        return [Problem(file, "gitops.repository", f"{url!r} has no host")]
    if not parts.path.strip("/"):
        return [Problem(file, "gitops.repository", f"{url!r} names no repository path")]
    return []


def _known_hosts_names(text: str) -> set[str] | None:
    """Hosts named in known_hosts lines, or None when any line is hashed (`|1|…`: cannot be checked)."""
    names: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        first = line.split()[0]
        if first.startswith("@"):  # @cert-authority / @revoked markers
            parts = line.split()
            first = parts[1] if len(parts) > 1 else ""
        if first.startswith("|"):
            return None
        for name in first.split(","):
            names.add(re.sub(r"^\[([^\]]+)\](:\d+)?$", r"\1", name))
    return names


def _ssh_key_encrypted(pem: bytes) -> bool | None:
    """Whether a private key is passphrase-protected (None when the format is not recognised).

    Legacy PEM marks it in a header (`Proc-Type: 4,ENCRYPTED`) or the PKCS#8 label (`ENCRYPTED PRIVATE KEY`);
    the OpenSSH format stores the cipher name right after its magic (`none` when not encrypted).
    """
    if b"ENCRYPTED" in pem:
        return True
    m = re.search(rb"-----BEGIN OPENSSH PRIVATE KEY-----(.*?)-----END OPENSSH PRIVATE KEY-----", pem, re.S)
    if m is None:
        return False if b"PRIVATE KEY-----" in pem else None
    try:
        raw = base64.b64decode(b"".join(m.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(_OPENSSH_MAGIC) or len(raw) < len(_OPENSSH_MAGIC) + 4:
        return None
    size = int.from_bytes(raw[len(_OPENSSH_MAGIC) : len(_OPENSSH_MAGIC) + 4], "big")
    start = len(_OPENSSH_MAGIC) + 4
    return raw[start : start + size] != b"none"


def _flux_minor(version: str | None) -> tuple[int, int] | None:
    m = re.match(r"^v?(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _github_app_problems(file: str, url: str, data: Mapping[str, Secret], flux_version: str | None) -> list[Problem]:
    problems: list[Problem] = []
    missing = [k for k in (GITHUB_APP_ID, "githubAppPrivateKey") if not data.get(k, Secret("")).reveal().strip()]
    has_id, has_owner = "githubAppInstallationID" in data, _GITHUB_OWNER in data
    flux = _flux_minor(flux_version)
    if has_owner and (flux is None or flux < _GITHUB_OWNER_SINCE):
        problems.append(
            Problem(
                file,
                _GITHUB_OWNER,
                f"Flux {flux_version or '(unknown version)'} does not read it (source-controller reads "
                f"{_GITHUB_OWNER} from v1.8.0, Flux 2.8): use githubAppInstallationID",
            )
        )
    elif has_id and has_owner:
        problems.append(
            Problem(file, _GITHUB_OWNER, f"give exactly one of githubAppInstallationID and {_GITHUB_OWNER}")
        )
    elif not has_id and not has_owner:
        missing.append("githubAppInstallationID")
    if missing:
        problems.append(Problem(file, missing[0], f"a GitHub App needs {', '.join(missing)} as well"))
    if urlsplit(url).scheme != "https":
        problems.append(
            Problem(
                file,
                GITHUB_APP_ID,
                f"GitHub App credentials need an https:// repository URL, not {url} (Flux's github provider "
                "turns them into an HTTPS access token); use identity + known_hosts for ssh://",
            )
        )
    return problems


def validate_git_credentials(
    cluster: Cluster, data: Mapping[str, Secret], source: Path, *, flux_version: str | None = None
) -> list[Problem]:
    """Every problem with the credentials for the inventory's repository URL (file and key named).

    `flux_version`: the pinned Flux (charts.yaml), for keys only newer source-controllers read.
    """
    url = cluster.gitops.repository
    scheme = urlsplit(url).scheme
    file = str(source)
    if any(k in data for k in _GITHUB_KEYS):
        return _github_app_problems(file, url, data, flux_version)
    problems: list[Problem] = []
    if scheme == "ssh":
        for key in _SSH_KEYS:
            if key not in data or not data[key].reveal().strip():
                problems.append(Problem(file, key, f"required for the ssh repository {url}"))
        unknown = sorted(set(data) - set(_SSH_KEYS) - set(_SSH_OPTIONAL))
        if unknown:
            problems.append(Problem(file, unknown[0], f"unexpected key(s) {', '.join(unknown)} for an ssh repository"))
        if "identity" in data:
            pem = data["identity"].reveal()
            encrypted = _ssh_key_encrypted(pem)
            if encrypted is None and b"PRIVATE KEY-----" not in pem:
                problems.append(Problem(file, "identity", "not a PEM/OpenSSH private key"))
            elif encrypted and not data.get("password", Secret("")).reveal():
                problems.append(
                    Problem(file, "password", "the identity is passphrase-protected: add its passphrase as `password`")
                )
        if "password" in data and not data["password"].reveal():
            problems.append(Problem(file, "password", "empty passphrase: remove the key or set the passphrase"))
        host = git_host(url)
        if "known_hosts" in data and host:
            names = _known_hosts_names(data["known_hosts"].reveal_text())
            if names is not None and host not in names:
                problems.append(
                    Problem(file, "known_hosts", f"no entry for {host} (the repository host): Flux would refuse it")
                )
    elif scheme in ("https", "http") and not any(all(k in data for k in combo) for combo in _HTTPS_SETS):
        problems.append(
            Problem(
                file,
                "",
                f"an {scheme} repository needs username+password, bearerToken, or githubAppID+"
                "githubAppInstallationID+githubAppPrivateKey",
            )
        )
    return problems


def load_git_credentials(cluster: Cluster, key: AgeKey) -> GitCredentials | None:
    """Decrypt the cluster's git credentials; None for a public https repository without a file.

    An ssh repository without the file, an undecryptable file or missing keys are ProblemsErrors naming the file.
    """
    from k8s_ops.bootstrap.charts import load_charts

    path = git_credentials_path(cluster)
    scheme = urlsplit(cluster.gitops.repository).scheme
    if not path.is_file():
        if scheme == "ssh":
            raise ProblemsError(
                [
                    Problem(
                        str(path),
                        "",
                        f"missing: the ssh repository {cluster.gitops.repository} needs a deploy key "
                        "(identity, known_hosts), SOPS-encrypted in this file",
                    )
                ],
                hint=f"create it with: sops {path}",
            )
        return None
    data, problems = sops_secret_mapping(path, key, "a mapping of credential keys")
    problems += validate_git_credentials(cluster, data, path, flux_version=load_charts().flux_version)
    if problems:
        raise ProblemsError(problems)
    return GitCredentials(data, path)


# --------------------------------------------------------------------------- secrets from 1Password and SOPS files


class FieldReader(Protocol):
    """What the bootstrap needs from 1Password: one field of any item (k8s_ops.onepassword.sdk.SdkStore fits)."""

    def field(self, title: str, field: str) -> Secret: ...


@dataclass(frozen=True)
class ExtraSecret:
    """One Secret the bootstrap creates besides sops-age and the git credentials: its namespace, name, data
    (masked) and where the values came from (shown in plans; never the values)."""

    namespace: str
    name: str
    data: Mapping[str, Secret] = field(repr=False)
    source: str
    purpose: str  # "onepassword.connect" or "bootstrap.secrets"


def connect_credentials_value(raw: Secret, where: str) -> Secret:
    """The value the Connect server reads (`OP_SESSION`): the credentials file base64-encoded, as the connect chart's
    own Secret template stores it. The 1Password field may hold the JSON file or already its base64; anything that
    is neither is an error naming the item field (never the value)."""
    text = raw.reveal().strip()
    candidates = [text]
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(text, validate=True))
    for i, candidate in enumerate(candidates):
        try:
            doc = json.loads(candidate)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(doc, dict):
            return Secret(text) if i == 1 else Secret(base64.b64encode(text))
    raise SecretError(
        f"{where} is not a 1Password Connect credentials file (neither a JSON object nor its base64)",
        hint="store the content of 1password-credentials.json (or its base64) in that field",
    )


def _read(reader: FieldReader, ref: ItemField) -> Secret:
    return reader.field(ref.item, ref.field)


def connect_secrets(cluster: Cluster, reader: FieldReader) -> list[ExtraSecret]:
    """`onepassword.connect` as Secrets: the credentials and the token (one Secret when both name the same one)."""
    conn = cluster.onepassword.connect
    if conn is None:
        return []
    vault = cluster.onepassword.vault
    where = f"1Password item {conn.credentials.item!r} field {conn.credentials.field!r} (vault {vault!r})"
    creds = connect_credentials_value(_read(reader, conn.credentials), where)
    token = _read(reader, conn.token)
    token = Secret(token.reveal().strip())
    pairs = [
        (
            conn.credentials_secret.name,
            conn.credentials_secret.key,
            creds,
            f"{conn.credentials.item}/{conn.credentials.field}",
        ),
        (conn.token_secret.name, conn.token_secret.key, token, f"{conn.token.item}/{conn.token.field}"),
    ]
    by_name: dict[str, tuple[dict[str, Secret], list[str]]] = {}
    for name, key, value, src in pairs:
        data, srcs = by_name.setdefault(name, ({}, []))
        data[key] = value
        srcs.append(src)
    return [
        ExtraSecret(conn.namespace, name, data, f"1Password {', '.join(srcs)} (vault {vault})", "onepassword.connect")
        for name, (data, srcs) in by_name.items()
    ]


def _sops_mapping(path: Path, key: AgeKey) -> dict[str, Secret]:
    if not path.is_file():
        raise ProblemsError([Problem(str(path), "", "missing: bootstrap.secrets names this SOPS file")])
    data, problems = sops_secret_mapping(path, key, "a flat mapping of Secret keys")
    if not data and not problems:
        problems.append(Problem(str(path), "", "no keys to put in the Secret"))
    if problems:
        raise ProblemsError(problems)
    return data


def sops_secret_mapping(path: Path, key: AgeKey, expected: str) -> tuple[dict[str, Secret], list[Problem]]:
    """A SOPS-encrypted flat mapping of string values, decrypted into Secrets (sops' own `sops` and
    `*_unencrypted` keys left out), and the problems of the keys left out for being wrong (the caller adds its own
    and reports them all at once); content that is not a mapping is a ProblemsError at once."""
    from k8s_ops.tools.sops import Sops

    plaintext = Sops(key=key).decrypt(path)
    try:
        raw = yamlio.load_document(plaintext.reveal(), loader=yaml.SafeLoader)
    except yamlio.YAMLError:
        raise ProblemsError([Problem(str(path), "", "decrypted content is not YAML")]) from None
    if not isinstance(raw, dict):
        raise ProblemsError([Problem(str(path), "", f"expected {expected}")])
    data: dict[str, Secret] = {}
    problems: list[Problem] = []
    for k, v in raw.items():
        if not isinstance(k, str):
            problems.append(Problem(str(path), str(k)[:32], "keys must be strings"))
        elif k.endswith("_unencrypted") or k == "sops":
            continue
        elif not isinstance(v, str | int):
            problems.append(Problem(str(path), k, "values must be strings"))
        else:
            data[k] = Secret(str(v))
    return data, problems


def extra_secrets(cluster: Cluster, key: AgeKey | None, reader: FieldReader | None) -> list[ExtraSecret]:
    """Every Secret of `onepassword.connect` and `bootstrap.secrets`, values read now (1Password through `reader`,
    SOPS files with `key`). A source that is missing or unreadable is an error naming it."""
    needs_op = cluster.onepassword.connect is not None or any(
        s.onepassword for s in (cluster.bootstrap.secrets if cluster.bootstrap else ())
    )
    if needs_op and reader is None:
        raise SecretError(
            "onepassword.connect / bootstrap.secrets read 1Password items, but 1Password is not configured",
            hint="export OP_SERVICE_ACCOUNT_TOKEN (a service account with read access to the vault "
            f"{cluster.onepassword.vault!r})",
        )
    out: list[ExtraSecret] = []
    if reader is not None:
        out += connect_secrets(cluster, reader)
    vault = cluster.onepassword.vault
    for s in cluster.bootstrap.secrets if cluster.bootstrap else ():
        if s.onepassword:
            assert reader is not None
            data = {k: _read(reader, ref) for k, ref in s.onepassword.items()}
            refs = ", ".join(f"{r.item}/{r.field}" for r in s.onepassword.values())
            out.append(ExtraSecret(s.namespace, s.name, data, f"1Password {refs} (vault {vault})", "bootstrap.secrets"))
        elif s.sops:
            if key is None:
                raise SecretError(f"bootstrap.secrets {s.namespace}/{s.name}: no age key to decrypt {s.sops}")
            path = cluster.path / s.sops
            out.append(ExtraSecret(s.namespace, s.name, _sops_mapping(path, key), str(path), "bootstrap.secrets"))
    seen: set[tuple[str, str]] = set()
    for e in out:
        if (e.namespace, e.name) in seen:
            raise ProblemsError(
                [Problem(str(cluster.file), "bootstrap.secrets", f"Secret {e.namespace}/{e.name} is also created "
                         "by onepassword.connect")]
            )  # fmt: skip
        seen.add((e.namespace, e.name))
    return out
