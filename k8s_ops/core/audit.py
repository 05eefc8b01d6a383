"""Append-only audit log of executed commands (redacted), one JSON line each, under the user state dir.

Each command leaves two lines: `start` before the process is spawned and `end` after it returned (with `rc`), so a
run killed mid-command (SIGKILL, power loss) still shows what was in flight: a `start` without its `end`. The log is
opened without following symlinks and must be a regular file of ours, 0600 (a wider one is tightened, saying so).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
import time
from pathlib import Path

from k8s_ops.core.command import Command
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.files import tighten
from k8s_ops.core.paths import state_dir
from k8s_ops.core.secret import mask_text

__all__ = ["AuditLog", "AuditLogError"]

_lock = threading.Lock()


class AuditLogError(ToolkitError):
    """The audit log cannot be written safely (a symlink, not a regular file); nothing runs without it."""


class AuditLog:
    """Writes `{ts, event, id, pid, cmd, rc, seconds, mutates, node}`; the command is the masked display form.

    `begin` writes the `start` line and returns the entry's id; `record` writes the `end` line (`id` pairs them).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "audit.log"

    def begin(self, command: Command) -> str:
        """Record that `command` is about to start; returns the id its `record` repeats."""
        entry_id = f"{os.getpid()}-{time.monotonic_ns()}"
        self._write({"event": "start", "id": entry_id, **self._describe(command)})
        return entry_id

    def record(
        self, command: Command, returncode: int | None, seconds: float, note: str = "", *, entry_id: str = ""
    ) -> None:
        """Record that `command` ended (`returncode` None: killed, timed out or interrupted — see `note`)."""
        entry: dict[str, object] = {"event": "end", **self._describe(command), "rc": returncode}
        entry["seconds"] = round(seconds, 3)
        if entry_id:
            entry["id"] = entry_id
        if note:
            entry["note"] = mask_text(note)
        self._write(entry)

    @staticmethod
    def _describe(command: Command) -> dict[str, object]:
        return {
            "cmd": mask_text(command.display()),  # masked again with every secret value known to the run
            "mutates": command.mutates,
            "node": command.node,
            "pid": os.getpid(),
        }

    def _write(self, entry: dict[str, object]) -> None:
        entry["ts"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = json.dumps(entry, sort_keys=True) + "\n"
        with _lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # O_NOFOLLOW: a symlink planted at the log's path would redirect our writes; O_NONBLOCK: a FIFO there
            # would block the open forever (with it, it fails or is refused below as not a regular file)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            try:
                fd = os.open(self.path, flags, 0o600)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise AuditLogError(
                        f"the audit log {self.path} is a symlink; refusing to follow it",
                        hint=f"remove it (rm {self.path}) or point K8S_OPS_STATE_DIR elsewhere",
                    ) from None
                raise AuditLogError(f"cannot open the audit log {self.path}: {exc.strerror}") from None
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise AuditLogError(
                        f"the audit log {self.path} is not a regular file", hint=f"remove it (rm {self.path})"
                    )
                tighten(self.path)
                os.write(fd, line.encode())
            finally:
                os.close(fd)
