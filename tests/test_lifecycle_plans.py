"""Lifecycle plan builders (pure) and their execution against a small stateful fake of talosctl/kubectl.

Fixtures as data: inventory + facts in, plan (commands, order, no-ops, gates) out.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import stat
import threading
import time
from pathlib import Path

import pytest

from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import Aborted, ProblemsError, ToolkitError
from k8s_ops.core.execute import StepFailed, execute
from k8s_ops.core.plan import Plan
from k8s_ops.core.secret import Secret
from k8s_ops.talos import facts
from k8s_ops.talos.facts import ApplyTarget, ResetFacts, ResetTarget, UpgradeTarget
from k8s_ops.talos.inventory import Cluster, HealthCheck, Upgrade, load_cluster
from k8s_ops.talos.lifecycle import (
    Env,
    Timeouts,
    graceful_for,
    node_image,
    plan_apply,
    plan_kubeconfig,
    plan_reboot,
    plan_reset,
    plan_upgrade_cluster,
    plan_upgrade_k8s,
    plan_upgrade_node,
    worker_batches,
)
from k8s_ops.talos.schematic import extension_name, installer_image
from k8s_ops.tools.talosctl import ApplyPreview
from tests.lifecycle_world import World

TARGET = "v1.12.11"
FAST = Timeouts(upgrade=2, ready=2, hold=0.3, reset=2, apply=2, upgrade_k8s=5, health=5)


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("K8S_OPS_POLL_INTERVAL", "0.005")
    monkeypatch.setenv("K8S_OPS_TIMEOUT_SCALE", "1")
    monkeypatch.setenv("K8S_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path / "build"))


def make_cluster(workers: int = 2, *, checks: tuple[HealthCheck, ...] | None = None, k: int = 1) -> Cluster:
    """The demo inventory with `workers` workers (addresses 10.5.0.14…) and the given health checks."""
    demo = load_cluster("demo")
    template = demo.workers[0]
    extra = [
        template.model_copy(update={"hostname": f"demo-wk-{i}", "address": ipaddress.ip_address(f"10.5.0.{13 + i}")})
        for i in range(1, workers + 1)
    ]
    hcs = demo.upgrade.health_checks if checks is None and demo.upgrade is not None else (checks or ())
    return demo.model_copy(
        update={
            "nodes": (*demo.controlplanes, *extra),
            "talos_version": TARGET,
            "upgrade": Upgrade(health_checks=hcs, max_unavailable=k),
        }
    )


def env_for(cluster: Cluster) -> Env:
    return Env.for_cluster(cluster, timeouts=FAST)


def rollout(world: World, env: Env, *, max_unavailable: int, snapshot: Path) -> Plan:
    """The upgrade-cluster plan from the facts `world` reports now (as the task gathers them)."""
    targets = facts.gather_upgrade_targets(world.runner, env.tctl, env.cluster)
    return plan_upgrade_cluster(env, targets, max_unavailable=max_unavailable, snapshot=snapshot)


def cilium(ready: int = 5, desired: int = 5) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "cilium", "namespace": "kube-system"},
        "status": {"numberReady": ready, "desiredNumberScheduled": desired},
    }


def world_for(cluster: Cluster, *, version: str = "v1.12.0") -> World:
    w = World(cluster, version=version)
    w.objects[("daemonset.v1.apps", "cilium", "kube-system")] = cilium()
    return w


def exts(cluster: Cluster) -> tuple[str, ...]:
    """The installed extension names the cluster's schematic gives (`intel-ucode`, `iscsi-tools`)."""
    return tuple(extension_name(e) for e in cluster.schematic.extensions)


def targets_of(cluster: Cluster, **versions: str) -> list[UpgradeTarget]:
    return [
        UpgradeTarget(n, versions.get(n.hostname.replace("-", "_"), "v1.12.0"), None, exts(cluster))
        for n in cluster.nodes
    ]


AT_TARGET = f"already at {TARGET} with the schematic's extensions"


def argvs(plan: Plan) -> list[list[str]]:
    return [c.display_argv() for s in plan.steps for c in s.commands]


def quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------- upgrade-cluster: shape


def test_worker_batches() -> None:
    cluster = make_cluster(5)
    assert [[n.hostname for n in b] for b in worker_batches(cluster.workers, 2)] == [
        ["demo-wk-1", "demo-wk-2"],
        ["demo-wk-3", "demo-wk-4"],
        ["demo-wk-5"],
    ]
    with pytest.raises(ValueError):
        worker_batches(cluster.workers, 0)


def test_upgrade_cluster_order_snapshot_first_cps_one_at_a_time_workers_in_batches(tmp_path: Path) -> None:
    cluster = make_cluster(5)
    snap = tmp_path / "backups" / "etcd.snapshot"
    plan = plan_upgrade_cluster(env_for(cluster), targets_of(cluster), max_unavailable=2, snapshot=snap)
    steps = plan.steps
    assert steps[0].commands[0].display_argv()[1:4] == ["etcd", "snapshot", str(snap)]
    shape = [(s.node, s.group, bool(s.commands)) for s in steps[1:]]
    assert shape == [
        ("demo-cp-1", None, True),
        ("demo-cp-2", None, True),
        ("demo-cp-3", None, True),
        (None, None, False),  # one health gate for the batch
        ("demo-wk-1", "workers-1", True),
        ("demo-wk-2", "workers-1", True),
        (None, None, False),
        ("demo-wk-3", "workers-2", True),
        ("demo-wk-4", "workers-2", True),
        ("demo-wk-5", None, True),
        (None, None, False),  # the cluster verified after the last node returned
    ]
    for s in steps[1:]:
        for c in s.commands:
            argv = c.display_argv()
            assert argv[1] == "upgrade" and argv[argv.index("--image") + 1] == installer_image(cluster)
            assert "--preserve" not in argv and "--force" not in argv
    text = plan.to_text()
    assert (
        "order: demo-cp-1 -> demo-cp-2 -> demo-cp-3 -> [demo-wk-1 demo-wk-2] -> [demo-wk-3 demo-wk-4] -> demo-wk-5"
        in text
    )
    assert f"etcd snapshot first: {snap}" in text
    # The full gate before each controlplane, then the node's own return is awaited.
    cp2 = steps[2]
    (gate,) = (c.description for c in cp2.before)
    assert gate.startswith("health gate before demo-cp-2 goes down: etcd 3/3 healthy, no alarm")
    assert "every other node Ready (except demo-cp-2)" in gate and "no other node mid-upgrade" in gate
    assert "every Cilium agent is ready" in gate
    assert "no PodDisruptionBudget blocks draining demo-cp-2" in gate  # Talos' upgrade drains the node
    # the extensions are read with the node-back probes (one wait, then the marker for post-node steps); the
    # next node's guard and gate reads ride along with its polls (gates.Ahead)
    (back, _) = (c.description for c in cp2.after)
    assert back == (
        f"demo-cp-2 back: new boot id (or the new version), stage running, ready, Talos {TARGET}, "
        "Kubernetes node Ready, its VolumeAttachments attached, "
        "the schematic's system extensions (intel-ucode, iscsi-tools)"
    )
    batch_gate = steps[4].before[0].description
    assert "every other node Ready (except demo-wk-1, demo-wk-2)" in batch_gate
    assert "no PodDisruptionBudget blocks draining demo-wk-1, demo-wk-2" in batch_gate
    assert steps[5].before == () and steps[5].guard is not None  # the guard re-reads version, stage, boot id
    assert steps[-1].before[0].description.startswith("health gate after the last node returned: etcd 3/3")


def test_upgrade_cluster_resumes_from_facts_and_is_a_noop_when_done(tmp_path: Path) -> None:
    cluster = make_cluster(2)
    plan = plan_upgrade_cluster(
        env_for(cluster),
        targets_of(cluster, demo_cp_1=TARGET, demo_cp_2=TARGET, demo_wk_2=TARGET),
        max_unavailable=1,
        snapshot=tmp_path / "s",
    )
    active = [s for s in plan.steps if s.noop is None]
    assert active[0].description.startswith("snapshot etcd")  # snapshot, then only what is left
    assert [s.node for s in active[1:-1]] == ["demo-cp-3", "demo-wk-1"]
    assert active[-1].description == "verify the cluster after the rollout"
    assert {s.node: s.noop for s in plan.steps if s.noop} == {
        "demo-cp-1": AT_TARGET,
        "demo-cp-2": AT_TARGET,
        "demo-wk-2": AT_TARGET,
    }
    done = plan_upgrade_cluster(
        env_for(cluster),
        [UpgradeTarget(n, TARGET, None, exts(cluster)) for n in cluster.nodes],
        max_unavailable=1,
        snapshot=tmp_path / "s",
    )
    assert all(s.noop is not None for s in done.steps)
    assert "nothing to upgrade" in done.to_text()


def test_upgrade_plan_json_names_commands_and_gates(tmp_path: Path) -> None:
    cluster = make_cluster(1)
    plan = plan_upgrade_node(env_for(cluster), UpgradeTarget(cluster.workers[0], "v1.12.0"))
    data = json.loads(plan.to_json_text())
    step = data["steps"][0]
    assert step["node"] == "demo-wk-1" and step["mutates"]
    assert step["commands"][0]["argv"][:2] == ["talosctl", "upgrade"]
    assert step["before"][0].startswith("health gate before demo-wk-1 goes down: etcd 3/3 healthy")
    assert step["after"][0].endswith("the schematic's system extensions (intel-ucode, iscsi-tools)")
    assert step["after"][1].startswith("health gate after demo-wk-1 returned")
    noop = plan_upgrade_node(env_for(cluster), UpgradeTarget(cluster.workers[0], TARGET, None, exts(cluster)))
    assert noop.steps[0].noop == AT_TARGET
    assert f"skipped — {AT_TARGET}" in noop.to_text()
    # The version alone is not enough: unread extensions mean "upgrade", and the step says why.
    unknown = plan_upgrade_node(env_for(cluster), UpgradeTarget(cluster.workers[0], TARGET))
    assert unknown.steps[0].noop is None and "installed extensions unknown" in unknown.steps[0].description


# --------------------------------------------------------------------------- upgrade: schematic changes


def test_same_version_with_other_extensions_is_upgraded_saying_why(tmp_path: Path) -> None:
    cluster = make_cluster(1)
    targets = [
        UpgradeTarget(n, TARGET, None, ("intel-ucode", "schematic") if n.is_controlplane else exts(cluster))
        for n in cluster.nodes
    ]
    targets[0] = UpgradeTarget(cluster.controlplanes[0], TARGET, None, ("intel-ucode", "zfs", "modules.dep"))
    plan = plan_upgrade_cluster(env_for(cluster), targets, max_unavailable=1, snapshot=tmp_path / "s")
    by_node = {s.node: s for s in plan.steps if s.node}
    assert by_node["demo-cp-1"].description == (
        f"upgrade demo-cp-1 to Talos {TARGET} (extensions differ: missing iscsi-tools; unexpected zfs)"
    )
    # `schematic` (the factory's marker) and `modules.dep` are not schematic extensions.
    assert "missing iscsi-tools)" in by_node["demo-cp-2"].description
    assert by_node["demo-wk-1"].noop == AT_TARGET
    assert plan.steps[0].noop is None  # something is upgraded: snapshot first
    assert "order: demo-cp-1 -> demo-cp-2 -> demo-cp-3" in plan.to_text()


def test_schematic_change_at_the_same_version_rolls_out_then_is_a_noop(tmp_path: Path) -> None:
    cluster = make_cluster(2)
    world = world_for(cluster, version=TARGET)
    for n in world.nodes.values():
        n.extensions = ["intel-ucode"]  # installed before iscsi-tools was added to schematic.extensions
    env = env_for(cluster)
    targets = facts.gather_upgrade_targets(world.runner, env.tctl, cluster)
    assert {t.extensions for t in targets} == {("intel-ucode",)}
    plan = plan_upgrade_cluster(env, targets, max_unavailable=1, snapshot=tmp_path / "s")
    execute(plan, world.runner, yes=True, out=quiet)
    assert world.upgrades() == [n.hostname for n in cluster.nodes]
    assert all(n.extensions == ["intel-ucode", "iscsi-tools"] for n in world.nodes.values())
    again = rollout(world, env, max_unavailable=1, snapshot=tmp_path / "s")
    report = execute(again, world.runner, yes=True, out=quiet)
    assert report.changed == 0 and len(world.upgrades()) == len(cluster.nodes)


def test_guard_upgrades_a_node_at_the_version_whose_extensions_differ(tmp_path: Path) -> None:
    cluster = make_cluster(1)
    world = world_for(cluster)
    env = env_for(cluster)
    plan = plan_upgrade_node(env, UpgradeTarget(cluster.workers[0], "v1.12.0"))
    node = world.by_host("demo-wk-1")
    node.version, node.extensions = TARGET, []  # e.g. upgraded meanwhile with the generic installer
    execute(plan, world.runner, yes=True, out=quiet)
    assert world.upgrades() == ["demo-wk-1"] and node.extensions == ["intel-ucode", "iscsi-tools"]
    # already at the version: only a new boot id proves the reboot, so the guard read it
    assert ["read", "/proc/sys/kernel/random/boot_id"] in [c.display_argv()[1:3] for c in world.runner.calls]


def test_upgrade_that_comes_back_without_the_extensions_fails_naming_them(tmp_path: Path) -> None:
    cluster = make_cluster(2)
    world = world_for(cluster)
    world.installer_extensions = ["intel-ucode"]  # the image lacks iscsi-tools
    env = env_for(cluster)
    plan = rollout(world, env, max_unavailable=1, snapshot=tmp_path / "s")
    with pytest.raises(StepFailed) as info:
        execute(plan, world.runner, yes=True, out=quiet)
    msg = str(info.value)
    assert "demo-cp-1 runs the schematic's system extensions" in msg and "missing iscsi-tools" in msg
    assert world.upgrades() == ["demo-cp-1"]  # the rollout stopped before the next node


def test_installed_extensions_tell_no_extensions_from_no_answer() -> None:
    cluster = make_cluster(2)
    world = world_for(cluster)
    world.by_host("demo-wk-1").extensions = []
    world.by_host("demo-wk-2").reachable = False
    env = env_for(cluster)
    got = facts.installed_extensions(env.tctl, ["10.5.0.11", "10.5.0.14", "10.5.0.15"]).gather(world.runner)
    assert [e.name for e in got.get("10.5.0.11") or ()] == ["intel-ucode", "iscsi-tools"]
    assert got.get("10.5.0.14") == () and got.get("10.5.0.15") is None
    assert got.error is not None and "10.5.0.15" in got.error
    alone = facts.installed_extensions(env.tctl, ["10.5.0.15"]).gather(world.runner)
    assert alone.get("10.5.0.15") is None


# --------------------------------------------------------------------------- upgrade: execution


def test_rolling_upgrade_executes_in_order_and_verifies_each_node(tmp_path: Path) -> None:
    cluster = make_cluster(4)
    world = world_for(cluster)
    env = env_for(cluster)
    plan = rollout(world, env, max_unavailable=2, snapshot=tmp_path / "b" / "etcd.snapshot")
    report = execute(plan, world.runner, yes=True, max_concurrency=2, out=quiet)
    ups = world.upgrades()
    assert ups[:3] == ["demo-cp-1", "demo-cp-2", "demo-cp-3"]
    assert set(ups[3:5]) == {"demo-wk-1", "demo-wk-2"} and set(ups[5:]) == {"demo-wk-3", "demo-wk-4"}
    assert world.log[0] == ("snapshot", "demo-cp-1")
    assert all(n.version == TARGET for n in world.nodes.values())
    assert report.changed == 1 + 7 + 2 + 1  # snapshot, nodes, batch gates, final verification
    snap = tmp_path / "b" / "etcd.snapshot"
    assert stat.S_IMODE(snap.stat().st_mode) == 0o600 and stat.S_IMODE(snap.parent.stat().st_mode) == 0o700
    # Every upgrade happened after the etcd gate read and before the wait that saw the new version.
    first_upgrade = next(i for i, c in enumerate(world.runner.calls) if c.display_argv()[1] == "upgrade")
    before = [c.display_argv()[1:3] for c in world.runner.calls[:first_upgrade]]
    assert ["etcd", "status"] in before
    # below the target, reaching it proves the reboot: no boot id is read (tests below cover the other proofs)
    assert ["read", "/proc/sys/kernel/random/boot_id"] not in before
    assert ["version", "--talosconfig"] in before  # the guard re-checked the version at execution


def test_rerun_after_completion_upgrades_nothing(tmp_path: Path) -> None:
    cluster = make_cluster(2)
    world = world_for(cluster, version=TARGET)
    env = env_for(cluster)
    plan = rollout(world, env, max_unavailable=1, snapshot=tmp_path / "s")
    report = execute(plan, world.runner, yes=True, out=quiet)
    assert world.upgrades() == [] and report.changed == 0
    assert ("snapshot", "demo-cp-1") not in world.log


def test_guard_skips_a_node_upgraded_since_planning(tmp_path: Path) -> None:
    cluster = make_cluster(1)
    world = world_for(cluster)
    env = env_for(cluster)
    plan = plan_upgrade_node(env, UpgradeTarget(cluster.controlplanes[1], "v1.12.0"))
    world.by_host("demo-cp-2").version = TARGET  # e.g. an earlier interrupted run finished it
    report = execute(plan, world.runner, yes=True, out=quiet)
    assert world.upgrades() == []
    assert report.outcomes[0].status == "skipped" and TARGET in report.outcomes[0].reason


def test_guard_waits_for_a_node_still_mid_upgrade_instead_of_upgrading_it_twice(tmp_path: Path) -> None:
    cluster = make_cluster(1)
    world = world_for(cluster)
    env = env_for(cluster)
    node = world.by_host("demo-wk-1")
    plan = plan_upgrade_node(env, UpgradeTarget(cluster.workers[0], None, "no answer"))
    node.stage = "upgrading"  # interrupted run: the node is still rebooting into the new version
    calls = {"n": 0}
    inner = world.runner.handler
    assert inner is not None

    def finishing(command):
        calls["n"] += 1
        if calls["n"] == 4:  # the node comes back after a few polls
            node.stage, node.version = "running", TARGET
        return inner(command)

    world.runner.handler = finishing
    report = execute(plan, world.runner, yes=True, out=quiet)
    assert world.upgrades() == []
    assert "interrupted" in report.outcomes[0].reason


def test_unhealthy_etcd_refuses_a_controlplane_upgrade_naming_the_gate(tmp_path: Path) -> None:
    cluster = make_cluster(1)
    world = world_for(cluster)
    world.by_host("demo-cp-3").etcd_error = "etcdserver: no leader"
    env = env_for(cluster)
    plan = rollout(world, env, max_unavailable=1, snapshot=tmp_path / "s")
    with pytest.raises(StepFailed) as info:
        execute(plan, world.runner, yes=True, out=quiet)
    msg = str(info.value)
    assert "on demo-cp-1 failed" in msg and "health gate before demo-cp-1 goes down" in msg
    assert "last seen: etcd 3/3 healthy, no alarm: demo-cp-3: etcdserver: no leader" in msg
    assert "re-run `invoke talos.upgrade-cluster --cluster demo`" in msg
    assert world.upgrades() == []


def test_node_that_never_returns_stops_the_rollout_and_leaves_the_next_node_untouched(tmp_path: Path) -> None:
    cluster = make_cluster(2)
    world = world_for(cluster)
    world.by_host("demo-cp-2").never_returns = True
    env = env_for(cluster)
    plan = rollout(world, env, max_unavailable=1, snapshot=tmp_path / "s")
    with pytest.raises(StepFailed) as info:
        execute(plan, world.runner, yes=True, out=quiet)
    assert world.upgrades() == ["demo-cp-1", "demo-cp-2"]
    assert "demo-cp-2" in str(info.value) and "timeout" in str(info.value)


def test_failing_cel_check_holds_then_stops_naming_the_check(tmp_path: Path) -> None:
    cluster = make_cluster(1)
    world = world_for(cluster)
    world.objects[("daemonset.v1.apps", "cilium", "kube-system")] = cilium(ready=3, desired=4)
    env = env_for(cluster)
    plan = plan_upgrade_node(env, UpgradeTarget(cluster.workers[0], "v1.12.0"))
    with pytest.raises(StepFailed) as info:
        execute(plan, world.runner, yes=True, out=quiet)
    msg = str(info.value)
    assert "timed out after 0.3s waiting for health gate before demo-wk-1 goes down" in msg
    assert "last seen: health check every Cilium agent is ready: DaemonSet kube-system/cilium satisfies" in msg
    assert "is false" in msg and world.upgrades() == []


def test_cel_check_reads_top_level_fields_and_reports_bad_expressions() -> None:
    from k8s_ops.talos.gates import compile_health_checks, evaluate_cel

    ceph = HealthCheck(
        api_version="ceph.rook.io/v1",
        kind="CephCluster",
        namespace="rook-ceph",
        name="rook-ceph",
        expr="status.ceph.health == 'HEALTH_OK'",
    )
    cluster = make_cluster(1, checks=(ceph,))
    (gate,) = compile_health_checks(cluster)
    assert evaluate_cel(gate, {"status": {"ceph": {"health": "HEALTH_OK"}}}) is None
    assert "is false" in (evaluate_cel(gate, {"status": {"ceph": {"health": "HEALTH_WARN"}}}) or "")
    assert "no such member" in (evaluate_cel(gate, {"status": {}}) or "")
    bad = make_cluster(1, checks=(ceph.model_copy(update={"expr": "status.ceph.health =="}), ceph))
    with pytest.raises(ProblemsError) as info:
        compile_health_checks(bad)
    assert "upgrade.healthChecks[0].expr" in str(info.value) and "invalid CEL" in str(info.value)


# --------------------------------------------------------------------------- apply


def apply_targets(cluster: Cluster, world: World, mode: str = "auto") -> list[ApplyTarget]:
    configs = {n.hostname: Secret(b"machine: {token: sekrit-value}\n") for n in cluster.nodes}
    env = env_for(cluster)
    return facts.gather_apply_targets(world.runner, env.tctl, list(cluster.nodes), configs, mode=mode)  # type: ignore[arg-type]


def test_apply_uses_insecure_only_in_maintenance_and_rolls_reboots(tmp_path: Path) -> None:
    cluster = make_cluster(2)
    world = world_for(cluster)
    world.by_host("demo-wk-2").maintenance = True
    targets = apply_targets(cluster, world)
    plan = plan_apply(env_for(cluster), targets, "auto", max_unavailable=1)
    by_node = {s.node: s for s in plan.steps}
    wk2 = by_node["demo-wk-2"].commands[0].display_argv()
    assert "--insecure" in wk2 and "-e" not in wk2
    for host in ("demo-cp-1", "demo-cp-2", "demo-cp-3", "demo-wk-1"):
        argv = by_node[host].commands[0].display_argv()
        assert "--insecure" not in argv and argv[argv.index("--file") + 1] == f"$TMP/{host}.yaml"
        assert by_node[host].before[0].description.startswith(f"health gate before {host} reboots")
    assert [s.node for s in plan.steps] == ["demo-wk-2", "demo-cp-1", "demo-cp-2", "demo-cp-3", "demo-wk-1", None]
    assert "sekrit" not in plan.to_text() and "sekrit" not in plan.to_json_text()
    execute(plan, world.runner, yes=True, out=quiet)
    assert [h for v, h in world.log if v == "apply"] == [
        "demo-wk-2",
        "demo-cp-1",
        "demo-cp-2",
        "demo-cp-3",
        "demo-wk-1",
    ]


def test_apply_without_changes_is_a_noop_and_live_changes_run_together() -> None:
    cluster = make_cluster(2)
    world = world_for(cluster)
    world.apply_change = "none"
    plan = plan_apply(env_for(cluster), apply_targets(cluster, world), "auto", max_unavailable=1)
    assert all(s.noop is not None for s in plan.steps)
    world.apply_change = "live"
    plan = plan_apply(env_for(cluster), apply_targets(cluster, world), "auto", max_unavailable=1)
    assert {s.group for s in plan.steps} == {"live"} and not any(s.before for s in plan.steps)


def test_apply_rejected_in_dry_run_applies_nothing() -> None:
    cluster = make_cluster(1)
    world = world_for(cluster)
    world.apply_reject = {"demo-cp-2"}
    with pytest.raises(Exception) as info:
        apply_targets(cluster, world)
    assert "demo-cp-2: error applying new configuration" in str(info.value)
    assert [v for v, _ in world.log if v == "apply"] == []


def test_apply_refuses_modes_the_maintenance_service_lacks() -> None:
    cluster = make_cluster(1)
    target = ApplyTarget(cluster.workers[0], Secret(b"x"), maintenance=True)
    with pytest.raises(ProblemsError) as info:
        plan_apply(env_for(cluster), [target], "staged", max_unavailable=1)
    assert "demo-wk-1 is in maintenance mode: --mode staged is not possible" in str(info.value)


def test_apply_with_explicit_reboot_mode_reboots_even_live_changes() -> None:
    cluster = make_cluster(1)
    live = ApplyPreview("live", "Applied configuration without a reboot")
    t = ApplyTarget(cluster.workers[0], Secret(b"x"), maintenance=False, preview=live)
    plan = plan_apply(env_for(cluster), [t], "reboot", max_unavailable=1)
    assert plan.steps[0].after[0].description.startswith("demo-wk-1 back: new boot id")
    assert plan.steps[-1].description == "verify the cluster after the reboots"
    plan = plan_apply(env_for(cluster), [t], "no-reboot", max_unavailable=1)
    assert plan.steps[0].after == ()


# --------------------------------------------------------------------------- reboot, reset


def test_reboot_is_destructive_gated_and_waits() -> None:
    cluster = make_cluster(1)
    world = world_for(cluster)
    plan = plan_reboot(env_for(cluster), cluster.controlplanes[0])
    assert plan.destructive and plan.steps[0].before[0].description.startswith("health gate before demo-cp-1")
    execute(plan, world.runner, yes=True, out=quiet)
    assert ("reboot", "demo-cp-1") in world.log


def test_reset_cluster_resets_workers_first_each_addressed_directly(tmp_path: Path) -> None:
    cluster = make_cluster(2)
    world = world_for(cluster)
    env = env_for(cluster)
    order = [*cluster.workers, *cluster.controlplanes]
    f = facts.gather_reset_facts(world.runner, env.tctl, cluster, order, env.kube)
    assert (f.etcd_members, f.etcd_healthy, f.kube_api) == (3, True, True)
    plan = plan_reset(env, f, whole_cluster=True)
    assert plan.destructive
    for s in plan.steps:
        argv = s.commands[0].display_argv()
        addr = argv[argv.index("-n") + 1]
        assert argv[argv.index("-e") + 1] == addr
        assert "--graceful=false" in argv
    execute(plan, world.runner, yes=True, out=quiet)
    resets = [h for v, h in world.log if v == "reset"]
    assert set(resets[:2]) == {"demo-wk-1", "demo-wk-2"} and resets[2:] == ["demo-cp-1", "demo-cp-2", "demo-cp-3"]
    assert all(n.maintenance for n in world.nodes.values())
    # Re-running finds every node in maintenance mode: nothing to do.
    again = plan_reset(
        env, facts.gather_reset_facts(world.runner, env.tctl, cluster, order, env.kube), whole_cluster=True
    )
    assert all(s.noop for s in again.steps) and not again.destructive


def test_reset_cluster_without_yes_and_without_a_terminal_refuses() -> None:
    from k8s_ops.core.errors import Aborted

    cluster = make_cluster(1)
    world = world_for(cluster)
    env = env_for(cluster)
    f = ResetFacts(3, True, True, tuple(ResetTarget(n) for n in cluster.nodes))
    with pytest.raises(Aborted):
        execute(plan_reset(env, f, whole_cluster=True), world.runner, out=quiet)
    assert world.log == []


@pytest.mark.parametrize(
    ("role", "members", "healthy", "kube", "graceful"),
    [
        ("controlplane", 3, True, True, True),
        ("controlplane", 1, True, True, False),  # last member cannot leave
        ("controlplane", 3, False, True, False),  # no quorum: a graceful leave hangs
        ("controlplane", None, False, False, False),  # etcd gone
        ("worker", 3, True, True, True),
        ("worker", 3, True, False, False),  # no API: no drain
    ],
)
def test_graceful_decision(role: str, members: int | None, healthy: bool, kube: bool, graceful: bool) -> None:
    cluster = make_cluster(1)
    node = cluster.controlplanes[0] if role == "controlplane" else cluster.workers[0]
    f = ResetFacts(members, healthy, kube)
    assert graceful_for(node, f, whole_cluster=False)[0] is graceful
    assert graceful_for(node, f, whole_cluster=True)[0] is False


# --------------------------------------------------------------------------- upgrade-k8s, kubeconfig


def test_upgrade_k8s_dry_run_first_then_real_then_waits_for_kubelets() -> None:
    cluster = make_cluster(1)
    world = world_for(cluster)
    env = env_for(cluster)
    kubelets, server = facts.gather_k8s_versions(world.runner, env.kube)
    plan = plan_upgrade_k8s(env, "v1.35.2", kubelets=kubelets, apiserver=server)
    cmds = argvs(plan)
    assert cmds[0][:2] == ["talosctl", "upgrade-k8s"] and "--dry-run" in cmds[0]
    assert "--dry-run" not in cmds[1] and cmds[1][cmds[1].index("--to") + 1] == "1.35.2"
    assert cmds[0][cmds[0].index("-n") + 1] == "10.5.0.11"
    execute(plan, world.runner, yes=True, out=quiet)
    assert [v for v, _ in world.log] == ["upgrade-k8s-dry", "upgrade-k8s"]
    kubelets, server = facts.gather_k8s_versions(world.runner, env.kube)
    again = plan_upgrade_k8s(env, "1.35.2", kubelets=kubelets, apiserver=server)
    assert again.steps[0].noop == "the API server and every kubelet already run v1.35.2"


def test_kubeconfig_is_0600_named_after_the_cluster_and_points_at_a_controlplane(tmp_path: Path) -> None:
    cluster = make_cluster(1)
    world = world_for(cluster)
    path = tmp_path / "kc" / "kubeconfig"
    plan = plan_kubeconfig(env_for(cluster), path)
    fetch = plan.steps[0].commands[0].display_argv()
    assert fetch[:3] == ["talosctl", "kubeconfig", str(path)]
    assert fetch[fetch.index("--force-context-name") + 1] == "demo" and "--force" in fetch
    execute(plan, world.runner, yes=True, out=quiet)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ("set-cluster", "https://10.5.0.11:6443") in world.log  # the VIP does not answer yet


def test_multi_node_reads_keep_what_answered_and_say_why_the_rest_did_not() -> None:
    cluster = make_cluster(2)
    world = world_for(cluster)
    world.by_host("demo-wk-2").reachable = False
    env = env_for(cluster)
    got = facts.talos_versions(env.tctl, ["10.5.0.14", "10.5.0.15"]).gather(world.runner)
    assert got.get("10.5.0.14") == "v1.12.0" and got.get("10.5.0.15") is None
    assert got.error is not None and "10.5.0.15" in got.error
    targets = facts.gather_upgrade_targets(world.runner, env.tctl, cluster)
    wk2 = next(t for t in targets if t.node.hostname == "demo-wk-2")
    assert wk2.version is None and "Unavailable" in (wk2.error or "")
    for n in world.nodes.values():
        n.reachable = False
    with pytest.raises(ToolkitError) as info:
        facts.gather_upgrade_targets(world.runner, env.tctl, cluster)
    assert "the Talos API does not answer on 10.5.0.11, 10.5.0.12, 10.5.0.13" in str(info.value)


def test_every_talosctl_argv_in_every_plan_uses_only_v1_12_flags(tmp_path: Path) -> None:
    from tests.test_talosctl import REFERENCE, parse_reference, unknown_flags

    if not REFERENCE.is_file():
        pytest.skip(f"talosctl CLI reference not available ({REFERENCE}: ../shared is absent)")
    reference = parse_reference(REFERENCE.read_text())
    cluster = make_cluster(3)
    env = env_for(cluster)
    old = [UpgradeTarget(n, "v1.12.0") for n in cluster.nodes]
    fresh = ApplyTarget(cluster.workers[0], Secret(b"x"), maintenance=True)
    reboot = ApplyTarget(cluster.workers[1], Secret(b"x"), maintenance=False, preview=ApplyPreview("reboot", "r"))
    live = ApplyTarget(cluster.workers[2], Secret(b"x"), maintenance=False, preview=ApplyPreview("live", "l"))
    plans = [
        plan_upgrade_cluster(env, old, max_unavailable=2, snapshot=tmp_path / "s"),
        plan_upgrade_node(env, old[0]),
        plan_apply(env, [fresh, reboot, live], "auto", max_unavailable=1),
        plan_reboot(env, cluster.controlplanes[0], mode="powercycle"),
        plan_reset(env, ResetFacts(3, True, True, tuple(ResetTarget(n) for n in cluster.nodes)), whole_cluster=True),
        plan_reset(env, ResetFacts(3, True, True, (ResetTarget(cluster.controlplanes[1]),)), whole_cluster=False),
        plan_upgrade_k8s(env, "v1.35.2", kubelets={}, apiserver="v1.35.0"),
        plan_kubeconfig(env, tmp_path / "kubeconfig"),
    ]
    from k8s_ops.talos.lifecycle import plan_etcd_snapshot, plan_health

    plans += [plan_health(env), plan_etcd_snapshot(env, tmp_path / "snap")]
    seen = set()
    for plan in plans:
        for argv in argvs(plan):
            if argv[0] != "talosctl":
                continue
            command, bad = unknown_flags(argv, reference)
            assert bad == [], f"talosctl {' '.join(command)} has no flag(s) {bad}: {argv}"
            seen.add(command)
    assert {("upgrade",), ("apply-config",), ("reboot",), ("reset",), ("upgrade-k8s",), ("kubeconfig",),
            ("health",), ("etcd", "snapshot")} <= seen  # fmt: skip


def test_upgrades_ask_for_the_typed_name(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = make_cluster(1)
    world = world_for(cluster)
    env = env_for(cluster)
    plan = rollout(world, env, max_unavailable=1, snapshot=Path("/nonexistent/etcd.snapshot"))
    assert plan.destructive
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(Aborted, match="--yes"):
        execute(plan, world.runner, out=quiet)
    assert world.log == []


def test_a_changed_schematic_id_is_upgraded_even_with_the_same_extensions() -> None:
    from k8s_ops.talos.schematic import schematic_id

    cluster = make_cluster(1)
    world = world_for(cluster, version=TARGET)
    world.by_host("demo-cp-2").schematic = "0" * 64  # e.g. built before a kernel argument was added
    for host in ("demo-cp-1", "demo-cp-3", "demo-wk-1"):
        world.by_host(host).schematic = schematic_id(cluster)
    env = env_for(cluster)
    plan = rollout(world, env, max_unavailable=1, snapshot=Path("/nonexistent/etcd.snapshot"))
    pending = [s for s in plan.steps if s.commands and s.node]
    assert [s.node for s in pending if "upgrade" in s.description] == ["demo-cp-2"]
    assert "schematic 000000000000… differs" in pending[-1].description


def test_a_canary_config_installs_its_own_talos_version() -> None:
    # apply-cluster must carry a canary's version: its rendered install image is the one its upgrade used
    from k8s_ops.talos.render import _main_overlay
    from k8s_ops.talos.schematic import installer_image

    cluster = make_cluster(2)
    canary = cluster.workers[0].model_copy(update={"talos_version": "v1.12.10"})
    cluster = cluster.model_copy(update={"nodes": (*cluster.controlplanes, canary, cluster.workers[1])})
    env = env_for(cluster)
    image = _main_overlay(cluster, canary)["machine"]["install"]["image"]
    assert image == node_image(env, canary) and image.endswith(":v1.12.10")
    other = _main_overlay(cluster, cluster.workers[1])["machine"]["install"]["image"]
    assert other == installer_image(cluster) and other.endswith(f":{TARGET}")


class _Counting:
    """A runner that answers every read with a new value and counts what ran."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, ...]] = []
        self._lock = threading.Lock()

    def run(self, command: Command, *, check: bool = True) -> Result:
        time.sleep(0.05)  # long enough for concurrent identical reads to overlap
        with self._lock:
            self.ran.append(tuple(map(str, command.argv)))
            return Result(0, f"answer {len(self.ran)}")


def test_a_merged_read_is_served_once_then_read_live_and_identical_reads_in_flight_run_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from k8s_ops.core.facts import Recording, Served, Shelf

    shelf, live = Shelf(), _Counting()
    read = Command(("talosctl", "get", "machinestatus"))
    with ThreadPoolExecutor(max_workers=3) as pool:  # one round: the same read three times at once runs once
        answers = list(pool.map(lambda _: Recording(live, shelf).run(read).stdout, range(3)))
    assert answers == ["answer 1"] * 3 and len(live.ran) == 1
    gate = Served(live, shelf)
    assert gate.run(read).stdout == "answer 1"  # the first poll: the round's answer
    assert gate.run(read).stdout == "answer 2"  # a gate that holds polls live
    assert Served(live, shelf).run(read).stdout == "answer 2"  # the next reader gets the newest answer once
    # effects and reads carrying input are never shelved; a cleared or stale shelf answers nothing
    write = Command(("kubectl", "uncordon", "n"), mutates=True)
    Recording(live, shelf).run(write)
    assert shelf.get(write) is None
    shelf.clear()
    assert shelf.get(read) is None and Served(live, shelf).run(read).stdout == "answer 4"
    stale = Shelf(max_age=-1.0)  # every answer already too old
    stale.put(read, live.run(read))
    assert Served(live, stale).run(read).stdout == "answer 6"


def test_each_node_of_a_rollout_costs_one_read_round_shared_with_the_next_nodes_guard_and_gate(tmp_path: Path) -> None:
    cluster = make_cluster(3)
    world = world_for(cluster)
    env = env_for(cluster)
    plan = rollout(world, env, max_unavailable=1, snapshot=tmp_path / "s")
    execute(plan, world.runner, yes=True, out=quiet)
    assert all(n.version == TARGET for n in world.nodes.values())
    argvs = [c.display_argv() for c in world.runner.calls]
    ups = [i for i, a in enumerate(argvs) if a[1] == "upgrade"]
    assert len(ups) == 6

    def kube_get(argv: list[str], resource: str) -> bool:
        return argv[0] == "kubectl" and "get" in argv and argv[argv.index("get") + 1] == resource

    for start, end in itertools.pairwise(ups):
        between = argvs[start + 1 : end]
        # the node back, the next node's guard and its gate read one all-node machine status, one nodes list,
        # one etcd status: one round
        assert sum(a[1:3] == ["get", "machinestatus"] for a in between) == 1, between
        assert sum(kube_get(a, "nodes") for a in between) == 1, between
        assert sum(a[1:3] == ["etcd", "status"] for a in between) == 1, between
