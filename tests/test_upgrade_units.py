"""Pure parts of the storage-aware upgrade: inventory `upgrade:` models, talosctl parsers, PDB and window logic,
hooks as commands, and the plan shapes (JSON pinned by tests/fixtures/plan.schema.json)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from k8s_ops.core.errors import ProblemsError
from k8s_ops.talos.gates import blocking_pdbs, window_problem
from k8s_ops.talos.inventory.models import HealthCheck, HookAction, UpgradeWindow
from k8s_ops.tools.talosctl import parse_etcd_alarms, parse_failing_services

REPO = Path(__file__).resolve().parents[1]


def test_etcd_alarm_list_is_empty_without_alarms_and_names_member_and_alarm() -> None:
    assert parse_etcd_alarms("") == []
    text = (
        "NODE        MEMBER             ALARM\n"
        "10.5.0.11   8a4e8a1c2a4e5b11   NOSPACE\n"
        "10.5.0.12   1b2c3d4e5f607182   NONE\n"
    )
    (alarm,) = parse_etcd_alarms(text)
    assert (alarm.member, alarm.alarm) == ("8a4e8a1c2a4e5b11", "NOSPACE")
    assert parse_etcd_alarms("MEMBER             ALARM\n8a4e8a1c2a4e5b11   CORRUPT\n")[0].alarm == "CORRUPT"


def test_failing_services_are_those_not_running_or_failing_their_health_check() -> None:
    text = (
        "NODE        SERVICE   STATE     HEALTH   LAST CHANGE   LAST EVENT\n"
        "10.5.0.14   apid      Running   OK       1m ago        Health check successful\n"
        "10.5.0.14   kubelet   Running   Fail     10s ago       Health check failed: connection refused\n"
        "10.5.0.14   machined  Running   ?        1m ago        Service started as goroutine\n"
        "10.5.0.14   cri       Waiting   ?        5s ago        Waiting for volume\n"
    )
    assert parse_failing_services(text) == [
        "kubelet (Running, health Fail: Health check failed: connection refused)",
        "cri (Waiting, health ?: Waiting for volume)",
    ]


def test_health_check_shapes_are_exclusive() -> None:
    ok = HealthCheck.model_validate(
        {"apiVersion": "ceph.rook.io/v1", "kind": "CephCluster", "namespace": "rook-ceph", "expr": "true"}
    )
    assert ok.match == "all" and not ok.allow_empty
    for bad in (
        {"kind": "CephCluster", "expr": "true"},  # no apiVersion
        {"apiVersion": "v1", "kind": "ConfigMap", "expr": "true", "command": ["true"]},
        {"apiVersion": "v1", "kind": "ConfigMap", "expr": "true", "name": "x", "labelSelector": "a=b"},
        {"command": ["true"], "expr": "true"},
        {},
    ):
        with pytest.raises(ValueError):
            HealthCheck.model_validate(bad)
    with pytest.raises(ValueError, match="always"):
        HookAction.model_validate({"job": "jobs/x.yaml", "always": True})
    with pytest.raises(ValueError):
        UpgradeWindow.model_validate({"days": ["mon"], "start": "25:00", "end": "04:00"})


def _window(days: list[str], start: str, end: str) -> UpgradeWindow:
    return UpgradeWindow.model_validate({"days": days, "start": start, "end": end, "timezone": "Europe/Berlin"})


def test_window_in_its_timezone_and_past_midnight() -> None:
    saturday_23_utc = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)  # Sunday 00:30 in Berlin
    assert window_problem(_window(["sun"], "00:00", "04:00"), saturday_23_utc) is None
    assert window_problem(_window(["sat"], "22:00", "02:00"), saturday_23_utc) is None  # Saturday's window runs on
    problem = window_problem(_window(["sat"], "01:00", "04:00"), saturday_23_utc)
    assert problem is not None and "now sun 00:30" in problem


def _pod(name: str, labels: dict[str, str], phase: str = "Running", **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "rook-ceph", "labels": labels, **meta}, "status": {"phase": phase}}


def _pdb(name: str, selector: dict[str, Any] | None, allowed: int | None, generation: int = 1) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": 1, "currentHealthy": 2, "desiredHealthy": 2}
    if allowed is not None:
        status["disruptionsAllowed"] = allowed
    return {
        "metadata": {"name": name, "namespace": "rook-ceph", "generation": generation},
        "spec": {"selector": selector},
        "status": status,
    }


def test_blocking_pdbs_follow_the_eviction_api() -> None:
    pods = [
        _pod("osd-0", {"app": "rook-ceph-osd"}),
        _pod("mon-a", {"app": "rook-ceph-mon"}),
        _pod("done", {"app": "rook-ceph-osd"}, phase="Succeeded"),
        _pod("ds", {"app": "rook-ceph-osd"}, ownerReferences=[{"kind": "DaemonSet", "name": "x"}]),
    ]
    pdbs = [
        _pdb("osd", {"matchLabels": {"app": "rook-ceph-osd"}}, 0),
        _pdb("mon", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["rook-ceph-mon"]}]}, 1),
        _pdb("nothing", None, 0),  # a null selector matches no pod
        _pdb("stale", {}, 1, generation=2),  # an empty selector matches all; its status is not computed yet
    ]
    found = blocking_pdbs(pods, pdbs)
    assert found == [
        "PodDisruptionBudget rook-ceph/osd (disruptionsAllowed 0 (2 healthy, 2 required)) blocks evicting osd-0",
        "PodDisruptionBudget rook-ceph/stale (status not computed yet) blocks evicting mon-a, osd-0",
    ]


def test_upgrade_plan_with_hooks_jobs_and_silence_matches_the_plan_schema(tmp_path: Path) -> None:
    from k8s_ops.core.pipeline import plan_json
    from k8s_ops.talos.inventory.models import Alertmanager, Upgrade, UpgradeHooks
    from k8s_ops.talos.lifecycle import plan_upgrade_cluster
    from tests.test_lifecycle_plans import env_for, make_cluster, targets_of

    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "ceph.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: ceph-health, namespace: rook-ceph}\n"
        "spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: rook/ceph}]}}}\n"
    )
    upgrade = Upgrade.model_validate(
        {
            "healthChecks": [{"job": "jobs/ceph.yaml"}, {"command": ["ceph", "health"]}],
            "hooks": {
                "preNode": [
                    {
                        "kubectl": [
                            "-n",
                            "rook-ceph",
                            "exec",
                            "deploy/rook-ceph-tools",
                            "--",
                            "ceph",
                            "osd",
                            "set",
                            "noout",
                        ]
                    }
                ],
                "postNode": [{"command": ["ceph", "osd", "unset", "noout"], "always": True}],
            },
            "alertmanager": {"url": "http://127.0.0.1:9093"},
        }
    )
    assert isinstance(upgrade.hooks, UpgradeHooks) and isinstance(upgrade.alertmanager, Alertmanager)
    cluster = make_cluster(2).model_copy(update={"upgrade": upgrade})
    cluster._path = tmp_path  # the cluster directory the Job manifest is read from
    env = env_for(cluster)
    plan = plan_upgrade_cluster(env, targets_of(cluster), max_unavailable=1, snapshot=tmp_path / "s")
    data = plan_json(plan)
    schema = json.loads((REPO / "tests" / "fixtures" / "plan.schema.json").read_text())
    jsonschema.validate(data, schema)
    cp1 = next(s for s in data["steps"] if s["node"] == "demo-cp-1" and s["description"].startswith("upgrade"))
    effects = [e.get("effect", "command") for e in cp1["prepare"]]
    assert effects == ["run-job", "alertmanager-silence", "command"]
    hook = cp1["prepare"][2]
    assert hook["argv"][0] == "kubectl" and hook["argv"][-3:] == ["osd", "set", "noout"] and hook["mutates"]
    assert hook["env"] == {"NODE": "demo-cp-1", "NODE_ADDRESS": "10.5.0.11", "ROLE": "controlplane"}
    assert cp1["undo"]["commands"][0]["argv"] == ["ceph", "osd", "unset", "noout"]
    post = next(s for s in data["steps"] if s["description"] == "after demo-cp-1: post-node hooks")
    assert [e.get("effect", "command") for e in post["prepare"]] == ["alertmanager-expire", "command"]
    assert data["on_failure"] is not None
    text = plan.to_text()
    assert "health check `ceph health` exits 0" in text
    # hook commands inside a step show like the step's own commands, after `$`
    hooks = [ln for ln in text.splitlines() if "osd set noout" in ln or "osd unset noout" in ln]
    assert hooks and all(ln.startswith("    $ ") for ln in hooks), hooks


def test_a_missing_job_manifest_is_a_problem_naming_the_field(tmp_path: Path) -> None:
    from k8s_ops.talos.inventory.models import Upgrade
    from k8s_ops.talos.lifecycle import plan_upgrade_cluster
    from tests.test_lifecycle_plans import env_for, make_cluster, targets_of

    base = make_cluster(1)
    cluster = base.model_copy(update={"upgrade": Upgrade.model_validate({"healthChecks": [{"job": "jobs/nope.yaml"}]})})
    cluster._path = tmp_path
    with pytest.raises(ProblemsError) as info:
        plan_upgrade_cluster(env_for(cluster), targets_of(cluster), max_unavailable=1, snapshot=tmp_path / "s")
    assert "upgrade.healthChecks[0].job" in str(info.value) and "jobs/nope.yaml does not exist" in str(info.value)


def test_the_readme_examples_load_compile_and_judge_sample_objects() -> None:
    import re

    import yaml

    from k8s_ops.talos import cel
    from k8s_ops.talos.gates import CelGate, _judge
    from k8s_ops.talos.inventory.models import Upgrade

    readme = (REPO / "README.md").read_text()
    block = re.search(r"\*\*Storage-aware rollouts\*\*.*?```yaml\n(.*?)```", readme, re.S)
    assert block is not None
    upgrade = Upgrade.model_validate(yaml.safe_load(block.group(1))["upgrade"])
    ceph, cnpg, volsync = (CelGate(i, hc, cel.compile_expression(hc.expr or "")) for i, hc in
                           enumerate(upgrade.health_checks[:3]))  # fmt: skip
    assert [hc.kind for hc in (ceph.check, cnpg.check, volsync.check)] == [
        "CephCluster",
        "Cluster",
        "ReplicationSource",
    ]

    def obj(name: str, status: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "ns"}, "status": status}

    assert _judge(ceph, [obj("ceph", {"ceph": {"health": "HEALTH_OK"}})]) is None
    assert _judge(ceph, [obj("ceph", {"ceph": {"health": "HEALTH_WARN"}})]) is not None
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert _judge(cnpg, [obj("a", ready), obj("b", ready)]) is None
    problem = _judge(cnpg, [obj("a", ready), obj("b", {"conditions": [{"type": "Ready", "status": "False"}]})])
    assert problem is not None and problem.startswith("1/2 not passing: ns/b")
    assert _judge(volsync, []) is None  # allowEmpty
    assert _judge(volsync, [obj("done", {"lastSyncTime": "2026-12-06T01:00:00Z"})]) is None
    mid = _judge(volsync, [obj("busy", {"lastSyncStartTime": "2026-12-06T03:00:00Z"})])
    assert mid is not None and "ns/busy" in mid
    assert upgrade.hooks.post_cluster[0].always and upgrade.pause == ("flux", "volsync")
