"""Small shared helpers: Go durations, deep merge, YAML/JSON IO, ids."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import time
from typing import Any

import yaml

JSON = dict[str, Any]

_DUR_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """Go `time.ParseDuration`: "1m0s", "10m", "500ms", "1h2m3.5s" -> seconds."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if s[:1] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if not s:
        raise DurationError(f'time: invalid duration "{text}"')
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DUR_RE.match(s, pos)
        if not m:
            if re.fullmatch(r"\d+(\.\d+)?", s[pos:]):
                raise DurationError(f'time: missing unit in duration "{text}"')
            raise DurationError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """Go `time.Duration.String()` for whole-ish durations: 60 -> "1m0s", 0.5 -> "500ms"."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms"
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    s_txt = f"{s:.9f}".rstrip("0").rstrip(".") if s != int(s) else str(int(s))
    out = ""
    if h:
        out += f"{int(h)}h"
    if h or m:
        out += f"{int(m)}m"
    return out + f"{s_txt}s"


def deep_merge(base: Any, over: Any) -> Any:
    """Helm-style merge: maps merge recursively, everything else (lists, scalars) is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for k, v in over.items():
            out[k] = deep_merge(out[k], v) if k in out else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def dig(obj: Any, *path: str | int, default: Any = None) -> Any:
    cur = obj
    for p in path:
        if isinstance(p, int):
            if not isinstance(cur, list) or p >= len(cur):
                return default
            cur = cur[p]
        else:
            if not isinstance(cur, dict) or p not in cur:
                return default
            cur = cur[p]
    return cur


def load_yaml_docs(text: str) -> list[Any]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


def dump_json(obj: Any, indent: int | None = 4) -> str:
    return json.dumps(obj, indent=indent, sort_keys=False)


def new_uuid() -> str:
    """A random (version 4) UUID. Not `uuid.uuid4()`: importing uuid (and platform) costs every simulated call,
    a fresh interpreter, a few milliseconds."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def short_hash(*parts: str, n: int = 10) -> str:
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:n]


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def age(ts: float, now: float) -> str:
    d = max(0, int(now - ts))
    if d < 120:
        return f"{d}s"
    if d < 7200:
        return f"{d // 60}m"
    if d < 48 * 3600:
        return f"{d // 3600}h"
    return f"{d // 86400}d"


def table(rows: list[list[str]], sep: str = "   ") -> str:
    """Left-aligned columns like Go's tabwriter (padding 3)."""
    if not rows:
        return ""
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(max(len(r) for r in rows))]
    lines = []
    for r in rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append(sep.join(cells).rstrip())
    return "\n".join(lines) + "\n"


def truthy(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.strip().lower() == "true"
    return bool(v)


def image_tag(image: str | None) -> str | None:
    """The tag of `registry/path:tag` (ignores a digest)."""
    if not image:
        return None
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None
