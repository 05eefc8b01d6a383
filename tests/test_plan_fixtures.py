"""Plan fixtures as data (pyinfra style): inventory + facts in, the exact commands of the plan out.

Each tests/fixtures/plans/<case>.json names an operation and the facts it is planned against, and lists the plan
it must produce: per step its description and either its no-op reason or its commands (argv), plus — only where
present — its other effects (`effects`: the dry-run lines of `prepare`/`finish`, e.g. an ensure-directory or a
1Password push), its `stage` and its `undo` (argv). Day-2 cases also pin `on_failure`, the recovery preview
derived from the steps' undos.

Operations and their facts:
* lifecycle (`upgrade-cluster`, `apply-cluster`, `reset-cluster`): `facts` = per-node Talos state, answered by the
  in-process stand-in tests/lifecycle_world.py;
* bootstrap (`bootstrap-stages`): the demo inventory and the pinned charts; `stages` picks the stages
  (secrets, cni, flux, onepassword) and `onepassword` whether 1Password is configured — the stage builders are
  pure, guards are reads re-checked at execution;
* day 2 (`volsync.restore`, `volsync.snapshot`, `kubernetes.hr-restart`): `objects` = the cluster's objects,
  read through the stateful kube fake tests/day2_fake.py.

Paths are normalised: the build dir is `$BUILD`, the backups dir `$BACKUPS`, the repository `$REPO`. To write a
new case, add its input part and run `REGEN_PLAN_FIXTURES=1 pytest tests/test_plan_fixtures.py`, then review the
written plan like code.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from k8s_ops.core import paths
from k8s_ops.core.plan import Plan, Step
from k8s_ops.core.secret import Secret
from k8s_ops.talos import facts
from k8s_ops.talos.inventory import load_cluster
from k8s_ops.talos.lifecycle import Env, plan_apply, plan_reset, plan_upgrade_cluster
from tests.lifecycle_world import World

CASES = sorted((Path(__file__).parent / "fixtures" / "plans").glob("*.json"))
KUBECONFIG = "/tmp/k8s-ops-fixture/kubeconfig"
EPOCH = 1_767_225_600


def build_lifecycle(case: dict[str, Any]) -> Plan:
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
        return plan_upgrade_cluster(env, targets, max_unavailable=case["maxUnavailable"], snapshot=snapshot)
    if op == "apply-cluster":
        configs = {n.hostname: Secret(f"machine: {{type: {n.role}}}\n") for n in cluster.nodes}
        fresh = facts.gather_apply_targets(world.runner, env.tctl, cluster.nodes, configs, mode="auto")
        return plan_apply(env, fresh, "auto", max_unavailable=1)
    if op == "reset-cluster":
        f = facts.gather_reset_facts(world.runner, env.tctl, cluster, cluster.nodes, env.kube)
        return plan_reset(env, f, whole_cluster=True)
    raise AssertionError(f"unknown operation {op}")


def build_bootstrap(case: dict[str, Any]) -> Plan:
    from k8s_ops.bootstrap import charts, stages
    from k8s_ops.tools.kubectl import KubeTarget

    cluster = load_cluster("demo", clusters_dir=paths.repo_root() / "clusters")
    pinned = charts.load_charts()
    ctx = stages.Context(
        cluster=cluster,
        charts=pinned,
        values=charts.render_all_values(cluster, pinned),
        kube=KubeTarget(Path(KUBECONFIG), cluster.name),
        age_key=Secret("AGE-SECRET-KEY-1FIXTUREFIXTUREFIXTUREFIXTURE"),
        age_source="fixture",
    )
    builders = {
        "secrets": lambda: stages.secrets_steps(ctx),
        "cni": lambda: stages.cni_steps(ctx),
        "flux": lambda: stages.flux_steps(ctx),
        "onepassword": lambda: stages.onepassword_steps(ctx, configured=case["onepassword"]),
    }
    steps: list[Step] = []
    for stage in case["stages"]:
        steps += stages.tag(stage, builders[stage]())
    return Plan("bootstrap", cluster.name, tuple(steps))


def build_day2(case: dict[str, Any]) -> Plan:
    from k8s_ops.day2 import kubernetes, volsync
    from k8s_ops.tools.flux import HELMRELEASE
    from k8s_ops.tools.kubectl import KubeTarget
    from tests.day2_fake import FakeKube, obj

    target = KubeTarget(Path(KUBECONFIG), "infra")
    objects = []
    for o in case["objects"]:
        made = obj(o["resource"], o["namespace"], o["name"], **o.get("fields", {}))
        made["metadata"].update(o.get("metadata", {}))
        objects.append(made)
    sources = [copy.deepcopy(o) for o in objects if o["_resource"] == volsync.REPLICATIONSOURCE]
    kube = FakeKube(*objects, target=target)  # (takes the objects over)
    runner = kube.runner()
    args = case["args"]
    op = case["operation"]
    if op == "volsync.restore":
        f = volsync.gather_restore_facts(runner, target, args["app"], args.get("namespace"))
        return volsync.plan_restore("infra", target, f, args["app"], epoch=EPOCH, previous=None, timeout=3600.0)
    if op == "volsync.snapshot":
        (source,) = sources
        source.pop("_resource")
        return volsync.plan_snapshot("infra", target, source, epoch=EPOCH, timeout=3600.0)
    if op == "kubernetes.hr-restart":
        ns, name = args["namespace"], args["name"]
        release = kube.get(HELMRELEASE, ns, name)
        return kubernetes.plan_hr_restart("infra", target, release, name=name, namespace=ns)
    raise AssertionError(f"unknown operation {op}")


def normalise(argv: list[str]) -> list[str]:
    build_dir, backups = str(paths.build_dir("demo")), str(paths.backups_dir("demo"))
    repo = str(paths.repo_root())
    return [a.replace(build_dir, "$BUILD").replace(backups, "$BACKUPS").replace(repo, "$REPO") for a in argv]


def step_data(s: Step) -> dict[str, Any]:
    """A step as the fixtures spell it (keys beyond `commands` only when the step has them)."""
    desc = normalise([s.description])[0]
    if s.noop is not None:
        return {"step": desc, "noop": normalise([s.noop])[0]}
    out: dict[str, Any] = {"step": desc, "commands": [normalise(c.display_argv()) for c in s.commands]}
    effects = [e.display() for e in (*s.prepare, *s.finish)]
    if effects:
        out["effects"] = normalise(effects)
    if s.stage is not None:
        out["stage"] = s.stage
    if s.undo is not None:
        out["undo"] = [normalise(c.display_argv()) for c in s.undo.commands]
    return out


def actual(case: dict[str, Any]) -> dict[str, Any]:
    op: str = case["operation"]
    if op.startswith("bootstrap"):
        plan = build_bootstrap(case)
    elif op.startswith(("volsync.", "kubernetes.")):
        plan = build_day2(case)
    else:
        plan = build_lifecycle(case)
    for s in plan.steps:  # a step that changes anything says so, whatever kind of effect it has
        assert s.noop is not None or s.mutates or not (s.prepare or s.writes or s.finish), s.description
    out: dict[str, Any] = {"plan": [step_data(s) for s in plan.steps]}
    recovery = plan.recovery
    if "on_failure" in case or recovery is not None:
        out["on_failure"] = (
            None
            if recovery is None
            else {"commands": [c.display_argv() for c in recovery.commands], "done": recovery.done}
        )
    return out


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_plan_matches_fixture(path: Path) -> None:
    case = json.loads(path.read_text())
    got = actual(case)
    if os.environ.get("REGEN_PLAN_FIXTURES"):
        path.write_text(json.dumps({**case, **got}, indent=2, ensure_ascii=False) + "\n")
    assert got == {k: case.get(k) for k in got}


def test_fixtures_exist() -> None:
    assert {p.stem for p in CASES} >= {
        "upgrade-cluster-resume",
        "apply-cluster-fresh",
        "reset-cluster",
        "bootstrap-stages",
        "bootstrap-onepassword",
        "volsync-restore",
        "volsync-snapshot",
        "hr-restart",
    }
