"""The day-2 tasks, one module: the `kubernetes` and `volsync` collections (the CLI namespaces `kubernetes.*` and
`volsync.*`, added at the root by tasks.py — two namespaces because an operator thinks "kubernetes.reconcile",
"volsync.restore", not "day2.…").

kubernetes.*: sync-secrets, hr-restart (--failed), sync-all, reconcile, cleanse-pods, pause/resume (k8s_ops/day2/
pause.py), node-shell, browse-pvc. volsync.*: snapshot (manual backup; --all), restore (into the app's PVC; --as-of),
unlock (restic repository; --all), list (the repository's snapshots), status (every source, a read-only report);
restic-based VolSync ReplicationSources only — the app's ReplicationSource is `<app>` or `<app>-backup`, found in any
namespace unless --namespace is given.

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
from k8s_ops.core.pipeline import LOCK_HELP, finish, help_for, runner_from

if TYPE_CHECKING:
    from k8s_ops.core.plan import Plan
    from k8s_ops.core.runner import Runner
    from k8s_ops.day2.pause import Selection
    from k8s_ops.tools.kubectl import KubeTarget

    SourcePlanner = Callable[..., Plan]

__all__ = [
    "apply_ks",
    "browse_pvc",
    "cleanse_pods",
    "hr_restart",
    "kubernetes",
    "list_",
    "node_shell",
    "pause",
    "reconcile",
    "restore",
    "resume",
    "snapshot",
    "status",
    "sync_all",
    "sync_secrets",
    "unlock",
    "volsync",
]

_DRY = "print the plan (facts are still read from the cluster); change nothing"
_KUBE = help_for(**LOCK_HELP, **{"dry-run": _DRY})
_VOLSYNC = help_for(
    **LOCK_HELP,
    app="the app: its ReplicationSource is <app> or <app>-backup",
    namespace="the app's namespace (default: wherever its ReplicationSource is, if in exactly one)",
    timeout="minutes to wait for the VolSync mover job (default 120)",
    **{"dry-run": _DRY},
)
_VOLSYNC_ALL = {
    **_VOLSYNC,
    "all_": "every ReplicationSource (of --namespace, matching --selector) instead of one app",
    "selector": "with --all: only ReplicationSources with these labels (kubectl label selector, e.g. tier=media)",
}


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
    lock_timeout: int = 0,
    break_lock: bool = False,
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
    _finish(
        plan,
        runner,
        f"force-synced {len(selected)} ExternalSecret(s)",
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(
    help={
        **_KUBE,
        "name": "HelmRelease name",
        "namespace": "HelmRelease namespace",
        "failed": "instead of one release: every HelmRelease that is not Ready (suspended ones are left alone)",
    }
)
@guarded
def hr_restart(
    c: Context,
    cluster: str,
    name: str | None = None,
    namespace: str | None = None,
    failed: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Restart a HelmRelease (or, with --failed, every one not Ready): suspend, resume, wait until Ready again.

    If anything fails after a suspend, that release is resumed before the task exits (never left suspended);
    with --failed the releases are restarted one after the other and the first failure stops the task.
    """
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.day2.kubernetes import plan_hr_restart, plan_hr_restart_failed, select_failed_releases
    from k8s_ops.tools.flux import HELMRELEASE
    from k8s_ops.tools.kubectl import get_or_none, list_or_empty

    if failed:
        if name is not None:
            raise ToolkitError("give either --name/--namespace or --failed, not both")
        namespace = _ns(namespace)
        runner, target = _connect(c, cluster, "kubectl", "flux")
        releases = list_or_empty(runner, target, HELMRELEASE, namespace=namespace, all_namespaces=namespace is None)
        plan = plan_hr_restart_failed(cluster, target, releases)
        count = len(select_failed_releases(releases)[0])
        _finish(
            plan,
            runner,
            f"restarted {count} HelmRelease(s); all Ready",
            dry_run=dry_run,
            json=json,
            lock_timeout=lock_timeout,
            break_lock=break_lock,
        )
        return
    if name is None or namespace is None:
        raise ToolkitError("--name and --namespace are required (or --failed for every release not Ready)")
    name, namespace = check_kube_name("name", name), check_kube_name("namespace", namespace, namespace=True)
    runner, target = _connect(c, cluster, "kubectl", "flux")
    release = get_or_none(runner, target, HELMRELEASE, name, namespace=namespace)
    plan = plan_hr_restart(cluster, target, release, name=name, namespace=namespace)
    done = f"HelmRelease {namespace}/{name} restarted and Ready"
    _finish(plan, runner, done, dry_run=dry_run, json=json, lock_timeout=lock_timeout, break_lock=break_lock)


@task(
    help={
        **_KUBE,
        "force": "HelmReleases get reconcile.fluxcd.io/forceAt too: a one-off upgrade even when nothing changed",
    }
)
@guarded
def sync_all(
    c: Context,
    cluster: str,
    force: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Reconcile every GitRepository/OCIRepository, then every Kustomization, then every HelmRelease.

    Each phase requests a reconcile (annotation reconcile.fluxcd.io/requestedAt) and waits, counting, until every
    object handled it; suspended objects are skipped. At the end, every object that is not Ready is named (and
    the task exits non-zero).
    """
    from k8s_ops.day2.common import epoch_now
    from k8s_ops.day2.kubernetes import flux_objects_fact, plan_sync_all
    from k8s_ops.tools.flux import flux_status

    runner, target = _connect(c, cluster, "kubectl")
    objects = flux_objects_fact(runner, target)
    plan = plan_sync_all(cluster, target, objects, token=str(epoch_now()), force=force)
    total = sum(1 for items in objects.values() for o in items if not flux_status(o).suspended)
    _finish(
        plan,
        runner,
        f"reconciled {total} Flux object(s); all Ready",
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


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
    lock_timeout: int = 0,
    break_lock: bool = False,
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
    _finish(
        plan,
        runner,
        f"Kustomization {ks_ns}/{ks_name} reconciled and Ready",
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


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
    lock_timeout: int = 0,
    break_lock: bool = False,
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
    _finish(
        plan,
        runner,
        f"deleted {len(doomed)} pod(s)",
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


_PAUSE = {
    **_KUBE,
    "flux": "Flux Kustomizations and HelmReleases (spec.suspend)",
    "volsync": "VolSync ReplicationSources (spec.paused)",
    "keda": "KEDA ScaledObjects (annotation autoscaling.keda.sh/paused)",
    "namespace": "only these namespaces (comma-separated; default: all)",
    "exclude_namespace": "never these namespaces (comma-separated)",
}


def _selection(flux: bool, volsync: bool, keda: bool, namespace: str | None, exclude: str | None) -> Selection:
    """The pause selection from the task's flags: none of --flux/--volsync/--keda means all three."""
    from k8s_ops.day2.pause import GROUPS, Selection, parse_groups

    chosen = [g for g, on in (("flux", flux), ("volsync", volsync), ("keda", keda)) if on]
    groups = parse_groups(chosen) if chosen else GROUPS

    def spaces(value: str | None) -> tuple[str, ...]:
        return tuple(n.strip() for n in (value or "").split(",") if n.strip())

    return Selection(groups, spaces(namespace), spaces(exclude))


@task(help=_PAUSE)
@guarded
def pause(
    c: Context,
    cluster: str,
    flux: bool = False,
    volsync: bool = False,
    keda: bool = False,
    namespace: str | None = None,
    exclude_namespace: str | None = None,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Pause Flux, VolSync and KEDA (all three, or those flagged) and record what this run paused.

    Objects that are paused already are left alone and never resumed by kubernetes.resume. The record
    (<state dir>/paused/<cluster>.json, 0600) is written before the first object is paused; if any pause
    fails or the run is interrupted, what this run paused is resumed again.
    """
    from k8s_ops.day2.pause import gather, plan_pause

    selection = _selection(flux, volsync, keda, namespace, exclude_namespace)
    runner, target = _connect(c, cluster, "kubectl", "flux")
    found = gather(runner, target, selection)
    plan = plan_pause(cluster, target, found, selection)
    count = sum(1 for f in found if not f.paused)
    _finish(
        plan,
        runner,
        f"paused {count} object(s); resume with: invoke kubernetes.resume --cluster {cluster}",
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(help=_PAUSE)
@guarded
def resume(
    c: Context,
    cluster: str,
    flux: bool = False,
    volsync: bool = False,
    keda: bool = False,
    namespace: str | None = None,
    exclude_namespace: str | None = None,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Resume what kubernetes.pause paused (all of it, or the flagged kinds / namespaces), nothing else.

    A recorded object that someone resumed meanwhile, or that is gone, is dropped from the record untouched.
    """
    from k8s_ops.day2.pause import gather, plan_resume, read_record

    selection = _selection(flux, volsync, keda, namespace, exclude_namespace)
    runner, target = _connect(c, cluster, "kubectl", "flux")
    record = read_record(cluster)
    live = gather(runner, target, selection) if record.items else ()
    plan = plan_resume(cluster, target, record, live, selection)
    resumed = sum(1 for s in plan.steps if s.noop is None and s.commands)
    _finish(
        plan,
        runner,
        f"resumed {resumed} object(s)",
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


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
    lock_timeout: int = 0,
    break_lock: bool = False,
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
    ran = finish(
        plan, runner, dry_run=dry_run, json=json, summary=False, lock_timeout=lock_timeout, break_lock=break_lock
    )
    if ran is None:
        return None
    return runner, target, source


def _run_all(
    c: Context,
    cluster: str,
    namespace: str | None,
    selector: str | None,
    timeout: int | str,
    *,
    unlock: bool,
    dry_run: bool,
    json: bool,
    lock_timeout: int,
    break_lock: bool,
) -> None:
    """The shared body of `snapshot --all` and `unlock --all`: select, plan, run, print the summary."""
    from k8s_ops.day2.common import epoch_now
    from k8s_ops.day2.volsync import REPLICATIONSOURCE, plan_manual_sync_all, select_sources
    from k8s_ops.tools.kubectl import list_or_empty

    namespace = _ns(namespace)
    wait = _timeout(timeout)
    runner, target = _connect(c, cluster, "kubectl")
    sources = list_or_empty(
        runner, target, REPLICATIONSOURCE, namespace=namespace, all_namespaces=namespace is None, selector=selector
    )
    plan = plan_manual_sync_all(cluster, target, sources, epoch=epoch_now(), timeout=wait, unlock=unlock)
    ready, skipped = select_sources(sources)
    done = f"{'unlocked' if unlock else 'backed up'} {len(ready)} ReplicationSource(s)" + (
        f"; skipped {len(skipped)}: {', '.join(skipped)}" if skipped else ""
    )
    _finish(plan, runner, done, dry_run=dry_run, json=json, lock_timeout=lock_timeout, break_lock=break_lock)


def _one_or_all(app: str | None, all_: bool, selector: str | None) -> None:
    from k8s_ops.core.errors import ToolkitError

    if all_ and app is not None:
        raise ToolkitError("give either --app or --all, not both")
    if not all_ and app is None:
        raise ToolkitError("--app is required (or --all for every ReplicationSource)")
    if selector is not None and not all_:
        raise ToolkitError("--selector needs --all")


@task(help=_VOLSYNC_ALL)
@guarded
def snapshot(
    c: Context,
    cluster: str,
    app: str | None = None,
    all_: bool = False,
    selector: str | None = None,
    namespace: str | None = None,
    timeout: int = 120,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Back up an app (or, with --all, every selected ReplicationSource) now and wait for the mover job(s).

    Sets spec.trigger.manual=<epoch> and waits for status.lastManualSync=<epoch>; a failed mover job stops the
    wait at once with the job's reason and the mover's last log lines. A source with a schedule gets its
    schedule back afterwards (a manual trigger left behind would stop scheduled backups). With --all the
    sources run at once; paused ones are skipped, and every failure is named at the end.
    """
    from k8s_ops.day2.volsync import REPLICATIONSOURCE, plan_snapshot
    from k8s_ops.tools.kubectl import get_or_none

    _one_or_all(app, all_, selector)
    if app is None:
        _run_all(
            c,
            cluster,
            namespace,
            selector,
            timeout,
            unlock=False,
            dry_run=dry_run,
            json=json,
            lock_timeout=lock_timeout,
            break_lock=break_lock,
        )
        return
    ran = _run_on_source(
        c,
        cluster,
        app,
        namespace,
        timeout,
        plan_snapshot,
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )
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
        "previous": "restore the K-th snapshot before the latest (default 0: the latest) or before --as-of's",
        "as-of": "restore the newest snapshot taken at or before this time (RFC 3339, e.g. 2026-01-02T03:04:05Z)",
        "yes": "do not ask for the typed confirmation (the app's name)",
    }
)
@guarded
def restore(
    c: Context,
    cluster: str,
    app: str,
    previous: str | None = None,
    as_of: str | None = None,
    namespace: str | None = None,
    timeout: int = 120,
    yes: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
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
    from k8s_ops.day2.volsync import gather_restore_facts, parse_as_of, plan_restore, snapshot_label

    app, namespace = check_kube_name("app", app), _ns(namespace)
    wait = _timeout(timeout)
    prev: int | None = None
    if previous not in (None, ""):
        try:
            prev = int(str(previous))
        except ValueError:
            raise ToolkitError(f"--previous must be a whole number (0 = latest snapshot), got {previous!r}") from None
    when = None if as_of in (None, "") else parse_as_of(str(as_of))
    runner, target = _connect(c, cluster, "kubectl", "flux")
    facts = gather_restore_facts(runner, target, app, namespace)
    plan = plan_restore(cluster, target, facts, app, epoch=epoch_now(), previous=prev, timeout=wait, as_of=when)
    done = f"restored {app}: PVC data replaced from the {snapshot_label(prev, when)} snapshot"
    _finish(
        plan,
        runner,
        done,
        dry_run=dry_run,
        json=json,
        yes=yes,
        confirm_name=app,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(help=_VOLSYNC_ALL)
@guarded
def unlock(
    c: Context,
    cluster: str,
    app: str | None = None,
    all_: bool = False,
    selector: str | None = None,
    namespace: str | None = None,
    timeout: int = 120,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Unlock the restic repository of an app (stale locks make every backup fail) and wait until done.

    Sets spec.restic.unlock=<epoch> with a manual sync to carry it out (VolSync unlocks at the start of a
    sync) and waits for status.restic.lastUnlocked=<epoch>; the sync also takes a backup. A scheduled
    source gets its schedule back afterwards. With --all every selected source at once, failures named.
    """
    from k8s_ops.day2.volsync import plan_unlock

    _one_or_all(app, all_, selector)
    if app is None:
        _run_all(
            c,
            cluster,
            namespace,
            selector,
            timeout,
            unlock=True,
            dry_run=dry_run,
            json=json,
            lock_timeout=lock_timeout,
            break_lock=break_lock,
        )
        return

    ran = _run_on_source(
        c,
        cluster,
        app,
        namespace,
        timeout,
        plan_unlock,
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )
    if ran is not None:
        print(f"restic repository of {app} unlocked")


@task(
    help={
        **_KUBE,
        "node": "the node (its Kubernetes node name)",
        "command": "run this command (sh -c) instead of an interactive shell, print its output (non-interactive)",
        "image": "debug image (default: a netshoot image pinned by digest)",
    }
)
@guarded
def node_shell(
    c: Context,
    cluster: str,
    node: str,
    command: str | None = None,
    image: str | None = None,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """A root shell on a node: a privileged debug pod (kubectl debug node/<node> --profile sysadmin) with the
    node's filesystem at /host; the pod is deleted when the shell ends (also on failure or Ctrl-C).

    Interactive on a terminal; --command runs one command and prints its output instead.
    """
    from k8s_ops.day2.common import DEBUG_IMAGE, require_terminal
    from k8s_ops.day2.kubernetes import plan_node_shell
    from k8s_ops.tools.kubectl import list_or_empty

    if command is None and not dry_run:
        require_terminal("kubernetes.node-shell")
    runner, target = _connect(c, cluster, "kubectl")
    nodes = list_or_empty(runner, target, "nodes")
    plan = plan_node_shell(cluster, target, nodes, node, command=command, image=image or DEBUG_IMAGE)
    _finish(
        plan,
        runner,
        f"debug pod on {node} removed",
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(
    help={
        **_KUBE,
        "namespace": "the claim's namespace",
        "claim": "the PersistentVolumeClaim to browse",
        "rw": "mount it read-write (default: read-only)",
        "command": "run this command (sh -c, in /data) instead of an interactive shell, print its output",
        "image": "image of the pod (default: a netshoot image pinned by digest)",
    }
)
@guarded
def browse_pvc(
    c: Context,
    cluster: str,
    namespace: str,
    claim: str,
    rw: bool = False,
    command: str | None = None,
    image: str | None = None,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Browse a PVC: a pod mounting it at /data (read-only unless --rw) on the node where a ReadWriteOnce claim is
    attached, a shell in it, and the pod deleted on exit (also on failure or Ctrl-C).

    Refuses a claim no second pod can mount (ReadWriteOncePod in use, or in use on several nodes), naming the
    pods. The pod runs as the user of the app's pod that mounts the claim (else 65534), non-root, and ends on its
    own after an hour should its deletion never come.
    """
    from k8s_ops.day2.common import DEBUG_IMAGE, epoch_now, require_terminal
    from k8s_ops.day2.kubernetes import claim_use_fact, plan_browse_pvc

    namespace = check_kube_name("namespace", namespace, namespace=True)
    claim = check_kube_name("claim", claim)
    if command is None and not dry_run:
        require_terminal("kubernetes.browse-pvc")
    runner, target = _connect(c, cluster, "kubectl")
    use = claim_use_fact(runner, target, namespace, claim)
    plan = plan_browse_pvc(
        cluster,
        target,
        use,
        namespace=namespace,
        claim=claim,
        rw=rw,
        command=command,
        epoch=epoch_now(),
        image=image or DEBUG_IMAGE,
    )
    _finish(
        plan,
        runner,
        f"browse pod for {namespace}/{claim} removed",
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(
    help={
        **_KUBE,
        "path": "the directory to build, relative to the repository root (as a Kustomization's spec.path)",
        "name": "the live Kustomization whose spec (postBuild, targetNamespace…) to build with (default: the one "
        "whose spec.path is --path)",
        "namespace": "that Kustomization's namespace (with --name)",
        "root": "the repository root (default: this checkout)",
        "dry-run": "print the server-side diff (kubectl diff --server-side) and the plan; change nothing",
    }
)
@guarded
def apply_ks(
    c: Context,
    cluster: str,
    path: str,
    name: str | None = None,
    namespace: str | None = None,
    root: str | None = None,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Apply a Flux Kustomization built from the working tree, to try a change before pushing it.

    Builds --path as kustomize-controller does (gitops builder), substitutes the Kustomization's postBuild
    variables (cluster-vars and its inline substitute; ConfigMaps only), labels the objects as Flux's and applies
    them server-side with Flux's field manager. SOPS-encrypted objects are left out. --dry-run prints the
    server-side diff. Flux puts its own version back at its next reconcile unless the change is pushed.
    """
    from pathlib import Path

    from k8s_ops.core import paths
    from k8s_ops.day2.kubernetes import (
        find_kustomization,
        plan_apply_ks,
        prepare_objects,
        read_diff,
        server_side_diff,
        substitution_vars,
    )
    from k8s_ops.gitops.build import kubectl_binary, run_build
    from k8s_ops.tools.flux import KUSTOMIZATION
    from k8s_ops.tools.kubectl import list_or_empty

    name = None if name is None else check_kube_name("name", name)
    namespace = _ns(namespace)
    runner, target = _connect(c, cluster, "kubectl")
    kustomizations = list_or_empty(runner, target, KUSTOMIZATION, all_namespaces=True)
    ks = find_kustomization(kustomizations, path, name=name, namespace=namespace)
    variables, notes = substitution_vars(runner, target, ks)
    repo = Path(root).expanduser().resolve() if root else paths.repo_root()
    spec = ks.get("spec") or {}
    built = run_build(runner, kubectl_binary(), repo, path, spec)
    objects = prepare_objects([b.obj for b in built], ks, variables)
    plan = plan_apply_ks(cluster, target, ks, objects, path=path, notes=notes)
    if dry_run and objects.objects and not json:
        diff = read_diff(runner, server_side_diff(target, objects.objects))
        print(diff if diff else "server-side diff: no change\n", end="")
    _finish(
        plan,
        runner,
        f"applied {len(objects.objects)} object(s) of {path}",
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(
    name="list",
    help={
        **_VOLSYNC,
        "json": "print the snapshots as JSON (with --dry-run: the plan as JSON)",
        "image": "restic image (default: restic pinned by digest)",
        "timeout": "minutes to wait for the restic Job (default 10)",
    },
)
@guarded
def list_(
    c: Context,
    cluster: str,
    app: str,
    namespace: str | None = None,
    image: str | None = None,
    timeout: int = 10,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """List the snapshots in an app's restic repository: time, id, size (newest first).

    Runs a Job with restic (`restic snapshots --json --no-lock`) whose environment is the repository Secret,
    reads its output and deletes the Job (also on failure or Ctrl-C). No secret value passes through the toolkit.
    """
    import json as _json

    from k8s_ops.day2.common import RESTIC_IMAGE, epoch_now
    from k8s_ops.day2.volsync import find_source, plan_list, snapshots_table, sources_fact

    app, namespace = check_kube_name("app", app), _ns(namespace)
    wait = _timeout(timeout)
    runner, target = _connect(c, cluster, "kubectl")
    source = find_source(sources_fact(runner, target, namespace), app, namespace)
    plan = plan_list(cluster, target, source, epoch=epoch_now(), image=image or RESTIC_IMAGE, timeout=wait)
    report = finish(
        plan,
        runner,
        dry_run=dry_run,
        json=json and dry_run,
        summary=False,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )
    if report is None:
        return
    snapshots = next(r for o in report.outcomes for r in o.results if isinstance(r, list))
    if json:
        print(_json.dumps([s.to_json() for s in reversed(snapshots)], indent=2))
    elif snapshots:
        print(snapshots_table(snapshots), end="")
    else:
        print(f"no snapshots in the repository of {app}")


@task(
    help={
        "cluster": _VOLSYNC["cluster"],
        "namespace": "only ReplicationSources in this namespace (default: all)",
        "json": "print the rows as JSON instead of a table",
    }
)
@guarded
def status(c: Context, cluster: str, namespace: str | None = None, json: bool = False) -> None:
    """Every ReplicationSource as one table: last sync, its duration, next sync, last result, locked repository.

    Read-only (no plan: nothing runs). LOCKED means the last mover failed on a held restic lock: unlock it with
    volsync.unlock --app <app> (or --all). Exits non-zero when any source's last result is Failed.
    """
    import json as _json

    from invoke.exceptions import Exit

    from k8s_ops.day2.volsync import source_status, sources_fact, status_table

    namespace = _ns(namespace)
    runner, target = _connect(c, cluster, "kubectl")
    rows = [source_status(s) for s in sources_fact(runner, target, namespace)]
    rows.sort(key=lambda r: (r.namespace, r.name))
    if json:
        print(_json.dumps([r.to_json() for r in rows], indent=2))
    elif rows:
        print(status_table(rows), end="")
    else:
        print("no ReplicationSource found" + (f" in {namespace}" if namespace else ""))
    failed = [f"{r.namespace}/{r.name}" for r in rows if r.result == "Failed"]
    if failed:
        raise Exit(f"last sync failed: {', '.join(failed)}", code=1)


kubernetes = Collection(
    "kubernetes",
    sync_secrets,
    hr_restart,
    sync_all,
    reconcile,
    cleanse_pods,
    pause,
    resume,
    node_shell,
    browse_pvc,
    apply_ks,
)
volsync = Collection("volsync", snapshot, restore, unlock, status, list_)
