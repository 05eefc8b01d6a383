"""bootstrap.* tasks: bare Talos nodes to a cluster Flux reconciles from git, and the disaster-recovery rebuild.

Stages (`--from` takes a name or number): 1 preflight, 2 talos, 3 kubeconfig, 4 secrets, 5 cni, 6 flux,
7 onepassword. `bootstrap.cluster` runs them all; `bootstrap.talos` runs 1–3, `bootstrap.apps` 1 and 4–7.
Every step checks the world first, so re-running on a healthy cluster changes nothing and a failed run
resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded
from k8s_ops.core.pipeline import CLUSTER_HELP, JSON_HELP, LOCK_HELP, finish, locked, runner_from

if TYPE_CHECKING:
    from pathlib import Path

    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.core.execute import StepFailed

__all__ = ["apps", "cluster", "dr_check", "rebuild", "stage_failed", "talos"]

_HELP = {
    "cluster": CLUSTER_HELP,
    "dry-run": "print the whole plan (every command, gate and wait; secrets masked) and change nothing",
    "json": JSON_HELP,
    "yes": "confirm without asking: a rebuild's etcd bootstrap, and bootstrap.cluster's closing push of the age key "
    "and secrets bundle to 1Password when it lacks them",
    "from": "resume at this stage: talos, kubeconfig, secrets, cni, flux, onepassword (or 2–7); preflight always runs",
    **LOCK_HELP,
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
    recover_from: str | None = None,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    from dataclasses import replace

    from k8s_ops.bootstrap.run import Options, build_plan, fetch_recovery_snapshot, material_plan, recovery_note
    from k8s_ops.core import paths
    from k8s_ops.talos.inventory import load_cluster

    runner = runner_from(c)
    snapshot: Path | None = None
    note: str | None = None
    if recover_from is not None:
        # Resolved, downloaded and verified before anything else — dry run included: a missing or corrupt
        # snapshot stops the rebuild here, before any node is touched.
        snap = fetch_recovery_snapshot(load_cluster(cluster), recover_from)
        snapshot, note = snap.path, recovery_note(snap)
        print(note, file=sys.stderr if json else sys.stdout)
    options = Options(
        cluster=cluster,
        stages=stages,
        start=start,
        task=task_name,
        rebuild=rebuild,
        recover_from=snapshot,
        dry_run=dry_run,
    )

    def failed(exc: StepFailed) -> ToolkitError:
        return stage_failed(exc, task_name=task_name, cluster=cluster)

    with contextlib.ExitStack() as hold:
        if rebuild:
            # Phase 1: the material phase 2 decrypts (age key, Talos secrets bundle), pulled by a plan of its own.
            from k8s_ops.talos.secrets import clear_cache

            pulls = material_plan(load_cluster(cluster), task=task_name)
            if pulls is not None and not dry_run:
                # one lock for both plans: released between them, another run could take the cluster in between
                whole = replace(pulls, title=f"{task_name} --cluster {cluster} (both phases)")
                hold.enter_context(locked(whole, runner, timeout=lock_timeout, break_lock=break_lock))
            if pulls is not None:
                pulled = finish(
                    pulls,
                    runner,
                    dry_run=dry_run,
                    json=json,
                    yes=yes,
                    echo_plan=True,
                    on_step_failed=failed,
                    lock_timeout=lock_timeout,
                    break_lock=break_lock,
                )
                if pulled is None:  # dry run: phase 2 is planned once the material exists
                    return
                clear_cache()
        plan = build_plan(options, runner)
        if note is not None:
            plan = replace(plan, notes=(*plan.notes, note))
        if task_name == "bootstrap.cluster" and dry_run:
            from k8s_ops.bootstrap.drcheck import material_push_note

            push_note = material_push_note(load_cluster(cluster))
            if push_note is not None:
                plan = replace(plan, notes=(*plan.notes, push_note))
        report = finish(
            plan,
            runner,
            dry_run=dry_run,
            json=json,
            yes=yes,
            echo_plan=True,
            on_step_failed=failed,
            lock_timeout=lock_timeout,
            break_lock=break_lock,
        )
        if report is not None:
            print(f"kubeconfig:  {paths.kubeconfig_path(plan.cluster)} (context {plan.cluster})")
            print(f"talosconfig: {paths.talosconfig_path(plan.cluster)}")
            if task_name == "bootstrap.cluster":
                from k8s_ops.bootstrap.drcheck import offer_material_push

                offer_material_push(load_cluster(cluster), runner, yes=yes)


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
    c: Context,
    cluster: str,
    dry_run: bool = False,
    json: bool = False,
    yes: bool = False,
    from_: str | None = None,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Bootstrap a cluster end to end: bare Talos nodes in maintenance mode to a cluster Flux reconciles from git.

    Stages: preflight (tools, age key, secrets, every node on the Talos API) → talos (talosconfig, configs to
    the controlplanes — --insecure only for maintenance nodes —, etcd bootstrapped once on the first
    controlplane, etcd healthy, workers) → kubeconfig (0600, /readyz, nodes registered) → secrets (namespaces,
    sops-age, git credentials, cluster-vars) → cni (CRDs, Cilium, nodes Ready, CoreDNS) → flux (flux-operator,
    FluxInstance, GitRepository, root Kustomization Ready) → onepassword (push kubeconfig and talosconfig);
    then, when 1Password lacks the age key or the Talos secrets bundle, it asks and pushes them too.
    Re-running changes nothing on a healthy cluster; after a failure, re-run or resume with --from STAGE.
    """
    from k8s_ops.bootstrap.stages import STAGES

    _run(
        c,
        cluster,
        task_name="bootstrap.cluster",
        stages=STAGES,
        start=from_,
        dry_run=dry_run,
        json=json,
        yes=yes,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(help=_HELP)
@guarded
def talos(
    c: Context,
    cluster: str,
    dry_run: bool = False,
    json: bool = False,
    yes: bool = False,
    from_: str | None = None,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Bootstrap Talos only (stages preflight, talos, kubeconfig): configs applied, etcd up, kubeconfig written.

    Nodes stay NotReady afterwards (no CNI yet): continue with `invoke bootstrap.apps --cluster <c>`.
    """
    from k8s_ops.bootstrap.run import TALOS_STAGES

    _run(
        c,
        cluster,
        task_name="bootstrap.talos",
        stages=TALOS_STAGES,
        start=from_,
        dry_run=dry_run,
        json=json,
        yes=yes,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(help=_HELP)
@guarded
def apps(
    c: Context,
    cluster: str,
    dry_run: bool = False,
    json: bool = False,
    yes: bool = False,
    from_: str | None = None,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Bootstrap the apps on a running Talos cluster (stages preflight, secrets, cni, flux, onepassword).

    Needs build/<cluster>/kubeconfig (from bootstrap.talos or talos.kubeconfig). Installs the pinned charts of
    k8s_ops/bootstrap/charts.yaml with the values of k8s_ops/bootstrap/values/, then hands the cluster over to Flux.
    """
    from k8s_ops.bootstrap.run import APPS_STAGES

    _run(
        c,
        cluster,
        task_name="bootstrap.apps",
        stages=APPS_STAGES,
        start=from_,
        dry_run=dry_run,
        json=json,
        yes=yes,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(
    help={
        **_HELP,
        "recover-from": "etcd snapshot to restore: latest (newest verified off-box snapshot), an object key or name "
        "under <prefix>/<cluster>/, or a file; downloaded and verified before any node is touched (also --dry-run)",
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
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Disaster recovery: rebuild a cluster on wiped nodes from git, 1Password and the etcd object store alone.

    First, with --recover-from latest|<key>|<file>: the snapshot is resolved (latest = the newest verified one
    under backups.etcd), downloaded (0600) and verified (SHA-256 trailer, sidecar) — also with --dry-run; a
    missing or corrupt snapshot stops here, before any node is touched. Phase 1 pulls the SOPS age key and the
    Talos secrets bundle from 1Password when they are missing locally (a plan of its own, one `op pull` step per
    item, 0600; needs OP_SERVICE_ACCOUNT_TOKEN; --dry-run shows it and stops there). Phase 2, planned from that
    material, renders the configs, installs every node in maintenance mode, bootstraps etcd once — from the
    verified snapshot if given — then runs kubeconfig, secrets (with the 1Password Connect credentials and
    bootstrap.secrets), cni, flux and onepassword like bootstrap.cluster. Asks to type the cluster name before
    bootstrapping etcd (--yes skips).
    """
    from k8s_ops.bootstrap.stages import STAGES

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
        recover_from=recover_from,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(
    help={
        "cluster": CLUSTER_HELP,
        "json": "print the findings as JSON ({cluster, recoverable, findings: [{check, status, detail}]})",
        "max-age-hours": "warn when the newest verified off-box etcd snapshot is older than this (default 26)",
    },
)
@guarded
def dr_check(c: Context, cluster: str, json: bool = False, max_age_hours: float = 26.0) -> None:
    """Can this cluster be rebuilt right now from git, 1Password and the object store alone? Reads only.

    One table, a row per item, green/yellow/red: the age key in 1Password and equal to the local one; the Talos
    secrets bundle in 1Password and byte-equal to git; kubeconfig and talosconfig pushed; the deploy key present
    and decryptable; the 1Password Connect items (onepassword.connect) and bootstrap.secrets sources readable;
    the newest verified off-box etcd snapshot and its age (yellow past --max-age-hours); inventory and charts
    valid. Exits non-zero when anything a rebuild needs is missing (red).
    """
    import shutil
    from datetime import UTC, datetime, timedelta

    from k8s_ops.bootstrap import drcheck
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.talos.inventory import load_cluster

    if not (0 < max_age_hours < 24 * 3650):
        raise ToolkitError(f"--max-age-hours {max_age_hours}: give a positive number of hours")
    try:
        inventory = load_cluster(cluster)
    except ToolkitError as exc:
        findings = [drcheck.Finding("inventory", "fail", exc.message.splitlines()[0])]
        print(drcheck.report_json(cluster, findings) if json else drcheck.report_table(cluster, findings), end="\n")
        drcheck.verdict(cluster, findings)
        return
    findings = drcheck.gather(inventory, now=datetime.now(UTC), max_age=timedelta(hours=max_age_hours))
    if json:
        print(drcheck.report_json(cluster, findings))
    else:
        tty = sys.stdout.isatty()
        width = shutil.get_terminal_size((160, 24)).columns if tty else 160
        print(drcheck.report_table(cluster, findings, color=tty, width=width), end="")
    drcheck.verdict(cluster, findings)
