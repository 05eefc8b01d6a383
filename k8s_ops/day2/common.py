"""What every day-2 task shares: the cluster's kube target, optional reads, early-failing waits, and running a
plan with a recovery that undoes suspensions when any step fails."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from k8s_ops.core import paths
from k8s_ops.core.command import Command
from k8s_ops.core.errors import CommandFailed, ToolkitError
from k8s_ops.core.execute import Interrupted, Report, StepFailed, execute
from k8s_ops.core.plan import Check, Plan
from k8s_ops.core.runner import Runner
from k8s_ops.core.wait import wait_for
from k8s_ops.tools.kubectl import KubeTarget, get, is_not_found, parse_items, parse_object

__all__ = [
    "Recovery",
    "RecoveryFailed",
    "by_namespace",
    "epoch_now",
    "print_plan",
    "read_list",
    "read_object",
    "read_one",
    "require_target",
    "run_plan",
    "shell",
    "wait_check",
]

T = TypeVar("T")


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


def read_object(runner: Runner, command: Command) -> dict[str, Any] | None:
    """Run a `kubectl get <kind> <name> -o json`: the object, or None when it (or its kind) does not exist."""
    result = runner.run(command, check=False)
    if is_not_found(result):
        return None
    if not result.ok:
        raise CommandFailed(command.display(), result.returncode, result.stderr or result.stdout)
    return parse_object(result)


def read_list(runner: Runner, command: Command) -> list[dict[str, Any]]:
    """Run a `kubectl get <kind> -o json` list: the items; none when the kind is not installed."""
    result = runner.run(command, check=False)
    if is_not_found(result):
        return []
    if not result.ok:
        raise CommandFailed(command.display(), result.returncode, result.stderr or result.stdout)
    return parse_items(result)


def read_one(runner: Runner, target: KubeTarget, resource: str, name: str, namespace: str) -> dict[str, Any] | None:
    """Shorthand for `read_object(get(...))`."""
    return read_object(runner, get(target, resource, name, namespace=namespace))


def wait_check(
    description: str, probe: Callable[[Runner], T | None], *, timeout: float, hint: str | None = None
) -> Check:
    """A Check that polls `probe(runner)` until it returns a value, fails at once on StopWaiting, times out."""

    def run(runner: Runner) -> None:
        wait_for(description, lambda: probe(runner), timeout=timeout, hint=hint)

    minutes = timeout / 60
    shown = f"{minutes:g}m" if timeout >= 60 else f"{timeout:g}s"
    return Check(f"{description} (timeout {shown})", run)


@dataclass(frozen=True)
class Recovery:
    """Commands run when any step fails (or Ctrl-C), e.g. resume what the plan suspended, and what they did."""

    commands: tuple[Command, ...]
    done: str

    def to_json(self) -> dict[str, Any]:
        return {"commands": [c.to_json() for c in self.commands], "done": self.done}


class RecoveryFailed(ToolkitError):
    """The operation failed; the recovery ran (completely or not) and the message says what state is left."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


def print_plan(plan: Plan, recovery: Recovery | None, *, as_json: bool) -> None:
    """--dry-run output: the plan, then what would run if a step failed."""
    if as_json:
        data = plan.to_json()
        data["on_failure"] = recovery.to_json() if recovery else None
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    text = plan.to_text()
    if recovery and recovery.commands:
        text += "on failure of any step (then the task exits non-zero):\n"
        text += "".join(f"    $ {c.display()}\n" for c in recovery.commands)
    sys.stdout.write(text)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_plan(
    plan: Plan,
    runner: Runner,
    *,
    yes: bool = False,
    confirm_name: str | None = None,
    recovery: Recovery | None = None,
    out: Callable[[str], None] = _stderr,
) -> Report:
    """Execute `plan`; if a step fails or is interrupted, run `recovery` and fail with what it did."""
    try:
        return execute(plan, runner, yes=yes, confirm_name=confirm_name, out=out)
    except (StepFailed, Interrupted) as exc:
        if recovery is None or not recovery.commands:
            raise
        out("recovering: the operation failed, undoing what would leave the app stopped")
        failed: list[str] = []
        for command in recovery.commands:
            out(f"    $ {command.display()}")
            try:
                result = runner.run(command, check=False)
            except ToolkitError as rexc:
                failed.append(f"{command.display()}: {rexc}")
                continue
            if not result.ok:
                tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"exit {result.returncode}"]
                failed.append(f"{command.display()}: {tail[0]}")
        if failed:
            raise RecoveryFailed(
                f"{exc.message}\nrecovery INCOMPLETE — these commands failed, run them by hand:\n"
                + "\n".join(f"  - {f}" for f in failed),
                hint=exc.hint,
                exit_code=exc.exit_code,
            ) from exc
        raise RecoveryFailed(f"{exc.message}\n{recovery.done}", hint=exc.hint, exit_code=exc.exit_code) from exc


def by_namespace(objects: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """`{namespace: [names…]}`, both sorted."""
    out: dict[str, list[str]] = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        out.setdefault(str(meta.get("namespace", "")), []).append(str(meta.get("name", "")))
    return {ns: sorted(names) for ns, names in sorted(out.items())}
