"""The one task pipeline: load target → build plan → `--dry-run` (text) / `--dry-run --json` → confirm → execute →
one summary line.

Every invoke task ends in `finish(plan, runner, …)`; every task gets its runner from `runner_from(c)`, which reads
invoke's context config (`c.config.k8s_ops.runner`) and falls back to a `SubprocessRunner`. Tests inject a fake the
invoke way instead of patching:

    from invoke import Config, Context
    fake = FakeRunner(...)
    ctx = Context(Config(overrides={"k8s_ops": {"runner": lambda: fake}}))
    talos_tasks.health(ctx, cluster="lab", dry_run=True, json=True)

`--dry-run --json` prints `Plan.to_json()` plus `on_failure` (`Plan.recovery`: what runs if a step fails, or null):
one JSON shape for every task, pinned by tests/fixtures/plan.schema.json.
"""

from __future__ import annotations

import contextlib
import contextvars
import json as _json
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from k8s_ops.core.errors import ToolkitError, last_error_line

if TYPE_CHECKING:
    from k8s_ops.core.execute import Report, StepFailed
    from k8s_ops.core.lease import Clock
    from k8s_ops.core.plan import Plan, Recovery
    from k8s_ops.core.prompt import Confirm
    from k8s_ops.core.runner import Runner

__all__ = [
    "BREAK_LOCK_HELP",
    "CLUSTER_HELP",
    "DRY_RUN_HELP",
    "JSON_HELP",
    "LOCK_HELP",
    "LOCK_TIMEOUT_HELP",
    "YES_HELP",
    "RecoveryFailed",
    "finish",
    "help_for",
    "locked",
    "mutates",
    "plan_json",
    "run",
    "runner_from",
    "show",
]

CLUSTER_HELP = "cluster name (directory under the clusters dir; K8S_OPS_CLUSTERS_DIR overrides it)"
DRY_RUN_HELP = "print the plan (commands, file writes as masked diffs, gates, waits, no-ops) and change nothing"
JSON_HELP = "with --dry-run: print the plan as JSON"
YES_HELP = "skip the typed confirmation (non-interactive use)"
LOCK_TIMEOUT_HELP = (
    "seconds to wait for another run's lock on the cluster, local or its cluster-side Lease "
    "(default 0: fail at once, naming the holder and since when; exit code 75)"
)
BREAK_LOCK_HELP = (
    "take the cluster lock of a run known to be dead: the local lock file and/or the Lease k8s-ops/<cluster> "
    "(asks you to type the cluster name)"
)
LOCK_HELP = {"lock-timeout": LOCK_TIMEOUT_HELP, "break-lock": BREAK_LOCK_HELP}
"""`help=` entries of the two lock options, for `help_for(**LOCK_HELP, …)` on every mutating task."""

# clusters whose lock this thread already holds: a task that finishes several plans (or a plan run inside a run)
# does not wait for itself; other threads start with an empty set, so they contend like other processes
_HELD: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("k8s_ops_held_locks", default=frozenset())


def help_for(**extra: str) -> dict[str, str]:
    """`help={}` for a task: the shared `cluster`/`dry-run`/`json` texts plus the task's own (which win)."""
    return {"cluster": CLUSTER_HELP, "dry-run": DRY_RUN_HELP, "json": JSON_HELP, **extra}


class _ConfigLike(Protocol):
    def get(self, key: str, default: Any = ..., /) -> Any: ...


class _ContextLike(Protocol):
    @property
    def config(self) -> _ConfigLike: ...


def runner_from(c: _ContextLike) -> Runner:
    """The runner configured in invoke's context, else a `SubprocessRunner`.

    `k8s_ops.runner` holds a zero-argument factory (invoke deep-copies config values, so a runner object put there
    would arrive as a copy whose calls the test never sees; a function is copied by reference).
    """
    section = c.config.get("k8s_ops") or {}
    factory = section.get("runner") if isinstance(section, Mapping) else None
    if factory is not None:
        return factory()  # type: ignore[no-any-return]
    from k8s_ops.core.runner import SubprocessRunner

    return SubprocessRunner()


class RecoveryFailed(ToolkitError):
    """The operation failed; the recovery ran (completely or not) and the message says what state is left."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


def plan_json(plan: Plan) -> dict[str, Any]:
    """The `--dry-run --json` document: the plan as data plus `on_failure` (its recovery, or null without one)."""
    data = plan.to_json()
    recovery = plan.recovery
    data["on_failure"] = recovery.to_json() if recovery is not None else None
    return data


def _plan_text(plan: Plan) -> str:
    text = plan.to_text()
    recovery = plan.recovery
    if recovery is not None and recovery.commands:
        text += "on failure of any step (then the task exits non-zero):\n"
        text += "".join(f"    $ {c.display()}\n" for c in recovery.commands)
    return text


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def show(plan: Plan, *, json: bool = False) -> None:
    """The `--dry-run` output on stdout: the plan as text (then what runs on failure), or as JSON."""
    sys.stdout.write(_json.dumps(plan_json(plan), indent=2) + "\n" if json else _plan_text(plan))


def finish(
    plan: Plan,
    runner: Runner,
    *,
    dry_run: bool,
    json: bool = False,
    yes: bool = False,
    confirm_name: str | None = None,
    max_concurrency: int | None = None,
    echo_plan: bool = False,
    on_step_failed: Callable[[StepFailed], ToolkitError] | None = None,
    summary: bool = True,
    lock_timeout: float = 0.0,
    break_lock: bool = False,
    local_lock: str | None = None,
    json_progress: bool = False,
) -> Report | None:
    """Show the plan (`dry_run`: text, or JSON with `json`; returns None) or execute it and print one summary line.

    `confirm_name` is what the operator types for a destructive plan (default: the cluster); the plan's recovery
    (`Plan.on_failure` with the steps' undos) runs when a step fails and is shown in the dry run; `echo_plan` prints
    the plan to stderr before running it (long runbooks); `on_step_failed` turns a failed step into the task's own
    error (e.g. a stage-aware resume hint); `summary=False` leaves the closing line to the task.

    A plan that mutates anything runs under the cluster's lock, taken right before it runs and released when it
    ends however it ends: the local flock (`k8s_ops.core.lock`) and, when the Kubernetes API answers, the Lease
    `k8s-ops/<cluster>` (`k8s_ops.core.lease`). A second run waits up to `lock_timeout` seconds, then fails
    (ClusterLocked, exit 75) naming the holder; `break_lock` takes a dead holder's lock after a typed
    confirmation. Read-only plans take no lock; a dry run of a mutating plan says in one line which lock the run
    would take (stdout after the plan; stderr with `--json`, so the JSON stays the plan) and takes none.
    `local_lock` names the lock of a plan that belongs to no cluster and writes local files only (the fleet's
    merged configs): that local lock alone, no Lease. `json_progress`: the task streams its progress as JSON lines
    with --json (a rollout), so --json is not just a dry-run option there and no note says it is.
    """
    if dry_run:
        show(plan, json=json)
        if mutates(plan) and _lock_key(plan, local_lock) not in _HELD.get():
            from k8s_ops.core.lease import describe
            from k8s_ops.core.lock import describe_local

            line = describe_local(local_lock) if local_lock is not None else describe(plan.cluster)
            print(line, file=sys.stderr if json else sys.stdout, flush=True)
        return None
    if json and not json_progress:
        print("note: --json only changes --dry-run output", file=sys.stderr)
    from k8s_ops.core.execute import StepFailed

    if echo_plan:
        print(plan.to_text(), end="", file=sys.stderr)
    try:
        with locked(plan, runner, timeout=lock_timeout, break_lock=break_lock, local=local_lock):
            report = run(plan, runner, yes=yes, confirm_name=confirm_name, max_concurrency=max_concurrency)
    except StepFailed as exc:
        if on_step_failed is not None:
            raise on_step_failed(exc) from None
        raise
    if summary:
        print(report.summary())
    return report


def mutates(plan: Plan) -> bool:
    """Whether running `plan` may change anything (a step that is not a no-op has a mutating effect)."""
    return any(step.noop is None and step.mutates for step in plan.steps)


@contextlib.contextmanager
def locked(
    plan: Plan,
    runner: Runner | None = None,
    *,
    timeout: float = 0.0,
    break_lock: bool = False,
    prompt: Confirm | None = None,
    clock: Clock | None = None,
    local: str | None = None,
) -> Iterator[None]:
    """Hold the plan's cluster lock around the body when the plan mutates (and this thread does not hold it yet):
    the local lock, then — with a `runner` and an API that answers — the cluster's Lease, both within `timeout`
    seconds in all. Nested `locked`/`finish` calls of the same thread for the same cluster run inside the held
    lock (a task of several plans holds it across all of them). `local` names the lock of a plan that belongs to
    no cluster (local files only): no Lease. `prompt`/`clock` are for tests (the typed confirmation, the lease's
    time)."""
    held = _HELD.get()
    key = _lock_key(plan, local)
    if not mutates(plan) or key in held:
        yield
        return
    import time

    from k8s_ops.core.lease import cluster_lease, identity
    from k8s_ops.core.lock import cluster_lock
    from k8s_ops.core.prompt import confirm

    ask = prompt or confirm
    started = time.monotonic()
    name = local if local is not None else plan.cluster
    with cluster_lock(
        name, plan.title, timeout=timeout, break_lock=break_lock, prompt=ask, out=_stderr, local=local is not None
    ) as me:
        lease: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if runner is not None and local is None:
            lease = cluster_lease(
                runner,
                plan.cluster,
                identity(me.task, me.user, me.host, me.pid),
                timeout=max(timeout - (time.monotonic() - started), 0.0),
                break_lock=break_lock,
                prompt=ask,
                out=_stderr,
                clock=clock,
            )
        with lease:
            token = _HELD.set(held | {key})
            try:
                yield
            finally:
                _HELD.reset(token)


def _lock_key(plan: Plan, local: str | None) -> str:
    """What `_HELD` records: the cluster, or `_<name>` for a local-files lock ('_' is never in a cluster name)."""
    return f"_{local}" if local is not None else plan.cluster


def run(
    plan: Plan,
    runner: Runner,
    *,
    yes: bool = False,
    confirm_name: str | None = None,
    max_concurrency: int | None = None,
    out: Callable[[str], None] = _stderr,
) -> Report:
    """Execute `plan`; if a step fails or is interrupted, run its recovery (`Plan.recovery`) and fail with what it
    did."""
    from k8s_ops.core.execute import Interrupted, StepFailed, execute

    try:
        return execute(plan, runner, yes=yes, confirm_name=confirm_name, max_concurrency=max_concurrency, out=out)
    except (StepFailed, Interrupted) as exc:
        recovery = plan.recovery
        if recovery is not None:
            recovery = recovery.after(exc.started)  # undo only what ran
        if recovery is None or not recovery.commands:
            raise
        _recover(exc, recovery, runner, out)
        raise  # unreachable: _recover always raises


def _recover(exc: ToolkitError, recovery: Recovery, runner: Runner, out: Callable[[str], None]) -> None:
    """Run `recovery` after a failure or a stop signal and raise RecoveryFailed saying what state is left.

    A second Ctrl-C/SIGTERM/SIGHUP during the recovery stops it (the command in flight is terminated), but never
    silently: the error lists every undo not yet done and the exact commands that finish it.
    """
    from k8s_ops.core.execute import Interrupted
    from k8s_ops.core.runner import signal_name, signum_of

    if isinstance(exc, Interrupted):
        out(f"recovering: {exc.message.split(';')[0]}; undoing what would leave the app stopped")
    else:
        out("recovering: the operation failed, undoing what would leave the app stopped")
    failed: list[str] = []
    undos = recovery.undos
    for u, undo in enumerate(undos):
        for c, command in enumerate(undo.commands):
            out(f"    $ {command.display()}")
            try:
                result = runner.run(command, check=False)
            except ToolkitError as rexc:
                failed.append(f"{command.display()}: {rexc}")
                continue
            except KeyboardInterrupt as again:
                left = [undo.commands[c:], *(later.commands for later in undos[u + 1 :])]
                phrases = [undo.done, *(later.done for later in undos[u + 1 :])]
                raise RecoveryFailed(
                    f"{exc.message}\nrecovery INTERRUPTED by {signal_name(signum_of(again))} — not done:\n"
                    + "".join(f"  - {p}\n" for p in phrases)
                    + "finish it by running:\n"
                    + "".join(f"  $ {cmd.display()}\n" for cmds in left for cmd in cmds)
                    + "".join(f"  (failed before the stop: {f})\n" for f in failed),
                    hint=exc.hint,
                    exit_code=exc.exit_code,
                ) from exc
            if not result.ok:
                failed.append(f"{command.display()}: {last_error_line(result)}")
    if failed:
        raise RecoveryFailed(
            f"{exc.message}\nrecovery INCOMPLETE — these commands failed, run them by hand:\n"
            + "\n".join(f"  - {f}" for f in failed),
            hint=exc.hint,
            exit_code=exc.exit_code,
        ) from exc
    raise RecoveryFailed(f"{exc.message}\n{recovery.done}", hint=exc.hint, exit_code=exc.exit_code) from exc
