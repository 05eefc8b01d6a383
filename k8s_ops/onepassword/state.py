"""What this machine last pushed or pulled, per item: `<state_dir>/onepassword/<cluster>.json` (0600).

    {"version": 1, "items": {"<vault>/<title>": {"sha256": "…", "op": "push", "at": "2026-…Z"}}}

Only digests, never content. Losing the file is safe: every item then counts as never synced, so push and
pull refuse to replace differing content until `--force` (or an identical copy) settles it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from k8s_ops.core import paths
from k8s_ops.core.errors import SecretError
from k8s_ops.core.files import write_private

__all__ = ["SyncStateFile", "state_path"]

_VERSION = 1
LOCK_TIMEOUT = 60.0


def state_path(cluster: str) -> Path:
    return paths.state_dir() / "onepassword" / f"{cluster}.json"


class SyncStateFile:
    """Per-item digests of the last sync from this machine. Every `record` is written at once."""

    def __init__(self, cluster: str) -> None:
        self.path = state_path(cluster)
        self._items: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SecretError(
                f"sync state file {self.path} is unreadable ({exc.__class__.__name__})",
                hint="delete it: every item then counts as never synced from this machine",
            ) from None
        items = raw.get("items") if isinstance(raw, dict) else None
        if not isinstance(items, dict):
            raise SecretError(f"sync state file {self.path} has no 'items' map", hint="delete it")
        return {k: v for k, v in items.items() if isinstance(v, dict)}

    @staticmethod
    def _key(vault: str, title: str) -> str:
        return f"{vault}/{title}"

    def last(self, vault: str, title: str) -> str | None:
        value = self._items.get(self._key(vault, title), {}).get("sha256")
        return value if isinstance(value, str) else None

    def record(self, vault: str, title: str, sha256: str, op: Literal["push", "pull"]) -> None:
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._items[self._key(vault, title)] = {"sha256": sha256, "op": op, "at": at}
        data = json.dumps({"version": _VERSION, "items": self._items}, indent=2, sort_keys=True) + "\n"
        write_private(self.path, data.encode())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise pushes/pulls of one cluster on this machine (two terminals, or a task and bootstrap)."""
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT)
        try:
            with lock:
                self._items = self._load()  # another process may have synced while we waited
                yield
        except Timeout:
            raise SecretError(f"another op.push/op.pull holds {lock.lock_file}; try again when it is done") from None
