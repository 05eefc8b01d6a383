"""kubernetes.* tasks: sync-secrets, hr-restart, reconcile, cleanse-pods.

Each reads what it needs with kubectl (also under --dry-run), builds a plan, then prints it (--dry-run,
--json) or runs it. Every command names the cluster's kubeconfig and context explicitly.
"""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded

__all__ = ["cleanse_pods", "hr_restart", "reconcile", "sync_secrets"]

_COMMON = {
    "cluster": "cluster name (clusters/<name>/); its kubeconfig build/<name>/kubeconfig and context <name> are used",
    "dry-run": "print the plan (facts are still read from the cluster); change nothing",
    "json": "with --dry-run: print the plan as JSON",
}


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (value or "").split(",") if n.strip())


@task(
    help={
        **_COMMON,
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
    from k8s_ops.core import preflight as tools
    from k8s_ops.core.runner import SubprocessRunner
    from k8s_ops.day2.common import epoch_now, print_plan, require_target, run_plan
    from k8s_ops.day2.kubernetes import external_secrets_fact, plan_sync_secrets, select_secrets

    target = require_target(cluster)
    runner = SubprocessRunner()
    tools.preflight(runner, ["kubectl"])
    secrets = external_secrets_fact(runner, target, namespace)
    selected = select_secrets(secrets, names=_names(name), namespace=namespace)
    plan = plan_sync_secrets(cluster, target, selected, epoch=epoch_now(), namespace=namespace)
    if dry_run:
        print_plan(plan, None, as_json=json)
        return
    run_plan(plan, runner)
    print(f"force-synced {len(selected)} ExternalSecret(s)")


@task(
    help={
        **_COMMON,
        "name": "HelmRelease name",
        "namespace": "HelmRelease namespace",
    }
)
@guarded
def hr_restart(c: Context, cluster: str, name: str, namespace: str, dry_run: bool = False, json: bool = False) -> None:
    """Restart a HelmRelease: suspend, then resume it, and wait until it is Ready again.

    If anything fails after the suspend, the release is resumed before the task exits (never left suspended).
    """
    from k8s_ops.core import preflight as tools
    from k8s_ops.core.runner import SubprocessRunner
    from k8s_ops.day2.common import print_plan, read_one, require_target, run_plan
    from k8s_ops.day2.kubernetes import plan_hr_restart
    from k8s_ops.tools.flux import HELMRELEASE

    target = require_target(cluster)
    runner = SubprocessRunner()
    tools.preflight(runner, ["kubectl", "flux"])
    release = read_one(runner, target, HELMRELEASE, name, namespace)
    plan, recovery = plan_hr_restart(cluster, target, release, name=name, namespace=namespace)
    if dry_run:
        print_plan(plan, recovery, as_json=json)
        return
    run_plan(plan, runner, recovery=recovery)
    print(f"HelmRelease {namespace}/{name} restarted and Ready")


@task(
    help={
        **_COMMON,
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
    from k8s_ops.core import preflight as tools
    from k8s_ops.core.runner import SubprocessRunner
    from k8s_ops.day2.common import print_plan, read_one, require_target, run_plan
    from k8s_ops.day2.kubernetes import plan_reconcile
    from k8s_ops.tools.flux import FLUX_NAMESPACE, KUSTOMIZATION, ROOT_KUSTOMIZATION

    ks_name = name or ROOT_KUSTOMIZATION
    ks_ns = namespace or FLUX_NAMESPACE
    target = require_target(cluster)
    runner = SubprocessRunner()
    tools.preflight(runner, ["kubectl", "flux"])
    current = read_one(runner, target, KUSTOMIZATION, ks_name, ks_ns)
    plan = plan_reconcile(cluster, target, current, name=ks_name, namespace=ks_ns, with_source=with_source)
    if dry_run:
        print_plan(plan, None, as_json=json)
        return
    run_plan(plan, runner)
    print(f"Kustomization {ks_ns}/{ks_name} reconciled and Ready")


@task(
    help={
        **_COMMON,
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
    from k8s_ops.core import preflight as tools
    from k8s_ops.core.runner import SubprocessRunner
    from k8s_ops.day2.common import print_plan, read_list, require_target, run_plan
    from k8s_ops.day2.kubernetes import plan_cleanse_pods, select_pods
    from k8s_ops.tools.kubectl import get

    target = require_target(cluster)
    runner = SubprocessRunner()
    tools.preflight(runner, ["kubectl"])
    pods = read_list(runner, get(target, "pods", namespace=namespace, all_namespaces=namespace is None))
    doomed = select_pods(pods, pending=pending)
    plan = plan_cleanse_pods(cluster, target, doomed, pending=pending)
    if dry_run:
        print_plan(plan, None, as_json=json)
        return
    run_plan(plan, runner)
    print(f"deleted {len(doomed)} pod(s)")
