"""talos.upgrade-cluster's prelude: the tool preflight and the planning reads are one round trip (FakeRunner)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.core import preflight
from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import ToolNotFound
from k8s_ops.core.testing import FakeRunner
from k8s_ops.talos import tasks as talos_tasks

DEMO = Path(__file__).parents[1] / "clusters" / "demo"
VERSIONS = {"talosctl": "Client v1.12.11\n", "kubectl": '{"clientVersion": {"gitVersion": "v1.35.0"}}'}
DOWN = Result(1, "", "rpc error: code = Unavailable desc = connection refused")


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    shutil.copytree(DEMO, tmp_path / "clusters" / "demo")
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(tmp_path / "clusters"))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("K8S_OPS_STATE_DIR", str(tmp_path / "state"))
    preflight.reset_cache()
    yield
    preflight.reset_cache()


def _upgrade(fake: FakeRunner) -> None:
    ctx = Context(Config(overrides={"k8s_ops": {"runner": lambda: fake}}))
    talos_tasks.upgrade_cluster(ctx, cluster="demo", dry_run=True)


def _what(command: Command) -> str:
    argv = command.display_argv()
    return " ".join(a for a in argv[1:3] if not a.startswith("-"))


@pytest.mark.usefixtures("demo")
def test_the_tool_preflight_and_the_planning_reads_are_asked_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    # the two tool versions, `get extensions` + `version` (the targets), `etcd status` (the snapshot source): made
    # one after the other they would break the barrier instead of meeting at it
    together = threading.Barrier(5, timeout=60)

    def answer(command: Command) -> Result:
        together.wait()
        if "--client" in command.argv:
            return Result(0, VERSIONS[command.tool])
        return DOWN

    fake = FakeRunner(handler=answer)
    with pytest.raises(Exit):
        _upgrade(fake)
    assert "the Talos API does not answer" in capsys.readouterr().err
    assert sorted(_what(c) for c in fake.calls) == ["etcd status", "get extensions", "version", "version", "version"]
    assert not together.broken


@pytest.mark.usefixtures("demo")
def test_a_missing_tool_is_still_the_error_reported_whatever_the_reads_said(capsys: pytest.CaptureFixture[str]) -> None:
    def answer(command: Command) -> Result:
        if command.tool == "talosctl":
            raise ToolNotFound("talosctl not found")
        return Result(0, VERSIONS[command.tool])

    with pytest.raises(Exit):
        _upgrade(FakeRunner(handler=answer))
    err = capsys.readouterr().err
    assert "preflight: external tools are missing or too old" in err and "talosctl not found on PATH" in err
    assert "the Talos API does not answer" not in err
