"""What every simulated tool invocation shares: IO, stdin accounting, failures, waiting, the call log."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from .state import Store, locked


class Fail(Exception):
    """Print `message` on stderr and exit with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Ctx:
    def __init__(self, tool: str, argv: list[str], env: Mapping[str, str] | None = None) -> None:
        self.tool = tool
        self.argv = argv
        self.env = dict(os.environ if env is None else env)
        self.stdin_bytes: int | None = None
        self._stdin: bytes | None = None
        self.store = Store(step_pending=True)  # a call is one step of the logical clock (state.py)
        self.cwd = Path.cwd()

    def out(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def err(self, text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    def read_stdin(self) -> bytes:
        if self._stdin is None:
            self._stdin = sys.stdin.buffer.read() if sys.stdin is not None else b""
            self.stdin_bytes = len(self._stdin)
        return self._stdin

    def read_file(self, path: str) -> bytes:
        if path in ("-", "/dev/stdin", "/proc/self/fd/0", "/dev/fd/0"):
            return self.read_stdin()
        p = Path(path).expanduser()
        if not p.is_absolute():
            p = self.cwd / p
        return p.read_bytes()

    def home(self) -> Path:
        return Path(self.env.get("HOME") or Path.home())

    def waiter(self, timeout: float | None) -> Waiter:
        """How a waiting command (`--wait`, `kubectl wait`, `health`, ...) paces its polls and times out."""
        return Waiter(self, timeout)


class Waiter:
    """The clock of one waiting command: `timeout` (None: no deadline) expires after `timeout / step_seconds`
    polls — simulated seconds, never real ones, so a slow machine cannot make a wait time out that a fast one
    passes. Each `sleep()` is one poll: it sleeps `poll_interval` real seconds (only to let other processes
    run) and makes the next transaction a new step of the logical clock. Under `clock: wall` (benchmarks) the
    timeout is in real seconds."""

    def __init__(self, ctx: Ctx, timeout: float | None) -> None:
        self.store = ctx.store
        with self.store.read() as w:
            self.interval = float(w.setting("poll_interval"))
            self.step = w.step
            self.wall = w.wall
        self.timeout = timeout
        self.polls = 0
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        """Seconds waited so far: polls x step_seconds (logical clock) or real seconds (wall clock)."""
        return time.monotonic() - self.started if self.wall else self.polls * self.step

    def expired(self) -> bool:
        return self.timeout is not None and self.elapsed >= self.timeout

    def sleep(self, until: float | None = None) -> None:
        """One poll's pause. `until` (wall clock only): a real time something is due (a reboot ends) — the pause
        ends then if that is sooner, as talosctl's event stream would deliver it then rather than at a poll."""
        pause = self.interval
        if self.wall and until is not None:
            pause = min(pause, max(0.0, until - time.time()) + 0.001)
        time.sleep(pause)
        self.polls += 1
        self.store.step_pending = True


def log_call(ctx: Ctx, rc: int | None, started: float) -> None:
    root = ctx.store.root
    root.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {
            "tool": ctx.tool,
            "argv": ctx.argv,
            "stdin_bytes": ctx.stdin_bytes,
            "ts": started,
            "rc": rc,
            "pid": os.getpid(),
        }
    )
    with locked(root / "calls.log.lock"), open(root / "calls.log", "a", encoding="utf-8") as f:
        f.write(line + "\n")
