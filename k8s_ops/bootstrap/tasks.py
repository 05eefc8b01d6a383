"""bootstrap.* tasks: bare Talos nodes to a cluster Flux reconciles from git, and the disaster-recovery rebuild.

Stages (`--from` takes a name or number): 1 preflight, 2 talos, 3 kubeconfig, 4 secrets, 5 cni, 6 flux,
7 onepassword. `bootstrap.cluster` runs them all; `bootstrap.talos` runs 1–3, `bootstrap.apps` 1 and 4–7.
Every step checks the world first, so re-running on a healthy cluster changes nothing and a failed run
resumes where it stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded
from k8s_ops.core.pipeline import CLUSTER_HELP, JSON_HELP, finish, runner_from

if TYPE_CHECKING:
    from pathlib import Path

    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.core.execute import StepFailed

__all__ = ["apps", "cluster", "rebuild", "stage_failed", "talos"]

_HELP = {
    "cluster": CLUSTER_HELP,
    "dry-run": "print the whole plan (every command, gate and wait; secrets masked) and change nothing",
    "json": JSON_HELP,
    "yes": "confirm destructive steps without asking (only a rebuild's etcd bootstrap asks)",
    "from": "resume at this stage: talos, kubeconfig, secrets, cni, flux, onepassword (or 2–7); preflight always runs",
}


def _run(
    c: Context,
    cluster: str,
    *,
    task_name: str,
    stages: tuple[str, ...],
    start: str | None,
    dry_run: bool,
    json: bool,
    yes: bool,
    rebuild: bool = False,
    recover_from: Path | None = None,
) -> None:
    from k8s_ops.bootstrap.run import Options, build_plan, material_plan
    from k8s_ops.core import paths

    runner = runner_from(c)
    options = Options(
        cluster=cluster,
        stages=stages,
        start=start,
        task=task_name,
        rebuild=rebuild,
        recover_from=recover_from,
        dry_run=dry_run,
    )

    def failed(exc: StepFailed) -> ToolkitError:
        return stage_failed(exc, task_name=task_name, cluster=cluster)

    if rebuild:
        # Phase 1: the material phase 2 decrypts (age key, Talos secrets bundle), pulled by a plan of its own.
        from k8s_ops.talos.inventory import load_cluster
        from k8s_ops.talos.secrets import clear_cache

        pulls = material_plan(load_cluster(cluster), task=task_name)
        if pulls is not None:
            pulled = finish(pulls, runner, dry_run=dry_run, json=json, yes=yes, echo_plan=True, on_step_failed=failed)
            if pulled is None:  # dry run: phase 2 is planned once the material exists
                return
            clear_cache()
    plan = build_plan(options, runner)
    report = finish(
        plan,
        runner,
        dry_run=dry_run,
        json=json,
        yes=yes,
        echo_plan=True,
        on_step_failed=failed,
    )
    if report is not None:
        print(f"kubeconfig:  {paths.kubeconfig_path(plan.cluster)} (context {plan.cluster})")
        print(f"talosconfig: {paths.talosconfig_path(plan.cluster)}")


def stage_failed(exc: StepFailed, *, task_name: str, cluster: str) -> ToolkitError:
    """A failed step as the error a bootstrap task exits with: its stage and the exact command to resume with."""
    from k8s_ops.bootstrap.run import resume_hint
    from k8s_ops.bootstrap.stages import stage_of
    from k8s_ops.core.errors import ToolkitError

    resume = resume_hint(task_name, cluster, stage_of(exc.step))
    cause = exc.cause
    detail, why = (cause.message, cause.hint) if isinstance(cause, ToolkitError) else (str(cause), None)
    where = f" on {exc.step.node}" if exc.step.node else ""
    message = f"step {exc.index} ({exc.step.description}){where} failed:\n{detail}"
    return ToolkitError(message, hint=f"{why}\n  then: {resume}" if why else resume)


@task(help=_HELP)
@guarded
def cluster(
    c: Context, cluster: str, dry_run: bool = False, json: bool = False, yes: bool = False, from_: str | None = None
) -> None:
    """Bootstrap a cluster end to end: bare Talos nodes in maintenance mode to a cluster Flux reconciles from git.

    Stages: preflight (tools, age key, secrets, every node on the Talos API) → talos (talosconfig, configs to
    the controlplanes — --insecure only for maintenance nodes —, etcd bootstrapped once on the first
    controlplane, etcd healthy, workers) → kubeconfig (0600, /readyz, nodes registered) → secrets (namespaces,
    sops-age, git credentials, cluster-vars) → cni (CRDs, Cilium, nodes Ready, CoreDNS) → flux (flux-operator,
    FluxInstance, GitRepository, root Kustomization Ready) → onepassword (push kubeconfig and talosconfig).
    Re-running changes nothing on a healthy cluster; after a failure, re-run or resume with --from STAGE.
    """
    from k8s_ops.bootstrap.stages import STAGES

    _run(c, cluster, task_name="bootstrap.cluster", stages=STAGES, start=from_, dry_run=dry_run, json=json, yes=yes)


@task(help=_HELP)
@guarded
def talos(
    c: Context, cluster: str, dry_run: bool = False, json: bool = False, yes: bool = False, from_: str | None = None
) -> None:
    """Bootstrap Talos only (stages preflight, talos, kubeconfig): configs applied, etcd up, kubeconfig written.

    Nodes stay NotReady afterwards (no CNI yet): continue with `invoke bootstrap.apps --cluster <c>`.
    """
    from k8s_ops.bootstrap.run import TALOS_STAGES

    _run(c, cluster, task_name="bootstrap.talos", stages=TALOS_STAGES, start=from_, dry_run=dry_run, json=json, yes=yes)


@task(help=_HELP)
@guarded
def apps(
    c: Context, cluster: str, dry_run: bool = False, json: bool = False, yes: bool = False, from_: str | None = None
) -> None:
    """Bootstrap the apps on a running Talos cluster (stages preflight, secrets, cni, flux, onepassword).

    Needs build/<cluster>/kubeconfig (from bootstrap.talos or talos.kubeconfig). Installs the pinned charts of
    k8s_ops/bootstrap/charts.yaml with the values of k8s_ops/bootstrap/values/, then hands the cluster over to Flux.
    """
    from k8s_ops.bootstrap.run import APPS_STAGES

    _run(c, cluster, task_name="bootstrap.apps", stages=APPS_STAGES, start=from_, dry_run=dry_run, json=json, yes=yes)


@task(
    help={
        **_HELP,
        "recover-from": "etcd snapshot to restore when bootstrapping etcd (talosctl bootstrap --recover-from)",
        "yes": "skip the typed confirmation before the new etcd is bootstrapped",
    }
)
@guarded
def rebuild(
    c: Context,
    cluster: str,
    recover_from: str | None = None,
    dry_run: bool = False,
    json: bool = False,
    yes: bool = False,
    from_: str | None = None,
) -> None:
    """Disaster recovery: rebuild a cluster on wiped nodes from git + 1Password alone.

    Phase 1 pulls the SOPS age key and the Talos secrets bundle from 1Password when they are missing locally
    (a plan of its own, one `op pull` step per item, 0600; needs OP_SERVICE_ACCOUNT_TOKEN; --dry-run shows it and
    stops there). Phase 2, planned from that material, renders the configs, installs every node in maintenance
    mode, bootstraps etcd once — from --recover-from <snapshot> if given — then runs kubeconfig, secrets, cni,
    flux and onepassword like bootstrap.cluster. Asks to type the cluster name before bootstrapping etcd (--yes skips).
    """
    from pathlib import Path

    from k8s_ops.bootstrap.stages import STAGES

    snapshot = Path(recover_from).expanduser().resolve() if recover_from else None
    _run(
        c,
        cluster,
        task_name="bootstrap.rebuild",
        stages=STAGES,
        start=from_,
        dry_run=dry_run,
        json=json,
        yes=yes,
        rebuild=True,
        recover_from=snapshot,
    )
