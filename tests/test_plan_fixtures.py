"""Plan fixtures as data (pyinfra style): inventory + facts in, the exact commands of the plan out.

Each tests/fixtures/plans/<case>.json names an operation on the demo inventory, the facts the nodes report
(answered by the in-process stand-in tests/lifecycle_world.py) and the commands the plan must contain, in order,
with the no-ops and their reasons. Paths are normalised: the build dir is `$BUILD`, the backups dir `$BACKUPS`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from k8s_ops.core import paths
from k8s_ops.core.plan import Plan
from k8s_ops.core.secret import Secret
from k8s_ops.talos import facts
from k8s_ops.talos.inventory import load_cluster
from k8s_ops.talos.lifecycle import Env, plan_apply, plan_reset, plan_upgrade_cluster
from tests.lifecycle_world import World

CASES = sorted((Path(__file__).parent / "fixtures" / "plans").glob("*.json"))
IMAGE = "factory.talos.dev/metal-installer/<schematic>:v1.12.11"


def build(case: dict[str, Any]) -> Plan:
    cluster = load_cluster("demo").model_copy(update={"talos_version": "v1.12.11"})
    world = World(cluster)
    for host, state in case["facts"].items():
        node = world.by_host(host)
        for key, value in state.items():
            setattr(node, key, value)
    env = Env.for_cluster(cluster)
    op = case["operation"]
    if op == "upgrade-cluster":
        targets = facts.gather_upgrade_targets(world.runner, env.tctl, cluster)
        snapshot = paths.backups_dir(cluster.name) / "etcd.snapshot"
        return plan_upgrade_cluster(env, targets, IMAGE, max_unavailable=case["maxUnavailable"], snapshot=snapshot)
    if op == "apply-cluster":
        configs = {n.hostname: Secret(f"machine: {{type: {n.role}}}\n") for n in cluster.nodes}
        fresh = facts.gather_apply_targets(world.runner, env.tctl, cluster.nodes, configs, mode="auto")
        return plan_apply(env, fresh, "auto", max_unavailable=1)
    if op == "reset-cluster":
        f = facts.gather_reset_facts(world.runner, env.tctl, cluster, cluster.nodes, env.kube)
        return plan_reset(env, f, whole_cluster=True)
    raise AssertionError(f"unknown operation {op}")


def normalise(argv: list[str]) -> list[str]:
    build_dir, backups = str(paths.build_dir("demo")), str(paths.backups_dir("demo"))
    return [a.replace(build_dir, "$BUILD").replace(backups, "$BACKUPS") for a in argv]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_plan_matches_fixture(path: Path) -> None:
    case = json.loads(path.read_text())
    plan = build(case)
    got = [
        {"step": normalise([s.description])[0], "noop": s.noop}
        if s.noop is not None
        else {"step": normalise([s.description])[0], "commands": [normalise(c.display_argv()) for c in s.commands]}
        for s in plan.steps
    ]
    assert got == case["plan"]


def test_fixtures_exist() -> None:
    assert {p.stem for p in CASES} >= {"upgrade-cluster-resume", "apply-cluster-fresh", "reset-cluster"}
