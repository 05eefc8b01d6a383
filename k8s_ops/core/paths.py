"""Where things live: the repository, the clusters directory, build output and the user state dir."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "backups_dir",
    "build_dir",
    "bundle_file",
    "cluster_dir",
    "clusters_dir",
    "config_dir",
    "default_age_key_file",
    "kubeconfig_path",
    "repo_root",
    "secrets_bundle_path",
    "state_dir",
    "talosconfig_path",
]

_REPO = Path(__file__).resolve().parents[2]


def repo_root() -> Path:
    """The k8s-ops checkout (holds `.sops.yaml`, `clusters/`, `tasks.py`)."""
    return _REPO


def clusters_dir() -> Path:
    """`K8S_OPS_CLUSTERS_DIR`, else `clusters/` at the repo root."""
    env = os.environ.get("K8S_OPS_CLUSTERS_DIR")
    return Path(env).expanduser().resolve() if env else _REPO / "clusters"


def cluster_dir(name: str) -> Path:
    """The inventory directory of one cluster."""
    return clusters_dir() / name


def build_dir(cluster: str) -> Path:
    """Default output of rendered configs: `build/<cluster>/` (git-ignored), `K8S_OPS_BUILD_DIR` overrides the root."""
    root = os.environ.get("K8S_OPS_BUILD_DIR")
    return (Path(root).expanduser() if root else _REPO / "build") / cluster


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
    return state_dir() / "backups" / cluster
