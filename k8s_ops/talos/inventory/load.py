"""Loading: one cluster or every cluster of a clusters directory, with every problem of every file at once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pydantic import (
    ValidationError,
)

from k8s_ops.core import paths
from k8s_ops.core.errors import Problem, ProblemsError
from k8s_ops.talos import yamlio
from k8s_ops.talos.inventory.checks import Sibling, as_network, check_links, check_semantics
from k8s_ops.talos.inventory.models import CLUSTER_FILE, Cluster
from k8s_ops.talos.inventory.problems import safe_field, short, validation_problems
from k8s_ops.talos.inventory.source import read_yaml

# ---- siblings (cheap: only id and pod CIDR are read)


def _cluster_dirs(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and (p / CLUSTER_FILE).is_file())
    except OSError:
        return []


def _siblings(root: Path, exclude: str) -> list[Sibling]:
    out = []
    for d in _cluster_dirs(root):
        if d.name == exclude:
            continue
        try:
            docs = yamlio.load_documents(yamlio.read_text(d / CLUSTER_FILE))
        except (OSError, yamlio.YAMLError):
            continue  # that cluster's own load reports it
        data = docs[0] if len(docs) == 1 else None
        if not isinstance(data, dict):
            continue
        cid = data.get("id")
        net = data.get("network")
        pod = as_network(net.get("podCIDR")) if isinstance(net, dict) else None
        out.append(Sibling(d.name, d / CLUSTER_FILE, cid if isinstance(cid, int) else None, pod))
    return out


def _load(name: str, root: Path) -> tuple[Cluster | None, list[Problem]]:
    problems: list[Problem] = []
    cdir = root / name
    if not name or "/" in name or name in {".", ".."}:
        return None, [Problem(str(root), "", f"{name!r} is not a cluster name")]
    if not cdir.is_dir():
        known = ", ".join(d.name for d in _cluster_dirs(root)) or "none"
        return None, [Problem(str(cdir), "", f"cluster directory not found (known clusters in {root}: {known})")]
    src = read_yaml(cdir / CLUSTER_FILE, problems)
    if src is None:
        return None, problems
    if not isinstance(src.data, dict):
        problems.append(src.problem((), f"expected a mapping of cluster settings, got {short(src.data)}"))
        return None, problems
    cluster: Cluster | None = None
    try:
        cluster = Cluster.model_validate(src.data)
    except ValidationError as exc:
        problems += validation_problems(src, exc)
    problems += check_semantics(src, name, _siblings(root, name))
    problems += check_links(src)
    if cluster is not None:
        cluster._path = cdir
    # one problem per place and message, in file order; no key material or long key in a field path
    unique = list(dict.fromkeys(replace(p, field=safe_field(p.field)) for p in problems))
    unique.sort(key=lambda p: (p.file, p.line or 0))
    return (cluster if not unique else None), unique


def load_cluster(name: str, *, clusters_dir: Path | None = None) -> Cluster:
    """Load and validate `<clusters_dir>/<name>/cluster.yaml`; ProblemsError with every problem found.

    `clusters_dir` defaults to `k8s_ops.core.paths.clusters_dir()` (`K8S_OPS_CLUSTERS_DIR` or `clusters/`).
    Sibling clusters are read cheaply to check that cluster ids and pod CIDRs are unique.
    """
    root = clusters_dir if clusters_dir is not None else paths.clusters_dir()
    cluster, problems = _load(name, root)
    if problems or cluster is None:
        file = root / name / CLUSTER_FILE
        raise ProblemsError(problems, hint=f"fix {file} and run again" if file.is_file() else None)
    return cluster


def load_all(clusters_dir: Path | None = None) -> dict[str, Cluster]:
    """Load every cluster directory (one holding a cluster.yaml); ProblemsError with all problems of all."""
    root = clusters_dir if clusters_dir is not None else paths.clusters_dir()
    if not root.is_dir():
        raise ProblemsError([Problem(str(root), "", "clusters directory not found")])
    clusters: dict[str, Cluster] = {}
    problems: list[Problem] = []
    for d in _cluster_dirs(root):
        cluster, found = _load(d.name, root)
        problems += found
        if cluster is not None:
            clusters[d.name] = cluster
    if problems:
        raise ProblemsError(problems)
    return clusters
