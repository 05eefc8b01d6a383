"""The day-2 tasks, one module: the `kubernetes` and `volsync` collections (the CLI namespaces `kubernetes.*` and
`volsync.*`, added at the root by tasks.py — two namespaces because an operator thinks "kubernetes.reconcile",
"volsync.restore", not "day2.…").

kubernetes.*: sync-secrets, hr-restart, reconcile, cleanse-pods. volsync.*: snapshot (manual backup), restore (into
the app's PVC), unlock (restic repository); restic-based VolSync ReplicationSources only — the app's
ReplicationSource is `<app>` or `<app>-backup`, found in any namespace unless --namespace is given.

Each task reads what it needs with kubectl (also under --dry-run), builds a plan (k8s_ops/day2/kubernetes.py,
volsync.py), then hands it to the task pipeline (`k8s_ops.core.pipeline.finish`). Every command names the
cluster's kubeconfig and context explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded
from k8s_ops.core.paths import check_kube_name
from k8s_ops.core.pipeline import finish, help_for, runner_from

if TYPE_CHECKING:
    from k8s_ops.core.plan import Plan
    from k8s_ops.core.runner import Runner
    from k8s_ops.tools.kubectl import KubeTarget

    SourcePlanner = Callable[..., Plan]

__all__ = [
    "cleanse_pods",
    "hr_restart",
    "kubernetes",
    "reconcile",
    "restore",
    "snapshot",
    "sync_secrets",
    "unlock",
    "volsync",
]

_DRY = "print the plan (facts are still read from the cluster); change nothing"
_KUBE = help_for(**{"dry-run": _DRY})
_VOLSYNC = help_for(
    app="the app: its ReplicationSource is <app> or <app>-backup",
    namespace="the app's namespace (default: wherever its ReplicationSource is, if in exactly one)",
    timeout="minutes to wait for the VolSync mover job (default 120)",
    **{"dry-run": _DRY},
)


# --- kubernetes.* -----------------------------------------------------------------------------------------------


def _names(value: str | None) -> tuple[str, ...]:
    """The comma-separated `--name` list, each a valid Kubernetes name (an empty one is refused)."""
    if value is None:
        return ()
    return tuple(check_kube_name("name", n.strip()) for n in value.split(","))


def _ns(value: str | None) -> str | None:
    """`--namespace`, checked: a valid namespace, or None when not given (an empty value is refused)."""
    return None if value is None else check_kube_name("namespace", value, namespace=True)


def _connect(c: Context, cluster: str, *tools: str) -> tuple[Runner, KubeTarget]:
    """The cluster's kube target (checked) and the task's runner, once the CLIs the task runs are on PATH."""
    from k8s_ops.core import preflight
    from k8s_ops.day2.common import require_target

    target = require_target(cluster)
    runner = runner_from(c)
    preflight.preflight(runner, list(tools))
    return runner, target


def _finish(plan: Plan, runner: Runner, done: str, *, dry_run: bool, json: bool, **options: Any) -> bool:
    """Hand the plan to the pipeline; after a run (not a dry run) print `done`. True when the plan ran."""
    if finish(plan, runner, dry_run=dry_run, json=json, summary=False, **options) is None:
        return False
    print(done)
    return True


@task(
    help={
        **_KUBE,
        "namespace": "only ExternalSecrets in this namespace (default: all namespaces)",
        "name": "only these ExternalSecrets (comma-separated names)",
    }
)
@guarded
def sync_secrets(
    c: Context,
    cluster: str,
    namespace: str | None = None,
    name: str | None = None,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Force-sync ExternalSecrets now (annotation force-sync=<epoch>) and wait until they are refreshed.

    All ExternalSecrets of the cluster by default, or those of --namespace / --name. Prints how many were
    synced; a secret whose store fails is named with the store's error.
    """
    from k8s_ops.day2.common import epoch_now
    from k8s_ops.day2.kubernetes import external_secrets_fact, plan_sync_secrets, select_secrets

    namespace, names = _ns(namespace), _names(name)
    runner, target = _connect(c, cluster, "kubectl")
    secrets = external_secrets_fact(runner, target, namespace)
    selected = select_secrets(secrets, names=names, namespace=namespace)
    plan = plan_sync_secrets(cluster, target, selected, epoch=epoch_now(), namespace=namespace)
    _finish(plan, runner, f"force-synced {len(selected)} ExternalSecret(s)", dry_run=dry_run, json=json)


@task(
    help={
        **_KUBE,
        "name": "HelmRelease name",
        "namespace": "HelmRelease namespace",
    }
)
@guarded
def hr_restart(c: Context, cluster: str, name: str, namespace: str, dry_run: bool = False, json: bool = False) -> None:
    """Restart a HelmRelease: suspend, then resume it, and wait until it is Ready again.

    If anything fails after the suspend, the release is resumed before the task exits (never left suspended).
    """
    from k8s_ops.day2.kubernetes import plan_hr_restart
    from k8s_ops.tools.flux import HELMRELEASE
    from k8s_ops.tools.kubectl import get_or_none

    name, namespace = check_kube_name("name", name), check_kube_name("namespace", namespace, namespace=True)
    runner, target = _connect(c, cluster, "kubectl", "flux")
    release = get_or_none(runner, target, HELMRELEASE, name, namespace=namespace)
    plan = plan_hr_restart(cluster, target, release, name=name, namespace=namespace)
    done = f"HelmRelease {namespace}/{name} restarted and Ready"
    _finish(plan, runner, done, dry_run=dry_run, json=json)


@task(
    help={
        **_KUBE,
        "name": "Kustomization name (default: the root Kustomization, flux-system)",
        "namespace": "Kustomization namespace (default: flux-system)",
        "with-source": "fetch its source (GitRepository/OCIRepository) first",
    }
)
@guarded
def reconcile(
    c: Context,
    cluster: str,
    name: str | None = None,
    namespace: str | None = None,
    with_source: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Reconcile a Flux Kustomization (the root one by default) and wait until it is Ready.

    Refuses a suspended Kustomization (reconciling it would do nothing) and stops early when Flux reports it
    Stalled; a timeout names the Kustomization's Ready message.
    """
    from k8s_ops.day2.kubernetes import plan_reconcile
    from k8s_ops.tools.flux import FLUX_NAMESPACE, KUSTOMIZATION, ROOT_KUSTOMIZATION
    from k8s_ops.tools.kubectl import get_or_none

    ks_name = ROOT_KUSTOMIZATION if name is None else check_kube_name("name", name)
    ks_ns = _ns(namespace) or FLUX_NAMESPACE
    runner, target = _connect(c, cluster, "kubectl", "flux")
    current = get_or_none(runner, target, KUSTOMIZATION, ks_name, namespace=ks_ns)
    plan = plan_reconcile(cluster, target, current, name=ks_name, namespace=ks_ns, with_source=with_source)
    _finish(plan, runner, f"Kustomization {ks_ns}/{ks_name} reconciled and Ready", dry_run=dry_run, json=json)


@task(
    help={
        **_KUBE,
        "pending": "also delete Pending pods",
        "namespace": "only pods in this namespace (default: all namespaces)",
    }
)
@guarded
def cleanse_pods(
    c: Context,
    cluster: str,
    pending: bool = False,
    namespace: str | None = None,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Delete pods in phase Failed or Succeeded (and Pending with --pending) across namespaces.

    --dry-run lists every pod it would delete, with its phase.
    """
    from k8s_ops.day2.kubernetes import plan_cleanse_pods, select_pods
    from k8s_ops.tools.kubectl import list_or_empty

    namespace = _ns(namespace)
    runner, target = _connect(c, cluster, "kubectl")
    pods = list_or_empty(runner, target, "pods", namespace=namespace, all_namespaces=namespace is None)
    doomed = select_pods(pods, pending=pending)
    plan = plan_cleanse_pods(cluster, target, doomed, pending=pending)
    _finish(plan, runner, f"deleted {len(doomed)} pod(s)", dry_run=dry_run, json=json)


# --- volsync.* --------------------------------------------------------------------------------------------------


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
    c: Context,
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
    from k8s_ops.day2.common import epoch_now
    from k8s_ops.day2.volsync import find_source, sources_fact

    app, namespace = check_kube_name("app", app), _ns(namespace)
    wait = _timeout(timeout)
    runner, target = _connect(c, cluster, "kubectl")
    source = find_source(sources_fact(runner, target, namespace), app, namespace)
    plan = planner(cluster, target, source, epoch=epoch_now(), timeout=wait)
    if finish(plan, runner, dry_run=dry_run, json=json, summary=False) is None:
        return None
    return runner, target, source


@task(help=_VOLSYNC)
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
    from k8s_ops.day2.volsync import REPLICATIONSOURCE, plan_snapshot
    from k8s_ops.tools.kubectl import get_or_none

    ran = _run_on_source(c, cluster, app, namespace, timeout, plan_snapshot, dry_run=dry_run, json=json)
    if ran is None:
        return
    runner, target, source = ran
    meta = source.get("metadata") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    after = get_or_none(runner, target, REPLICATIONSOURCE, name, namespace=ns) or {}
    status = after.get("status") or {}
    result = (status.get("latestMoverStatus") or {}).get("result", "?")
    print(
        f"backup of {app} done: ReplicationSource {ns}/{name} lastSyncTime={status.get('lastSyncTime', '?')} "
        f"duration={status.get('lastSyncDuration', '?')} result={result}"
    )


@task(
    help={
        **_VOLSYNC,
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
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.day2.common import epoch_now
    from k8s_ops.day2.volsync import gather_restore_facts, plan_restore

    app, namespace = check_kube_name("app", app), _ns(namespace)
    wait = _timeout(timeout)
    prev: int | None = None
    if previous not in (None, ""):
        try:
            prev = int(str(previous))
        except ValueError:
            raise ToolkitError(f"--previous must be a whole number (0 = latest snapshot), got {previous!r}") from None
    runner, target = _connect(c, cluster, "kubectl", "flux")
    facts = gather_restore_facts(runner, target, app, namespace)
    plan = plan_restore(cluster, target, facts, app, epoch=epoch_now(), previous=prev, timeout=wait)
    done = f"restored {app}: PVC data replaced from the {'latest' if not prev else f'previous={prev}'} snapshot"
    _finish(plan, runner, done, dry_run=dry_run, json=json, yes=yes, confirm_name=app)


@task(help=_VOLSYNC)
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

    if _run_on_source(c, cluster, app, namespace, timeout, plan_unlock, dry_run=dry_run, json=json) is not None:
        print(f"restic repository of {app} unlocked")


kubernetes = Collection("kubernetes", sync_secrets, hr_restart, reconcile, cleanse_pods)
volsync = Collection("volsync", snapshot, restore, unlock)
