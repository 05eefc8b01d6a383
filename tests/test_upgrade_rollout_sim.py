"""Rollout control end to end against the simulator: --only/--exclude/--role, a canary with its soak, the
maintenance window, talos.reboot-cluster (drain, volumes released, reboot, uncordon) and talos.shutdown-cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from k8s_ops.core.errors import ToolkitError
from tests.sim.simlib.api import Sim
from tests.test_lifecycle_sim import failing, lab, node_of, talosctl_calls, task
from tests.test_upgrade_gates_sim import inventory, put, set_upgrade

__all__ = ["lab"]

WK1, WK2 = "10.5.0.14", "10.5.0.15"


def plan(capsys: pytest.CaptureFixture[str], name: str = "upgrade-cluster", **kwargs: Any) -> dict[str, Any]:
    capsys.readouterr()
    task(name, dry_run=True, json=True, **kwargs)
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def upgraded_nodes(data: dict[str, Any]) -> list[str]:
    return [s["node"] for s in data["steps"] if s["noop"] is None and s["description"].startswith("upgrade ")]


def test_only_exclude_and_role_select_the_nodes(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    assert upgraded_nodes(plan(capsys, role="worker")) == ["demo-wk-1", "demo-wk-2"]
    assert upgraded_nodes(plan(capsys, role="worker", exclude="demo-wk-1")) == ["demo-wk-2"]
    assert upgraded_nodes(plan(capsys, only="demo-cp-2,10.5.0.15")) == ["demo-cp-2", "demo-wk-2"]
    data = plan(capsys, only="demo-cp-2", pause="flux")
    assert "selected nodes: demo-cp-2" in data["notes"]
    # the gates still look at every node: "others" are the whole cluster but the one going down
    gate = next(s for s in data["steps"] if s["node"] == "demo-cp-2")["before"][0]
    assert "every other node Ready (except demo-cp-2)" in gate
    err = failing("upgrade-cluster", capsys, only="demo-wk-1", role="controlplane")
    assert "leaves no node" in err
    err = failing("upgrade-cluster", capsys, only="nope")
    assert "nope" in err
    task("upgrade-cluster", role="worker", exclude="demo-wk-2")
    assert [node_of(a) for a in talosctl_calls(lab, "upgrade")] == [WK1]


def test_a_canary_goes_first_and_the_rest_only_after_its_soak(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    path = inventory()
    doc = yaml.safe_load(path.read_text())
    for n in doc["nodes"]:
        if n["hostname"] == "demo-wk-2":
            n["talosVersion"] = "v1.12.10"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    data = plan(capsys, role="worker", canary_soak=0.5)
    steps = [s["description"] for s in data["steps"] if s["noop"] is None]
    assert steps[1].startswith("upgrade demo-wk-2 to Talos v1.12.10")
    assert steps[2] == "soak the canary demo-wk-2 for 0.5s before the rest"
    assert steps[3].startswith("upgrade demo-wk-1 to Talos v1.12.11")
    task("upgrade-cluster", role="worker", canary_soak=0.5)
    calls = talosctl_calls(lab, "upgrade")
    assert [node_of(a) for a in calls] == [WK2, WK1]
    assert calls[0][calls[0].index("--image") + 1].endswith(":v1.12.10")
    assert calls[1][calls[1].index("--image") + 1].endswith(":v1.12.11")
    err = capsys.readouterr().err
    assert err.index("canary soak") < err.index("upgrade demo-wk-1")


def test_the_maintenance_window_refuses_to_start_outside_it(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    closed = (now + timedelta(hours=2)).strftime("%H:00"), (now + timedelta(hours=3)).strftime("%H:00")
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    set_upgrade(window={"days": days, "start": closed[0], "end": closed[1], "timezone": "UTC"})
    err = failing("upgrade-cluster", capsys, only="demo-wk-1")
    assert "not starting: outside the maintenance window" in err and "--ignore-window" in err
    assert talosctl_calls(lab, "upgrade") == []
    data = plan(capsys, only="demo-wk-1")  # the dry run still shows the plan, with the window gate per node
    gates = next(s for s in data["steps"] if s["node"] == "demo-wk-1")["before"]
    assert gates[0].startswith("inside the maintenance window")
    task("upgrade-cluster", only="demo-wk-1", ignore_window=True)
    assert [node_of(a) for a in talosctl_calls(lab, "upgrade")] == [WK1]


def test_reboot_cluster_drains_waits_for_volumes_reboots_and_uncordons(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    attachment = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttachment",
        "metadata": {"name": "csi-abc"},
        "spec": {"attacher": "rook-ceph.rbd.csi.ceph.com", "nodeName": "demo-wk-1",
                 "source": {"persistentVolumeName": "pvc-1"}},
        "status": {"attached": True},
    }  # fmt: skip
    put(lab, attachment)
    err = failing("reboot-cluster", capsys, only="demo-wk-1", yes=True, gate_timeout=50)
    assert "every VolumeAttachment of demo-wk-1 gone" in err and "still attached: csi-abc (pvc-1)" in err
    assert talosctl_calls(lab, "reboot") == []
    assert "recovered: uncordoned demo-wk-1" in err
    with lab.store.tx() as tx:
        from tests.sim.simlib.kube import Kube

        kube = Kube(tx.clusters["demo"], tx.now)
        va = kube.find("VolumeAttachment", None, "csi-abc", "storage.k8s.io")
        assert va is not None
        kube.delete_key(kube.key_of(va))
    task("reboot-cluster", only="demo-wk-1", yes=True)
    assert [node_of(a) for a in talosctl_calls(lab, "reboot")] == [WK1]
    kubectl = [c["argv"] for c in lab.calls("kubectl")]
    verbs = [a[4] for a in kubectl if len(a) > 4 and a[4] in ("drain", "uncordon")]
    assert verbs[-2:] == ["drain", "uncordon"]
    node = lab.get_object("Node", "demo-wk-1")
    assert node is not None and not node["spec"].get("unschedulable")


def test_shutdown_cluster_goes_workers_first_and_waits_until_they_are_off(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    data = plan(capsys, "shutdown-cluster")
    order = [s["node"] for s in data["steps"]]
    assert order == ["demo-wk-1", "demo-wk-2", "demo-cp-1", "demo-cp-2", "demo-cp-3"]
    assert all(s["destructive"] for s in data["steps"])
    task("shutdown-cluster", role="worker", yes=True)
    assert [node_of(a) for a in talosctl_calls(lab, "shutdown")] == [WK1, WK2]
    lab.settle()  # the simulated power-down ends powered off
    assert all(lab.node(a).get("off") for a in (WK1, WK2))
    assert not lab.node("10.5.0.11").get("off")


def test_rollout_flags_are_checked(lab: Sim) -> None:
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.lifecycle import Env, rollout_env

    env = Env.for_cluster(load_cluster("demo"))
    with pytest.raises(ToolkitError, match="--reboot-mode 'soft'"):
        rollout_env(env, reboot_mode="soft")
    with pytest.raises(ToolkitError, match="unknown argo"):
        rollout_env(env, pause="flux,argo")
    with pytest.raises(ToolkitError, match="--role 'etcd'"):
        rollout_env(env, role="etcd")
    assert rollout_env(env, pause="volsync,flux").rollout.pause == ("flux", "volsync")
