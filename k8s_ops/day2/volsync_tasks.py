"""volsync.* tasks: snapshot (manual backup), restore (into the app's PVC), unlock (restic repository).

Restic-based VolSync ReplicationSources only. The app's ReplicationSource is `<app>` or `<app>-backup`,
found in any namespace unless --namespace is given. Every command names the cluster's kubeconfig and context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded

if TYPE_CHECKING:
    from k8s_ops.core.plan import Plan
    from k8s_ops.core.runner import Runner
    from k8s_ops.day2.common import Recovery
    from k8s_ops.tools.kubectl import KubeTarget

    SourcePlanner = Callable[..., tuple[Plan, Recovery | None]]

__all__ = ["restore", "snapshot", "unlock"]

_COMMON = {
    "cluster": "cluster name (clusters/<name>/); its kubeconfig build/<name>/kubeconfig and context <name> are used",
    "app": "the app: its ReplicationSource is <app> or <app>-backup",
    "namespace": "the app's namespace (default: wherever its ReplicationSource is, if in exactly one)",
    "timeout": "minutes to wait for the VolSync mover job (default 120)",
    "dry-run": "print the plan (facts are still read from the cluster); change nothing",
    "json": "with --dry-run: print the plan as JSON",
}


def _timeout(minutes: int | str) -> float:
    from k8s_ops.core.errors import ToolkitError

    try:
        value = float(minutes)
    except ValueError:
        raise ToolkitError(f"--timeout must be a number of minutes, got {minutes!r}") from None
    if value <= 0:
        raise ToolkitError(f"--timeout must be more than 0 minutes, got {minutes}")
    return value * 60


def _run_on_source(
    cluster: str,
    app: str,
    namespace: str | None,
    timeout: int | str,
    planner: SourcePlanner,
    *,
    dry_run: bool,
    json: bool,
) -> tuple[Runner, KubeTarget, Mapping[str, Any]] | None:
    """Find the app's ReplicationSource, plan with `planner`, then print the plan (--dry-run: returns None) or
    run it; the shared body of snapshot and unlock."""
    from k8s_ops.core import preflight as tools
    from k8s_ops.core.runner import SubprocessRunner
    from k8s_ops.day2.common import epoch_now, print_plan, require_target, run_plan
    from k8s_ops.day2.volsync import find_source, sources_fact

    wait = _timeout(timeout)
    target = require_target(cluster)
    runner = SubprocessRunner()
    tools.preflight(runner, ["kubectl"])
    source = find_source(sources_fact(runner, target, namespace), app, namespace)
    plan, recovery = planner(cluster, target, source, epoch=epoch_now(), timeout=wait)
    if dry_run:
        print_plan(plan, recovery, as_json=json)
        return None
    run_plan(plan, runner, recovery=recovery)
    return runner, target, source


@task(help=_COMMON)
@guarded
def snapshot(
    c: Context,
    cluster: str,
    app: str,
    namespace: str | None = None,
    timeout: int = 120,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Back up an app now: trigger a manual sync of its ReplicationSource and wait for the mover job.

    Sets spec.trigger.manual=<epoch> and waits for status.lastManualSync=<epoch>; a failed mover job stops the
    wait at once with the job's reason and the mover's last log lines. A source with a schedule gets its
    schedule back afterwards (a manual trigger left behind would stop scheduled backups).
    """
    from k8s_ops.day2.common import read_one
    from k8s_ops.day2.volsync import REPLICATIONSOURCE, plan_snapshot

    ran = _run_on_source(cluster, app, namespace, timeout, plan_snapshot, dry_run=dry_run, json=json)
    if ran is None:
        return
    runner, target, source = ran
    meta = source.get("metadata") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    after = read_one(runner, target, REPLICATIONSOURCE, name, ns) or {}
    status = after.get("status") or {}
    result = (status.get("latestMoverStatus") or {}).get("result", "?")
    print(
        f"backup of {app} done: ReplicationSource {ns}/{name} lastSyncTime={status.get('lastSyncTime', '?')} "
        f"duration={status.get('lastSyncDuration', '?')} result={result}"
    )


@task(
    help={
        **_COMMON,
        "previous": "restore the K-th snapshot before the latest (default 0: the latest)",
        "yes": "do not ask for the typed confirmation (the app's name)",
    }
)
@guarded
def restore(
    c: Context,
    cluster: str,
    app: str,
    previous: str | None = None,
    namespace: str | None = None,
    timeout: int = 120,
    yes: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Restore an app's PVC from its restic backup (destructive: the PVC's current data is replaced).

    Suspends the app's Flux Kustomization and HelmRelease, pauses its ReplicationSource, scales its
    Deployments/StatefulSets to zero and waits for the pods to go, restores with a ReplicationDestination
    <app>-manual (copyMethod Direct into the source PVC, repository and mover settings copied from the
    ReplicationSource), deletes it, then resumes and reconciles Flux, scales back and waits for Ready.
    If ANY step fails, Flux is resumed, the source unpaused and the workloads scaled back before the task
    exits non-zero, and the error says so. Asks you to type the app name unless --yes.
    """
    from k8s_ops.core import preflight as tools
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.core.runner import SubprocessRunner
    from k8s_ops.day2.common import epoch_now, print_plan, require_target, run_plan
    from k8s_ops.day2.volsync import gather_restore_facts, plan_restore

    wait = _timeout(timeout)
    prev: int | None = None
    if previous not in (None, ""):
        try:
            prev = int(str(previous))
        except ValueError:
            raise ToolkitError(f"--previous must be a whole number (0 = latest snapshot), got {previous!r}") from None
    target = require_target(cluster)
    runner = SubprocessRunner()
    tools.preflight(runner, ["kubectl", "flux"])
    facts = gather_restore_facts(runner, target, app, namespace)
    plan, recovery = plan_restore(cluster, target, facts, app, epoch=epoch_now(), previous=prev, timeout=wait)
    if dry_run:
        print_plan(plan, recovery, as_json=json)
        return
    run_plan(plan, runner, yes=yes, confirm_name=app, recovery=recovery)
    print(f"restored {app}: PVC data replaced from the {'latest' if not prev else f'previous={prev}'} snapshot")


@task(help=_COMMON)
@guarded
def unlock(
    c: Context,
    cluster: str,
    app: str,
    namespace: str | None = None,
    timeout: int = 120,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Unlock the restic repository of an app (stale locks make every backup fail) and wait until done.

    Sets spec.restic.unlock=<epoch> with a manual sync to carry it out (VolSync unlocks at the start of a
    sync) and waits for status.restic.lastUnlocked=<epoch>; the sync also takes a backup. A scheduled
    source gets its schedule back afterwards.
    """
    from k8s_ops.day2.volsync import plan_unlock

    if _run_on_source(cluster, app, namespace, timeout, plan_unlock, dry_run=dry_run, json=json) is not None:
        print(f"restic repository of {app} unlocked")
