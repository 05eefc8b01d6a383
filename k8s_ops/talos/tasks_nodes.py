"""Node lifecycle tasks: apply, upgrade (node, cluster, Kubernetes), reboot, reset, kubeconfig, health, etcd snapshot.

Each task is thin: load the inventory, gather facts, build the plan (k8s_ops/talos/lifecycle.py, pure), then print it
(`--dry-run`, `--dry-run --json`) or execute it. Nodes are named by hostname or address.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded

if TYPE_CHECKING:
    from k8s_ops.core.execute import Report
    from k8s_ops.core.plan import FileWrite, Plan
    from k8s_ops.core.runner import Runner
    from k8s_ops.talos.inventory import Cluster
    from k8s_ops.talos.lifecycle import Env
    from k8s_ops.talos.secrets import SecretsBundle

__all__ = [
    "apply_cluster",
    "apply_node",
    "etcd_snapshot",
    "health",
    "kubeconfig",
    "reboot_node",
    "reset_cluster",
    "reset_node",
    "upgrade_cluster",
    "upgrade_k8s",
    "upgrade_node",
]

_CLUSTER = "cluster name (directory under the clusters dir; K8S_OPS_CLUSTERS_DIR overrides it)"
_NODE = "node hostname or address (an unknown name lists the known nodes)"
_DRY = "show the exact plan (commands, gates, waits) and change nothing"
_JSON = "with --dry-run: print the plan as JSON"
_YES = "skip the typed confirmation (non-interactive use)"
_HOLD = "seconds a failing health gate may hold the rollout before it stops (default 300)"
_MODES = ("auto", "no-reboot", "reboot", "staged", "try")


def _setup(
    name: str, tools: tuple[str, ...] = ("talosctl",), *, gate_timeout: int = 0
) -> tuple[Cluster, Env, Runner]:
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.core.preflight import preflight
    from k8s_ops.core.runner import SubprocessRunner
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.lifecycle import Env, Timeouts

    if gate_timeout < 0:
        raise ToolkitError("--gate-timeout must be a positive number of seconds")
    cluster = load_cluster(name)
    env = Env.for_cluster(cluster, timeouts=Timeouts(hold=gate_timeout) if gate_timeout else None)
    runner = SubprocessRunner()
    preflight(runner, tools)
    return cluster, env, runner


def _finish(
    plan: Plan,
    runner: Runner,
    *,
    dry_run: bool,
    json: bool,
    yes: bool = False,
    confirm_name: str | None = None,
    max_concurrency: int | None = None,
) -> Report | None:
    if dry_run:
        sys.stdout.write(plan.to_json_text() if json else plan.to_text())
        return None
    if json:
        print("note: --json only changes --dry-run output", file=sys.stderr)
    from k8s_ops.core.execute import execute

    report = execute(plan, runner, yes=yes, confirm_name=confirm_name, max_concurrency=max_concurrency)
    print(report.summary())
    return report


def _versions(plan: Plan, cluster: Cluster, **facts: Any) -> Plan:
    """Version preflight (k8s_ops/talos/versions.py) over the inventory, the tool versions `preflight` read and `facts`:
    every problem at once as a ProblemsError, warnings as plan notes (so --dry-run shows both)."""
    from dataclasses import replace

    from k8s_ops.core.preflight import checked
    from k8s_ops.talos.versions import evaluate

    facts.setdefault("kubernetes", cluster.kubernetes_version)
    found = evaluate(talos=cluster.talos_version, talosctl=checked("talosctl"), kubectl=checked("kubectl"), **facts)
    return replace(plan, notes=(*plan.notes, *found.enforce(cluster.file)))


def _mode(mode: str) -> str:
    from k8s_ops.core.errors import ToolkitError

    if mode not in _MODES:
        raise ToolkitError(f"--mode {mode!r} is not one of: {', '.join(_MODES)}")
    return mode


def _apply(cluster_name: str, nodes: list[str] | None, mode: str, *, dry_run: bool, json: bool) -> None:
    from k8s_ops.core import settings
    from k8s_ops.core.secret import Secret
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import default_max_unavailable, plan_apply
    from k8s_ops.talos.render import render_cluster
    from k8s_ops.talos.secrets import load_bundle
    from k8s_ops.tools.talosctl import ApplyMode

    checked: ApplyMode = _mode(mode)  # type: ignore[assignment]
    cluster, env, runner = _setup(cluster_name)
    targets_nodes = [cluster.node(n) for n in nodes] if nodes is not None else list(cluster.nodes)
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
    plan = _versions(plan, cluster)
    _finish(plan, runner, dry_run=dry_run, json=json, max_concurrency=max(k, settings.concurrency()))


def _missing_talosconfig(cluster: Cluster, bundle: SecretsBundle) -> FileWrite | None:
    """The talosconfig from the bundle (k8s_ops/talos/talosconfig.py) when build/<c>/talosconfig does not exist yet."""
    from k8s_ops.core import paths
    from k8s_ops.core.plan import FileWrite
    from k8s_ops.talos.talosconfig import plan_talosconfig

    path = paths.talosconfig_path(cluster.name)
    if path.exists():
        return None
    content = plan_talosconfig(cluster, bundle, existing=None).content
    return FileWrite(path, content.reveal(), mode=0o600, mask=(content,))


@task(
    help={
        "cluster": _CLUSTER,
        "node": _NODE,
        "mode": "apply-config mode: auto (default), no-reboot, reboot, staged, try",
        "dry-run": _DRY,
        "json": _JSON,
    }
)
@guarded
def apply_node(
    c: Context, cluster: str, node: str, mode: str = "auto", dry_run: bool = False, json: bool = False
) -> None:
    """Render and apply one node's machine config; wait until it is back if the change reboots it.

    A node in maintenance mode (answers `get machinestatus --insecure`) gets `--insecure`; a configured node
    never does. The config goes to talosctl as a 0600 temporary file. `apply-config --dry-run` decides first:
    no change is a no-op; a change that reboots a configured node waits behind the health gate (etcd healthy,
    other nodes Ready) and then for the node to come back (new boot id, running, ready, Kubernetes Ready).
    A missing build/<cluster>/talosconfig is written from the secrets bundle first.
    """
    _apply(cluster, [node], mode, dry_run=dry_run, json=json)


@task(help={"cluster": _CLUSTER, "mode": "apply-config mode (default auto)", "dry-run": _DRY, "json": _JSON})
@guarded
def apply_cluster(c: Context, cluster: str, mode: str = "auto", dry_run: bool = False, json: bool = False) -> None:
    """Render and apply every node's machine config: independent nodes concurrently, reboots rolled safely.

    Nodes in maintenance mode are applied together (`--insecure`); live changes are applied together; changes
    that reboot configured nodes roll one controlplane at a time and `upgrade.maxUnavailable` workers at a time,
    each behind the health gate and awaited back.
    """
    _apply(cluster, None, mode, dry_run=dry_run, json=json)


@task(help={"cluster": _CLUSTER, "node": _NODE, "gate-timeout": _HOLD, "yes": _YES, "dry-run": _DRY, "json": _JSON})
@guarded
def upgrade_node(
    c: Context,
    cluster: str,
    node: str,
    gate_timeout: int = 0,
    yes: bool = False,
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
    from k8s_ops.talos.schematic import installer_image

    inventory, env, runner = _setup(cluster, ("talosctl", "kubectl"), gate_timeout=gate_timeout)
    target_node = inventory.node(node)
    targets = {t.node.hostname: t for t in facts.gather_upgrade_targets(runner, env.tctl, inventory)}
    plan = plan_upgrade_node(env, targets[target_node.hostname], installer_image(inventory))
    running = {target_node.hostname: targets[target_node.hostname].version}
    plan = _versions(plan, inventory, nodes=running, installer=installer_image(inventory))
    _finish(plan, runner, dry_run=dry_run, json=json, yes=yes, confirm_name=target_node.hostname)


@task(
    help={
        "cluster": _CLUSTER,
        "max-unavailable": "workers upgraded at once (default: inventory upgrade.maxUnavailable, else 1)",
        "gate-timeout": _HOLD,
        "yes": _YES,
        "dry-run": _DRY + " — shows the exact order",
        "json": _JSON,
    }
)
@guarded
def upgrade_cluster(
    c: Context,
    cluster: str,
    max_unavailable: int = 0,
    gate_timeout: int = 0,
    yes: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Rolling Talos upgrade of the whole cluster (the node-upgrade runbook as one command).

    1. etcd snapshot (0600) under the backups directory; its path is printed.
    2. Controlplanes strictly one at a time, each behind the full health gate (quorum is never lost).
    3. Workers in batches of --max-unavailable.
    Stops at the first failure without touching the next node, naming the node, the gate and how to resume.
    Re-running resumes: nodes already at the target (talosVersion and the schematic's extensions) are detected
    (facts) and skipped; a node left mid-upgrade by an interrupted run is waited for, not upgraded twice. A
    changed `schematic.extensions` at the same talosVersion rolls out to every node the same way.
    """
    from k8s_ops.core import paths
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import default_max_unavailable, plan_upgrade_cluster
    from k8s_ops.talos.schematic import installer_image

    inventory, env, runner = _setup(cluster, ("talosctl", "kubectl"), gate_timeout=gate_timeout)
    if max_unavailable < 0:
        raise ToolkitError("--max-unavailable must be at least 1")
    k = max_unavailable or default_max_unavailable(inventory)
    targets = facts.gather_upgrade_targets(runner, env.tctl, inventory)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    snapshot = paths.backups_dir(inventory.name) / f"etcd-{stamp}.snapshot"
    plan = plan_upgrade_cluster(
        env,
        targets,
        installer_image(inventory),
        max_unavailable=k,
        snapshot=snapshot,
        snapshot_source=facts.first_healthy_etcd(runner, env.tctl, inventory),
    )
    running = {t.node.hostname: t.version for t in targets}
    plan = _versions(plan, inventory, nodes=running, installer=installer_image(inventory))
    report = _finish(
        plan, runner, dry_run=dry_run, json=json, yes=yes, confirm_name=inventory.name, max_concurrency=k
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
    }
)
@guarded
def upgrade_k8s(
    c: Context, cluster: str, to: str = "", yes: bool = False, dry_run: bool = False, json: bool = False
) -> None:
    """Upgrade Kubernetes: `talosctl upgrade-k8s --dry-run` first, then the real run via the first controlplane.

    Waits for every node Ready with the new kubelet version. A cluster already at the version is a no-op.
    """
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import plan_upgrade_k8s

    inventory, env, runner = _setup(cluster, ("talosctl", "kubectl"))
    version = to or inventory.kubernetes_version
    kubelets, server = facts.gather_k8s_versions(runner, env.kube)
    plan = plan_upgrade_k8s(env, version, kubelets=kubelets, apiserver=server)
    plan = _versions(plan, inventory, kubernetes=version, k8s_from=server, kubelets=kubelets, upgrade_k8s=True)
    _finish(plan, runner, dry_run=dry_run, json=json, yes=yes, confirm_name=inventory.name)


@task(
    help={
        "cluster": _CLUSTER,
        "node": _NODE,
        "mode": "reboot mode: default or powercycle",
        "yes": _YES,
        "dry-run": _DRY,
        "json": _JSON,
    }
)
@guarded
def reboot_node(
    c: Context,
    cluster: str,
    node: str,
    mode: str = "default",
    yes: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Reboot one node behind the health gate (type its name to confirm); wait until it is back and Ready."""
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.talos.lifecycle import plan_reboot

    if mode not in ("default", "powercycle"):
        raise ToolkitError(f"--mode {mode!r} is not one of: default, powercycle")
    inventory, env, runner = _setup(cluster, ("talosctl", "kubectl"))
    target = inventory.node(node)
    plan = plan_reboot(env, target, mode="powercycle" if mode == "powercycle" else "default")
    plan = _versions(plan, inventory, kubernetes=None)  # installs nothing: the clients only
    _finish(plan, runner, dry_run=dry_run, json=json, yes=yes, confirm_name=target.hostname)


@task(help={"cluster": _CLUSTER, "node": _NODE, "yes": _YES, "dry-run": _DRY, "json": _JSON})
@guarded
def reset_node(
    c: Context, cluster: str, node: str, yes: bool = False, dry_run: bool = False, json: bool = False
) -> None:
    """Wipe one node (STATE and EPHEMERAL) back to maintenance mode; type its hostname to confirm.

    Targets the node directly (`-e <node> -n <node>`). Graceful (cordon/drain, leave etcd) while the cluster can
    take it; `--graceful=false` for the last etcd member, without etcd quorum, or without the Kubernetes API.
    """
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import plan_reset

    inventory, env, runner = _setup(cluster)
    target = inventory.node(node)
    f = facts.gather_reset_facts(runner, env.tctl, inventory, [target], env.kube)
    plan = _versions(plan_reset(env, f, whole_cluster=False), inventory, kubernetes=None)
    _finish(plan, runner, dry_run=dry_run, json=json, yes=yes, confirm_name=target.hostname)


@task(help={"cluster": _CLUSTER, "yes": _YES, "dry-run": _DRY, "json": _JSON})
@guarded
def reset_cluster(c: Context, cluster: str, yes: bool = False, dry_run: bool = False, json: bool = False) -> None:
    """Wipe EVERY node of the cluster back to maintenance mode; type the cluster name to confirm.

    Workers first, then controlplanes, each addressed directly (never proxied through a node already wiped),
    `--graceful=false` (the whole cluster goes), each awaited back in maintenance mode.
    """
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import plan_reset

    inventory, env, runner = _setup(cluster)
    order = [*inventory.workers, *inventory.controlplanes]
    f = facts.gather_reset_facts(runner, env.tctl, inventory, order, env.kube)
    plan = _versions(plan_reset(env, f, whole_cluster=True), inventory, kubernetes=None)
    _finish(plan, runner, dry_run=dry_run, json=json, yes=yes, confirm_name=inventory.name)


@task(help={"cluster": _CLUSTER, "dry-run": _DRY, "json": _JSON})
@guarded
def kubeconfig(c: Context, cluster: str, dry_run: bool = False, json: bool = False) -> None:
    """Fetch the admin kubeconfig to build/<cluster>/kubeconfig (0600), context named after the cluster.

    Until the API VIP answers, the server is pointed at the first controlplane; re-run later to switch back.
    """
    from k8s_ops.core import paths
    from k8s_ops.talos.lifecycle import plan_kubeconfig

    inventory, env, runner = _setup(cluster)
    plan = plan_kubeconfig(env, paths.kubeconfig_path(inventory.name))
    _finish(plan, runner, dry_run=dry_run, json=json)
    if not dry_run:
        print(f"kubeconfig: {paths.kubeconfig_path(inventory.name)} (context {inventory.name})")


@task(help={"cluster": _CLUSTER, "dry-run": _DRY, "json": _JSON})
@guarded
def health(c: Context, cluster: str, dry_run: bool = False, json: bool = False) -> None:
    """Run `talosctl health` server-side on a controlplane with the inventory's controlplane and worker lists."""
    from k8s_ops.talos.lifecycle import plan_health

    _, env, runner = _setup(cluster)
    _finish(plan_health(env), runner, dry_run=dry_run, json=json)


@task(help={"cluster": _CLUSTER, "dry-run": _DRY, "json": _JSON})
@guarded
def etcd_snapshot(c: Context, cluster: str, dry_run: bool = False, json: bool = False) -> None:
    """Save an etcd snapshot (0600) under the backups directory and print its path."""
    from k8s_ops.core import paths
    from k8s_ops.talos import facts
    from k8s_ops.talos.lifecycle import plan_etcd_snapshot

    inventory, env, runner = _setup(cluster)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = paths.backups_dir(inventory.name) / f"etcd-{stamp}.snapshot"
    source = facts.first_healthy_etcd(runner, env.tctl, inventory)
    _finish(plan_etcd_snapshot(env, path, source), runner, dry_run=dry_run, json=json)
    if not dry_run:
        print(f"etcd snapshot saved: {path} (0600)")
