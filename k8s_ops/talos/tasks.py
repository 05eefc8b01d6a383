"""talos.* tasks: secrets bundle, talosconfig, render, validate, schematic, and the node lifecycle (apply, upgrade,
reboot, reset, kubeconfig, health), etcd snapshots and off-box backups, etcd status, defrag and alarms.

Each task is thin: load the inventory, gather facts, build the plan (k8s_ops/talos/lifecycle.py and the other
library modules, pure), then hand it to the one task pipeline (`k8s_ops.core.pipeline.finish`): `--dry-run` prints
it (`--json`: as data), otherwise it is confirmed if destructive, executed, and summed up. Nodes are named by
hostname or address.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded
from k8s_ops.core.pipeline import (
    CLUSTER_HELP,
    JSON_HELP,
    LOCK_HELP,
    YES_HELP,
    finish,
    help_for,
    runner_from,
)

if TYPE_CHECKING:
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.core.execute import StepFailed
    from k8s_ops.core.plan import FileWrite, Plan
    from k8s_ops.core.runner import Runner
    from k8s_ops.talos.inventory import Cluster
    from k8s_ops.talos.lifecycle import Env
    from k8s_ops.talos.secrets import NewBundleTarget, SecretsBundle
    from k8s_ops.tools.sops import AgeKey

__all__ = [
    "apply_cluster",
    "apply_node",
    "etcd_alarm_disarm",
    "etcd_backups",
    "etcd_defrag",
    "etcd_snapshot",
    "etcd_status",
    "gen_secrets",
    "health",
    "kubeconfig",
    "reboot_cluster",
    "reboot_node",
    "render",
    "reset_cluster",
    "reset_node",
    "schematic",
    "shutdown_cluster",
    "talosconfig",
    "upgrade_cluster",
    "upgrade_k8s",
    "upgrade_node",
    "validate",
]

_CLUSTER = CLUSTER_HELP
_NODE = "node hostname or address (an unknown name lists the known nodes)"
_DRY = "show the exact plan (commands, gates, waits) and change nothing"
_JSON = JSON_HELP
_YES = YES_HELP
_LOCK = LOCK_HELP
_HOLD = "seconds a failing health gate may hold the rollout before it stops (default 300)"
_ROLLOUT = {
    "only": "only these nodes (comma list of hostnames or addresses)",
    "exclude": "leave these nodes out (comma list)",
    "role": "only controlplane or worker nodes",
    "pause": "suspend these while the rollout runs, resume exactly what it suspended: flux,volsync,keda "
    "(default: inventory upgrade.pause)",
    "ignore-window": "run outside the inventory's maintenance window (upgrade.window)",
}
_MODES = ("auto", "no-reboot", "reboot", "staged", "try")


def _setup(
    c: Context, name: str, tools: tuple[str, ...] = ("talosctl",), *, gate_timeout: int = 0
) -> tuple[Cluster, Env, Runner]:
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.core.preflight import preflight
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.lifecycle import Env, Timeouts

    if gate_timeout < 0:
        raise ToolkitError("--gate-timeout must be a positive number of seconds")
    cluster = load_cluster(name)
    env = Env.for_cluster(cluster, timeouts=Timeouts(hold=gate_timeout) if gate_timeout else None)
    runner = runner_from(c)
    preflight(runner, tools)
    return cluster, env, runner


# --- secrets bundle and talosconfig ---------------------------------------------------------------------------


@task(
    help={
        "cluster": _CLUSTER,
        "dry-run": "show what would be generated and where it would be written; change nothing",
        "json": JSON_HELP,
        "yes": "skip the typed confirmation naming the recipients the bundle is encrypted to (non-interactive use)",
        **_LOCK,
    }
)
@guarded
def gen_secrets(
    c: Context,
    cluster: str,
    dry_run: bool = False,
    json: bool = False,
    yes: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Create a cluster's Talos secrets bundle (talosctl gen secrets shape), sops-encrypted; never overwrites.

    Generates CAs, keys and tokens in Python, encrypts them with sops to the recipients of the `.sops.yaml`
    rule matching clusters/<cluster>/talos/secrets.sops.yaml (plaintext only via stdin), checks the result
    decrypts back when your age key is at hand, and creates the file. An existing bundle is never replaced:
    new CAs would lock the running cluster's nodes and clients out. Asks you to type the cluster name, showing the
    recipients (only their keys will decrypt the cluster's CAs); --yes skips.
    """
    from k8s_ops.core.plan import Action, Plan, Step
    from k8s_ops.talos.secrets import new_bundle_target, refuse_existing

    target = new_bundle_target(cluster)
    refuse_existing(target.path, cluster)  # the dry run says so too
    recipients: list[str] = []
    data = target.to_json()
    detail = tuple((k, str(v)) for k, v in data.items() if k in ("sops_config", "filename_override", "rule") and v)
    generate = Action(
        "gen-secrets",
        str(target.path),
        lambda runner: recipients.extend(_generate_bundle(target)),
        detail=(*detail, ("recipients", ", ".join(target.recipients) or "(per .sops.yaml)")),
    )
    # the typed confirmation shows the step: the recipients are who can ever decrypt the cluster's CAs
    to = ", ".join(target.recipients) or "the recipients of the .sops.yaml rule"
    step = Step(f"generate, encrypt to {to} and create {target.path}", prepare=(generate,), destructive=True)
    notes = target.describe().splitlines()
    plan = Plan("generate the Talos secrets bundle", target.cluster, (step,), notes=tuple(notes))
    ran = finish(
        plan,
        runner_from(c),
        dry_run=dry_run,
        json=json,
        yes=yes,
        summary=False,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )
    if ran is None:
        return
    print(f"wrote {target.path} (encrypted to {', '.join(recipients)})")
    print("commit it; keep the age key safe: losing it means losing the cluster's CAs")


def _generate_bundle(target: NewBundleTarget) -> list[str]:
    """Generate the bundle, encrypt it, prove it decrypts when the key is at hand, create the file (never replacing
    one); returns the recipients it is encrypted to."""
    from k8s_ops.talos.secrets import (
        ciphertext_recipients,
        encrypt_bundle,
        generate_bundle,
        refuse_existing,
        verify_round_trip,
        write_bundle,
    )

    bundle = generate_bundle()
    ciphertext = encrypt_bundle(target, bundle)
    recipients = ciphertext_recipients(ciphertext)
    key = _verification_key(target)
    if key is None:
        print("note: no age key at hand, so the round trip was not verified", file=sys.stderr)
    elif set(key.recipients()) & set(recipients):
        verify_round_trip(ciphertext, bundle, key)
    else:
        print(
            f"note: your age key ({key.describe()}) is not a recipient of this bundle; "
            "only the holders of: " + ", ".join(recipients) + " can decrypt it",
            file=sys.stderr,
        )
    refuse_existing(target.path, target.cluster)
    write_bundle(target.path, ciphertext)
    return list(recipients)


def _verification_key(target: NewBundleTarget) -> AgeKey | None:
    """The key gen-secrets uses to prove the new bundle decrypts: the cluster's key if one can be found."""
    from k8s_ops.talos.inventory import CLUSTER_FILE, load_cluster
    from k8s_ops.talos.secrets import age_key_for
    from k8s_ops.tools.sops import AgeKeyNotFound, resolve_age_key

    cdir = target.path.parent.parent
    try:
        if (cdir / CLUSTER_FILE).is_file():
            return age_key_for(load_cluster(target.cluster, clusters_dir=cdir.parent))
        return resolve_age_key(cluster=target.cluster)
    except AgeKeyNotFound:
        return None


@task(
    help=help_for(
        cluster=_CLUSTER,
        force="issue a new client certificate even if the existing one is still valid",
        **_LOCK,
        **{"dry-run": "say what would be written (create / keep / update / renew) without writing"},
    )
)
@guarded
def talosconfig(
    c: Context,
    cluster: str,
    force: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Write build/<cluster>/talosconfig (0600) from the secrets bundle, without talosctl.

    The client certificate (role os:admin, 1 year) is signed by the bundle's os CA. Endpoints are every
    controlplane address, never the VIP; nodes is the first controlplane. A still-valid certificate is kept
    (no churn) unless --force, the CA changed, or it expires within 30 days.
    """
    import stat

    from k8s_ops.core import paths
    from k8s_ops.core.plan import FileWrite, Plan, Step
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.secrets import load_bundle
    from k8s_ops.talos.talosconfig import plan_talosconfig, read_existing, talosconfig_write

    inventory = load_cluster(cluster)
    bundle = load_bundle(inventory)
    path = paths.talosconfig_path(cluster)
    existing = read_existing(path)
    result = plan_talosconfig(inventory, bundle, existing=existing, force=force)
    if result.action == "keep":
        ok = existing is not None and stat.S_IMODE(path.stat().st_mode) == 0o600
        write = FileWrite(path, existing or b"", mode=0o600)  # re-asserts mode 0600 if it drifted; same bytes
        step = Step(f"keep {path}", writes=(write,), noop=result.reason if ok else None)
    else:
        write = talosconfig_write(path, result.content)
        step = Step(f"{result.action} {path}: {result.reason}", writes=(write,))
    plan = Plan("write the talosconfig", inventory.name, (step,))
    ran = finish(
        plan,
        runner_from(c),
        dry_run=dry_run,
        json=json,
        summary=False,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )
    if ran is None:
        return
    if result.action == "keep":
        print(f"{path}: {result.reason}")
        return
    done = {"create": "created", "update": "updated", "renew": "renewed"}[result.action]
    print(f"{done} {path} (0600): {result.reason}")


# --- render, validate, schematic ------------------------------------------------------------------------------


@task(
    help=help_for(
        cluster=_CLUSTER,
        node="render only this node (hostname or address)",
        out="output directory (default: build/<cluster>/, git-ignored; K8S_OPS_BUILD_DIR moves build/)",
        **_LOCK,
        **{"dry-run": "write nothing: show a unified diff against the files on disk, secret values masked as ***"},
    )
)
@guarded
def render(
    c: Context,
    cluster: str,
    node: str | None = None,
    out: str | None = None,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Render each node's Talos machine config to build/<cluster>/<hostname>.yaml (0600, in a 0700 dir).

    Reads clusters/<cluster>/cluster.yaml and its patches, decrypts the secrets bundle once, renders every
    node in memory (Talos generator output, then the inventory's settings, then cluster, role-group and node
    patches), checks the results, and only then writes — a bad template or patch leaves every file untouched.
    Output is byte-identical across runs; the summary says which files changed. --dry-run shows the diffs
    with every secret masked.
    """
    from k8s_ops.core import paths
    from k8s_ops.core.errors import ProblemsError
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.render import render_cluster
    from k8s_ops.talos.render_output import counts, plan_render, prepare_dir, semantic_problems, stale_files, status_of
    from k8s_ops.talos.secrets import load_bundle

    inventory = load_cluster(cluster)
    bundle = load_bundle(inventory)
    configs = render_cluster(inventory, bundle, [node] if node else None)
    found = semantic_problems(inventory, configs)
    if found:
        raise ProblemsError(
            found,
            hint="the rendered configs break a rule the toolkit relies on; fix the patch that causes it",
        )
    out_dir = paths.build_dir(cluster) if out is None else Path(out).expanduser()
    stale = stale_files(out_dir, inventory) if node is None else []
    notes = [f"{out_dir / name} belongs to no node of the inventory (left as is)" for name in stale]
    plan = plan_render(inventory.name, configs, out_dir, bundle.mask_values(), notes=notes)
    statuses = [status_of(w) for s in plan.steps for w in s.writes]
    warning = None if dry_run else prepare_dir(out_dir, default=out is None)
    ran = finish(
        plan,
        runner_from(c),
        dry_run=dry_run,
        json=json,
        summary=False,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )
    if ran is None:
        return
    print(f"rendered {len(statuses)} config(s) to {out_dir}/ ({counts(statuses)})")
    for step, status in zip(plan.steps, statuses, strict=True):
        print(f"  {status:<9} {step.writes[0].path.name}")
    if warning:
        print(warning)
    for name in stale:
        print(f"note: {out_dir / name} belongs to no node of the inventory (left as is)")


def _cause(exc: StepFailed) -> ToolkitError:
    """A read-only task's failed step is its own error (problems listed once, not wrapped in "step 1 failed")."""
    from k8s_ops.core.errors import ToolkitError

    return exc.cause if isinstance(exc.cause, ToolkitError) else exc


@task(
    help=help_for(cluster=_CLUSTER, **{"dry-run": "show what would be checked (the layers, per node); check nothing"})
)
@guarded
def validate(c: Context, cluster: str, dry_run: bool = False, json: bool = False) -> None:
    """Validate every node's rendered Talos config: schema, Talos' rules, our rules, and talosctl validate.

    Renders in memory (nothing is written), checks each YAML document against the Talos JSON schema of the
    cluster's talosVersion (fetched from the Talos tag on GitHub and cached under the state dir;
    K8S_OPS_TALOS_SCHEMA=<path|url> overrides), with the schema's known defects tolerated; then Talos' own
    validation rules offline (as `talosctl validate --mode metal --strict`; warnings printed); then the semantic
    rules (no control-plane secrets on workers, CNI none, kube-proxy off, KubePrism 7445, factory installer
    image, HostnameConfig, no install.extraKernelArgs, VIP only on control planes); then, when talosctl is on
    PATH, `talosctl validate --mode metal --strict` per node. Prints every problem at once and exits non-zero.
    A read-only plan: one step whose check is the validation (--dry-run shows it and checks nothing).
    """
    import shutil

    from k8s_ops.core.plan import Check, Plan, Step
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.validate import ValidationReport

    inv = load_cluster(cluster)
    talosctl = shutil.which("talosctl") is not None
    done: list[ValidationReport] = []

    def check(runner: Runner) -> None:
        from k8s_ops.core.errors import ProblemsError
        from k8s_ops.talos.render import render_cluster
        from k8s_ops.talos.schema import load_schema
        from k8s_ops.talos.secrets import load_bundle
        from k8s_ops.talos.validate import validate_rendered

        schema = load_schema(inv.talos_version)
        rendered = render_cluster(inv, load_bundle(inv), check_rules=False)  # the rules are a layer below
        report = validate_rendered(inv, rendered, schema, runner=runner if talosctl else None)
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if report.problems:
            raise ProblemsError(report.problems)
        done.append(report)

    layers = [
        f"the Talos {inv.talos_version} JSON schema (known defects tolerated)",
        "Talos' own rules (offline, as --mode metal --strict)",
        "the toolkit's semantic rules",
    ]
    if talosctl:
        layers.append("`talosctl validate --mode metal --strict`")
    nodes = ", ".join(n.hostname for n in inv.nodes)
    step = Step(f"render in memory and validate {len(inv.nodes)} node config(s): {nodes}", before=(
        Check("; ".join(layers), check),))  # fmt: skip
    notes = () if talosctl else ("talosctl not on PATH: `talosctl validate` is skipped",)
    plan = Plan("validate the rendered Talos configs", inv.name, (step,), notes=notes)

    if finish(plan, runner_from(c), dry_run=dry_run, json=json, on_step_failed=_cause, summary=False) is None:
        return
    (report,) = done
    print(f"{report.documents} documents valid")
    tolerated = report.tolerated_summary()
    if tolerated:
        print(f"tolerated known Talos schema defects: {tolerated}", file=sys.stderr)
    if not report.talosctl_checked:
        print("note: talosctl not on PATH; `talosctl validate` was skipped", file=sys.stderr)


@task(
    help=help_for(
        cluster=_CLUSTER,
        upload="POST the schematic to the Image Factory (K8S_OPS_IMAGE_FACTORY overrides the URL) and check "
        "the returned id equals the offline one",
        **_LOCK,
        **{"dry-run": "show the schematic's id, installer image and (with --upload) the upload; change nothing"},
    )
)
@guarded
def schematic(
    c: Context,
    cluster: str,
    upload: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Print the cluster's Image Factory schematic YAML, its ID (computed offline) and the installer image.

    The ID is sha256 of the schematic as the factory serialises it, so it is known before (and without) any
    upload. With --upload the schematic is registered at the factory, which must answer the same ID: the upload
    is the plan's one effect; the YAML, ID and installer image are reads (notes in the plan).
    """
    from k8s_ops.core.plan import Action, Plan, Step
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.schematic import factory_url, installer_image, schematic_for, upload_schematic

    inv = load_cluster(cluster)
    sch = schematic_for(inv)
    text = sch.to_yaml().decode()
    notes = (f"id: {sch.id}", f"installer: {installer_image(inv)}", *(f"schematic: {ln}" for ln in text.splitlines()))
    steps: tuple[Step, ...] = ()
    if upload:
        post = Action("image-factory-upload", f"{factory_url()}/schematics", lambda runner: upload_schematic(sch),
                      detail=(("id", sch.id),))  # fmt: skip
        steps = (Step(f"register schematic {sch.id} at the Image Factory", prepare=(post,)),)
    plan = Plan("the Image Factory schematic", inv.name, steps, notes=notes)
    if not dry_run:
        sys.stdout.write(text)
        print(f"# id: {sch.id}")
        print(f"# installer: {installer_image(inv)}")

    if finish(plan, runner_from(c), dry_run=dry_run, json=json, on_step_failed=_cause, summary=False) is None:
        return
    if upload:
        print(f"# uploaded: the Image Factory returned the same id {sch.id}")


# --- node lifecycle -------------------------------------------------------------------------------------------


def _versions(plan: Plan, cluster: Cluster, **facts: Any) -> Plan:
    """Version preflight (k8s_ops/talos/versions.py) over the inventory, the tool versions `preflight` read and `facts`:
    every problem at once as a ProblemsError, warnings as plan notes (so --dry-run shows both). With `nodes` (an
    upgrade) the Talos path rule names the cluster's own installer image."""
    from dataclasses import replace

    from k8s_ops.core.preflight import checked
    from k8s_ops.talos.schematic import installer_image
    from k8s_ops.talos.versions import evaluate

    facts.setdefault("kubernetes", cluster.kubernetes_version)
    if "nodes" in facts:
        facts.setdefault("installer", installer_image(cluster))
    found = evaluate(talos=cluster.talos_version, talosctl=checked("talosctl"), kubectl=checked("kubectl"), **facts)
    return replace(plan, notes=(*plan.notes, *found.enforce(cluster.file)))


def _with_progress(env: Env, *, dry_run: bool, json: bool) -> Env:
    """A rollout that runs reports each node's state as it changes (k8s_ops/talos/progress.py)."""
    from dataclasses import replace

    from k8s_ops.talos.progress import Progress

    return env if dry_run else replace(env, progress=Progress.for_terminal(json_lines=json))


@contextlib.contextmanager
def _progress_summary(env: Env) -> Iterator[None]:
    """Around a rollout's run: the failed node marked, the live table stopped, the per-node summary printed."""
    from k8s_ops.core.execute import StepFailed

    progress = env.progress
    try:
        yield
    except Exception as exc:
        failed = exc if isinstance(exc, StepFailed) else exc.__cause__  # a recovery's error wraps the step's
        if progress is not None and isinstance(failed, StepFailed) and failed.step.node:
            progress.transition(failed.step.node, "failed")
        raise
    finally:
        if progress is not None:
            progress.stop()
            print(progress.summary(), file=sys.stderr)


def _mode(mode: str) -> str:
    from k8s_ops.core.errors import ToolkitError

    if mode not in _MODES:
        raise ToolkitError(f"--mode {mode!r} is not one of: {', '.join(_MODES)}")
    return mode


def _apply(
    c: Context,
    cluster_name: str,
    nodes: list[str] | None,
    mode: str,
    *,
    dry_run: bool,
    json: bool,
    lock_timeout: int = 0,
    break_lock: bool = False,
    rollout: dict[str, Any] | None = None,
) -> None:
    from k8s_ops.core import settings
    from k8s_ops.core.secret import Secret
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import default_max_unavailable, plan_apply, refuse_outside_window, rollout_env
    from k8s_ops.talos.lifecycle import selected as selected_nodes
    from k8s_ops.talos.render import render_cluster
    from k8s_ops.talos.secrets import load_bundle
    from k8s_ops.tools.talosctl import ApplyMode

    checked: ApplyMode = _mode(mode)  # type: ignore[assignment]
    cluster, env, runner = _setup(c, cluster_name)
    env = rollout_env(env, **(rollout or {}), windowed=rollout is not None)
    if rollout and not dry_run:
        refuse_outside_window(env, "talos.apply-cluster")
    targets_nodes = [cluster.node(n) for n in nodes] if nodes is not None else selected_nodes(env, cluster.nodes)
    bundle = load_bundle(cluster)
    rendered = render_cluster(cluster, bundle, [n.hostname for n in targets_nodes])
    configs = {r.hostname: Secret(r.text) for r in rendered}
    targets = facts.gather_apply_targets(runner, env.tctl, targets_nodes, configs, mode=checked)
    k = default_max_unavailable(cluster)
    title = f"apply the config to {targets_nodes[0].hostname} (mode {mode})" if nodes else None
    plan = plan_apply(
        env, targets, checked, max_unavailable=k, title=title, talosconfig=_missing_talosconfig(cluster, bundle)
    )
    if any(s.before for s in plan.steps if s.noop is None):
        from k8s_ops.core.preflight import preflight

        preflight(runner, ["kubectl"])  # the health gates read Kubernetes
    if rollout:
        from k8s_ops.talos.lifecycle import with_pauses

        plan = with_pauses(plan, env, runner)
    plan = _versions(plan, cluster)
    finish(
        plan,
        runner,
        dry_run=dry_run,
        json=json,
        max_concurrency=max(k, settings.concurrency()),
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


def _missing_talosconfig(cluster: Cluster, bundle: SecretsBundle) -> FileWrite | None:
    """The talosconfig from the bundle (k8s_ops/talos/talosconfig.py) when build/<c>/talosconfig does not exist yet."""
    from k8s_ops.core import paths
    from k8s_ops.talos.talosconfig import plan_talosconfig, talosconfig_write

    path = paths.talosconfig_path(cluster.name)
    if path.exists():
        return None
    return talosconfig_write(path, plan_talosconfig(cluster, bundle, existing=None).content)


@task(
    help={
        "cluster": _CLUSTER,
        "node": _NODE,
        "mode": "apply-config mode: auto (default), no-reboot, reboot, staged, try",
        "dry-run": _DRY,
        "json": _JSON,
        **_LOCK,
    }
)
@guarded
def apply_node(
    c: Context,
    cluster: str,
    node: str,
    mode: str = "auto",
    lock_timeout: int = 0,
    break_lock: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Render and apply one node's machine config; wait until it is back if the change reboots it.

    A node in maintenance mode (answers `get machinestatus --insecure`) gets `--insecure`; a configured node
    never does. The config goes to talosctl as a 0600 temporary file. `apply-config --dry-run` decides first:
    no change is a no-op; a change that reboots a configured node waits behind the health gate (etcd healthy,
    other nodes Ready) and then for the node to come back (new boot id, running, ready, Kubernetes Ready).
    A missing build/<cluster>/talosconfig is written from the secrets bundle first.
    """
    _apply(c, cluster, [node], mode, dry_run=dry_run, json=json, lock_timeout=lock_timeout, break_lock=break_lock)


@task(
    help={
        "cluster": _CLUSTER,
        "mode": "apply-config mode (default auto)",
        "dry-run": _DRY,
        "json": _JSON,
        **_LOCK,
        **_ROLLOUT,
    }
)
@guarded
def apply_cluster(
    c: Context,
    cluster: str,
    mode: str = "auto",
    lock_timeout: int = 0,
    break_lock: bool = False,
    dry_run: bool = False,
    json: bool = False,
    only: str = "",
    exclude: str = "",
    role: str = "",
    pause: str = "",
    ignore_window: bool = False,
) -> None:
    """Render and apply every node's machine config: independent nodes concurrently, reboots rolled safely.

    Nodes in maintenance mode are applied together (`--insecure`); live changes are applied together; changes
    that reboot configured nodes roll one controlplane at a time and `upgrade.maxUnavailable` workers at a time,
    each behind the health gate and awaited back, with the inventory's hooks and checks around each node
    (as talos.upgrade-cluster). --only/--exclude/--role select nodes; --pause suspends Flux/VolSync/KEDA meanwhile.
    """
    rollout = {"only": only, "exclude": exclude, "role": role, "pause": pause, "ignore_window": ignore_window}
    _apply(c, cluster, None, mode, dry_run=dry_run, json=json, lock_timeout=lock_timeout, break_lock=break_lock,
           rollout=rollout)  # fmt: skip


@task(
    help={
        "cluster": _CLUSTER,
        "node": _NODE,
        "gate-timeout": _HOLD,
        "yes": _YES,
        "dry-run": _DRY,
        "json": _JSON,
        **_LOCK,
    }
)
@guarded
def upgrade_node(
    c: Context,
    cluster: str,
    node: str,
    gate_timeout: int = 0,
    yes: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Upgrade Talos on one node to the inventory's talosVersion with the schematic's factory installer.

    Preflight gates (held up to a bound, then refused): every etcd member healthy and one per controlplane,
    every other node Ready, no other node mid-upgrade, the inventory's CEL health checks. Then `talosctl upgrade
    --image factory.talos.dev/metal-installer/<schematic>:<v> --timeout …`, and afterwards: new boot id, version
    reports the target, stage running and ready, Kubernetes node Ready, and exactly the schematic's system
    extensions installed (fails naming them otherwise). A node already at the target — talosVersion *and* the
    schematic's extensions (`talosctl get extensions`) — is a no-op; a changed `schematic.extensions` at the
    same version is upgraded.
    """
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import plan_upgrade_node

    inventory, env, runner = _setup(c, cluster, ("talosctl", "kubectl"), gate_timeout=gate_timeout)
    target_node = inventory.node(node)
    targets = {t.node.hostname: t for t in facts.gather_upgrade_targets(runner, env.tctl, inventory)}
    plan = plan_upgrade_node(env, targets[target_node.hostname])
    running = {target_node.hostname: targets[target_node.hostname].version}
    plan = _versions(plan, inventory, nodes=running)
    finish(
        plan,
        runner,
        dry_run=dry_run,
        json=json,
        yes=yes,
        confirm_name=target_node.hostname,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(
    help={
        "cluster": _CLUSTER,
        "max-unavailable": "workers upgraded at once (default: inventory upgrade.maxUnavailable, else 1)",
        "gate-timeout": _HOLD,
        "yes": _YES,
        "dry-run": _DRY + " — shows the exact order",
        "json": _JSON,
        **_LOCK,
        **_ROLLOUT,
        "canary-soak": "seconds the health gate must stay healthy after the canaries (nodes with their own "
        "talosVersion) before the rest",
        "reboot-mode": "talosctl upgrade --reboot-mode: default or powercycle",
        "stage": "talosctl upgrade --stage: install on the next boot, which Talos starts at once without a drain",
    }
)
@guarded
def upgrade_cluster(
    c: Context,
    cluster: str,
    max_unavailable: int = 0,
    gate_timeout: int = 0,
    yes: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
    dry_run: bool = False,
    json: bool = False,
    only: str = "",
    exclude: str = "",
    role: str = "",
    pause: str = "",
    ignore_window: bool = False,
    canary_soak: float = 0.0,
    reboot_mode: str = "",
    stage: bool = False,
) -> None:
    """Rolling Talos upgrade of the whole cluster (the node-upgrade runbook as one command).

    1. etcd snapshot (0600) under the backups directory; its path is printed. With `backups.etcd` in the
       inventory it is verified (SHA-256 trailer) and uploaded with its sidecar first (see talos.etcd-snapshot).
    2. Controlplanes strictly one at a time, each behind the full health gate (quorum is never lost).
    3. Workers in batches of --max-unavailable.
    Stops at the first failure without touching the next node, naming the node, the gate and how to resume.
    Re-running resumes: nodes already at the target (talosVersion and the schematic's extensions) are detected
    (facts) and skipped; a node left mid-upgrade by an interrupted run is waited for, not upgraded twice. A
    changed `schematic.extensions` at the same talosVersion rolls out to every node the same way.
    Around each node: the inventory's health checks (objects, commands, Jobs), PodDisruptionBudgets that would
    block the drain, `upgrade.hooks`, an Alertmanager silence, VolumeAttachments re-attached; --only/--exclude/--role
    select nodes, canaries (own talosVersion) go first, --pause suspends Flux/VolSync/KEDA for the run.
    """
    from concurrent.futures import ThreadPoolExecutor

    from k8s_ops.core import paths
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.core.preflight import preflight
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import (
        default_max_unavailable,
        plan_upgrade_cluster,
        refuse_outside_window,
        rollout_env,
        with_pauses,
    )

    inventory, env, runner = _setup(c, cluster, (), gate_timeout=gate_timeout)  # tools: checked with the reads below
    env = rollout_env(env, only=only, exclude=exclude, role=role, canary_soak=canary_soak, reboot_mode=reboot_mode,
                      stage=stage, pause=pause, ignore_window=ignore_window)  # fmt: skip
    if not dry_run:
        refuse_outside_window(env, "talos.upgrade-cluster")
    env = _with_progress(env, dry_run=dry_run, json=json)
    if max_unavailable < 0:
        raise ToolkitError("--max-unavailable must be at least 1")
    k = max_unavailable or default_max_unavailable(inventory)
    chosen = env.rollout.selected
    # the tool preflight, the snapshot source and the targets are independent reads: one round trip for the three
    with ThreadPoolExecutor(max_workers=2) as pool:
        tools = pool.submit(preflight, runner, ("talosctl", "kubectl"))
        healthy = pool.submit(facts.first_healthy_etcd, runner, env.tctl, inventory)
        try:
            gathered = facts.gather_upgrade_targets(runner, env.tctl, inventory)
        finally:
            tools.result()  # a missing or too-old tool is the error to report, whatever the reads made of it
        source = healthy.result()
    targets = [t for t in gathered if chosen is None or t.node.hostname in chosen]
    from k8s_ops.backups.catalog import snapshot_name
    from k8s_ops.backups.etcd import with_offsite_snapshot

    snapshot = paths.backups_dir(inventory.name) / snapshot_name(datetime.now(UTC))
    plan = plan_upgrade_cluster(env, targets, max_unavailable=k, snapshot=snapshot, snapshot_source=source)
    plan = with_offsite_snapshot(plan, env, runner, snapshot, source)  # uploads when backups.etcd is set
    plan = with_pauses(plan, env, runner)
    running = {t.node.hostname: t.version for t in targets}
    plan = _versions(plan, inventory, nodes=running)
    with _progress_summary(env):
        report = finish(
            plan,
            runner,
            dry_run=dry_run,
            json=json,
            yes=yes,
            confirm_name=inventory.name,
            max_concurrency=k,
            lock_timeout=lock_timeout,
            break_lock=break_lock,
            json_progress=json,
        )
    if report is not None and snapshot.exists():
        print(f"etcd snapshot saved: {snapshot} (0600)")


@task(
    help={
        "cluster": _CLUSTER,
        "to": "Kubernetes version (default: inventory kubernetesVersion)",
        "yes": _YES,
        "dry-run": _DRY,
        "json": _JSON,
        **_LOCK,
    }
)
@guarded
def upgrade_k8s(
    c: Context,
    cluster: str,
    to: str = "",
    yes: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Upgrade Kubernetes: `talosctl upgrade-k8s --dry-run` first, then the real run via the first controlplane.

    Waits for every node Ready with the new kubelet version. A cluster already at the version is a no-op.
    """
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import plan_upgrade_k8s

    inventory, env, runner = _setup(c, cluster, ("talosctl", "kubectl"))
    version = to or inventory.kubernetes_version
    kubelets, server = facts.gather_k8s_versions(runner, env.kube)
    plan = plan_upgrade_k8s(env, version, kubelets=kubelets, apiserver=server)
    plan = _versions(plan, inventory, kubernetes=version, k8s_from=server, kubelets=kubelets, upgrade_k8s=True)
    finish(
        plan,
        runner,
        dry_run=dry_run,
        json=json,
        yes=yes,
        confirm_name=inventory.name,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(
    help={
        "cluster": _CLUSTER,
        "node": _NODE,
        "mode": "reboot mode: default or powercycle",
        "yes": _YES,
        "dry-run": _DRY,
        "json": _JSON,
        **_LOCK,
    }
)
@guarded
def reboot_node(
    c: Context,
    cluster: str,
    node: str,
    mode: str = "default",
    yes: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Reboot one node behind the health gate (type its name to confirm); wait until it is back and Ready."""
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.talos.lifecycle import plan_reboot

    if mode not in ("default", "powercycle"):
        raise ToolkitError(f"--mode {mode!r} is not one of: default, powercycle")
    inventory, env, runner = _setup(c, cluster, ("talosctl", "kubectl"))
    target = inventory.node(node)
    plan = plan_reboot(env, target, mode="powercycle" if mode == "powercycle" else "default")
    plan = _versions(plan, inventory, kubernetes=None)  # installs nothing: the clients only
    finish(
        plan,
        runner,
        dry_run=dry_run,
        json=json,
        yes=yes,
        confirm_name=target.hostname,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(
    help={
        "cluster": _CLUSTER,
        "mode": "reboot mode: default or powercycle",
        "max-unavailable": "workers rebooted at once (default: inventory upgrade.maxUnavailable, else 1)",
        "gate-timeout": _HOLD,
        "yes": _YES,
        "dry-run": _DRY,
        "json": _JSON,
        **_LOCK,
        **_ROLLOUT,
    }
)
@guarded
def reboot_cluster(
    c: Context,
    cluster: str,
    mode: str = "default",
    max_unavailable: int = 0,
    gate_timeout: int = 0,
    yes: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
    dry_run: bool = False,
    json: bool = False,
    only: str = "",
    exclude: str = "",
    role: str = "",
    pause: str = "",
    ignore_window: bool = False,
) -> None:
    """Rolling reboot of the cluster (type the cluster name to confirm), with the upgrade's gates, hooks and pauses.

    Controlplanes one at a time, workers --max-unavailable at a time, each behind the health gate; each node is
    drained first (PodDisruptionBudgets that would block it hold the gate), its VolumeAttachments awaited gone,
    rebooted, awaited back (new boot id, running, ready, Kubernetes Ready) and uncordoned.
    """
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.talos.lifecycle import (
        default_max_unavailable,
        plan_reboot_cluster,
        refuse_outside_window,
        rollout_env,
        selected,
        with_pauses,
    )

    if mode not in ("default", "powercycle"):
        raise ToolkitError(f"--mode {mode!r} is not one of: default, powercycle")
    if max_unavailable < 0:
        raise ToolkitError("--max-unavailable must be at least 1")
    inventory, env, runner = _setup(c, cluster, ("talosctl", "kubectl"), gate_timeout=gate_timeout)
    env = rollout_env(env, only=only, exclude=exclude, role=role, pause=pause, ignore_window=ignore_window)
    if not dry_run:
        refuse_outside_window(env, "talos.reboot-cluster")
    env = _with_progress(env, dry_run=dry_run, json=json)
    k = max_unavailable or default_max_unavailable(inventory)
    nodes = selected(env, inventory.nodes)
    plan = plan_reboot_cluster(env, nodes, max_unavailable=k, mode="powercycle" if mode == "powercycle" else "default")
    plan = with_pauses(plan, env, runner)
    plan = _versions(plan, inventory, kubernetes=None)
    with _progress_summary(env):
        finish(
            plan,
            runner,
            dry_run=dry_run,
            json=json,
            yes=yes,
            confirm_name=inventory.name,
            max_concurrency=k,
            lock_timeout=lock_timeout,
            break_lock=break_lock,
            json_progress=json,
        )


@task(
    help={
        "cluster": _CLUSTER,
        "only": _ROLLOUT["only"],
        "exclude": _ROLLOUT["exclude"],
        "role": _ROLLOUT["role"],
        "yes": _YES,
        "dry-run": _DRY,
        "json": _JSON,
        **_LOCK,
    }
)
@guarded
def shutdown_cluster(
    c: Context,
    cluster: str,
    only: str = "",
    exclude: str = "",
    role: str = "",
    yes: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Shut the cluster's nodes down (type the cluster name to confirm): workers first, then controlplanes.

    Talos cordons and drains each node itself, stops its services and powers it off; each is awaited until its
    Talos API no longer answers. Power them on out of band; they boot their installed config.
    """
    from k8s_ops.talos.lifecycle import plan_shutdown_cluster, rollout_env, selected

    inventory, env, runner = _setup(c, cluster)
    env = rollout_env(env, only=only, exclude=exclude, role=role)
    plan = plan_shutdown_cluster(env, selected(env, inventory.nodes))
    plan = _versions(plan, inventory, kubernetes=None)
    finish(
        plan,
        runner,
        dry_run=dry_run,
        json=json,
        yes=yes,
        confirm_name=inventory.name,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(help={"cluster": _CLUSTER, "node": _NODE, "yes": _YES, "dry-run": _DRY, "json": _JSON, **_LOCK})
@guarded
def reset_node(
    c: Context,
    cluster: str,
    node: str,
    yes: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Wipe one node (STATE and EPHEMERAL) back to maintenance mode; type its hostname to confirm.

    Targets the node directly (`-e <node> -n <node>`). Graceful (cordon/drain, leave etcd) while the cluster can
    take it; `--graceful=false` for the last etcd member, without etcd quorum, or without the Kubernetes API.
    """
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import plan_reset

    inventory, env, runner = _setup(c, cluster)
    target = inventory.node(node)
    f = facts.gather_reset_facts(runner, env.tctl, inventory, [target], env.kube)
    plan = _versions(plan_reset(env, f, whole_cluster=False), inventory, kubernetes=None)
    finish(
        plan,
        runner,
        dry_run=dry_run,
        json=json,
        yes=yes,
        confirm_name=target.hostname,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(help={"cluster": _CLUSTER, "yes": _YES, "dry-run": _DRY, "json": _JSON, **_LOCK})
@guarded
def reset_cluster(
    c: Context,
    cluster: str,
    yes: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Wipe EVERY node of the cluster back to maintenance mode; type the cluster name to confirm.

    Workers first, then controlplanes, each addressed directly (never proxied through a node already wiped),
    `--graceful=false` (the whole cluster goes), each awaited back in maintenance mode.
    """
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import plan_reset

    inventory, env, runner = _setup(c, cluster)
    order = [*inventory.workers, *inventory.controlplanes]
    f = facts.gather_reset_facts(runner, env.tctl, inventory, order, env.kube)
    plan = _versions(plan_reset(env, f, whole_cluster=True), inventory, kubernetes=None)
    finish(
        plan,
        runner,
        dry_run=dry_run,
        json=json,
        yes=yes,
        confirm_name=inventory.name,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(help={"cluster": _CLUSTER, "dry-run": _DRY, "json": _JSON, **_LOCK})
@guarded
def kubeconfig(
    c: Context, cluster: str, dry_run: bool = False, json: bool = False, lock_timeout: int = 0, break_lock: bool = False
) -> None:
    """Fetch the admin kubeconfig to build/<cluster>/kubeconfig (0600), context named after the cluster.

    Until the API VIP answers, the server is pointed at the first controlplane; re-run later to switch back.
    """
    from k8s_ops.core import paths
    from k8s_ops.talos.lifecycle import plan_kubeconfig

    inventory, env, runner = _setup(c, cluster)
    plan = plan_kubeconfig(env, paths.kubeconfig_path(inventory.name))
    finish(plan, runner, dry_run=dry_run, json=json, lock_timeout=lock_timeout, break_lock=break_lock)
    if not dry_run:
        print(f"kubeconfig: {paths.kubeconfig_path(inventory.name)} (context {inventory.name})")


@task(help={"cluster": _CLUSTER, "dry-run": _DRY, "json": _JSON})
@guarded
def health(c: Context, cluster: str, dry_run: bool = False, json: bool = False) -> None:
    """Run `talosctl health` server-side on a controlplane with the inventory's controlplane and worker lists."""
    from k8s_ops.talos.lifecycle import plan_health

    _, env, runner = _setup(c, cluster)
    finish(plan_health(env), runner, dry_run=dry_run, json=json)


@task(
    help={
        "cluster": _CLUSTER,
        "upload": "also upload it with its sidecar to the inventory's backups.etcd object store and read it back",
        "dry-run": _DRY,
        "json": _JSON,
        **_LOCK,
    }
)
@guarded
def etcd_snapshot(
    c: Context,
    cluster: str,
    upload: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Save a verified etcd snapshot (0600) under the backups directory; with --upload, also off-box.

    Streams `talosctl etcd snapshot` from the first healthy controlplane to `<state>/backups/<cluster>/<UTC
    time>.db`, checks the SHA-256 etcd appends to every snapshot (a truncated or altered file is refused), and
    writes a sidecar `<name>.json` beside it: cluster, time, Talos and Kubernetes versions, etcd members, the
    revision talosctl reports, size and sha256. --upload puts both under `<prefix>/<cluster>/` in the
    `backups.etcd` bucket (credentials from its 1Password item or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and
    reads the object back (size, sha256 metadata, ETag = MD5).
    """
    from k8s_ops.backups.catalog import snapshot_name
    from k8s_ops.backups.etcd import Remote, gather_snapshot_facts, snapshot_steps
    from k8s_ops.core import paths
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.core.plan import Plan
    from k8s_ops.talos import facts

    inventory, env, runner = _setup(c, cluster)
    remote = Remote.for_cluster(inventory) if upload else None
    if upload and remote is None:
        raise ToolkitError(
            f"--upload needs backups.etcd in clusters/{inventory.name}/cluster.yaml",
            hint="add backups: {etcd: {endpoint, bucket, prefix, region, credentials, retention}} (see the README)",
        )
    now = datetime.now(UTC)
    path = paths.backups_dir(inventory.name) / snapshot_name(now)
    source = facts.first_healthy_etcd(runner, env.tctl, inventory) or inventory.controlplanes[0]
    steps = snapshot_steps(env, source, path, gather_snapshot_facts(runner, env, source), remote=remote, when=now)
    notes = [f"off-box: {remote.describe()}"] if remote else []
    plan = Plan(
        "etcd snapshot" + (" and upload" if remote else ""),
        inventory.name,
        steps,
        notes=tuple(notes),
        resume_hint=f"re-run `{env.rerun('talos.etcd-snapshot', *(['--upload'] if upload else []))}`",
    )
    report = finish(plan, runner, dry_run=dry_run, json=json, lock_timeout=lock_timeout, break_lock=break_lock)
    if report is not None:
        print(f"etcd snapshot saved: {path} (0600, verified)")
        if remote is not None:
            print(f"uploaded: {remote.url(path.name)}")


# --- etcd backups and maintenance (k8s_ops/backups, k8s_ops/talos/etcd_maintenance.py) -------------------------


@task(
    help={
        "cluster": _CLUSTER,
        "prune": "delete the snapshots the inventory's retention drops (a plan; type the cluster name to confirm)",
        "yes": _YES,
        "dry-run": "with --prune: show what would be deleted, delete nothing",
        "json": "print the listing (or, with --dry-run, the prune plan) as JSON",
        **_LOCK,
    }
)
@guarded
def etcd_backups(
    c: Context,
    cluster: str,
    prune: bool = False,
    yes: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """List etcd snapshots, local and off-box, with age, size and whether verified; --prune applies retention.

    Local: `<state>/backups/<cluster>/`; remote: `<prefix>/<cluster>/` in the backups.etcd bucket. A snapshot is
    verified when its sidecar (written only after the SHA-256 trailer check) matches its size. Retention
    (`backups.etcd.retention`: keepLast, keepDailyDays; defaults 7 and 30) keeps the newest N and the newest of
    each day of the last D days, per location; the newest verified snapshot is never deleted. --prune shows the
    deletions as a plan and asks you to type the cluster name (--yes skips the question).
    """
    import json as _json

    from k8s_ops.backups.catalog import plan_retention
    from k8s_ops.backups.etcd import Remote, listing, listing_json, listing_table, plan_prune
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.inventory.models import Retention

    inventory = load_cluster(cluster)
    remote = Remote.for_cluster(inventory)
    now = datetime.now(UTC)
    found = listing(inventory.name, remote)
    policy = remote.target.retention if remote is not None else Retention()
    verdicts = plan_retention(found, policy, now) if prune else None
    if not prune:
        if json:
            print(_json.dumps(listing_json(found, now), indent=2))
            return
        where = f"; remote {remote.describe()}" if remote else "; no backups.etcd target (local only)"
        print(f"etcd snapshots of {inventory.name}: {len(found)}{where}")
        if found:
            print(listing_table(found, now), end="")
        return
    assert verdicts is not None
    if not dry_run:
        print(listing_table(found, now, verdicts), end="")
    plan = plan_prune(inventory.name, verdicts, remote)
    finish(
        plan,
        runner_from(c),
        dry_run=dry_run,
        json=json,
        yes=yes,
        confirm_name=inventory.name,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(help={"cluster": _CLUSTER, "dry-run": _DRY, "json": "print the report as JSON (with --dry-run: the plan)"})
@guarded
def etcd_status(c: Context, cluster: str, dry_run: bool = False, json: bool = False) -> None:
    """Per etcd member: leader, DB size, in use, fragmentation, raft index, alarms and errors.

    Reads `talosctl etcd status` of every controlplane and `talosctl etcd alarm list` (cluster-wide). Fragmentation
    is 1 - in use / DB size; above 50 % `talos.etcd-defrag` compacts the member. Exits non-zero when a member does
    not answer or reports an error other than an alarm.
    """
    import json as _json

    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.talos.etcd_maintenance import EtcdReport, plan_status, report_json, report_table

    _, env, runner = _setup(c, cluster)
    cell: list[EtcdReport] = []
    if finish(plan_status(env, cell), runner, dry_run=dry_run, json=json and dry_run, summary=False) is None:
        return
    report = cell[0]
    print(_json.dumps(report_json(report), indent=2) if json else report_table(report), end="\n" if json else "")
    problem = report.problem()
    if problem:
        raise ToolkitError(f"etcd is not healthy: {problem}")


@task(
    help={
        "cluster": _CLUSTER,
        "threshold": "defragment members whose in-use/DB-size ratio is below this (default 0.5, as Talos documents)",
        "gate-timeout": _HOLD,
        "yes": _YES,
        "dry-run": _DRY,
        "json": _JSON,
        **_LOCK,
    }
)
@guarded
def etcd_defrag(
    c: Context,
    cluster: str,
    threshold: float = 0.5,
    gate_timeout: int = 0,
    yes: bool = False,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Defragment fragmented etcd members one at a time: followers first, the leader last; type the cluster name.

    Only members whose in-use share of the database file is below --threshold are defragmented (`talosctl etcd
    defrag`, one node per call). Before and after each member the etcd health gate must pass (every member
    answers, one leader, no errors besides alarms); a member that became compact meanwhile is skipped.
    """
    from k8s_ops.talos.etcd_maintenance import gather_report, plan_defrag

    inventory, env, runner = _setup(c, cluster, gate_timeout=gate_timeout)
    plan = plan_defrag(env, gather_report(runner, env.tctl, inventory), threshold=threshold)
    finish(
        plan,
        runner,
        dry_run=dry_run,
        json=json,
        yes=yes,
        confirm_name=inventory.name,
        lock_timeout=lock_timeout,
        break_lock=break_lock,
    )


@task(
    help={
        "cluster": _CLUSTER,
        "quota-bytes": "the members' quota-backend-bytes (default 2147483648, etcd's default)",
        "dry-run": _DRY,
        "json": _JSON,
        **_LOCK,
    }
)
@guarded
def etcd_alarm_disarm(
    c: Context,
    cluster: str,
    quota_bytes: int = 2 * 1024**3,
    dry_run: bool = False,
    json: bool = False,
    lock_timeout: int = 0,
    break_lock: bool = False,
) -> None:
    """Disarm etcd's alarms once their cause is gone; refuses while it persists.

    NOSPACE is refused while any member's database file is still at the space quota (etcd would raise it again
    at the next write: free space with talos.etcd-defrag, or raise quota-backend-bytes, first); CORRUPT is always
    refused (replace the member). After `talosctl etcd alarm disarm`, checks that no alarm came back.
    """
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.talos.etcd_maintenance import gather_report, plan_alarm_disarm

    if quota_bytes <= 0:
        raise ToolkitError("--quota-bytes must be a positive number of bytes")
    inventory, env, runner = _setup(c, cluster)
    plan = plan_alarm_disarm(env, gather_report(runner, env.tctl, inventory), quota=quota_bytes)
    finish(plan, runner, dry_run=dry_run, json=json, lock_timeout=lock_timeout, break_lock=break_lock)
