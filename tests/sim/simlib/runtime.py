"""What every simulated tool invocation shares: IO, stdin accounting, failures, the call log."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from filelock import FileLock

from .state import Store


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
        self.store = Store()
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

    def poll(self) -> float:
        with self.store.tx(tick=False) as w:
            return float(w.setting("poll_interval"))

    def sleep_poll(self, interval: float) -> None:
        time.sleep(interval)


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
    with FileLock(str(root / "calls.log.lock"), timeout=60), open(root / "calls.log", "a", encoding="utf-8") as f:
        f.write(line + "\n")
