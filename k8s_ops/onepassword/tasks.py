"""op.* tasks: keep the files a cluster cannot be recovered without in 1Password (see k8s_ops.onepassword).

`op.push`/`op.pull` are plans run by the one task pipeline (`k8s_ops.core.pipeline.finish`): one step per item,
built from the api's own preview (`dry_run=True`). An item that changes is a step whose effect is a `Push`/`Pull`
of that item (k8s_ops.onepassword.effects); an unchanged or kept item is a no-op with its reason; a refused or
missing item is a step whose gate fails, placed first, so a real run stops before anything changed (the api
refuses before acting, too). After a run the item results the effects returned are printed as before (the
op:// references of a push included). `op.status` only reads: a plain report, not a plan.

Everything heavy (the api, the SDK, pydantic via the inventory) is imported inside the task bodies, so that
`invoke --list` does not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded
from k8s_ops.core.pipeline import CLUSTER_HELP, LOCK_HELP

if TYPE_CHECKING:
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.core.execute import Report, StepFailed
    from k8s_ops.core.plan import Effect, Plan
    from k8s_ops.onepassword.api import ItemResult

_WHAT = "kubeconfig|talosconfig|age-key|talos-secrets|all, or a comma-separated list (default: all)"
_COMMON = {
    "cluster": CLUSTER_HELP + "; its cluster.yaml's onepassword.vault is used",
    "what": _WHAT,
    "dry-run": "show the plan (titles and sha256 digests, never content); change nothing",
    "json": "with --dry-run: the plan as JSON; otherwise print the item results as JSON",
    **LOCK_HELP,
}


def _blocked(results: Sequence[ItemResult]) -> list[ItemResult]:
    from k8s_ops.onepassword.sync import Action

    return [r for r in results if r.action in (Action.REFUSE, Action.MISSING)]


def _sync_plan(
    operation: str, cluster: str, vault: str, preview: Sequence[ItemResult], effect: Callable[[str], Effect]
) -> Plan:
    """One step per item of the api's preview; `effect(kind)` is the Push/Pull of one item."""
    from k8s_ops.core.plan import Check, Plan, Step
    from k8s_ops.onepassword import report
    from k8s_ops.onepassword.api import SyncRefused

    def refuse(runner: object) -> None:
        raise SyncRefused(operation, preview)

    def digests(r: ItemResult) -> str:
        return f"{r.location}; local {report.short(r.local_sha256)}, 1Password {report.short(r.remote_sha256)}"

    blocked = _blocked(preview)
    steps = [
        Step(f"{r.action.value} {r.title} ({digests(r)})", before=(Check(f"{r.title}: {r.reason}", refuse),))
        for r in blocked
    ]
    for r in preview:
        if r in blocked:
            continue
        if r.action.changes:
            steps.append(Step(f"{r.action.value} {r.title} ({digests(r)})", finish=(effect(r.kind.value),)))
        else:
            steps.append(Step(f"{r.title} ({digests(r)})", noop=f"{r.action.value}: {r.reason}"))
    notes = [f"{r.title}: {r.reference}" for r in preview if r.reference and not blocked and operation == "op.push"]
    return Plan(f"{operation} (1Password vault {vault!r})", cluster, tuple(steps), notes=tuple(notes))


def _finish_sync(
    c: Context,
    operation: str,
    cluster: str,
    vault: str,
    preview: Sequence[ItemResult],
    plan: Plan,
    *,
    dry_run: bool,
    json: bool,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Dry run: the plan (non-zero exit if it would be refused). Run: the plan, then every item's result."""
    from k8s_ops.core.errors import SecretError
    from k8s_ops.core.pipeline import finish, runner_from
    from k8s_ops.onepassword import report
    from k8s_ops.onepassword.api import ItemResult

    def refused(exc: StepFailed) -> ToolkitError:
        print(report.results_text(operation, cluster, vault, preview, note="refused, nothing was changed"))
        return exc.cause if isinstance(exc.cause, SecretError) else exc

    done: Report | None = finish(
        plan,
        runner_from(c),
        dry_run=dry_run,
        json=json and dry_run,
        on_step_failed=refused,
        summary=False,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )
    if done is None:
        bad = [r.title for r in _blocked(preview)]
        if bad:
            raise SecretError(f"{operation} would refuse or miss: {', '.join(bad)} (see above)")
        return
    applied = {
        r.kind: r
        for o in done.outcomes
        for rs in o.results
        if isinstance(rs, list)
        for r in rs
        if isinstance(r, ItemResult)
    }
    results = [applied.get(r.kind, r) for r in preview]
    print(
        report.results_json(results) if json else report.results_text(operation, cluster, vault, results, note="done")
    )


@task(
    help={
        **_COMMON,
        "force": "overwrite 1Password copies that changed since this machine last synced them",
    }
)
@guarded
def push(
    c: Context,
    cluster: str,
    what: str = "all",
    force: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Store kubeconfig, talosconfig, SOPS age key and the encrypted Talos secrets bundle in 1Password.

    Byte for byte (base64 + sha256 in a Secure Note per item: kubeconfig-<cluster>, talosconfig-<cluster>,
    sops-age-key-<cluster>, talos-secrets-<cluster>). Unchanged items are skipped. A 1Password copy that
    changed since this machine last pushed or pulled it is not overwritten without --force. Needs
    OP_SERVICE_ACCOUNT_TOKEN. Prints each item's op:// reference.
    """
    from k8s_ops.onepassword import api
    from k8s_ops.onepassword.artefacts import parse_what
    from k8s_ops.onepassword.effects import Push
    from k8s_ops.talos.inventory import load_cluster

    cl = load_cluster(cluster)
    kinds = parse_what(what)
    with api.open_cluster_store(cl) as store:
        preview = api.push(cl, kinds, store=store, force=force, dry_run=True)
        plan = _sync_plan("op.push", cl.name, store.vault, preview, lambda k: Push(cl, k, force=force, store=store))
        _finish_sync(
            c,
            "op.push",
            cl.name,
            store.vault,
            preview,
            plan,
            dry_run=dry_run,
            json=json,
            lock_timeout=lock_timeout,
            break_lock=break_lock,
        )


@task(
    help={
        **_COMMON,
        "force": "overwrite local files that differ (also replaces an existing secrets bundle)",
        "only-missing": "write only files that do not exist locally; keep every existing file",
    }
)
@guarded
def pull(
    c: Context,
    cluster: str,
    what: str = "all",
    force: bool = False,
    only_missing: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Restore kubeconfig, talosconfig, SOPS age key and the encrypted Talos secrets from 1Password.

    Files are written atomically with mode 0600; their content is never printed. The age key goes to
    $SOPS_AGE_KEY_FILE, else ~/.config/k8s-ops/age.agekey. A local file changed since the last sync is not
    overwritten without --force; the committed secrets bundle is only restored when missing (or --force).
    Needs OP_SERVICE_ACCOUNT_TOKEN.
    """
    from k8s_ops.onepassword import api
    from k8s_ops.onepassword.artefacts import parse_what
    from k8s_ops.onepassword.effects import Pull
    from k8s_ops.talos.inventory import load_cluster

    cl = load_cluster(cluster)
    kinds = parse_what(what)
    with api.open_cluster_store(cl) as store:
        preview = api.pull(cl, kinds, store=store, force=force, only_missing=only_missing, dry_run=True)
        plan = _sync_plan(
            "op.pull",
            cl.name,
            store.vault,
            preview,
            lambda k: Pull(cl, k, force=force, only_missing=only_missing, store=store),
        )
        _finish_sync(
            c,
            "op.pull",
            cl.name,
            store.vault,
            preview,
            plan,
            dry_run=dry_run,
            json=json,
            lock_timeout=lock_timeout,
            break_lock=break_lock,
        )


@task(help={"cluster": _COMMON["cluster"], "what": _WHAT, "json": "print the comparison as JSON"})
@guarded
def status(c: Context, cluster: str, what: str = "all", json: bool = False) -> None:
    """Compare each item: local vs 1Password sha256, the digest last synced from here, and which is newer.

    Only reads (a report, not a plan: there is nothing to preview).
    """
    from k8s_ops.onepassword import api, report
    from k8s_ops.onepassword.artefacts import parse_what
    from k8s_ops.talos.inventory import load_cluster

    cl = load_cluster(cluster)
    kinds = parse_what(what)
    with api.open_cluster_store(cl) as store:
        statuses = api.status(cl, kinds, store=store)
        print(report.status_json(statuses) if json else report.status_text(cl.name, store.vault, statuses))
