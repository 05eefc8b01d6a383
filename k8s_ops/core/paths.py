"""Where things live: the repository, the clusters directory, build output and the user state dir."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from k8s_ops.core.errors import ToolkitError

__all__ = [
    "CLUSTER_NAME_MAX",
    "KEY_MATERIAL",
    "InvalidName",
    "backups_dir",
    "build_dir",
    "bundle_file",
    "check_cluster_name",
    "check_kube_name",
    "check_node_name",
    "check_options",
    "cluster_dir",
    "clusters_dir",
    "config_dir",
    "default_age_key_file",
    "kubeconfig_path",
    "looks_like_key_material",
    "redact",
    "repo_root",
    "secrets_bundle_path",
    "shown",
    "state_dir",
    "talosconfig_path",
]

_REPO = Path(__file__).resolve().parents[2]

CLUSTER_NAME_MAX = 32
# the inventory's rule (talos/inventory/models.py): a DNS label of at most 32 characters
_CLUSTER_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")


class InvalidName(ToolkitError):
    """A cluster, Kubernetes object or namespace name given on the command line is not a valid name."""


# An age secret key, a PEM block, or a long base64/hex/token run: never quoted in an error, not even in part.
KEY_MATERIAL = re.compile(
    r"AGE-SECRET-KEY(?:-?[0-9A-Z]*)|-----BEGIN[^\n]*|PRIVATE KEY|[A-Za-z0-9+/=_-]{32,}", re.IGNORECASE
)


def looks_like_key_material(text: str) -> bool:
    """An age secret key, a PEM block, a long base64/hex run, or a value the run knows to be secret."""
    from k8s_ops.core.secret import mask_text

    return bool(KEY_MATERIAL.search(text)) or mask_text(text) != text


def redact(text: str) -> str:
    """`text` (a parser's message that may quote its input) with anything that looks like key material replaced."""
    from k8s_ops.core.secret import mask_text

    return KEY_MATERIAL.sub("<not shown>", mask_text(text))


def shown(value: str, limit: int = 40) -> str:
    """`value` quoted for an error message, cut to `limit` characters; nothing of it if it looks like key material."""
    if looks_like_key_material(value):
        return f"a value that looks like key material ({len(value)} characters, not shown)"
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def check_cluster_name(name: object) -> str:
    """`name` if it is a valid cluster name (what every task's `--cluster` must be), else InvalidName.

    A cluster name is a path component under the clusters and build directories: never empty, never a path, at
    most 32 characters of lowercase letters, digits and '-'."""
    if not isinstance(name, str) or not name:
        raise InvalidName("--cluster is empty; give the name of a directory under the clusters directory")
    if len(name) > CLUSTER_NAME_MAX:
        raise InvalidName(f"cluster name {shown(name)} is too long: at most {CLUSTER_NAME_MAX} characters")
    if not _CLUSTER_NAME_RE.match(name):
        raise InvalidName(
            f"{shown(name)} is not a valid cluster name: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (a name, not a path)"
        )
    return name


# Kubernetes names: a namespace is a DNS-1123 label (63), an object name a DNS-1123 subdomain (253)
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_kube_name(option: str, value: str, *, namespace: bool = False) -> str:
    """`value` if it is a valid Kubernetes namespace (`namespace=True`) or object name, else InvalidName naming
    the command-line `option` — so a value can never be empty or become a kubectl flag (`-n --all`)."""
    what, limit, rule = (
        ("namespace", 63, _DNS_LABEL_RE) if namespace else ("Kubernetes object name", 253, _DNS_SUBDOMAIN_RE)
    )
    if not isinstance(value, str) or not value.strip():
        raise InvalidName(f"--{option} is empty; give a {what} or leave the option out")
    if len(value) > limit:
        raise InvalidName(f"--{option} {shown(value)} is too long for a {what}: at most {limit} characters")
    if not rule.match(value):
        allowed = "lowercase letters, digits and '-'" + ("" if namespace else " (and '.')")
        raise InvalidName(
            f"--{option} {shown(value)} is not a valid {what}: {allowed}, starting and ending with a letter or digit"
        )
    return value


_HOSTNAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # the inventory's hostname: a DNS label


def check_node_name(option: str, value: object) -> str:
    """`value` if it names a node as the inventory does (a hostname: DNS label of at most 63 characters, or an IP
    address), else InvalidName naming `--option`; never empty, never something talosctl would read as a flag."""
    import ipaddress

    if not isinstance(value, str) or not value.strip():
        raise InvalidName(f"--{option} is empty; give a node's hostname or address from the inventory")
    if len(value) > 63:
        raise InvalidName(f"--{option} {shown(value)} is too long for a hostname: at most 63 characters")
    if _HOSTNAME_RE.match(value):
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise InvalidName(
            f"--{option} {shown(value)} is not a valid node: a hostname (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit) or an IP address"
        ) from None
    return value


def _names(option: str, value: object, *, namespace: bool = False) -> object:
    """A comma-separated list (`--name a,b`, `--exclude-namespace x,y`): every item a Kubernetes name."""
    if not isinstance(value, str) or not value.strip():
        return check_kube_name(option, "", namespace=namespace)
    for item in value.split(","):
        check_kube_name(option, item.strip(), namespace=namespace)
    return value


#: Task option (keyword argument) -> its check. `None` means "not given"; any given value is checked, so an empty
#: value (`--node ''`) is an error rather than "all". A task may check more narrowly itself (one name, not a list).
OPTION_CHECKS: dict[str, Callable[[object], object]] = {
    "cluster": lambda v: check_cluster_name(v),
    "node": lambda v: check_node_name("node", v),
    "name": lambda v: _names("name", v),
    "app": lambda v: check_kube_name("app", v if isinstance(v, str) else ""),
    "namespace": lambda v: _names("namespace", v, namespace=True),
    "exclude_namespace": lambda v: _names("exclude-namespace", v, namespace=True),
}


def check_options(kwargs: Mapping[str, object]) -> None:
    """Check every option of `OPTION_CHECKS` a task was given (InvalidName naming the option)."""
    for option, check in OPTION_CHECKS.items():
        if option == "cluster" and option in kwargs:
            check(kwargs[option])  # required: None is an error too
        elif kwargs.get(option) is not None:
            check(kwargs[option])


def repo_root() -> Path:
    """The k8s-ops checkout (holds `.sops.yaml`, `clusters/`, `tasks.py`)."""
    return _REPO


def clusters_dir() -> Path:
    """`K8S_OPS_CLUSTERS_DIR`, else `clusters/` at the repo root."""
    env = os.environ.get("K8S_OPS_CLUSTERS_DIR")
    return Path(env).expanduser().resolve() if env else _REPO / "clusters"


def cluster_dir(name: str) -> Path:
    """The inventory directory of one cluster (InvalidName for a name that is not a cluster name)."""
    return clusters_dir() / check_cluster_name(name)


def build_dir(cluster: str) -> Path:
    """Default output of rendered configs: `build/<cluster>/` (git-ignored), `K8S_OPS_BUILD_DIR` overrides the root."""
    root = os.environ.get("K8S_OPS_BUILD_DIR")
    return (Path(root).expanduser() if root else _REPO / "build") / check_cluster_name(cluster)


def state_dir() -> Path:
    """Per-user state (audit log, caches, etcd backups): `K8S_OPS_STATE_DIR`, else XDG state home."""
    env = os.environ.get("K8S_OPS_STATE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state") / "k8s-ops"


def config_dir() -> Path:
    """Per-user configuration: `$XDG_CONFIG_HOME/k8s-ops` (default `~/.config/k8s-ops`)."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".config") / "k8s-ops"


def default_age_key_file() -> Path:
    """Where `op.pull` puts the SOPS age key and where it is looked for last: `<config_dir>/age.agekey`."""
    return config_dir() / "age.agekey"


def bundle_file(cluster_directory: Path) -> Path:
    """The SOPS-encrypted Talos secrets bundle of the cluster in `cluster_directory`: `talos/secrets.sops.yaml`."""
    return cluster_directory / "talos" / "secrets.sops.yaml"


def secrets_bundle_path(cluster: str) -> Path:
    """The secrets bundle of a cluster in the clusters directory: `clusters/<c>/talos/secrets.sops.yaml`."""
    return bundle_file(cluster_dir(cluster))


def talosconfig_path(cluster: str) -> Path:
    """The cluster's talosconfig (0600): `build/<c>/talosconfig`."""
    return build_dir(cluster) / "talosconfig"


def kubeconfig_path(cluster: str) -> Path:
    """The cluster's kubeconfig (0600): `build/<c>/kubeconfig`."""
    return build_dir(cluster) / "kubeconfig"


def backups_dir(cluster: str) -> Path:
    """etcd snapshots and other backups (0700): `<state_dir>/backups/<c>/`."""
    return state_dir() / "backups" / check_cluster_name(cluster)
