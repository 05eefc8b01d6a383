"""What every day-2 task shares: the cluster's kube target, and running a plan with a recovery that undoes
suspensions when any step fails. Reads live in `k8s_ops.tools.kubectl` (`get_or_none`, `list_or_empty`), waits
in `k8s_ops.core.wait` (`wait_check`)."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from k8s_ops.core import paths
from k8s_ops.core.command import Command
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.execute import Report
from k8s_ops.core.pipeline import RecoveryFailed, run, show
from k8s_ops.core.plan import Plan, Recovery
from k8s_ops.core.runner import Runner
from k8s_ops.tools import kubectl
from k8s_ops.tools.kubectl import KubeTarget, Obj

__all__ = [
    "Recovery",
    "RecoveryFailed",
    "by_namespace",
    "epoch_now",
    "print_plan",
    "read_list",
    "read_one",
    "require_target",
    "run_plan",
    "shell",
]


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


def read_list(runner: Runner, command: Command) -> list[dict[str, Any]]:
    """`kubectl.list_or_empty` for a ready-made `kubectl.get` command (kept for the task modules)."""
    result = kubectl.read(runner, command)
    return [] if result is None else kubectl.parse_items(result)


def read_one(runner: Runner, target: KubeTarget, resource: str, name: str, namespace: str) -> dict[str, Any] | None:
    """`kubectl.get_or_none` with a positional namespace (kept for the task modules)."""
    return kubectl.get_or_none(runner, target, resource, name, namespace=namespace)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def print_plan(plan: Plan, recovery: Recovery | None, *, as_json: bool) -> None:
    """--dry-run output: the plan, then what would run if a step failed (the task pipeline's `show`)."""
    show(plan, recovery, json=as_json)


def run_plan(
    plan: Plan,
    runner: Runner,
    *,
    yes: bool = False,
    confirm_name: str | None = None,
    recovery: Recovery | None = None,
    out: Callable[[str], None] = _stderr,
) -> Report:
    """Execute `plan`; if a step fails or is interrupted, run `recovery` and fail with what it did (the task
    pipeline's `run`)."""
    return run(plan, runner, yes=yes, confirm_name=confirm_name, recovery=recovery, out=out)


def by_namespace(objects: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """`{namespace: [names…]}`, both sorted."""
    out: dict[str, list[str]] = {}
    for obj in objects:
        o = Obj(obj)
        out.setdefault(o.namespace, []).append(o.name)
    return {ns: sorted(names) for ns, names in sorted(out.items())}
