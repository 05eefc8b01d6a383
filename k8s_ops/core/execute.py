"""Run a Plan: re-check guards, confirm destructive work, stop at the first failure and say where."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from k8s_ops.core import settings
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.files import write_private
from k8s_ops.core.plan import Plan, Step
from k8s_ops.core.prompt import confirm
from k8s_ops.core.runner import Runner

__all__ = ["Interrupted", "Outcome", "Report", "StepFailed", "execute"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one step: done, skipped (with the reason) or failed."""

    index: int
    description: str
    status: str
    reason: str = ""
    seconds: float = 0.0


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

    def __init__(self, index: int, step: Step, cause: Exception, resume_hint: str | None) -> None:
        self.index = index
        self.step = step
        self.cause = cause
        where = f" on {step.node}" if step.node else ""
        super().__init__(f"step {index} ({step.description}){where} failed:\n{cause}", hint=resume_hint)


class Interrupted(ToolkitError):
    """Ctrl-C between or during commands."""

    exit_code = 130


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
) -> Report:
    """Execute `plan` with `runner`. Destructive plans ask the operator to type `confirm_name` (or the cluster)."""
    if plan.destructive:
        targets = ", ".join(s.node or s.description for s in plan.steps if s.destructive and s.noop is None)
        confirm(confirm_name or plan.cluster, f"{plan.title} ({targets})", yes=yes)
    report = Report(plan)
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
                    report.outcomes.append(_run_step(bidx, bstep, runner, plan, out))
            else:
                report.outcomes.extend(_run_batch(batch, runner, plan, out, limit))
    except KeyboardInterrupt:
        done = report.outcomes[-1].description if report.outcomes else "nothing"
        raise Interrupted(
            f"interrupted; last completed step: {done}",
            hint=plan.resume_hint or "re-run the same task: completed steps are detected and skipped",
        ) from None
    return report


def _run_batch(
    batch: list[tuple[int, Step]], runner: Runner, plan: Plan, out: Callable[[str], None], limit: int
) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=min(limit, len(batch))) as pool:
        futures = {pool.submit(_run_step, idx, step, runner, plan, out): idx for idx, step in batch}
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            for f in futures:
                f.cancel()  # steps not yet started never start
            wait(futures)
            raise failed[0].exception()  # type: ignore[misc]
    by_index = {futures[f]: f.result() for f in futures}
    return [by_index[idx] for idx, _ in batch]


def _run_step(index: int, step: Step, runner: Runner, plan: Plan, out: Callable[[str], None]) -> Outcome:
    where = f" [{step.node}]" if step.node else ""
    if step.noop is not None:
        out(f"[-] {step.description}{where}: unchanged — {step.noop}")
        return Outcome(index, step.description, "skipped", step.noop)
    started = time.monotonic()
    try:
        if step.guard is not None:
            reason = step.guard(runner)
            if reason is not None:
                out(f"[-] {step.description}{where}: unchanged — {reason}")
                return Outcome(index, step.description, "skipped", reason)
        out(f"[{index}] {step.description}{where}")
        for check in step.before:
            out(f"    gate: {check.description}")
            check.run(runner)
        for w in step.writes:
            changed = write_private(w.path, w.content, mode=w.mode)
            out(f"    {'wrote' if changed else 'unchanged'} {w.path}")
        for command in step.commands:
            out(f"    $ {command.display()}")
            runner.run(command)
        for check in step.after:
            out(f"    wait: {check.description}")
            check.run(runner)
    except ToolkitError as exc:
        raise StepFailed(index, step, exc, plan.resume_hint) from exc
    seconds = time.monotonic() - started
    out(f"    done ({seconds:.1f}s)")
    return Outcome(index, step.description, "done", seconds=seconds)
