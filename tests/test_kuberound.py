"""A rollout round's reads: one `kubectl get <kinds…>` answering nodes, pods, budgets, attachments and folded health
checks (k8s_ops/talos/kuberound.py), label selectors judged as the API server does, and — end to end against the
simulator — what one node of a rolling upgrade costs between two upgrades."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from k8s_ops.core.runner import SubprocessRunner
from k8s_ops.talos.inventory import HealthCheck
from k8s_ops.talos.kuberound import BASE, KubeRound, folds, selector_matches
from k8s_ops.tools.kubectl import KubeTarget
from tests.sim.simlib.api import Sim
from tests.sim.simlib.kube import match_labels
from tests.test_lifecycle_sim import lab, node_of, task
from tests.test_upgrade_gates_sim import configmap, put, set_upgrade

__all__ = ["lab"]

LABELS = {"app": "storage", "tier": "db", "app.kubernetes.io/name": "ceph"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=storage", True),
        ("app==storage", True),
        ("app=web", False),
        ("app!=web", True),
        ("missing!=x", True),  # NotEquals also matches an object without the key
        ("tier in (db,cache)", True),
        ("tier in (cache)", False),
        ("missing in (x)", False),
        ("tier notin (cache)", True),
        ("missing notin (x)", True),  # NotIn likewise
        ("tier notin (db)", False),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app.kubernetes.io/name=ceph,tier in (db, cache),!missing", True),
        ("app=storage,tier=web", False),
    ],
)
def test_label_selectors_match_as_the_api_server_decides(selector: str, expected: bool) -> None:
    assert selector_matches(selector, LABELS) is expected
    assert match_labels(dict(LABELS), selector) is expected  # the simulator's kubectl agrees


def check(**fields: Any) -> HealthCheck:
    return HealthCheck.model_validate({"apiVersion": "v1", "kind": "ConfigMap", "expr": "true", **fields})


def test_only_built_in_kinds_without_server_side_filters_fold_into_the_round() -> None:
    assert folds(check(namespace="default", labelSelector="app=storage"))
    assert folds(check(namespace="kube-system", name="cilium-config"))
    assert folds(check(apiVersion="apps/v1", kind="DaemonSet"))
    assert not folds(check(apiVersion="ceph.rook.io/v1", kind="CephCluster"))  # a missing CRD would fail the call
    assert not folds(check(fieldSelector="metadata.name=x"))  # field selectors stay with the API server
    assert not folds(check(name="x"))  # without a namespace kubectl would use the context's
    assert not folds(check(labelSelector="app in (a"))  # not understood here: the API server decides
    assert not folds(check(labelSelector="count>3"))
    daemonsets = check(apiVersion="apps/v1", kind="DaemonSet")
    labelled = check(apiVersion="apps/v1", kind="DaemonSet", labelSelector="a=b")
    kinds = KubeRound.for_checks([daemonsets, labelled, check(fieldSelector="x=y")]).kinds
    assert kinds == (*BASE, kinds[-1]) and kinds[-1].resource == "daemonset.v1.apps"


def test_one_call_answers_every_kind_and_the_folded_checks(lab: Sim) -> None:
    put(lab, configmap("pool-a", "HEALTH_OK"), configmap("pool-b", "HEALTH_WARN"))
    put(lab, {**configmap("other", "HEALTH_OK"), "metadata": {"name": "other", "namespace": "kube-system"}})
    hc = check(namespace="default", labelSelector="app=storage")
    rnd = KubeRound.for_checks([hc])
    runner = SubprocessRunner()
    kube = KubeTarget.for_cluster("demo")
    before = len(lab.calls("kubectl"))
    got = rnd.fact(kube).gather(runner)
    assert len(lab.calls("kubectl")) == before + 1
    assert {n["metadata"]["name"] for n in got["nodes"]} >= {"demo-cp-1", "demo-wk-1"}
    assert got["pods"] and all(p["kind"] == "Pod" for p in got["pods"])
    assert got["poddisruptionbudgets.v1.policy"] == [] and got["volumeattachments.v1.storage.k8s.io"] == []
    assert sorted(o["metadata"]["name"] for o in rnd.selected(runner, kube, hc) or []) == ["pool-a", "pool-b"]
    named = check(namespace="kube-system", name="other")
    assert [o["metadata"]["name"] for o in KubeRound.for_checks([named]).selected(runner, kube, named) or []] == [
        "other"
    ]


def test_each_node_of_a_rolling_upgrade_costs_six_reads_in_one_round(lab: Sim) -> None:
    # a folded list check and the built-in gates: between two upgrades one read per fact, no boot id (the new
    # version proves the reboot), one kubectl call for nodes, pods, budgets, attachments and the ConfigMaps
    put(lab, configmap("pool-a", "HEALTH_OK"))
    set_upgrade(healthChecks=[{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default",
                               "labelSelector": "app=storage", "expr": "data.health == 'HEALTH_OK'"}])  # fmt: skip
    start = len(lab.calls())
    task("upgrade-cluster", max_unavailable=1)
    calls = lab.calls()[start:]
    ups = [i for i, c in enumerate(calls) if c["tool"] == "talosctl" and c["argv"][0] == "upgrade"]
    assert len(ups) == 5 and [node_of(calls[i]["argv"]) for i in ups][:3] == ["10.5.0.11", "10.5.0.12", "10.5.0.13"]
    expected = sorted(["etcd members", "etcd status", "get extensions", "get machinestatus", "version --talosconfig"])
    for a, b in itertools.pairwise(ups):
        between = [(c["tool"], " ".join(c["argv"][:2])) for c in calls[a + 1 : b]]
        assert sorted(v for t, v in between if t == "talosctl") == expected, between
        assert [t for t, _ in between if t == "kubectl"] == ["kubectl"], between
        assert len(between) == 6, between
