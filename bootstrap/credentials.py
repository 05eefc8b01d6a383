"""The secrets the bootstrap hands to the cluster: the SOPS age key and the git credentials.

Git credentials live SOPS-encrypted next to the inventory, in `clusters/<c>/bootstrap/git-credentials.sops.yaml`
(a flat mapping, decrypted once and kept in memory as `Secret`s):

* `ssh://` repository: `identity` (private key) and `known_hosts` (must name the repository host), optional
  `identity.pub`;
* `https://` repository: `username` + `password` (a token), or `bearerToken`, or a GitHub App
  (`githubAppID`, `githubAppInstallationID` or `githubAppInstallationOwner`, `githubAppPrivateKey`);
  no file at all means a public repository (no secretRef).

Keys ending in `_unencrypted` stay readable in the file (sops' default unencrypted suffix) and are ignored:
use them for notes such as "TEST-ONLY".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import yaml

from k8s_ops.errors import Problem, ProblemsError
from k8s_ops.secret import Secret

if TYPE_CHECKING:
    from k8s_ops.sops import AgeKey
    from talos.inventory import Cluster

__all__ = [
    "GIT_CREDENTIALS_FILE",
    "GitCredentials",
    "git_credentials_path",
    "git_host",
    "load_git_credentials",
    "repository_problems",
    "validate_git_credentials",
]

GIT_CREDENTIALS_FILE: Final = "bootstrap/git-credentials.sops.yaml"
_SSH_KEYS: Final = ("identity", "known_hosts")
_SSH_OPTIONAL: Final = ("identity.pub",)
_HTTPS_SETS: Final = (
    ("username", "password"),
    ("bearerToken",),
    ("githubAppID", "githubAppInstallationID", "githubAppPrivateKey"),
    ("githubAppID", "githubAppInstallationOwner", "githubAppPrivateKey"),
)
_SCP_LIKE: Final = re.compile(r"^[\w.-]+@[\w.-]+:(?!//)")


@dataclass(frozen=True)
class GitCredentials:
    """Decrypted git credentials (values masked) and the file they came from."""

    data: Mapping[str, Secret] = field(repr=False)
    source: Path

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(sorted(self.data))


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


def validate_git_credentials(cluster: Cluster, data: Mapping[str, Secret], source: Path) -> list[Problem]:
    """Every problem with the credentials for the inventory's repository URL (file and key named)."""
    url = cluster.gitops.repository
    scheme = urlsplit(url).scheme
    file = str(source)
    problems: list[Problem] = []
    if scheme == "ssh":
        for key in _SSH_KEYS:
            if key not in data or not data[key].reveal().strip():
                problems.append(Problem(file, key, f"required for the ssh repository {url}"))
        unknown = sorted(set(data) - set(_SSH_KEYS) - set(_SSH_OPTIONAL))
        if unknown:
            problems.append(Problem(file, unknown[0], f"unexpected key(s) {', '.join(unknown)} for an ssh repository"))
        if "identity" in data and b"PRIVATE KEY-----" not in data["identity"].reveal():
            problems.append(Problem(file, "identity", "not a PEM/OpenSSH private key"))
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
                "githubAppInstallationID/Owner+githubAppPrivateKey",
            )
        )
    return problems


def load_git_credentials(cluster: Cluster, key: AgeKey) -> GitCredentials | None:
    """Decrypt the cluster's git credentials; None for a public https repository without a file.

    An ssh repository without the file, an undecryptable file or missing keys are ProblemsErrors naming the file.
    """
    from k8s_ops.sops import Sops

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
    plaintext = Sops(key=key).decrypt(path)
    try:
        raw = yaml.safe_load(plaintext.reveal())
    except yaml.YAMLError:
        raise ProblemsError([Problem(str(path), "", "decrypted content is not YAML")]) from None
    if not isinstance(raw, dict):
        raise ProblemsError([Problem(str(path), "", "expected a mapping of credential keys")])
    data: dict[str, Secret] = {}
    problems: list[Problem] = []
    for k, v in raw.items():
        if not isinstance(k, str):
            problems.append(Problem(str(path), str(k), "keys must be strings"))
            continue
        if k.endswith("_unencrypted") or k == "sops":
            continue
        if not isinstance(v, str | int):
            problems.append(Problem(str(path), k, "values must be strings"))
            continue
        data[k] = Secret(str(v))
    problems += validate_git_credentials(cluster, data, path)
    if problems:
        raise ProblemsError(problems)
    return GitCredentials(data, path)
