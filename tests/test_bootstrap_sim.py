"""bootstrap.cluster and bootstrap.rebuild end to end against the simulator (tests/sim), on the demo cluster.

One simulated world for the whole module, in order: a first bootstrap that fails mid-way (helm refuses
flux-operator) and resumes with --from; a deleted sops-age Secret and an unreachable git repository, each
reported by name; a disaster (every node wiped, the local age key, secrets bundle, talosconfig and kubeconfig
gone) rebuilt from git + 1Password, restoring an etcd snapshot; finally a re-run that changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.bootstrap import manifests
from k8s_ops.bootstrap import tasks as bootstrap_tasks
from k8s_ops.bootstrap.run import APPS_STAGES, material_plan
from k8s_ops.bootstrap.stages import Timeouts
from k8s_ops.bootstrap.tasks import stage_failed
from k8s_ops.core import paths
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.execute import execute
from k8s_ops.core.pipeline import finish
from k8s_ops.core.plan import Plan
from k8s_ops.core.runner import Runner
from k8s_ops.onepassword.effects import Pull
from k8s_ops.talos import secrets as talos_secrets
from k8s_ops.talos.inventory import load_cluster
from tests.bootstrap_world import World, bootstrap_world

REPO = Path(__file__).resolve().parent.parent
MUTATING = (
    ("kubectl", "apply"), ("kubectl", "create"), ("kubectl", "delete"), ("kubectl", "patch"), ("kubectl", "config"),
    ("helm", "upgrade"), ("helm", "install"), ("talosctl", "bootstrap"), ("talosctl", "kubeconfig"),
)  # fmt: skip


def execute_plan(plan: Plan, runner: Runner, *, task_name: str, yes: bool) -> None:
    """What a bootstrap task does with its plan once built: the pipeline with the stage-aware failure."""
    finish(plan, runner, dry_run=False, yes=yes, echo_plan=True,
           on_step_failed=lambda exc: stage_failed(exc, task_name=task_name, cluster=plan.cluster))  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with bootstrap_world(tmp_path_factory.mktemp("bootstrap-sim")) as w:
        yield w


def _index(calls: list[dict[str, Any]], pred: Any) -> int:
    return next(i for i, c in enumerate(calls) if pred(c))


def _is(c: dict[str, Any], tool: str, *words: str) -> bool:
    return c["tool"] == tool and all(w in c["argv"] for w in words)


def _apply_stdin_of(c: dict[str, Any]) -> int | None:
    if c["tool"] == "kubectl" and "apply" in c["argv"] and "-" in c["argv"]:
        return int(c["stdin_bytes"] or 0)
    return None


def _assert_no_secret_logged(world: World) -> None:
    """No secret on any argv: not in the simulator's call log, nor in the toolkit's own audit log."""
    argv_text = "\n".join(" ".join(c["argv"]) for c in world.calls())
    audit = (paths.state_dir() / "audit.log").read_text()
    assert len(world.secrets) > 10
    for secret in world.secrets:
        assert secret not in argv_text
        assert secret not in audit


def _mutations(calls: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for c in calls:
        for tool, word in MUTATING:
            if c["tool"] == tool and word in c["argv"]:
                out.append([c["tool"], *c["argv"]])
        if c["tool"] == "talosctl" and "apply-config" in c["argv"] and "--dry-run" not in c["argv"]:
            out.append([c["tool"], *c["argv"]])
    return out


# --------------------------------------------------------------------------- 1. first bootstrap


def test_bootstrap_fails_mid_way_then_resumes_from_the_failed_stage(world: World) -> None:
    world.sim.fault("helm-fails", match="flux-operator", message="registry ghcr.io: 502 Bad Gateway")
    plan = world.plan()
    assert any("keys.txt exists and is ignored" in n for n in plan.notes)
    assert any(n.startswith("node demo-wk-2 10.5.0.15: maintenance") for n in plan.notes)
    with pytest.raises(ToolkitError) as info:
        execute_plan(plan, world.runner, task_name="bootstrap.cluster", yes=False)
    assert "helm release flux-operator" in info.value.message and "502 Bad Gateway" in info.value.message
    assert "invoke bootstrap.cluster --cluster demo --from flux" in (info.value.hint or "")
    world.sim.clear_faults()
    resumed = world.plan(start="flux")
    report = execute(resumed, world.runner, yes=False)
    assert [s for s in resumed.steps if s.description.startswith("[talos]")] == []
    assert report.changed > 0

    calls = world.calls()
    bootstraps = [c for c in calls if _is(c, "talosctl", "bootstrap")]
    assert len(bootstraps) == 1 and bootstraps[0]["argv"][bootstraps[0]["argv"].index("-e") + 1] == "10.5.0.11"
    assert "10.5.0.10" not in bootstraps[0]["argv"]  # never through the VIP
    insecure = [c for c in calls if _is(c, "talosctl", "apply-config", "--insecure")]
    assert len(insecure) == 5  # every node was in maintenance mode, each installed exactly once

    crds = _index(calls, lambda c: c["tool"] == "kubectl" and any("gateway-api" in a for a in c["argv"]))
    cilium = _index(calls, lambda c: _is(c, "helm", "upgrade", "cilium"))
    coredns = _index(calls, lambda c: _is(c, "helm", "upgrade", "coredns"))
    operator = [i for i, c in enumerate(calls) if _is(c, "helm", "upgrade", "flux-operator")]
    assert crds < cilium < coredns < operator[0] and len(operator) == 2  # failed once, then resumed

    cluster = load_cluster("demo")
    key = talos_secrets.age_key_for(cluster).text()
    sizes = {
        "sops-age": len(manifests.sops_age_secret(key).to_stdin()),
        "cluster-vars": len(manifests.cluster_vars_configmap(cluster).to_bytes()),
        "root": len(manifests.root_kustomization(cluster).to_bytes()),
    }
    assert len(set(sizes.values())) == 3
    applied = [_apply_stdin_of(c) for c in calls]
    first = {name: applied.index(size) for name, size in sizes.items()}
    assert first["sops-age"] < first["root"] and first["cluster-vars"] < first["root"]

    _assert_no_secret_logged(world)


def test_the_bootstrapped_cluster_is_what_the_inventory_says(world: World) -> None:
    sim = world.sim
    root = sim.get_object("Kustomization", "flux-system", "flux-system")
    assert root is not None
    assert root["spec"]["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}
    assert root["spec"]["postBuild"]["substituteFrom"] == [{"kind": "ConfigMap", "name": "cluster-vars"}]
    ready = next(c for c in root["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    repo = sim.get_object("GitRepository", "flux-system", "flux-system")
    assert repo is not None and repo["spec"]["ref"] == {"branch": "main"}
    assert repo["spec"]["secretRef"] == {"name": "git-credentials"}
    cm = sim.get_object("ConfigMap", "cluster-vars", "flux-system")
    assert cm is not None and cm["data"]["CLUSTER_ID"] == "3" and cm["data"]["ROUTER_IP"] == "10.5.0.1"
    age = sim.get_object("Secret", "sops-age", "flux-system")
    key = talos_secrets.age_key_for(load_cluster("demo")).text().reveal()
    assert age is not None and base64.b64decode(age["data"]["age.agekey"]) == key
    ns = sim.get_object("Namespace", "flux-system")
    assert ns is not None and ns["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
    values = json.loads(world.sim.run(
        "helm", "get", "values", "cilium", "-n", "kube-system", "-o", "json",
        "--kubeconfig", str(paths.kubeconfig_path("demo")), "--kube-context", "demo",
    ).stdout)  # fmt: skip
    assert values["cluster"] == {"name": "demo", "id": 3} and values["ipam"] == {"mode": "kubernetes"}
    nodes = json.loads(world.kubectl("get", "nodes", "-o", "json"))["items"]
    names = sorted(n["metadata"]["name"] for n in nodes)
    assert names == [f"demo-{r}" for r in ("cp-1", "cp-2", "cp-3", "wk-1", "wk-2")]
    assert all(c["status"] == "True" for n in nodes for c in n["status"]["conditions"] if c["type"] == "Ready")
    for f in (paths.kubeconfig_path("demo"), paths.talosconfig_path("demo")):
        assert f.stat().st_mode & 0o777 == 0o600
    # Installed from the schematic's factory image: every node runs its extensions, so an upgrade is a no-op.
    from k8s_ops.talos import facts
    from k8s_ops.talos.schematic import extensions_mismatch
    from k8s_ops.tools.talosctl import Talosctl

    cluster = load_cluster("demo")
    for t in facts.gather_upgrade_targets(world.runner, Talosctl.for_cluster(cluster), cluster):
        assert t.version == cluster.talos_version and t.extensions is not None, t
        assert extensions_mismatch(cluster.schematic.extensions, t.extensions) is None, t
    from k8s_ops import onepassword as op

    pushed = {s.title: s for s in op.status(load_cluster("demo"), "kubeconfig,talosconfig")}
    assert set(pushed) == {"kubeconfig-demo", "talosconfig-demo"}
    assert all(s.remote_sha256 == s.local_sha256 is not None for s in pushed.values())


# --------------------------------------------------------------------------- 2. clear errors naming the object


def test_a_missing_sops_age_secret_is_named_and_the_secrets_stage_restores_it(world: World) -> None:
    world.kubectl("delete", "secret", "sops-age", "-n", "flux-system")
    with pytest.raises(ToolkitError) as info:
        execute_plan(world.plan(start="flux", task="bootstrap.apps", stages=APPS_STAGES), world.runner,
                     task_name="bootstrap.apps", yes=False)  # fmt: skip
    assert "Secret flux-system/sops-age is missing" in info.value.message
    assert "root Kustomization flux-system/flux-system references it" in info.value.message
    assert "--from secrets" in (info.value.hint or "")
    execute(world.plan(stages=("preflight", "secrets")), world.runner, yes=False)
    assert world.sim.get_object("Secret", "sops-age", "flux-system") is not None


def test_an_unreachable_git_repository_is_named_with_its_reason(world: World) -> None:
    world.sim.fault("git-unreachable", match="github.com")
    try:
        plan = world.plan(stages=("preflight", "flux"), timeouts=Timeouts(root_sync=20.0))
        with pytest.raises(ToolkitError) as info:
            execute_plan(plan, world.runner, task_name="bootstrap.cluster", yes=False)
    finally:
        world.sim.clear_faults()
    text = info.value.message
    assert "waiting for the root Kustomization flux-system/flux-system to be Ready" in text
    assert "GitRepository flux-system/flux-system not Ready" in text and "unable to clone" in text
    assert "gitops.repository" in (info.value.hint or "")


# --------------------------------------------------------------------------- 3. disaster recovery


def test_rebuild_after_every_node_is_wiped_from_git_and_1password(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    from k8s_ops import onepassword as op

    cluster = load_cluster("demo")
    op.push(cluster, "age-key,talos-secrets")
    world.kubectl("create", "configmap", "dr-marker", "-n", "default", "--from-literal=k=v")
    snapshot = paths.backups_dir("demo") / "etcd.snapshot"
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    r = world.sim.run("talosctl", "--talosconfig", str(paths.talosconfig_path("demo")), "-e", "10.5.0.11",
                      "-n", "10.5.0.11", "etcd", "snapshot", str(snapshot))  # fmt: skip
    assert r.returncode == 0, r.stderr

    # the disaster: every node wiped, and this machine lost the key, the bundle and both client configs
    world.sim.wipe("demo")
    key_file = world.clusters / "demo" / "demo.agekey"
    bundle_file = world.clusters / "demo" / "talos" / "secrets.sops.yaml"
    bundle_sha = hashlib.sha256(bundle_file.read_bytes()).hexdigest()
    for f in (key_file, bundle_file, paths.talosconfig_path("demo"), paths.kubeconfig_path("demo")):
        f.unlink()
    talos_secrets.clear_cache()
    mark = len(world.calls())

    # phase 1 is a plan of its own: one step per missing item, each a Pull effect; building it writes nothing
    preview = material_plan(cluster)
    assert preview is not None and "pull age-key, talos-secrets from 1Password" in preview.title
    pulls = [e for s in preview.steps for e in s.effects]
    assert pulls == [Pull(cluster, "age-key", only_missing=True), Pull(cluster, "talos-secrets", only_missing=True)]
    assert all(s.mutates and s.noop is None and s.stage == "preflight" for s in preview.steps)
    assert not key_file.exists() and not paths.default_age_key_file().exists() and not bundle_file.exists()

    # the task's dry run shows phase 1 (text and JSON), says phase 2 waits for the material, and writes nothing
    ctx = Context(Config(overrides={"k8s_ops": {"runner": lambda: world.runner}}))
    bootstrap_tasks.rebuild(ctx, cluster="demo", dry_run=True)
    text = capsys.readouterr().out
    assert f"would pull sops-age-key-demo -> {paths.default_age_key_file()}" in text
    assert "op pull age-key (vault k8s-ops-demo, --only-missing)" in text and "op pull talos-secrets" in text
    assert "planned once the material exists locally" in text and "[talos]" not in text
    bootstrap_tasks.rebuild(ctx, cluster="demo", dry_run=True, json=True)
    doc = json.loads(capsys.readouterr().out)
    assert [s["mutates"] for s in doc["steps"]] == [True, True]
    assert [e["effect"] for s in doc["steps"] for e in s["finish"]] == ["1password-pull"] * 2
    assert not key_file.exists() and not paths.default_age_key_file().exists() and not bundle_file.exists()

    # the real run: phase 1 pulls through the pipeline (no confirmation), phase 2 is built from the pulled
    # material and stops at the typed confirmation before the new etcd (no TTY here) — nothing of it ran
    with pytest.raises(Exit):
        bootstrap_tasks.rebuild(ctx, cluster="demo", recover_from=str(snapshot))
    assert "confirmation" in capsys.readouterr().err
    assert paths.default_age_key_file().is_file() and bundle_file.is_file()
    assert not [c for c in world.calls(mark) if _is(c, "talosctl", "apply-config")]
    # with --yes: the material is present now (no phase 1), the rebuild runs
    assert material_plan(cluster) is None
    bootstrap_tasks.rebuild(ctx, cluster="demo", recover_from=str(snapshot), yes=True)

    pulled = paths.default_age_key_file()
    assert pulled.is_file() and pulled.stat().st_mode & 0o777 == 0o600
    assert hashlib.sha256(bundle_file.read_bytes()).hexdigest() == bundle_sha
    calls = world.calls(mark)
    (boot,) = [c for c in calls if _is(c, "talosctl", "bootstrap")]
    assert boot["argv"][boot["argv"].index("--recover-from") + 1] == str(snapshot)
    assert len([c for c in calls if _is(c, "talosctl", "apply-config", "--insecure")]) == 5
    assert world.sim.get_object("ConfigMap", "dr-marker", "default") is not None  # etcd state restored
    root = world.sim.get_object("Kustomization", "flux-system", "flux-system")
    assert root is not None
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in root["status"]["conditions"])
    # stage 7 pushed the new cluster's kubeconfig and talosconfig over the dead cluster's copies
    for item in op.status(cluster, "kubeconfig,talosconfig"):
        assert item.remote_sha256 == item.local_sha256 is not None, item


# --------------------------------------------------------------------------- 5. re-run


def test_rerun_on_the_healthy_rebuilt_cluster_changes_nothing(world: World) -> None:
    mark = len(world.calls())
    plan = world.plan()
    assert all(s.noop is not None for s in plan.steps), [s.description for s in plan.steps if s.noop is None]
    report = execute(plan, world.runner, yes=False)
    assert report.changed == 0
    assert _mutations(world.calls(mark)) == []
    _assert_no_secret_logged(world)  # over every phase: bootstrap, resume, errors, rebuild, re-run
