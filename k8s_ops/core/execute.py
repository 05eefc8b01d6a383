"""Run a Plan: re-check guards, confirm destructive work, stop at the first failure and say where.

A step runs as: guard (skip if already satisfied) → gates (`before`, read-only) → its effects in order
(`Step.effects`: prepare, writes, commands, finish) → waits (`after`, read-only). Once a step's gates passed it
counts as *started*; a failure or Ctrl-C carries the started steps (`StepFailed.started`, `Interrupted.started`)
so the pipeline runs their `undo`s (`Recovery.after`), latest first: recovery is derived from what ran.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from k8s_ops.core import settings
from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.plan import FileWrite, Plan, Step
from k8s_ops.core.prompt import Confirm, confirm
from k8s_ops.core.runner import Runner, resume_launching, signal_name, signum_of, stop_launching

__all__ = ["Interrupted", "Outcome", "ReadOnlyViolation", "Report", "StepFailed", "execute"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one step: done, skipped (with the reason) or failed. `results` holds what the step's typed
    effects (other than commands and file writes) returned from `apply`, in order, None left out — e.g. the
    1Password push's item results, which the task prints."""

    index: int
    description: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    results: tuple[object, ...] = ()


@dataclass
class Report:
    """Outcomes in plan order."""

    plan: Plan
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "done")

    def summary(self) -> str:
        skipped = sum(1 for o in self.outcomes if o.status == "skipped")
        return f"{self.plan.title}: {self.changed} done, {skipped} unchanged"


class StepFailed(ToolkitError):
    """A step failed; carries the underlying error and the step."""

    def __init__(
        self, index: int, step: Step, cause: Exception, resume_hint: str | None, started: Sequence[Step] = ()
    ) -> None:
        self.index = index
        self.step = step
        self.cause = cause
        self.started: tuple[Step, ...] = tuple(started)  # steps whose effects began, in plan order
        where = f" on {step.node}" if step.node else ""
        super().__init__(f"step {index} ({step.description}){where} failed:\n{cause}", hint=resume_hint)


class Interrupted(ToolkitError):
    """Ctrl-C, SIGTERM or SIGHUP between or during commands; exit code 128 + the signal (130, 143, 129)."""

    def __init__(
        self, message: str, *, hint: str | None = None, started: Sequence[Step] = (), signum: int = signal.SIGINT
    ) -> None:
        super().__init__(message, hint=hint)
        self.started: tuple[Step, ...] = tuple(started)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def execute(
    plan: Plan,
    runner: Runner,
    *,
    yes: bool = False,
    confirm_name: str | None = None,
    max_concurrency: int | None = None,
    out: Callable[[str], None] = _stderr,
    prompt: Confirm = confirm,
) -> Report:
    """Execute `plan` with `runner`. Destructive plans ask the operator (`prompt`) to type `confirm_name` (or
    the cluster)."""
    if plan.destructive:
        targets = ", ".join(s.node or s.description for s in plan.steps if s.destructive and s.noop is None)
        prompt(confirm_name or plan.cluster, f"{plan.title} ({targets})", yes=yes)
    report = Report(plan)
    started = _Started()
    limit = max_concurrency or settings.concurrency()
    # number steps as Plan.to_text does (no-ops are not counted), so the dry-run and the run agree
    numbered: list[tuple[int, Step]] = []
    n = 0
    for step in plan.steps:
        n += step.noop is None
        numbered.append((n, step))
    i = 0
    try:
        while i < len(numbered):
            idx, step = numbered[i]
            batch = [(idx, step)]
            if step.group is not None:
                while i + len(batch) < len(numbered) and numbered[i + len(batch)][1].group == step.group:
                    batch.append(numbered[i + len(batch)])
            i += len(batch)
            if len(batch) == 1 or limit == 1:
                for bidx, bstep in batch:
                    report.outcomes.append(_run_step(bidx, bstep, runner, plan, out, started))
            else:
                report.outcomes.extend(_run_batch(batch, runner, plan, out, limit, started))
    except KeyboardInterrupt as exc:
        signum = signum_of(exc)
        raise Interrupted(
            _where_stopped(signum, report, started.in_flight()),
            hint=plan.resume_hint or "re-run the same task: completed steps are detected and skipped",
            started=started.in_order(plan),
            signum=signum,
        ) from None
    except StepFailed as exc:
        exc.started = started.in_order(plan)
        raise
    return report


def _where_stopped(signum: int, report: Report, in_flight: Sequence[tuple[int, Step]]) -> str:
    """`stopped by SIGTERM during step 4 (…) on n1; last completed step: 3 (…)` — which steps were cut short (in
    their gates, effects or waits) and the last that completed."""
    what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal_name(signum)}"
    if in_flight:
        where = "; ".join(f"step {i} ({s.description})" + (f" on {s.node}" if s.node else "") for i, s in in_flight)
        line = f"{what} during {where}"
    else:
        line = f"{what} between steps"
    done = [o for o in report.outcomes if o.status == "done"]
    line += f"; last completed step: {done[-1].index} ({done[-1].description})" if done else "; no step completed"
    return line


class _Started:
    """The steps whose effects began (thread-safe: concurrent groups add to it)."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._running: dict[int, Step] = {}  # steps between their guard and their last wait, by number

    def add(self, step: Step) -> None:
        with self._lock:
            self._ids.add(id(step))

    def enter(self, index: int, step: Step) -> None:
        with self._lock:
            self._running[index] = step

    def leave(self, index: int) -> None:
        with self._lock:
            self._running.pop(index, None)

    def in_flight(self) -> tuple[tuple[int, Step], ...]:
        with self._lock:
            return tuple(sorted(self._running.items(), key=lambda item: item[0]))

    def in_order(self, plan: Plan) -> tuple[Step, ...]:
        with self._lock:
            return tuple(s for s in plan.steps if id(s) in self._ids)


def _run_batch(
    batch: list[tuple[int, Step]],
    runner: Runner,
    plan: Plan,
    out: Callable[[str], None],
    limit: int,
    started: _Started,
) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=min(limit, len(batch))) as pool:
        futures = {pool.submit(_run_step, idx, step, runner, plan, out, started): idx for idx, step in batch}
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except KeyboardInterrupt as exc:
            # the signal reached this (main) thread: stop the workers' children and refuse new launches, let every
            # worker return, then report the stop (the recovery runs once nothing else is running)
            stop_launching(signum_of(exc))
            for f in futures:
                f.cancel()
            try:
                wait(futures)
            finally:
                resume_launching()
            raise
        failed = [f for f in done if f.exception() is not None]
        if failed:
            for f in futures:
                f.cancel()  # steps not yet started never start
            wait(futures)
            raise failed[0].exception()  # type: ignore[misc]
    by_index = {futures[f]: f.result() for f in futures}
    return [by_index[idx] for idx, _ in batch]


class ReadOnlyViolation(ToolkitError):
    """A gate, wait or guard tried to run a command marked `mutates` (a bug: effects belong in the step)."""


class _ReadOnly:
    """The runner handed to guards, gates and waits: reads pass, a `mutates=True` command is refused."""

    def __init__(self, runner: Runner, where: str) -> None:
        self._runner = runner
        self._where = where

    def run(self, command: Command, *, check: bool = True) -> Result:
        if command.mutates:
            raise ReadOnlyViolation(
                f"{self._where} tried to run a mutating command: {command.display()}",
                hint="checks only read: make it an effect of the step (commands, prepare/finish)",
            )
        return self._runner.run(command, check=check)


def _run_step(
    index: int, step: Step, runner: Runner, plan: Plan, out: Callable[[str], None], started: _Started
) -> Outcome:
    where = f" [{step.node}]" if step.node else ""
    if step.noop is not None:
        out(f"[-] {step.description}{where}: unchanged — {step.noop}")
        return Outcome(index, step.description, "skipped", step.noop)
    t0 = time.monotonic()
    started.enter(index, step)
    try:
        reads = _ReadOnly(runner, f"a guard, gate or wait of step {index} ({step.description})")
        if step.guard is not None:
            reason = step.guard(reads)
            if reason is not None:
                out(f"[-] {step.description}{where}: unchanged — {reason}")
                started.leave(index)
                return Outcome(index, step.description, "skipped", reason)
        out(f"[{index}] {step.description}{where}")
        for check in step.before:
            out(f"    gate: {check.description}")
            check.run(reads)
        started.add(step)
        results: list[object] = []
        for effect in step.effects:
            if isinstance(effect, FileWrite):
                changed = effect.apply(runner)
                out(f"    {'wrote' if changed else 'unchanged'} {effect.path}")
            elif isinstance(effect, Command):
                out(f"    $ {effect.display()}")
                runner.run(effect)
            else:
                out(f"    {effect.display()}")
                value = effect.apply(runner)
                if value is not None:
                    results.append(value)
        for check in step.after:
            out(f"    wait: {check.description}")
            check.run(reads)
    except ToolkitError as exc:
        started.leave(index)
        raise StepFailed(index, step, exc, plan.resume_hint) from exc
    # a KeyboardInterrupt leaves the step in flight: that is where the run stopped
    started.leave(index)
    seconds = time.monotonic() - t0
    out(f"    done ({seconds:.1f}s)")
    return Outcome(index, step.description, "done", seconds=seconds, results=tuple(results))
