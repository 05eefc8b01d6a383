"""Private file writes: atomic, 0600 files in 0700 directories, never half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_new", "write_private"]


def write_private(path: Path, data: bytes, *, mode: int = 0o600) -> bool:
    """Atomically write `data` to `path` with `mode`, creating parents 0700. Returns False if unchanged.

    The temp file is created 0600 from the start (mkstemp), so secret bytes are never readable by others.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except FileNotFoundError:
        pass
    _publish(path, data, mode, os.replace)
    return True


def write_new(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Create `path` atomically and exclusively: a complete file appears, or nothing; an existing file wins.

    Raises FileExistsError when `path` exists (or appears meanwhile): os.link of the finished temp file fails
    with EEXIST instead of replacing, unlike os.replace.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _publish(path, data, mode, os.link)


def _publish(path: Path, data: bytes, mode: int, place: Callable[[str, Path], None]) -> None:
    """Write `data` to a 0600 temp file beside `path` (synced, then `mode`), put it in place with `place`
    (`os.replace` overwrites, `os.link` refuses an existing file), and never leave the temp file behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        place(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
