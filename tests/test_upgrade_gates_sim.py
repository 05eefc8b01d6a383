"""Storage-aware upgrade gates end to end against the simulator: list gates over several objects, Job and command
checks, etcd alarms, PodDisruptionBudgets that would block a drain, and an upgrade that was staged but never
booted. Most runs select one worker (`--only`), which also exercises the node selection."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sim.simlib.api import Sim
from tests.sim.simlib.kube import Kube
from tests.test_lifecycle_sim import failing, lab, node_of, talosctl_calls, task

__all__ = ["lab"]  # the fixture, imported for pytest

WK1, WK2 = "demo-wk-1", "demo-wk-2"


def inventory() -> Path:
    return Path(os.environ["K8S_OPS_CLUSTERS_DIR"]) / "demo" / "cluster.yaml"


def set_upgrade(**fields: Any) -> None:
    """Replace keys of the lab inventory's `upgrade:` section."""
    path = inventory()
    doc = yaml.safe_load(path.read_text())
    doc.setdefault("upgrade", {}).update(fields)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def put(sim: Sim, *objs: dict[str, Any], status: dict[str, Any] | None = None) -> None:
    with sim.store.tx() as tx:
        kube = Kube(tx.clusters["demo"], tx.now)
        for o in objs:
            kube.put(o, manager="test", status=status is not None or "status" in o)


def configmap(name: str, health: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "storage"}},
        "data": {"health": health},
    }


def upgrades(sim: Sim) -> list[str]:
    return [node_of(a) for a in talosctl_calls(sim, "upgrade")]


def call_index(sim: Sim, pred: Callable[[dict[str, Any]], bool]) -> list[int]:
    return [i for i, c in enumerate(sim.calls()) if pred(c)]


# --------------------------------------------------------------------------- list gates


def test_list_gate_holds_the_rollout_until_the_last_object_is_healthy(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    set_upgrade(
        healthChecks=[
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "namespace": "default",
                "labelSelector": "app=storage",
                "expr": "data.health == 'HEALTH_OK'",
                "description": "every storage pool healthy",
            }
        ]
    )
    put(lab, configmap("pool-a", "HEALTH_OK"), configmap("pool-b", "HEALTH_WARN"), configmap("pool-c", "HEALTH_WARN"))
    reads: list[int] = []

    def reads_pools(c: dict[str, Any]) -> bool:
        # the rollout reads ConfigMaps with nodes, pods … in one call per round and selects app=storage itself
        return c["tool"] == "kubectl" and any("configmap" in str(a).split(",") for a in c["argv"])

    def gate_reads() -> int:
        return len(call_index(lab, reads_pools))

    def heal() -> None:
        # each pool heals only after the gate has seen it unhealthy at least twice more
        for name in ("pool-b", "pool-c"):
            seen = gate_reads()
            while gate_reads() < seen + 2:
                time.sleep(0.05)
            reads.append(gate_reads())
            put(lab, configmap(name, "HEALTH_OK"))

    healer = threading.Thread(target=heal, daemon=True)
    healer.start()
    task("upgrade-cluster", only=WK1, gate_timeout=6000)
    healer.join(timeout=60)
    assert upgrades(lab) == ["10.5.0.14"]
    calls = lab.calls()
    first_upgrade = next(i for i, c in enumerate(calls) if c["tool"] == "talosctl" and c["argv"][0] == "upgrade")
    healed_last = [i for i, c in enumerate(calls) if reads_pools(c)][reads[-1] - 1]
    assert healed_last < first_upgrade  # the upgrade waited for the last pool
    err = capsys.readouterr().err
    assert "every ConfigMap in default (labels app=storage)" in err


def test_list_gate_with_no_match_fails_unless_allowed_and_any_needs_one(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    check = {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default", "labelSelector": "app=none",
             "expr": "true", "timeout": 1}  # fmt: skip
    set_upgrade(healthChecks=[check])
    err = failing("upgrade-cluster", capsys, only=WK1)
    assert "no object matches (set allowEmpty: true if none is fine)" in err
    assert "its timeout of 1s ran out" in err
    assert upgrades(lab) == []
    put(lab, configmap("pool-a", "HEALTH_WARN"), configmap("pool-b", "HEALTH_OK"))
    set_upgrade(healthChecks=[{**check, "allowEmpty": True}, {**check, "labelSelector": "app=storage",
                "match": "any", "expr": "data.health == 'HEALTH_OK'"}])  # fmt: skip
    task("upgrade-cluster", only=WK1)
    assert upgrades(lab) == ["10.5.0.14"]


# --------------------------------------------------------------------------- Job and command checks, etcd alarms


def write_job(name: str) -> str:
    rel = f"jobs/{name}.yaml"
    path = inventory().parent / rel
    path.parent.mkdir(exist_ok=True)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "ceph:v19"}]}},
        },
    }
    path.write_text(yaml.safe_dump(job))
    return rel


def test_a_failing_job_check_stops_the_rollout_and_prints_its_logs(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    set_upgrade(healthChecks=[{"job": write_job("ceph-check"), "description": "ceph osd tree"}])
    task("upgrade-cluster", only=WK1, dry_run=True)
    out = capsys.readouterr().out
    assert "run-job Job default/ceph-check (manifest=jobs/ceph-check.yaml" in out
    lab.fault("job-fails", cluster="demo", match="default/ceph-check", message="HEALTH_ERR: 2 osds down")
    err = failing("upgrade-cluster", capsys, only=WK1)
    assert "Job default/ceph-check failed (BackoffLimitExceeded" in err
    assert "logs of Job default/ceph-check:\nHEALTH_ERR: 2 osds down" in err
    assert upgrades(lab) == []
    assert lab.get_object("Job", "ceph-check", "default") is None  # cleaned up after the failure
    lab.clear_faults()
    task("upgrade-cluster", only=WK1)
    assert upgrades(lab) == ["10.5.0.14"]
    assert lab.get_object("Job", "ceph-check", "default") is None


def test_a_failing_command_check_shows_its_output_and_an_etcd_alarm_fails_the_gate(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    script = "import sys; print('noout flag set'); sys.exit(3)"
    set_upgrade(healthChecks=[{"command": [sys.executable, "-c", script], "timeout": 1}])
    err = failing("upgrade-cluster", capsys, only=WK1)
    assert "exits 0: exit 3: noout flag set" in err
    set_upgrade(healthChecks=[])
    from tests.sim.simlib import etcd as etcdmod

    with lab.store.tx() as tx:
        c = tx.clusters["demo"]
        member = next(iter(etcdmod.etcd(c)["members"].values()))["id"]
        etcdmod.raise_alarm(c, member, "NOSPACE")
    err = failing("upgrade-cluster", capsys, only=WK1, gate_timeout=100)
    assert f"etcd alarm NOSPACE on member {member}" in err
    assert upgrades(lab) == []


# --------------------------------------------------------------------------- drains and staged upgrades


def test_a_pdb_that_would_block_the_drain_is_named(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.sim.simlib.manifests import workload

    put(lab, workload("Deployment", "osd", "default", labels={"app": "osd"}))
    pods = [p for p in lab.objects("demo", "Pod", "default") if (p["metadata"].get("labels") or {}).get("app") == "osd"]
    node = pods[0]["spec"]["nodeName"]
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "osd", "namespace": "default"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "osd"}}},
        "status": {
            "disruptionsAllowed": 0,
            "currentHealthy": 1,
            "desiredHealthy": 1,
            "expectedPods": 1,
            "observedGeneration": 1,
        },
    }
    put(lab, pdb)
    err = failing("upgrade-cluster", capsys, only=node, gate_timeout=100)
    assert f"no PodDisruptionBudget blocks draining {node}" in err
    assert "PodDisruptionBudget default/osd (disruptionsAllowed 0 (1 healthy, 1 required)) blocks evicting" in err
    assert upgrades(lab) == []


def test_an_upgrade_staged_but_never_booted_is_detected(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    lab.fault("upgrade-not-booted", node="10.5.0.15")
    err = failing("upgrade-cluster", capsys, only=WK2, stage=True)
    argv = talosctl_calls(lab, "upgrade")[0]
    assert "--stage" in argv and "--wait=false" in argv
    assert "demo-wk-2 never rebooted: its boot id is unchanged, so the new image is installed (staged)" in err
    assert "talos.reboot-node --node demo-wk-2" in err
    # Talos does not drain for a staged upgrade: the rollout drained the node first, and uncordons it in recovery
    kubectl = [c["argv"] for c in lab.calls("kubectl")]
    assert any("drain" in a and "demo-wk-2" in a for a in kubectl)
    assert "recovered: uncordoned demo-wk-2" in err
