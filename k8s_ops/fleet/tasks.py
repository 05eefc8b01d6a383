"""The fleet tasks: `fleet.status`, `fleet.kubeconfig-merge`, `fleet.talosconfig-merge` (the `fleet` collection)
and `gitops.promote` (added to the `gitops` namespace by the root tasks.py).

The fleet is every cluster of the clusters directory (`K8S_OPS_CLUSTERS_DIR`, else `clusters/`); the GitOps clone
is the clusters directory's parent unless `--repo` says otherwise (as gitops.lint).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded
from k8s_ops.core.pipeline import DRY_RUN_HELP, JSON_HELP, LOCK_HELP, YES_HELP, finish, runner_from

if TYPE_CHECKING:
    from k8s_ops.fleet.configs import Kind

__all__ = ["fleet", "kubeconfig_merge", "promote", "status", "talosconfig_merge"]

_REPO_HELP = "the local clone of the GitOps repository (default: the parent of the clusters directory)"


def _clone(repo: str | None) -> Path:
    from k8s_ops.core.paths import clusters_dir

    return Path(repo).expanduser().resolve() if repo else clusters_dir().resolve().parent


def _now() -> datetime:
    return datetime.now(UTC)


@task(help={"json": "print the status as JSON instead of a table", "repo": _REPO_HELP})
@guarded
def status(c: Context, json: bool = False, repo: str | None = None) -> None:
    """Every cluster in one table: Talos and Kubernetes versions per node, the GitRepository's branch and the
    revision Flux fetched and applied against the remote head, Kustomizations and HelmReleases not Ready,
    everything suspended — then how far each branch lags the one it is promoted from (commits, oldest age).

    Read-only (no plan: nothing runs). A cluster that does not answer is a row saying so; the task then exits 1.
    """
    import json as _json
    import sys

    from invoke.exceptions import Exit

    from k8s_ops.fleet.status import gather
    from k8s_ops.talos.inventory import load_all

    clusters = load_all()
    result = gather(runner_from(c), list(clusters.values()), _clone(repo))
    now = _now()
    if json:
        print(_json.dumps(result.to_json(now), indent=2))
    else:
        print(result.table(now), end="")
    if result.unreachable:
        print(f"error: not answering: {', '.join(result.unreachable)}", file=sys.stderr)
        raise Exit(code=1)


def _merge(
    c: Context,
    kind: Kind,
    out: str | None,
    install: bool,
    dry_run: bool,
    json: bool,
    lock_timeout: int,
    break_lock: bool,
) -> None:
    from k8s_ops.fleet.configs import default_path, merge_kubeconfigs, merge_talosconfigs, plan_merge
    from k8s_ops.talos.inventory import load_all

    names = sorted(load_all())
    merged = merge_kubeconfigs(names) if kind == "kubeconfig" else merge_talosconfigs(names)
    path = Path(out).expanduser() if out else default_path(kind, names)
    plan = plan_merge(kind, merged, path, install=install, now=_now())
    # the merged files belong to no cluster: a local lock of the fleet's files (two merges never interleave their
    # writes of ~/.kube/config), no cluster-side Lease
    finish(
        plan,
        runner_from(c),
        dry_run=dry_run,
        json=json,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
        local_lock="fleet",
    )


def _merge_help(kind: str, home: str) -> dict[str, str]:
    return {
        **LOCK_HELP,
        "out": f"where to write the merged file (default build/{kind}; written 0600, atomically)",
        "install": f"also merge every context into {home} (a 0600 backup of it is written first)",
        "dry-run": DRY_RUN_HELP,
        "json": JSON_HELP,
    }


@task(help=_merge_help("kubeconfig", "~/.kube/config"))
@guarded
def kubeconfig_merge(
    c: Context,
    out: str | None = None,
    install: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """One kubeconfig with every cluster's context, named after the cluster (from build/<c>/kubeconfig).

    Written to --out (default build/kubeconfig). ~/.kube/config is never touched unless --install, which backs it
    up first and then merges the contexts into it, keeping every other entry.
    """
    _merge(c, "kubeconfig", out, install, dry_run, json, lock_timeout, break_lock)


@task(help=_merge_help("talosconfig", "~/.talos/config"))
@guarded
def talosconfig_merge(
    c: Context,
    out: str | None = None,
    install: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """One talosconfig with every cluster's context, named after the cluster (from build/<c>/talosconfig).

    Written to --out (default build/talosconfig). ~/.talos/config is never touched unless --install, which backs
    it up first and then merges the contexts into it, keeping every other context.
    """
    _merge(c, "talosconfig", out, install, dry_run, json, lock_timeout, break_lock)


@task(
    help={
        **LOCK_HELP,
        "from_": "the cluster whose applied, soaked commit is promoted (its branch is the upstream, e.g. infra)",
        "to": "the cluster whose branch is fast-forwarded (e.g. apps); its gitops.promote.soak is the soak time",
        "push": "push the fast-forwarded branch (asks you to type the target cluster's name)",
        "repo": _REPO_HELP,
        "remote": "the git remote of the clone to read heads from and push to (default origin)",
        "dry-run": "print the plan with the commits being promoted; change nothing",
        "json": JSON_HELP,
        "yes": YES_HELP,
    }
)
@guarded
def promote(
    c: Context,
    from_: str,
    to: str,
    push: bool = False,
    repo: str | None = None,
    remote: str = "origin",
    dry_run: bool = False,
    json: bool = False,
    yes: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Fast-forward the --to cluster's branch to the commit the --from cluster applied and kept Ready for the soak.

    The commit is the --from cluster's Kustomization flux-system lastAppliedRevision; its soak (the --to
    cluster's gitops.promote.soak, default 24h) is measured from status.history (Flux >= 2.7), else from the
    Ready condition's lastTransitionTime. Refuses, naming the time left, before the soak; refuses a commit not on
    the --from branch and a --to branch that has diverged (never a non-fast-forward). Moves the local branch of
    the clone (git update-ref, or merge --ff-only when it is checked out); pushes only with --push after a typed
    confirmation, never with --force.
    """
    from k8s_ops.core.errors import ToolkitError, last_error_line
    from k8s_ops.core.paths import check_cluster_name
    from k8s_ops.core.units import parse_go_duration
    from k8s_ops.fleet.promote import PromotionRefused, applied_revision, check_soak, git_state, plan_promote
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.tools.flux import FLUX_NAMESPACE, KUSTOMIZATION, ROOT_KUSTOMIZATION
    from k8s_ops.tools.kubectl import KubeTarget, get_or_none

    source, target = check_cluster_name(from_), check_cluster_name(to)
    if source == target:
        raise ToolkitError("--from and --to name the same cluster")
    up, down = load_cluster(source), load_cluster(target)
    if up.gitops.branch == down.gitops.branch:
        raise PromotionRefused(f"{source} and {target} both follow {up.gitops.branch}: nothing to promote")
    soak = down.gitops.promote.soak
    runner = runner_from(c)
    kube = KubeTarget.for_cluster(source)
    if not kube.kubeconfig.is_file():
        raise ToolkitError(
            f"no kubeconfig for cluster '{source}' at {kube.kubeconfig}",
            hint=f"fetch it first: invoke talos.kubeconfig --cluster {source}",
        )
    try:
        ks = get_or_none(runner, kube, KUSTOMIZATION, ROOT_KUSTOMIZATION, namespace=FLUX_NAMESPACE)
    except ToolkitError as exc:
        raise PromotionRefused(f"cluster {source} does not answer: {last_error_line(exc)}") from None
    applied = applied_revision(source, up.gitops.branch, ks)
    now = _now()
    check_soak(source, applied, soak, parse_go_duration(soak) or 0.0, now)
    state = git_state(runner, _clone(repo), remote, up.gitops.branch, down.gitops.branch, applied.revision.commit)
    plan = plan_promote(source=source, target=target, applied=applied, soak=soak, state=state, push=push, now=now)
    finish(
        plan,
        runner,
        dry_run=dry_run,
        json=json,
        yes=yes,
        confirm_name=target,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


fleet = Collection("fleet", status, kubeconfig_merge, talosconfig_merge)
