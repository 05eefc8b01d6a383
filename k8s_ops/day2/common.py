"""What every day-2 task shares: the cluster's kube target, hint command lines and the epoch for triggers. Reads
live in `k8s_ops.tools.kubectl` (`get_or_none`, `list_or_empty`), waits in `k8s_ops.core.wait` (`wait_check`),
running a plan with its recovery in `k8s_ops.core.pipeline` (`show`, `run`)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence
from typing import Any

from k8s_ops.core import paths
from k8s_ops.core.errors import ToolkitError
from k8s_ops.tools.kubectl import KubeTarget, Obj

__all__ = ["by_namespace", "epoch_now", "require_target", "shell"]


def require_target(cluster: str) -> KubeTarget:
    """The cluster's kube target, after checking that the cluster exists and its kubeconfig was fetched."""
    cdir = paths.cluster_dir(cluster)
    if not cdir.is_dir():
        root = paths.clusters_dir()
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise ToolkitError(
            f"unknown cluster '{cluster}': no directory {cdir}",
            hint=f"known clusters: {', '.join(known)}" if known else "create clusters/<name>/cluster.yaml first",
        )
    target = KubeTarget.for_cluster(cluster)
    if not target.kubeconfig.is_file():
        raise ToolkitError(
            f"no kubeconfig for cluster '{cluster}' at {target.kubeconfig}",
            hint=f"fetch it first: invoke talos.kubeconfig --cluster {cluster}",
        )
    return target


def shell(target: KubeTarget, tool: str, *args: str) -> str:
    """A command line for hints, with the same explicit kubeconfig and context the toolkit uses."""
    return shlex.join((tool, "--kubeconfig", str(target.kubeconfig), "--context", target.context, *args))


def epoch_now() -> int:
    """Seconds since the epoch: the value written to force-sync annotations and manual triggers."""
    return int(time.time())


def by_namespace(objects: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """`{namespace: [names…]}`, both sorted."""
    out: dict[str, list[str]] = {}
    for obj in objects:
        o = Obj(obj)
        out.setdefault(o.namespace, []).append(o.name)
    return {ns: sorted(names) for ns, names in sorted(out.items())}
