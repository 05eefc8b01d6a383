"""Node lifecycle tasks end to end against the simulator (tests/sim): the invoke tasks, real subprocesses.

The demo cluster runs Talos v1.12.0 in the simulator; the inventory under test asks for v1.12.11.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.core import paths
from k8s_ops.core import preflight as tools
from tests.sim.simlib.api import BIN, Sim

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "clusters" / "demo"
TARGET = "v1.12.11"
CPS = ["10.5.0.11", "10.5.0.12", "10.5.0.13"]
WORKERS = ["10.5.0.14", "10.5.0.15"]


@pytest.fixture
def lab(sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    """A running demo cluster (Talos v1.12.0, Cilium, etcd 3/3) and an inventory asking for v1.12.11."""
    clusters = tmp_path / "clusters"
    shutil.copytree(DEMO, clusters / "demo")
    inventory = clusters / "demo" / "cluster.yaml"
    inventory.write_text(inventory.read_text().replace("talosVersion: v1.12.0", f"talosVersion: {TARGET}"))
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(clusters))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("K8S_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("K8S_OPS_POLL_INTERVAL", "0.02")
    monkeypatch.setenv("K8S_OPS_TIMEOUT_SCALE", "0.01")  # gate hold 3s, node back 9s
    fast_shims(monkeypatch)
    tools.reset_cache()
    sim.create(DEMO / "cluster.yaml")
    paths.build_dir("demo").mkdir(parents=True)
    sim.make_ready(kubeconfig=tmp_path / "sim-kubeconfig", talosconfig=paths.talosconfig_path("demo"))
    task("kubeconfig")  # the toolkit's own kubeconfig: context "demo", 0600
    yield sim
    tools.reset_cache()


def fast_shims(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put this venv's python3 right after the simulator's bin dir: the shims then skip a re-exec per call."""
    venv_bin = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", os.pathsep.join([str(BIN), venv_bin, os.environ.get("PATH", "")]))


def task(name: str, **kwargs: Any) -> None:
    from k8s_ops.talos import tasks as talos_tasks

    if name.startswith("upgrade"):  # upgrades ask for the typed name; tests confirm up front
        kwargs.setdefault("yes", True)
    getattr(talos_tasks, name.replace("-", "_"))(Context(), cluster="demo", **kwargs)


def failing(name: str, capsys: pytest.CaptureFixture[str], **kwargs: Any) -> str:
    with pytest.raises(Exit) as info:
        task(name, **kwargs)
    assert info.value.code != 0
    return capsys.readouterr().err


def talosctl_calls(sim: Sim, verb: str) -> list[list[str]]:
    return [c["argv"] for c in sim.calls("talosctl") if c["argv"] and c["argv"][0] == verb]


def node_of(argv: list[str]) -> str:
    return argv[argv.index("-n") + 1]


def versions(sim: Sim) -> dict[str, str]:
    return {a: n["talos_version"] for a, n in sim.state()["nodes"].items()}


# --------------------------------------------------------------------------- upgrade-cluster


def test_upgrade_cluster_rolls_in_order_keeps_extensions_and_resumes_as_a_noop(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.schematic import installer_image

    image = installer_image(load_cluster("demo"))
    task("upgrade-cluster")
    out = capsys.readouterr().out
    upgrades = talosctl_calls(lab, "upgrade")
    assert [node_of(a) for a in upgrades] == [*CPS, *WORKERS]
    for argv in upgrades:
        assert argv[argv.index("--image") + 1] == image and image.startswith("factory.talos.dev/metal-installer/")
        assert "--preserve" not in argv and "--force" not in argv
    state = lab.state()["nodes"]
    assert all(n["talos_version"] == TARGET for n in state.values())
    schematic = image.split("/")[-1].split(":")[0]
    assert all(n["schematic"] == schematic for n in state.values())  # extensions kept
    snapshot = Path(out.split("etcd snapshot saved: ", 1)[1].split()[0])
    assert snapshot.parent == paths.backups_dir("demo") and snapshot.stat().st_size > 0
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    assert stat.S_IMODE(snapshot.parent.stat().st_mode) == 0o700
    # The snapshot came before any node went down.
    calls = [c["argv"][:2] for c in lab.calls("talosctl")]
    assert calls.index(["etcd", "snapshot"]) < calls.index(["upgrade", "--talosconfig"])

    # Re-running finds every node at the target: nothing is upgraded, no snapshot is taken.
    task("upgrade-cluster")
    assert len(talosctl_calls(lab, "upgrade")) == len(upgrades)
    assert "0 done" in capsys.readouterr().out
    assert len([a for a in talosctl_calls(lab, "etcd") if a[1] == "snapshot"]) == 1


def test_schematic_change_at_the_same_version_rolls_out_and_a_missing_extension_fails_loudly(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.schematic import installer_image

    task("upgrade-cluster")  # every node at v1.12.11 with the inventory's schematic (intel-ucode, iscsi-tools)
    first = len(talosctl_calls(lab, "upgrade"))
    # An extension added to the inventory at the same talosVersion: a new schematic ID, which the simulator
    # learns from the edited inventory (as `sim create` does).
    inventory = Path(os.environ["K8S_OPS_CLUSTERS_DIR"]) / "demo" / "cluster.yaml"
    doc = yaml.safe_load(inventory.read_text())
    doc["schematic"]["extensions"].append("siderolabs/nfsrahead")
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert lab.run("sim", "set-schematic", "--inventory", str(inventory)).returncode == 0
    image = installer_image(load_cluster("demo"))
    capsys.readouterr()
    task("upgrade-cluster", dry_run=True)
    assert "(extensions differ: missing nfsrahead)" in capsys.readouterr().out
    task("upgrade-cluster")
    upgrades = talosctl_calls(lab, "upgrade")[first:]
    assert [node_of(a) for a in upgrades] == [*CPS, *WORKERS]
    assert {a[a.index("--image") + 1] for a in upgrades} == {image}
    assert set(versions(lab).values()) == {TARGET}
    capsys.readouterr()
    task("upgrade-cluster")  # re-run: every node at the version with the schematic's extensions
    assert len(talosctl_calls(lab, "upgrade")) == first + len(upgrades)
    assert "already at v1.12.11 with the schematic's extensions" in capsys.readouterr().err

    # Another extension, but the simulator is not told: that image comes back without any extensions.
    doc["schematic"]["extensions"].append("siderolabs/i915-ucode")
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    before = len(talosctl_calls(lab, "upgrade"))
    err = failing("upgrade-cluster", capsys)
    assert len(talosctl_calls(lab, "upgrade")) == before + 1  # demo-cp-1 only: the rollout stopped there
    assert "demo-cp-1 runs the schematic's system extensions" in err
    assert "missing i915-ucode, intel-ucode, iscsi-tools, nfsrahead" in err


def test_upgrade_cluster_dry_run_shows_the_order_and_changes_nothing(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    task("upgrade-cluster", dry_run=True, max_unavailable=2)
    text = capsys.readouterr().out
    assert "order: demo-cp-1 -> demo-cp-2 -> demo-cp-3 -> [demo-wk-1 demo-wk-2]" in text
    assert "talosctl upgrade" in text and "health gate before demo-cp-1 goes down" in text
    task("upgrade-cluster", dry_run=True, json=True)
    plan = json.loads(capsys.readouterr().out)
    assert plan["steps"][1]["node"] == "demo-cp-1" and plan["steps"][1]["commands"][0]["argv"][1] == "upgrade"
    assert talosctl_calls(lab, "upgrade") == [] and not [a for a in talosctl_calls(lab, "etcd") if a[1] == "snapshot"]
    assert set(versions(lab).values()) == {"v1.12.0"}


def test_node_that_never_returns_stops_the_rollout_before_the_next_node(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.fault("node-never-returns", node="10.5.0.12")
    os.environ["K8S_OPS_TIMEOUT_SCALE"] = "0.004"  # (restored by monkeypatch) talosctl gives up after 3.6s
    err = failing("upgrade-cluster", capsys)
    assert [node_of(a) for a in talosctl_calls(lab, "upgrade")] == ["10.5.0.11", "10.5.0.12"]
    assert "upgrade demo-cp-2" in err and "on demo-cp-2 failed" in err
    assert "re-run `invoke talos.upgrade-cluster --cluster demo`" in err
    assert versions(lab)["10.5.0.13"] == "v1.12.0"


def test_unhealthy_etcd_member_refuses_the_controlplane_upgrade(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    lab.fault("etcd-unhealthy", node="10.5.0.13")
    os.environ["K8S_OPS_TIMEOUT_SCALE"] = "0.002"  # (restored by monkeypatch) the gate holds 0.6s
    err = failing("upgrade-node", capsys, node="demo-cp-1")
    assert talosctl_calls(lab, "upgrade") == []
    assert "health gate before demo-cp-1 goes down" in err and "etcd 3/3 healthy, no alarm: demo-cp-3" in err


def test_talos_api_unreachable_fails_cleanly_before_any_change(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    for a in [*CPS, *WORKERS]:
        lab.fault("talos-api-unreachable", node=a)
    err = failing("upgrade-node", capsys, node="10.5.0.14")
    assert "the Talos API does not answer on 10.5.0.11, 10.5.0.12, 10.5.0.13" in err
    assert "Traceback" not in err and talosctl_calls(lab, "upgrade") == []


def test_failing_cel_health_check_holds_then_stops_naming_it(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    # An extra inventory health check over an object the test controls.
    inventory = Path(os.environ["K8S_OPS_CLUSTERS_DIR"]) / "demo" / "cluster.yaml"
    doc = yaml.safe_load(inventory.read_text())
    doc["upgrade"]["healthChecks"].append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "namespace": "kube-system",
            "name": "storage-health",
            "expr": "data.health == 'HEALTH_OK'",
            "description": "storage is healthy",
        }
    )
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    kc = ["--kubeconfig", str(paths.kubeconfig_path("demo")), "--context", "demo"]

    def storage(health: str) -> None:
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "storage-health", "namespace": "kube-system"},
            "data": {"health": health},
        }
        r = lab.run("kubectl", *kc, "apply", "-f", "-", input=json.dumps(cm))
        assert r.returncode == 0, r.stderr

    storage("HEALTH_WARN")
    os.environ["K8S_OPS_TIMEOUT_SCALE"] = "0.002"  # the gate holds 0.6s
    err = failing("upgrade-node", capsys, node="demo-wk-1")
    assert "waiting for health gate before demo-wk-1 goes down" in err
    assert "storage is healthy: ConfigMap kube-system/storage-health satisfies `data.health == 'HEALTH_OK'`" in err
    assert "is false" in err and talosctl_calls(lab, "upgrade") == []
    storage("HEALTH_OK")
    os.environ["K8S_OPS_TIMEOUT_SCALE"] = "0.01"
    task("upgrade-node", node="demo-wk-1")
    assert [node_of(a) for a in talosctl_calls(lab, "upgrade")] == ["10.5.0.14"]
    gets = [c["argv"] for c in lab.calls("kubectl") if "storage-health" in c["argv"]]
    assert len(gets) >= 3  # evaluated before the node went down and again after it returned


def test_interrupted_rollout_resumes_without_upgrading_any_node_twice(
    lab: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # demo-cp-2's upgrade stays mid-reboot (down) until the fault is cleared: however slow the machine, the
    # Ctrl-C lands while it reboots and the re-run still finds it unfinished (the simulator's clock is logical)
    lab.fault("node-never-returns", node="10.5.0.12")
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "talos.upgrade-cluster", "--cluster", "demo", "--yes"],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )

    def wait_until(cond: Any, what: str) -> None:
        deadline = time.time() + 60
        while not cond():
            assert time.time() < deadline and proc.poll() is None, f"never saw: {what}"
            time.sleep(0.02)

    wait_until(lambda: (lab.node("10.5.0.12").get("reboot") or {}).get("kind") == "upgrade", "demo-cp-2 upgrading")
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C while demo-cp-2 reboots into the new version
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "re-run" in err
    assert versions(lab)["10.5.0.13"] == "v1.12.0"
    # demo-cp-2's reboot goes on from "just went down" and lasts 32 contacts (1.6 s / 0.05 s steps): the
    # re-run's fact reads and its first guard round all find it down, its wait then sees it come back
    lab.set("reboot_seconds", 1.6)
    lab.clear_faults()

    capsys.readouterr()
    task("upgrade-cluster")
    log = capsys.readouterr().err
    at = "already at v1.12.11 with the schematic's extensions"
    assert f"upgrade demo-cp-1 to Talos v1.12.11 [demo-cp-1]: unchanged — {at}" in log
    assert f"[demo-cp-2]: unchanged — {at} (an earlier, interrupted run finished it)" in log
    # (the killed talosctl call for demo-cp-2 never reached the simulator's call log: it was cut short)
    upgraded = [node_of(a) for a in talosctl_calls(lab, "upgrade")]
    assert upgraded == ["10.5.0.11", "10.5.0.13", *WORKERS]
    assert set(versions(lab).values()) == {TARGET}


def test_upgrade_node_at_target_is_a_noop_with_the_reason(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    task("upgrade-node", node="demo-wk-2")
    assert [node_of(a) for a in talosctl_calls(lab, "upgrade")] == ["10.5.0.15"]
    capsys.readouterr()
    task("upgrade-node", node="10.5.0.15", dry_run=True)
    assert f"skipped — already at {TARGET}" in capsys.readouterr().out


def test_unknown_node_lists_the_known_ones(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    err = failing("upgrade-node", capsys, node="nope")
    assert "unknown node 'nope'" in err and "demo-cp-1 (10.5.0.11)" in err and "demo-wk-2 (10.5.0.15)" in err


# --------------------------------------------------------------------------- upgrade-k8s, kubeconfig, health


def test_upgrade_k8s_runs_the_dry_run_first_and_waits_for_every_kubelet(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    task("upgrade-k8s", to="v1.35.2")
    calls = talosctl_calls(lab, "upgrade-k8s")
    assert len(calls) == 2 and "--dry-run" in calls[0] and "--dry-run" not in calls[1]
    assert node_of(calls[1]) == "10.5.0.11" and calls[1][calls[1].index("--to") + 1] == "1.35.2"
    capsys.readouterr()
    task("upgrade-k8s", to="v1.35.2", dry_run=True)
    assert "already run v1.35.2" in capsys.readouterr().out


def test_kubeconfig_is_private_and_named_after_the_cluster(lab: Sim) -> None:
    path = paths.kubeconfig_path("demo")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = yaml.safe_load(path.read_text())
    assert data["current-context"] == "demo"
    kubeconfig_calls = talosctl_calls(lab, "kubeconfig")
    assert kubeconfig_calls and "--force-context-name" in kubeconfig_calls[-1]


COREDNS = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
        "template": {
            "metadata": {"labels": {"k8s-app": "kube-dns"}},
            "spec": {"containers": [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.12.4"}]},
        },
    },
}


def test_health_and_etcd_snapshot(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    kc = str(paths.kubeconfig_path("demo"))
    applied = lab.run("kubectl", "--kubeconfig", kc, "--context", "demo", "apply", "-f", "-", input=json.dumps(COREDNS))
    assert applied.returncode == 0, applied.stderr
    task("health")
    health = talosctl_calls(lab, "health")[-1]
    assert health[health.index("--control-plane-nodes") + 1] == ",".join(CPS)
    assert health[health.index("--worker-nodes") + 1] == ",".join(WORKERS)
    task("etcd-snapshot")
    out = capsys.readouterr().out
    path = Path(out.split("etcd snapshot saved: ", 1)[1].split()[0])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_size > 0


# --------------------------------------------------------------------------- reboot, reset


def test_reboot_node_needs_confirmation_then_waits_for_the_node(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    err = failing("reboot-node", capsys, node="demo-wk-1")
    assert "refusing to reboot demo-wk-1" in err and talosctl_calls(lab, "reboot") == []
    before = lab.node("10.5.0.14")["boot_id"]
    task("reboot-node", node="demo-wk-1", yes=True)
    assert lab.node("10.5.0.14")["boot_id"] != before and lab.node("10.5.0.14")["stage"] == "running"


def test_reset_cluster_wipes_workers_first_each_addressed_directly(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    task("reset-cluster", yes=True)
    resets = talosctl_calls(lab, "reset")
    order = [node_of(a) for a in resets]
    assert set(order[:2]) == set(WORKERS) and order[2:] == CPS
    for argv in resets:
        assert argv[argv.index("-e") + 1] == node_of(argv)
        labels = [argv[i + 1] for i, a in enumerate(argv) if a == "--system-labels-to-wipe"]
        assert labels == ["STATE", "EPHEMERAL"] and "--graceful=false" in argv
    assert {lab.node(a)["stage"] for a in [*CPS, *WORKERS]} == {"maintenance"}
    capsys.readouterr()
    task("reset-cluster", yes=True)  # re-run: every node already in maintenance mode
    assert len(talosctl_calls(lab, "reset")) == len(resets)


def test_reset_node_gracefully_leaves_etcd_and_returns_to_maintenance(lab: Sim) -> None:
    task("reset-node", node="demo-cp-3", yes=True)
    (argv,) = talosctl_calls(lab, "reset")
    assert "--graceful=true" in argv and argv[argv.index("-e") + 1] == "10.5.0.13"
    assert lab.node("10.5.0.13")["stage"] == "maintenance"
    members = lab.cluster("demo")["etcd"]["members"]
    assert "10.5.0.13" not in members and len(members) == 2


# --------------------------------------------------------------------------- apply


@pytest.fixture
def fresh(sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    """The demo nodes in maintenance mode (never configured), the demo inventory and secrets bundle."""
    clusters = tmp_path / "clusters"
    shutil.copytree(DEMO, clusters / "demo")
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(clusters))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("K8S_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("K8S_OPS_POLL_INTERVAL", "0.02")
    monkeypatch.setenv("K8S_OPS_TIMEOUT_SCALE", "0.01")
    fast_shims(monkeypatch)
    tools.reset_cache()
    sim.create(DEMO / "cluster.yaml")
    yield sim
    tools.reset_cache()


def applies(sim: Sim, *, dry: bool = False) -> list[dict[str, Any]]:
    return [
        c
        for c in sim.calls("talosctl")
        if c["argv"][:1] == ["apply-config"] and ("--dry-run" in c["argv"]) == dry
    ]


def test_apply_cluster_installs_maintenance_nodes_over_insecure_then_is_a_noop(
    fresh: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    task("apply-cluster", dry_run=True)
    text = capsys.readouterr().out
    assert "--insecure only for nodes in maintenance mode: demo-cp-1, demo-cp-2, demo-cp-3" in text
    assert applies(fresh) == []
    task("apply-cluster")
    calls = applies(fresh)
    assert sorted(node_of(c["argv"]) for c in calls) == sorted([*CPS, *WORKERS])
    for c in calls:
        argv = c["argv"]
        assert "--insecure" in argv and c["stdin_bytes"] is None  # a file, never stdin or inline
        # the config reaches talosctl as an anonymous descriptor (core/runner.py): never a named file on disk
        assert argv[argv.index("--file") + 1].startswith("/dev/fd/")
    # Talos keeps fresh controlplanes `booting` (etcd waits for `talosctl bootstrap`); workers boot through
    assert {fresh.node(a)["stage"] for a in CPS} == {"booting"}
    assert {fresh.node(a)["stage"] for a in WORKERS} == {"running"}
    talosconfig = paths.talosconfig_path("demo")
    assert stat.S_IMODE(talosconfig.stat().st_mode) == 0o600  # written from the bundle, it was missing
    # Applying the same configs again: the dry-run says "No changes", nothing is applied, no --insecure.
    task("apply-node", node="demo-wk-1")
    assert len(applies(fresh)) == len(calls)
    (preview,) = [c["argv"] for c in applies(fresh, dry=True) if node_of(c["argv"]) == "10.5.0.14"][-1:]
    assert "--insecure" not in preview
    assert "already runs this config" in capsys.readouterr().err


def test_apply_rejected_applies_nothing_and_names_the_node(fresh: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    task("apply-cluster")
    before = len(applies(fresh))
    inventory = Path(os.environ["K8S_OPS_CLUSTERS_DIR"]) / "demo" / "cluster.yaml"
    doc = yaml.safe_load(inventory.read_text())
    doc["nodes"][3]["labels"] = {"monosense.dev/pool": "fast"}
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    fresh.fault("apply-rejected", node="10.5.0.14", message="machine.nodeLabels: invalid value")
    err = failing("apply-node", capsys, node="demo-wk-1")
    assert "demo-wk-1" in err and "machine.nodeLabels: invalid value" in err and "nothing was applied" in err
    assert len(applies(fresh)) == before
    fresh.clear_faults()
    task("apply-node", node="demo-wk-1", mode="no-reboot")
    last = applies(fresh)[-1]["argv"]
    assert node_of(last) == "10.5.0.14" and "--insecure" not in last and last[last.index("--mode") + 1] == "no-reboot"
    assert "monosense.dev/pool" in fresh.node("10.5.0.14")["config"]["yaml"]
