"""Every way a run can end: SIGTERM and SIGHUP take Ctrl-C's path (stop launching, terminate the child in flight,
run the plan's recovery, say where it stopped, exit 128 + the signal); a second signal during the recovery says
exactly what is left undone and how to finish it.

The end-to-end case is a real `invoke volsync.restore` process against the simulator, sent SIGTERM while it waits
for the restore; the rest drive `pipeline.run` / `guarded` in-process with a fake runner that raises the signal's
exception at a chosen command (deterministic: no timing)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from k8s_ops.core.cli import guarded
from k8s_ops.core.command import Command, Result, cmd
from k8s_ops.core.execute import Interrupted
from k8s_ops.core.pipeline import RecoveryFailed, run
from k8s_ops.core.plan import Plan, Step, Undo
from k8s_ops.core.runner import SubprocessRunner, Terminated
from tests.test_day2_sim import CLUSTER, World, world  # noqa: F401  (the day-2 simulator world fixture)

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------- end to end


def _read_until(proc: subprocess.Popen[str], wanted: str, deadline: float) -> list[str]:
    """stderr lines of `proc` up to and including the first containing `wanted` (a generous backstop only)."""
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    lines: list[str] = []
    while time.monotonic() < deadline:
        if not sel.select(timeout=1.0):
            continue
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if wanted in line:
            return lines
    raise AssertionError(f"never saw {wanted!r}; stderr so far:\n{''.join(lines)}")


def test_sigterm_during_a_restore_leaves_the_app_running_and_exits_143(world: World) -> None:  # noqa: F811
    world.sim.set("volsync_job_seconds", 10**9)  # the restore job never finishes: the task is still waiting
    env = dict(os.environ, K8S_OPS_TIMEOUT_SCALE="1")
    argv = ["volsync.restore", "--cluster", CLUSTER, "--app", "plex", "--yes"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        before = _read_until(proc, "restore PVC media/plex-config", time.monotonic() + 300)
        before += _read_until(proc, "wait:", time.monotonic() + 300)
        # suspended, scaled down, waiting for the mover: the worst moment to stop
        assert world.obj("HelmRelease", "plex", "media")["spec"].get("suspend") is True
        assert world.obj("Deployment", "plex", "media")["spec"]["replicas"] == 0
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(before) + rest
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM during step" in err and "restore PVC media/plex-config" in err
    assert "resumed HelmRelease media/plex" in err and "resumed Kustomization flux-system/plex" in err
    assert "Traceback" not in err
    assert not world.obj("Kustomization", "plex", "flux-system")["spec"].get("suspend")
    assert not world.obj("HelmRelease", "plex", "media")["spec"].get("suspend")
    assert "paused" not in world.obj("ReplicationSource", "plex", "media")["spec"]
    assert world.obj("Deployment", "plex", "media")["spec"]["replicas"] == 1
    assert world.maybe("ReplicationDestination", "plex-manual", "media") is None


# ------------------------------------------------------------------------------------------- in-process


class _SignalAt:
    """A runner that answers every command with success, except it raises `Terminated(signum)` when the command
    whose description contains `at` starts (the signal arriving while that command runs); `again` does the same
    for a recovery command (a second signal)."""

    def __init__(self, at: str, signum: int, again: str | None = None) -> None:
        self.at, self.signum, self.again = at, signum, again
        self.ran: list[str] = []

    def run(self, command: Command, *, check: bool = True) -> Result:
        for trigger in (self.at, self.again):
            if trigger is not None and trigger in command.description:
                if trigger == self.at:
                    self.at = "\0never"  # once
                raise Terminated(self.signum)
        self.ran.append(command.description)
        return Result(0)


def _restore_like_plan() -> Plan:
    def step(name: str, undo: str | None = None) -> Step:
        u = Undo((cmd("flux", "resume", name, description=f"undo {name}", mutates=True),), f"resumed {name}")
        return Step(name, commands=(cmd("kubectl", name, description=name, mutates=True),), undo=u if undo else None)

    return Plan(
        "restore plex",
        "demo",
        (step("suspend-ks", "u"), step("suspend-hr", "u"), step("scale-down", "u"), step("restore")),
        on_failure="the app was NOT restored",
    )


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_stop_signal_runs_the_recovery_and_says_where_it_stopped(signum: int, code: int) -> None:
    runner = _SignalAt("restore", signum)
    with pytest.raises(RecoveryFailed) as info:
        run(_restore_like_plan(), runner, yes=True, out=lambda _: None)
    message = str(info.value)
    assert info.value.exit_code == code
    assert "during step 4 (restore)" in message and "last completed step: 3 (scale-down)" in message
    # every started step's undo ran, latest first; nothing after the stop was launched
    assert runner.ran[3:] == ["undo scale-down", "undo suspend-hr", "undo suspend-ks"]
    assert "recovered: resumed scale-down; resumed suspend-hr; resumed suspend-ks" in message


def test_a_second_signal_during_recovery_lists_what_is_left_and_how_to_finish() -> None:
    runner = _SignalAt("restore", signal.SIGTERM, again="undo suspend-hr")
    with pytest.raises(RecoveryFailed) as info:
        run(_restore_like_plan(), runner, yes=True, out=lambda _: None)
    message = str(info.value)
    assert info.value.exit_code == 143  # the first signal decides the exit code
    assert "recovery INTERRUPTED by SIGTERM" in message
    assert "  - resumed suspend-hr\n  - resumed suspend-ks\n" in message
    assert "scale-down" not in message.split("not done:")[1].split("finish it")[0]  # it was undone
    assert "  $ flux resume suspend-hr\n  $ flux resume suspend-ks\n" in message


def test_a_stop_without_recovery_still_says_where_and_exits_with_the_signal() -> None:
    plan = Plan("apply", "demo", (Step("one", commands=(cmd("x", description="one", mutates=True),)),))
    with pytest.raises(Interrupted) as info:
        run(plan, _SignalAt("one", signal.SIGHUP), yes=True, out=lambda _: None)
    assert info.value.exit_code == 129
    assert str(info.value).startswith("stopped by SIGHUP during step 1 (one); no step completed")


@task
@guarded
def _sends(c: Any, signame: str = "SIGTERM") -> None:
    os.kill(os.getpid(), signal.Signals[signame])  # handled in this (main) thread before kill() returns
    time.sleep(30)  # never reached: the handler raised
    raise AssertionError("the signal did not stop the task")


@pytest.mark.parametrize(("signame", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_guarded_turns_term_and_hup_into_their_exit_codes_and_restores_the_handlers(
    signame: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    with pytest.raises(Exit) as info:
        _sends(Context(), signame=signame)
    assert info.value.code == code
    assert f"stopped by {signame}" in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before


def test_a_signal_during_a_concurrent_group_terminates_every_child_and_recovers(tmp_path: Path) -> None:
    # two concurrent steps each run a child that would sleep for a minute; SIGTERM to this process must stop both
    # children (their own process groups), run the recovery, and report the stop — not wait for the minute
    marker = tmp_path / "pids"
    marker.mkdir()
    sleeper = tmp_path / "sleeper"
    sleeper.write_text(
        f"#!{sys.executable}\nimport os, sys, time\n"
        f"open(os.path.join({str(marker)!r}, str(os.getpid())), 'w').close()\ntime.sleep(60)\n"
    )
    sleeper.chmod(0o755)
    undo = Undo((cmd(sys.executable, "-c", "pass", description="undo", mutates=True),), "undid it")
    steps = tuple(
        Step(f"n{i}", commands=(cmd(str(sleeper), mutates=True),), group="g", node=f"n{i}", undo=undo) for i in (1, 2)
    )
    plan = Plan("concurrent", "demo", steps, on_failure="")
    fire = signal.SIGTERM

    def kill_once_both_run() -> None:
        while len(os.listdir(marker)) < 2:
            time.sleep(0.05)
        os.kill(os.getpid(), fire)

    import threading

    from k8s_ops.core.audit import AuditLog
    from k8s_ops.core.cli import stop_signals_raise

    killer = threading.Thread(target=kill_once_both_run, daemon=True)
    runner = SubprocessRunner(audit=AuditLog(tmp_path / "audit.log"))
    with stop_signals_raise(), pytest.raises(RecoveryFailed) as info:
        killer.start()
        run(plan, runner, yes=True, max_concurrency=2, out=lambda _: None)
    assert info.value.exit_code == 143
    assert "stopped by SIGTERM during step 1 (n1) on n1; step 2 (n2) on n2" in str(info.value)
    assert "recovered: undid it; undid it" in str(info.value)
    for pid in os.listdir(marker):
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)  # terminated and reaped


def test_a_stop_during_a_gate_names_the_step_and_does_not_undo_it() -> None:
    from k8s_ops.core.plan import Check

    def read(runner: Any) -> None:
        runner.run(cmd("talosctl", description="probe"))

    probe = Check("etcd healthy", run=read)
    undo = Undo((cmd("flux", "resume", description="undo gated", mutates=True),), "resumed gated")
    first = Step(
        "first",
        commands=(cmd("a", description="first", mutates=True),),
        undo=Undo((cmd("flux", "resume", description="undo first", mutates=True),), "resumed first"),
    )
    gated = Step("gated", before=(probe,), commands=(cmd("b", description="b", mutates=True),), undo=undo, node="cp1")
    runner = _SignalAt("probe", signal.SIGTERM)
    with pytest.raises(RecoveryFailed) as info:
        run(Plan("p", "demo", (first, gated), on_failure=""), runner, yes=True, out=lambda _: None)
    assert "stopped by SIGTERM during step 2 (gated) on cp1; last completed step: 1 (first)" in str(info.value)
    assert runner.ran == ["first", "undo first"]  # the gated step never acted, so it is not undone
