"""The one task pipeline (k8s_ops.core.pipeline): every task's `--dry-run --json` has one shape, pinned by
tests/fixtures/plan.schema.json; the runner comes from invoke's context config; every task documents every option.

The tasks run against the simulator (tests/sim) as the other task tests do; one test injects a FakeRunner the
invoke way (`Context(Config(overrides={"k8s_ops": {"runner": lambda: fake}}))`) instead of patching.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from invoke.config import Config
from invoke.context import Context

from k8s_ops.core.command import Command, Result
from k8s_ops.core.pipeline import plan_json, runner_from
from k8s_ops.core.plan import Plan, Step
from k8s_ops.core.runner import SubprocessRunner
from k8s_ops.core.testing import FakeRunner
from k8s_ops.day2 import tasks as day2_tasks
from k8s_ops.talos import tasks as talos_tasks
from tests.test_day2_sim import CLUSTER as DAY2_CLUSTER
from tests.test_day2_sim import world  # noqa: F401 — the day-2 simulator fixture
from tests.test_lifecycle_sim import lab  # noqa: F401 — the lifecycle simulator fixture
from tests.test_onepassword import CLUSTER_YAML as OP_CLUSTER_YAML
from tests.test_onepassword import Machine, install_fake

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "plan.schema.json").read_text())


def dry_json(task: Callable[..., Any], capsys: pytest.CaptureFixture[str], **kwargs: Any) -> dict[str, Any]:
    capsys.readouterr()
    task(Context(), dry_run=True, json=True, **kwargs)
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, SCHEMA)
    return data


def test_the_schema_is_valid_and_rejects_other_shapes() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    good = plan_json(Plan("t", "c", (Step("s"),)))
    jsonschema.validate(good, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):  # e.g. the summary talos.render printed before it was a plan
        jsonschema.validate({"cluster": "c", "dir": "/x", "dryRun": True, "files": [], "stale": []}, SCHEMA)


LIFECYCLE: list[tuple[str, dict[str, Any]]] = [
    ("render", {}),
    ("talosconfig", {}),
    ("kubeconfig", {}),
    ("health", {}),
    ("etcd_snapshot", {}),
    ("apply_node", {"node": "demo-wk-1"}),
    ("apply_cluster", {}),
    ("upgrade_node", {"node": "demo-wk-1"}),
    ("upgrade_cluster", {}),
    ("upgrade_k8s", {}),
    ("reboot_node", {"node": "demo-wk-1"}),
    ("reset_node", {"node": "demo-wk-1"}),
    ("reset_cluster", {}),
    ("validate", {}),
    ("schematic", {}),
    ("schematic", {"upload": True}),
]


@pytest.mark.usefixtures("lab")
def test_every_talos_task_dry_run_json_matches_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    for name, kwargs in LIFECYCLE:
        data = dry_json(getattr(talos_tasks, name), capsys, cluster="demo", **kwargs)
        assert data["cluster"] == "demo", name


DAY2: list[tuple[Any, dict[str, Any]]] = [
    (day2_tasks.sync_secrets, {}),
    (day2_tasks.hr_restart, {"name": "plex", "namespace": "media"}),
    (day2_tasks.reconcile, {}),
    (day2_tasks.cleanse_pods, {}),
    (day2_tasks.snapshot, {"app": "plex"}),
    (day2_tasks.restore, {"app": "plex"}),
    (day2_tasks.unlock, {"app": "plex"}),
]


@pytest.mark.usefixtures("world")
def test_every_day2_task_dry_run_json_matches_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    for task, kwargs in DAY2:
        data = dry_json(task, capsys, cluster=DAY2_CLUSTER, **kwargs)
        assert data["cluster"] == DAY2_CLUSTER, task.name
    restore = dry_json(day2_tasks.restore, capsys, cluster=DAY2_CLUSTER, app="plex")
    assert restore["on_failure"] is not None and restore["on_failure"]["commands"]


def test_every_bootstrap_task_dry_run_json_matches_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from k8s_ops.bootstrap import tasks as bootstrap_tasks
    from tests.bootstrap_world import bootstrap_world

    with bootstrap_world(tmp_path):
        for task in (bootstrap_tasks.cluster, bootstrap_tasks.talos, bootstrap_tasks.rebuild):
            data = dry_json(task, capsys, cluster="demo")
            assert data["steps"], task.name


def test_every_op_task_dry_run_json_matches_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """op.push/op.pull are plans of Push/Pull steps (one per item); op.status only reads (a report, no --dry-run)."""
    from invoke.exceptions import Exit

    from k8s_ops.onepassword import Kind
    from k8s_ops.onepassword import tasks as op_tasks

    fake = install_fake(monkeypatch)
    laptop = Machine(tmp_path / "laptop", fake, monkeypatch).use()
    cdir = laptop.root / "clusters" / "lab"
    cdir.mkdir(parents=True)
    (cdir / "cluster.yaml").write_text(OP_CLUSTER_YAML.format(name="lab", vault="k8s"))
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", fake.token)
    laptop.write(Kind.KUBECONFIG, b"kube: x\n", cluster="lab")
    laptop.write(Kind.TALOSCONFIG, b"talos: x\n", cluster="lab")
    what = "kubeconfig,talosconfig"

    push = dry_json(op_tasks.push, capsys, cluster="lab", what=what)
    assert [s["finish"][0]["effect"] for s in push["steps"]] == ["1password-push"] * 2 and fake.items == {}
    assert "kubeconfig-lab: op://k8s/kubeconfig-lab/content" in push["notes"]
    op_tasks.push(Context(), cluster="lab", what=what)
    out = capsys.readouterr().out
    assert "op://k8s/talosconfig-lab/content" in out and out.startswith("op.push --cluster lab:")  # the results

    assert all(s["noop"] for s in dry_json(op_tasks.push, capsys, cluster="lab", what=what)["steps"])
    laptop.path(Kind.KUBECONFIG, "lab").unlink()
    pull = dry_json(op_tasks.pull, capsys, cluster="lab", what=what)
    assert [(s["noop"] is None, [e["effect"] for e in s["finish"]]) for s in pull["steps"]] == [
        (True, ["1password-pull"]),
        (False, []),
    ]
    assert not laptop.path(Kind.KUBECONFIG, "lab").exists()

    # a refusal is a gate placed first: the dry run shows it (valid JSON) and exits non-zero
    capsys.readouterr()
    with pytest.raises(Exit):
        op_tasks.push(Context(), cluster="lab", dry_run=True, json=True)
    refused = json.loads(capsys.readouterr().out)
    jsonschema.validate(refused, SCHEMA)
    assert refused["steps"][0]["before"] and refused["steps"][0]["description"].startswith("missing ")


def test_the_runner_comes_from_invokes_context_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(runner_from(Context()), SubprocessRunner)
    fake = FakeRunner({})
    assert runner_from(Context(Config(overrides={"k8s_ops": {"runner": lambda: fake}}))) is fake


def test_a_task_runs_on_the_injected_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """talos.health end to end on a FakeRunner: preflight, the dry run and the run use the context's runner."""
    import shutil

    from k8s_ops.core import preflight

    shutil.copytree(Path(__file__).parents[1] / "clusters" / "demo", tmp_path / "clusters" / "demo")
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(tmp_path / "clusters"))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path / "build"))
    preflight.reset_cache()
    calls: list[Command] = []

    def handle(command: Command) -> Result:
        calls.append(command)
        if command.argv[1:2] == ("version",):
            return Result(0, stdout="Client:\n\tTag:         v1.12.11\n")
        return Result(0, stdout="ok\n")

    fake = FakeRunner(handler=handle)
    ctx = Context(Config(overrides={"k8s_ops": {"runner": lambda: fake}}))
    talos_tasks.health(ctx, cluster="demo", dry_run=True, json=True)
    jsonschema.validate(json.loads(capsys.readouterr().out), SCHEMA)
    talos_tasks.health(ctx, cluster="demo")
    assert any(c.argv[1] == "health" for c in calls)
    assert capsys.readouterr().out.strip().endswith("1 done, 0 unchanged")
    preflight.reset_cache()


def test_every_task_has_a_docstring_and_help_for_every_option() -> None:
    from tasks import ns

    names = ns.task_names
    assert {n.split(".")[0] for n in names} == {"talos", "bootstrap", "op", "kubernetes", "volsync", "gitops", "fleet"}
    for name in names:
        t = ns[name]
        assert t.__doc__ and t.__doc__.strip(), name
        params = [p for p in t.argspec(t.body).parameters if p != "c"]
        documented = {k.replace("-", "_").rstrip("_") for k in t.help}
        assert {p.rstrip("_") for p in params} <= documented, (name, set(params) - documented)
        if "cluster" in params:  # fleet tasks act on every cluster and have no --cluster
            assert t.help["cluster"].startswith("cluster name (directory under the clusters dir"), name


def test_listing_the_tasks_imports_nothing_heavy() -> None:
    """`invoke --list` imports tasks.py and every feature's tasks.py: the task modules import their work (the
    1Password api and SDK, the inventory and pydantic, rendering) inside the task bodies, so listing stays close to
    `invoke --version` (issue #11: ≤ 1.2×)."""
    import subprocess
    import sys

    heavy = ("pydantic", "httpx", "onepassword", "k8s_ops.onepassword.api", "k8s_ops.talos.inventory", "jsonschema")
    code = f"import sys, tasks; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    root = Path(__file__).parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
