"""Durations and sizes as operators read them, and Go durations as Talos, Flux and kubectl write them.

One place for these conversions: the etcd backup listing, dr-check, the fleet table and restic's snapshot table
print ages and sizes the same way, and every Go duration in an inventory or a Flux object is parsed by one parser.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["age_text", "go_duration", "parse_go_duration", "size_text"]

_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(value: Any) -> float | None:
    """A Go `time.ParseDuration` string (`1h`, `30m`, `1h30m`, `1.5s`) in seconds; None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    pos, total = 0, 0.0
    for m in _GO_PART.finditer(value):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _GO_UNIT[m.group(2)]
        pos = m.end()
    return total if pos == len(value) else None


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration for a CLI flag: whole minutes as `10m`, else seconds (`90s`, `0.25s`)."""
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    if seconds >= 60 and float(seconds).is_integer() and int(seconds) % 60 == 0:
        return f"{int(seconds) // 60}m"
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    # millisecond resolution is plenty and keeps the argv readable
    return f"{math.ceil(seconds * 1000) / 1000:g}s"


def age_text(seconds: float) -> str:
    """An age in the largest two units: `42m`, `5h07m`, `3d4h`."""
    s = max(0, int(seconds))
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def size_text(size: int | None, *, digits: int = 1) -> str:
    """Bytes in binary units (`12.5 MiB`; restic prints 3 digits); `-` when unknown."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.{digits}f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable: TiB takes everything left
