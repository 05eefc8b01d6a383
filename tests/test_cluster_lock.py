"""The per-cluster run lock (k8s_ops.core.lock, taken by k8s_ops.core.pipeline.finish around mutating plans).

Contention is shown with threads that each open the lock themselves (flock locks belong to the open file, so two
opens in one process contend as two processes would) and coordinated with events — no sleep-based races.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.core.errors import Aborted
from k8s_ops.core.lock import ClusterLocked, Holder, cluster_lock, lock_path
from k8s_ops.core.pipeline import finish
from k8s_ops.core.plan import Action, Plan, Step
from k8s_ops.core.prompt import answering
from k8s_ops.core.testing import FakeRunner
from k8s_ops.talos import tasks as talos_tasks
from tests.test_lifecycle_sim import lab  # noqa: F401 — the lifecycle simulator fixture


class Held:
    """A lock held by another thread until `release()`."""

    def __init__(self, cluster: str, task: str = "talos.reboot-node") -> None:
        self.taken = threading.Event()
        self._release = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._hold, args=(cluster, task), daemon=True)
        self._thread.start()
        assert self.taken.wait(10)
        if self.error is not None:
            raise self.error

    def _hold(self, cluster: str, task: str) -> None:
        try:
            with cluster_lock(cluster, task):
                self.taken.set()
                self._release.wait(30)
        except BaseException as exc:  # surfaced to the test
            self.error = exc
            self.taken.set()

    def release(self) -> None:
        self._release.set()
        self._thread.join(10)


@pytest.fixture
def held() -> Iterator[list[Held]]:
    holders: list[Held] = []
    yield holders
    for h in holders:
        h.release()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_run_fails_fast_naming_the_holder(held: list[Held]) -> None:
    held.append(Held("demo", "reboot node demo-cp-1"))
    with pytest.raises(ClusterLocked) as exc, cluster_lock("demo", "reboot node demo-cp-2", timeout=0):
        pytest.fail("took a held lock")
    message = str(exc.value)
    assert "cluster demo is locked" in message
    assert f"pid {os.getpid()}" in message
    assert "reboot node demo-cp-1" in message
    assert "@" in message and " since " in message
    assert "--lock-timeout" in message


def test_the_holder_record_is_private_json_and_removed_after(held: list[Held]) -> None:
    held.append(Held("demo"))
    record = lock_path("demo").with_name("demo.holder.json")
    data = json.loads(record.read_text())
    assert set(data) == {"user", "host", "task", "pid", "cluster", "started"}
    assert data["cluster"] == "demo" and data["pid"] == os.getpid()
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    held.pop().release()
    assert not record.exists()


def test_second_run_waits_and_proceeds_when_the_first_releases(held: list[Held]) -> None:
    first = Held("demo")
    held.append(first)
    waiting = threading.Event()
    seen: list[Holder | None] = []
    got: list[Holder] = []
    errors: list[BaseException] = []

    def on_wait(holder: Holder | None) -> None:
        seen.append(holder)
        waiting.set()

    def second() -> None:
        try:
            with cluster_lock("demo", "second", timeout=30, on_wait=on_wait) as me:
                got.append(me)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=second)
    t.start()
    assert waiting.wait(10)
    assert not got  # still waiting while the first holds it
    first.release()
    t.join(30)
    assert not errors and got and got[0].task == "second"
    assert seen[0] is not None and seen[0].task == "talos.reboot-node"


def test_different_clusters_do_not_block_each_other(held: list[Held]) -> None:
    held.append(Held("demo"))
    with cluster_lock("other", "t", timeout=0) as me:
        assert me.cluster == "other"


def _plan(cluster: str, ran: list[str], *, mutates: bool = True) -> Plan:
    action = Action("touch", "x", run=lambda _: ran.append("ran"), mutates=mutates)
    return Plan("do a thing", cluster, (Step("s", prepare=(action,)),))


def test_finish_takes_the_lock_for_mutating_plans_only(held: list[Held], capsys: pytest.CaptureFixture[str]) -> None:
    held.append(Held("demo"))
    ran: list[str] = []
    finish(_plan("demo", ran), FakeRunner(), dry_run=True)  # dry run: no lock, nothing ran
    finish(_plan("demo", ran, mutates=False), FakeRunner(), dry_run=False)  # read-only: no lock
    assert ran == ["ran"]
    with pytest.raises(ClusterLocked):
        finish(_plan("demo", ran), FakeRunner(), dry_run=False)
    assert ran == ["ran"]
    held.pop().release()
    finish(_plan("demo", ran), FakeRunner(), dry_run=False)
    assert ran == ["ran", "ran"]
    assert not lock_path("demo").with_name("demo.holder.json").exists()


def test_finish_releases_the_lock_when_the_run_fails() -> None:
    def boom(_: object) -> None:
        raise KeyboardInterrupt

    plan = Plan("do a thing", "demo", (Step("s", prepare=(Action("boom", "x", run=boom),)),))
    with pytest.raises(BaseException):  # noqa: B017 — Interrupted or KeyboardInterrupt, either way released
        finish(plan, FakeRunner(), dry_run=False)
    with cluster_lock("demo", "next", timeout=0):
        pass


def test_nested_finish_in_one_run_does_not_wait_for_itself() -> None:
    ran: list[str] = []
    inner = _plan("demo", ran)
    outer = Plan(
        "outer", "demo", (Step("s", prepare=(Action("run", "inner", run=lambda r: finish(inner, r, dry_run=False)),)),)
    )
    finish(outer, FakeRunner(), dry_run=False)
    assert ran == ["ran"]


def _fake_record(cluster: str, pid: int) -> Path:
    record = lock_path(cluster).with_name(f"{cluster}.holder.json")
    record.write_text(json.dumps(Holder("ops", socket.gethostname(), "gone", pid, cluster, "T").to_json()))
    return record


def test_a_dead_holders_record_without_the_lock_is_reported_and_replaced() -> None:
    lock_path("demo").parent.mkdir(parents=True, exist_ok=True)
    _fake_record("demo", _dead_pid())
    notes: list[str] = []
    with cluster_lock("demo", "mine", out=notes.append) as me:
        assert me.task == "mine"
    assert any("stale lock record" in n and "not running on this host" in n for n in notes)


def test_a_dead_holder_still_holding_is_reported_and_broken_with_break_lock(held: list[Held]) -> None:
    held.append(Held("demo"))  # the lock is held (e.g. a hung run on a shared state dir) …
    dead = _dead_pid()
    _fake_record("demo", dead)  # … by a pid that is not running here
    with pytest.raises(ClusterLocked) as exc, cluster_lock("demo", "mine"):
        pytest.fail("took a held lock")
    assert f"pid {dead}, not running on this host" in str(exc.value)
    assert "--break-lock" in str(exc.value)
    with pytest.raises(Aborted), cluster_lock("demo", "mine", break_lock=True, prompt=answering("wrong")):
        pytest.fail("broke the lock without confirmation")
    with pytest.raises(Aborted), cluster_lock("demo", "mine", break_lock=True, prompt=answering(None)):
        pytest.fail("broke the lock without a terminal")
    notes: list[str] = []
    with cluster_lock("demo", "mine", break_lock=True, prompt=answering("demo"), out=notes.append) as me:
        assert me.task == "mine"
        with pytest.raises(ClusterLocked), cluster_lock("demo", "third"):  # the broken lock's replacement is held
            pass
    assert any("broken" in n for n in notes)


def test_break_lock_refuses_a_live_holder(held: list[Held]) -> None:
    held.append(Held("demo"))  # its record names this (live) process
    with (
        pytest.raises(ClusterLocked, match="refusing to break"),
        cluster_lock("demo", "mine", break_lock=True, prompt=answering("demo")),
    ):
        pytest.fail("broke a live holder's lock")


@pytest.mark.usefixtures("lab")
def test_reboot_node_fails_naming_the_holder_but_its_dry_run_does_not_wait(
    held: list[Held], capsys: pytest.CaptureFixture[str]
) -> None:
    held.append(Held("demo", "reboot node demo-cp-1"))
    talos_tasks.reboot_node(Context(), cluster="demo", node="demo-cp-2", dry_run=True)
    capsys.readouterr()
    with pytest.raises(Exit) as exc:
        talos_tasks.reboot_node(Context(), cluster="demo", node="demo-cp-2", yes=True)
    assert exc.value.code == ClusterLocked.exit_code
    err = capsys.readouterr().err
    assert "cluster demo is locked by another run" in err and "reboot node demo-cp-1" in err


def test_rebuild_holds_one_lock_across_both_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    # before: phase 1 (the 1Password pull) released the lock before phase 2 (the rebuild) was planned and took it
    # again, so another run could take the cluster in between
    from k8s_ops.bootstrap import run as bootstrap_run
    from k8s_ops.bootstrap import tasks as bootstrap_tasks
    from k8s_ops.core.errors import ToolkitError

    seen: list[str] = []

    def other_run() -> str:
        """What a second run trying the lock now (another open of the lock file: another process) sees."""
        try:
            with cluster_lock("demo", "talos.reboot-node", timeout=0):
                return "free"
        except ClusterLocked as exc:
            return "held: " + str(exc)

    def pull(runner: object) -> None:
        seen.append(f"phase 1 ran, lock {other_run()}")

    phase1 = Plan("rebuild demo, phase 1", "demo", (Step("pull", prepare=(Action("pull", "x", pull),)),))

    def phase2(options: object, runner: object) -> Plan:
        seen.append(f"phase 2 planned, lock {other_run()}")
        raise ToolkitError("stop here")

    monkeypatch.setattr(bootstrap_run, "material_plan", lambda cluster, task: phase1)
    monkeypatch.setattr(bootstrap_run, "build_plan", phase2)
    with pytest.raises(Exit):
        bootstrap_tasks.rebuild(Context(), cluster="demo", yes=True)
    assert len(seen) == 2 and all("held: cluster demo is locked" in s for s in seen), seen
    assert "bootstrap.rebuild --cluster demo (both phases)" in seen[1]
    assert other_run() == "free"  # released when the task ends, however it ends
