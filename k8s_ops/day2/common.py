"""What every day-2 task shares: the cluster's kube target, hint command lines and the epoch for triggers. Reads
live in `k8s_ops.tools.kubectl` (`get_or_none`, `list_or_empty`), waits in `k8s_ops.core.wait` (`wait_check`),
running a plan with its recovery in `k8s_ops.core.pipeline` (`show`, `run`)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from k8s_ops.core import paths
from k8s_ops.core.command import Command
from k8s_ops.core.errors import CommandFailed, ToolkitError
from k8s_ops.tools.kubectl import KubeTarget, Obj

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner

__all__ = [
    "DEBUG_IMAGE",
    "MANAGED_BY",
    "RESTIC_IMAGE",
    "PodSession",
    "by_namespace",
    "epoch_now",
    "require_target",
    "require_terminal",
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


def by_namespace(objects: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """`{namespace: [names…]}`, both sorted."""
    out: dict[str, list[str]] = {}
    for obj in objects:
        o = Obj(obj)
        out.setdefault(o.namespace, []).append(o.name)
    return {ns: sorted(names) for ns, names in sorted(out.items())}


DEBUG_IMAGE = (
    "docker.io/nicolaka/netshoot:v0.14@sha256:7f08c4aff13ff61a35d30e30c5c1ea8396eac6ab4ce19fd02d5a4b3b5d0d09a2"
)
"""The image of node-shell and browse-pvc pods, pinned by digest (a shell plus network and file tools)."""

RESTIC_IMAGE = "docker.io/restic/restic:0.18.1@sha256:39d9072fb5651c80d75c7a811612eb60b4c06b32ffe87c2e9f3c7222e1797e76"
"""The image of volsync.list's Job, pinned by digest (restic reads the repository Secret's RESTIC_* variables)."""

MANAGED_BY = {"app.kubernetes.io/managed-by": "k8s-ops"}
"""The label on every pod or Job a day-2 task creates (and removes again)."""


@dataclass(frozen=True)
class PodSession:
    """A command in a pod the plan created: on the operator's terminal (`interactive`: stdin, stdout and stderr
    are the terminal's, so a shell works) or captured (`--command`: the runner runs it and its output is printed
    and kept as the step's result).

    The interactive child stays in the terminal's process group (kubectl puts the terminal in raw mode; Ctrl-C
    then reaches the remote shell, not the toolkit), which is why it is not run through the runner.
    """

    command: Command
    interactive: bool
    mutates = True

    def display(self) -> str:
        return f"{'interactive session' if self.interactive else 'run'}: {self.command.display()}"

    def to_json(self) -> dict[str, Any]:
        return {"effect": "pod-session", "interactive": self.interactive, **self.command.to_json()}

    def apply(self, runner: Runner) -> str:
        if not self.interactive:
            result = runner.run(self.command, check=False)
            sys.stdout.write(result.stdout)
            sys.stdout.flush()
            if not result.ok:
                raise CommandFailed(self.command.display(), result.returncode, result.stderr or result.stdout)
            return result.stdout
        argv = [str(a) for a in self.command.argv]
        try:
            code = subprocess.call(argv)
        except FileNotFoundError:
            raise ToolkitError(f"{argv[0]} not found on PATH") from None
        if code not in (0, 130):  # 130: the shell ended with Ctrl-C/Ctrl-D after an interrupted command
            raise CommandFailed(self.command.display(), code, "the session ended with an error")
        return ""


def require_terminal(what: str) -> None:
    """An interactive task needs a terminal on stdin; otherwise say how to run it non-interactively."""
    if not sys.stdin.isatty():
        raise ToolkitError(
            f"{what} is interactive and stdin is not a terminal", hint="give --command to run one command"
        )
