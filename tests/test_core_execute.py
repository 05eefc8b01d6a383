"""The executor: guards, no-ops, first failure stops, bounded concurrency, confirmation, waits, preflight."""

from __future__ import annotations

import re
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from k8s_ops.core import preflight as tools
from k8s_ops.core.command import Command, Result, cmd
from k8s_ops.core.errors import Aborted, GateFailed, ToolNotFound
from k8s_ops.core.execute import Interrupted, ReadOnlyViolation, StepFailed, execute
from k8s_ops.core.plan import Action, Check, EnsureDir, EnsureMode, FileWrite, Plan, Step, Undo
from k8s_ops.core.prompt import Prompt, answering
from k8s_ops.core.testing import FakeRunner
from k8s_ops.core.wait import NotYet, StopWaiting, wait_for


@pytest.fixture(autouse=True)
def fast_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_OPS_POLL_INTERVAL", "0.01")
    monkeypatch.setenv("K8S_OPS_TIMEOUT_SCALE", "1")


def step(name: str, *, node: str | None = None, group: str | None = None, **kw: Any) -> Step:
    return Step(f"do {name}", commands=(cmd("tool", name, mutates=True),), node=node, group=group, **kw)


def quiet(_: str) -> None:
    pass


def test_runs_steps_in_order_and_skips_noops_and_guards() -> None:
    runner = FakeRunner({re.compile("^tool "): Result(0)})
    plan = Plan("t", "demo", (step("a"), Step("b", noop="already"), step("c", guard=lambda r: "guarded"), step("d")))
    report = execute(plan, runner, out=quiet)
    assert runner.argvs == [["tool", "a"], ["tool", "d"]]
    assert [o.status for o in report.outcomes] == ["done", "skipped", "skipped", "done"]
    assert report.outcomes[2].reason == "guarded"


def test_stops_at_first_failure_and_leaves_next_untouched() -> None:
    runner = FakeRunner({("tool", "a"): Result(0), ("tool", "b"): Result(1, stderr="kaboom"), ("tool", "c"): Result(0)})
    plan = Plan("t", "demo", (step("a"), step("b", node="cp-2"), step("c")), resume_hint="re-run to resume")
    with pytest.raises(StepFailed) as info:
        execute(plan, runner, out=quiet)
    assert runner.argvs == [["tool", "a"], ["tool", "b"]]
    msg = str(info.value)
    assert "step 2 (do b) on cp-2 failed" in msg and "kaboom" in msg and "re-run to resume" in msg


def test_group_runs_concurrently_with_a_bound() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    both_started = threading.Barrier(3, timeout=5)

    def handler(c: Command) -> Result:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        if c.argv[1] in ("n1", "n2", "n3"):
            both_started.wait()  # only passes if three run at the same time
        with lock:
            running -= 1
        return Result(0)

    runner = FakeRunner(handler=handler)
    plan = Plan("t", "demo", (*tuple(step(f"n{i}", group="workers") for i in range(1, 4)), step("after")))
    report = execute(plan, runner, max_concurrency=3, out=quiet)
    assert peak == 3
    assert report.outcomes[-1].description == "do after"
    assert runner.argvs[-1] == ["tool", "after"]


def test_failure_in_a_group_starts_no_new_step() -> None:
    started: list[str] = []

    def handler(c: Command) -> Result:
        started.append(str(c.argv[1]))
        return Result(1 if c.argv[1] == "n1" else 0, stderr="bad")

    plan = Plan("t", "demo", (*tuple(step(f"n{i}", group="g") for i in range(1, 6)), step("z")))
    with pytest.raises(StepFailed):
        execute(plan, FakeRunner(handler=handler), max_concurrency=1, out=quiet)
    assert started == ["n1"]


def test_destructive_plan_refuses_without_tty_and_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = FakeRunner({re.compile("."): Result(0)})
    plan = Plan("reset node", "demo", (step("reset", node="wk-1", destructive=True),))
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(Aborted, match="--yes"):
        execute(plan, runner, out=quiet)
    assert runner.calls == []
    execute(plan, runner, yes=True, out=quiet)
    assert runner.argvs == [["tool", "reset"]]


def test_destructive_plan_needs_the_typed_name(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = FakeRunner({re.compile("."): Result(0)})
    plan = Plan("reset node", "demo", (step("reset", node="wk-1", destructive=True),))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "wk-2")
    with pytest.raises(Aborted, match="expected 'wk-1'"):
        execute(plan, runner, confirm_name="wk-1", out=quiet)
    monkeypatch.setattr("builtins.input", lambda prompt: "wk-1")
    execute(plan, runner, confirm_name="wk-1", out=quiet)
    assert len(runner.calls) == 1


def test_gates_and_waits_wrap_commands(tmp_path: Path) -> None:
    order: list[str] = []

    def handler(_: Command) -> Result:
        order.append("cmd")
        return Result(0)

    runner = FakeRunner(handler=handler)
    plan = Plan(
        "t",
        "demo",
        (
            Step(
                "upgrade",
                commands=(cmd("tool", "x", mutates=True),),
                before=(Check("etcd healthy", lambda r: order.append("gate")),),
                after=(Check("node back", lambda r: order.append("wait")),),
                writes=(FileWrite(tmp_path / "out" / "f.yaml", b"a: 1\n"),),
            ),
        ),
    )
    execute(plan, runner, out=quiet)
    assert order == ["gate", "cmd", "wait"]
    written = tmp_path / "out" / "f.yaml"
    assert written.read_bytes() == b"a: 1\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700


def test_failed_gate_stops_before_commands() -> None:
    runner = FakeRunner({re.compile("."): Result(0)})

    def gate(_: object) -> None:
        raise GateFailed("etcd healthy", "member cp-2 unhealthy")

    plan = Plan(
        "t", "demo", (Step("upgrade cp-1", commands=(cmd("tool", "x", mutates=True),), before=(Check("g", gate),)),)
    )
    with pytest.raises(StepFailed, match="member cp-2 unhealthy"):
        execute(plan, runner, out=quiet)
    assert runner.calls == []


def test_wait_for_returns_value_and_times_out_with_last_detail() -> None:
    values = iter([None, None, "ready"])
    assert wait_for("thing", lambda: next(values), timeout=5) == "ready"

    def never() -> None:
        raise NotYet("stage booting")

    with pytest.raises(GateFailed, match=r"timed out after 0.05s waiting for node back.*stage booting"):
        wait_for("node back", never, timeout=0.05)


def test_preflight_reports_every_missing_or_old_tool_at_once() -> None:
    tools.reset_cache()
    runner = FakeRunner(
        {
            ("talosctl", "version", "--client", "--short"): Result(0, "Client v1.11.5\n"),
            ("kubectl", "version", "--client", "-o", "json"): Result(0, '{"clientVersion": {"gitVersion": "v1.35.0"}}'),
        },
        handler=lambda c: (_ for _ in ()).throw(ToolNotFound(f"{c.tool} not found")),
    )
    with pytest.raises(ToolNotFound) as info:
        tools.preflight(runner, ["talosctl", "kubectl", "helm", "flux"])
    msg = str(info.value)
    assert "talosctl v1.11.5 is too old: k8s-ops needs v1.12.0" in msg
    assert "helm not found on PATH" in msg and "flux not found on PATH" in msg
    assert "kubectl" not in msg
    tools.reset_cache()


def test_preflight_asks_the_tools_at_once_lists_problems_in_order_and_caches() -> None:
    tools.reset_cache()
    together = threading.Barrier(4, timeout=60)  # breaks (BrokenBarrierError: no version read) if asked in turn
    versions = {"talosctl": "Client v1.12.1", "kubectl": '{"clientVersion": {"gitVersion": "v1.20.0"}}',
                "helm": "v3.1.0", "flux": "flux: v2.6.4"}  # fmt: skip

    def answer(c: Command) -> Result:
        together.wait()
        return Result(0, versions[c.tool])

    runner = FakeRunner(handler=answer)
    with pytest.raises(ToolNotFound) as info:
        tools.preflight(runner, ["talosctl", "kubectl", "helm", "flux"])
    lines = str(info.value).splitlines()[1:]
    assert [ln.split()[1] for ln in lines] == ["kubectl", "helm"]  # every problem, in the order the task named them
    assert len(runner.calls) == 4
    runner.calls.clear()
    assert tools.preflight(runner, ["flux", "talosctl"]) == [
        tools.ToolVersion("flux", (2, 6, 4)),
        tools.ToolVersion("talosctl", (1, 12, 1)),
    ]
    assert runner.calls == []  # both were found good above: nothing asked again
    tools.reset_cache()


def test_stop_waiting_fails_at_once() -> None:
    calls = 0

    def probe() -> None:
        nonlocal calls
        calls += 1
        raise StopWaiting("job volsync-src-app failed: BackoffLimitExceeded")

    with pytest.raises(GateFailed, match="BackoffLimitExceeded"):
        wait_for("snapshot job", probe, timeout=60)
    assert calls == 1


def test_run_numbers_steps_like_the_dry_run() -> None:
    lines: list[str] = []
    runner = FakeRunner({re.compile("^tool "): Result(0)})
    plan = Plan("t", "demo", (Step("skip me", noop="already"), step("a"), step("b")))
    execute(plan, runner, out=lines.append)
    text = plan.to_text()
    assert "[1] do a" in text and "[2] do b" in text
    assert "[1] do a" in lines and "[2] do b" in lines


# ---------------------------------------------------------------------------------------------- effects and undo


def test_effects_run_in_order_and_the_dry_run_shows_each(tmp_path: Path) -> None:
    order: list[str] = []
    target = tmp_path / "backups" / "snap.db"

    def handler(c: Command) -> Result:
        order.append("cmd")
        target.write_bytes(b"x")
        target.chmod(0o644)
        return Result(0)

    pushed = Action("op push", "kubeconfig", lambda r: order.append("push"), detail=(("vault", "v"),))
    s = Step(
        "snapshot",
        prepare=(EnsureDir(tmp_path / "backups"),),
        writes=(FileWrite(tmp_path / "backups" / "note", b"n\n"),),
        commands=(cmd("tool", "snap", mutates=True),),
        finish=(EnsureMode(target, 0o600), pushed),
    )
    plan = Plan("t", "demo", (s,))
    text = plan.to_text()
    lines = [line.strip() for line in text.splitlines()]
    assert lines.index(f"ensure directory {tmp_path / 'backups'} (0o700)") < lines.index("$ tool snap")
    assert lines.index("$ tool snap") < lines.index(f"chmod 600 {target}") < lines.index("op push kubeconfig (vault=v)")
    data = plan.to_json()["steps"][0]
    assert data["prepare"] == [
        {"effect": "ensure-dir", "path": str(tmp_path / "backups"), "mode": "0o700", "existing_mode": True}
    ]
    assert [e["effect"] for e in data["finish"]] == ["chmod", "op push"] and data["mutates"] is True
    execute(plan, FakeRunner(handler=handler), out=quiet)
    assert order == ["cmd", "push"]
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_step_whose_only_effect_is_typed_mutates() -> None:
    assert Step("push", finish=(Action("op push", "all", lambda r: None),)).mutates
    assert not Step("wait", after=(Check("x", lambda r: None),)).mutates


def test_a_missing_file_for_ensure_mode_fails_the_step_clearly(tmp_path: Path) -> None:
    plan = Plan("t", "demo", (Step("chmod", finish=(EnsureMode(tmp_path / "none"),)),))
    with pytest.raises(StepFailed, match="was not written"):
        execute(plan, FakeRunner(), out=quiet)


def test_ensure_dir_can_leave_an_existing_directory_alone(tmp_path: Path) -> None:
    d = tmp_path / "kube"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    EnsureDir(d, 0o700, existing_mode=False).apply(FakeRunner())
    assert stat.S_IMODE(d.stat().st_mode) == 0o755
    EnsureDir(d, 0o700).apply(FakeRunner())
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def _undoable(name: str) -> Step:
    return Step(
        f"suspend {name}",
        commands=(cmd("tool", "suspend", name, mutates=True),),
        undo=Undo((cmd("tool", "resume", name, mutates=True),), f"resumed {name}"),
    )


def test_failure_carries_the_started_steps_and_recovery_undoes_only_those_latest_first() -> None:
    runner = FakeRunner({re.compile("suspend c"): Result(1, "", "boom")}, handler=lambda c: Result(0))
    steps = (_undoable("a"), Step("b", noop="done"), _undoable("b"), _undoable("c"), _undoable("d"))
    plan = Plan("t", "demo", steps, on_failure="nothing changed")
    recovery = plan.recovery
    assert recovery is not None
    assert [c.display() for c in recovery.commands] == [f"tool resume {n}" for n in "dcba"]  # the dry-run preview
    with pytest.raises(StepFailed) as info:
        execute(plan, runner, out=quiet)
    assert [s.description for s in info.value.started] == ["suspend a", "suspend b", "suspend c"]
    ran = recovery.after(info.value.started)
    assert [c.display() for c in ran.commands] == ["tool resume c", "tool resume b", "tool resume a"]
    assert ran.done == "recovered: resumed c; resumed b; resumed a — nothing changed"
    assert plan.to_json()["steps"][0]["undo"]["done"] == "resumed a"


def test_a_step_stopped_by_its_gate_did_not_start() -> None:
    def gate(_: object) -> None:
        raise GateFailed("x", "not yet")

    plan = Plan("t", "demo", (_undoable("a"), Step("b", before=(Check("gate", gate),), undo=Undo((), "never"))))
    with pytest.raises(StepFailed) as info:
        execute(plan, FakeRunner(handler=lambda c: Result(0)), out=quiet)
    assert [s.description for s in info.value.started] == ["suspend a"]


def test_interruption_carries_the_started_steps() -> None:
    def handler(c: Command) -> Result:
        if "b" in c.argv:
            raise KeyboardInterrupt
        return Result(0)

    plan = Plan("t", "demo", (_undoable("a"), _undoable("b"), _undoable("c")))
    with pytest.raises(Interrupted) as info:
        execute(plan, FakeRunner(handler=handler), out=quiet)
    assert [s.description for s in info.value.started] == ["suspend a", "suspend b"]


def test_the_confirmation_prompt_is_injectable() -> None:
    runner = FakeRunner({re.compile("."): Result(0)})
    plan = Plan("reset node", "demo", (step("reset", node="wk-1", destructive=True),))
    asked: list[str] = []
    with pytest.raises(Aborted, match="expected 'wk-1'"):
        execute(plan, runner, confirm_name="wk-1", out=quiet, prompt=answering("wk-2"))
    with pytest.raises(Aborted, match="no terminal"):
        execute(plan, runner, out=quiet, prompt=answering(None))
    prompt = Prompt(ask=lambda q: "wk-1", interactive=lambda: True, say=asked.append)
    execute(plan, runner, confirm_name="wk-1", out=quiet, prompt=prompt)
    assert asked == ["This will reset node (wk-1)."] and runner.argvs == [["tool", "reset"]]


def test_checks_and_guards_only_read() -> None:
    def sneaky(runner: Any) -> None:
        runner.run(cmd("op", "item", "edit", mutates=True))

    runner = FakeRunner(handler=lambda c: Result(0))
    for s in (Step("w", after=(Check("push in a wait", sneaky),)), Step("g", before=(Check("gate", sneaky),))):
        with pytest.raises(StepFailed, match="tried to run a mutating command: op item edit") as info:
            execute(Plan("t", "demo", (s,)), runner, out=quiet)
        assert isinstance(info.value.cause, ReadOnlyViolation)

    def read(r: Any) -> None:
        r.run(cmd("tool", "get"))

    reading = Step("r", after=(Check("read", read),))
    execute(Plan("t", "demo", (reading,)), runner, out=quiet)
    assert runner.argvs[-1] == ["tool", "get"] and not any(c.mutates for c in runner.calls)
