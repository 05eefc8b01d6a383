"""Append-only audit log of executed commands (redacted), one JSON line each, under the user state dir."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from k8s_ops.core.command import Command
from k8s_ops.core.paths import state_dir
from k8s_ops.core.secret import mask_text

__all__ = ["AuditLog"]

_lock = threading.Lock()


class AuditLog:
    """Writes `{ts, cmd, rc, seconds, mutates, node}`; the command is the masked display form."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "audit.log"

    def record(self, command: Command, returncode: int | None, seconds: float, note: str = "") -> None:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cmd": mask_text(command.display()),  # masked again with every secret value known to the run
            "rc": returncode,
            "seconds": round(seconds, 3),
            "mutates": command.mutates,
            "node": command.node,
        }
        if note:
            entry["note"] = mask_text(note)
        line = json.dumps(entry, sort_keys=True) + "\n"
        with _lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
