"""Small shared helpers: Go durations, deep merge, YAML/JSON IO, ids."""

from __future__ import annotations

import copy
import json
import json.encoder
import marshal
import os
import re
import time
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any, TypeVar

    JSON = dict[str, Any]
    _T = TypeVar("_T")
else:
    JSON = dict  # what `JSON` is at run time (annotations are not evaluated)
_json_str: Callable[[str], str] = json.encoder.encode_basestring_ascii  # the C function when available

_DUR_RE = r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)"  # re.compile'd on first use (cached by re)
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class Record:
    """Equality by attributes and a readable repr for the simulator's small mutable records: what @dataclass gave
    them, without importing dataclasses (it imports inspect: ~6 ms for every simulated call, a fresh interpreter).
    Immutable records are `Frozen`."""

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, like a non-frozen dataclass

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class Frozen:
    """Equality, hash and repr from the fields named in `__slots__`, for the simulator's small immutable records
    (what a frozen dataclass gave them: a dataclass or a NamedTuple is a class built with exec, ~0.5 ms each for
    every simulated call). Fields are assigned in `__init__` only."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, k) for k in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"


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
        m = re.compile(_DUR_RE).match(s, pos)
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


def clone(obj: _T) -> _T:
    """copy.deepcopy for JSON-like data (exact dict, list, str, int, float, bool, None; shared parts stay shared),
    several times faster: a marshal round trip. Anything marshal refuses (a subclass, an object) is deep-copied."""
    try:
        return marshal.loads(marshal.dumps(obj))  # type: ignore[no-any-return,arg-type]
    except ValueError:
        return copy.deepcopy(obj)


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


# PyYAML is imported on use: importing it costs a simulated call (a fresh interpreter) ~8 ms, and the
# talosconfig/kubeconfig every call reads comes from the memo (`memoized`) once parsed.


def yaml_error() -> type[Exception]:
    import yaml  # on use: importing PyYAML costs a simulated call ~8 ms, and most need none

    return yaml.YAMLError


def safe_load(text: str) -> Any:
    """yaml.safe_load, memoized (`memoized`), through libyaml when PyYAML has it (the pure-Python scanner costs
    ~3 ms for a talosconfig). A text libyaml refuses is parsed again by yaml.safe_load, so errors read exactly as
    before (and an error is never memoized)."""
    return memoized("yaml", text, _safe_load)


def _safe_load(text: str) -> Any:
    import yaml  # on use: importing PyYAML costs a simulated call ~8 ms, and most need none

    loader = getattr(yaml, "CSafeLoader", None)  # None: PyYAML without libyaml
    if loader is not None:
        try:
            return yaml.load(text, Loader=loader)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def load_yaml_docs(text: str) -> list[Any]:
    import yaml  # on use: importing PyYAML costs a simulated call ~8 ms, and most need none

    return [d for d in yaml.safe_load_all(text) if d is not None]


def dump_yaml(obj: Any) -> str:
    import yaml  # on use: importing PyYAML costs a simulated call ~8 ms, and most need none

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


def json_indented(obj: Any, indent: int = 4) -> str:
    """`json.dumps(obj, indent=indent)`, byte for byte, faster: with an indent the json module encodes in pure
    Python, generically (~10 ms for `kubectl get -o json` of a 33-node cluster's objects). Anything this does not
    handle the same way (another type, a circular reference) goes to json.dumps itself."""
    try:
        out: list[str] = []
        _json_into(obj, out, "\n", " " * indent, 0)
        return "".join(out)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(obj, indent=indent)


def _json_float(f: float) -> str:
    if f != f:
        return "NaN"
    if f == float("inf"):
        return "Infinity"
    if f == -float("inf"):
        return "-Infinity"
    return float.__repr__(f)


def _json_into(o: Any, out: list[str], nl: str, step: str, depth: int) -> None:
    if isinstance(o, str):
        out.append(_json_str(o))
    elif o is None:
        out.append("null")
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif isinstance(o, int):
        out.append(int.__repr__(o))
    elif isinstance(o, float):
        out.append(_json_float(o))
    elif isinstance(o, (list, tuple)):
        if not o:
            out.append("[]")
            return
        inner = nl + step * (depth + 1)
        first = True
        for v in o:
            out.append(("[" if first else ",") + inner)
            first = False
            _json_into(v, out, nl, step, depth + 1)
        out.append(nl + step * depth + "]")
    elif isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        inner = nl + step * (depth + 1)
        first = True
        for k, v in o.items():
            if isinstance(k, str):
                key = k
            elif isinstance(k, float):
                key = _json_float(k)
            elif k is True:
                key = "true"
            elif k is False:
                key = "false"
            elif k is None:
                key = "null"
            elif isinstance(k, int):
                key = int.__repr__(k)
            else:
                raise TypeError(k)
            out.append(("{" if first else ",") + inner + _json_str(key) + ": ")
            first = False
            _json_into(v, out, nl, step, depth + 1)
        out.append(nl + step * depth + "}")
    else:
        raise TypeError(o)


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
    try:  # CPython's own SHA-1: hashlib would load OpenSSL, ~3 ms for every simulated call (a fresh interpreter)
        from _sha1 import sha1  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - another Python
        from hashlib import sha1

    return str(sha1("\x00".join(parts).encode()).hexdigest()[:n])


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


# ---- a memo of pure functions of a text, kept in the simulator's directory ----------------------------------
# Every simulated call is a fresh interpreter: re-parsing the YAML machine configs of 33 nodes cost a multi-node
# call ~20 ms. The memo maps (what, text) to the marshalled result of a pure function, in one marshal file per
# simulator directory (marshal: built in, and loading it is a memory copy); it changes no outcome, only skips
# the work. A result marshal cannot store (a YAML timestamp is a datetime) is simply not kept.
MEMO_FILE = "memo.marshal"
MEMO_MAX = 160  # entries kept (the most recently used): a few configs per node of a 3 + 30 node cluster
_memo: dict[str, bytes] | None = None
_memo_used: dict[str, None] = {}  # keys this process used, least recently first
_memo_new = False


def _memo_path() -> str | None:
    root = os.environ.get("K8S_OPS_SIM_DIR")
    return os.path.join(root, MEMO_FILE) if root and os.path.isdir(root) else None


def _memo_read(path: str | None) -> dict[str, bytes]:
    try:
        with open(path or "", "rb") as f:
            data = marshal.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, EOFError, ValueError, TypeError):
        return {}


def memoized(what: str, text: str, compute: Callable[[str], _T]) -> _T:
    """compute(text), from the memo when an earlier call (any process on this simulator directory) computed it.
    Each call returns fresh objects (unmarshalled anew), as a fresh computation would."""
    global _memo, _memo_new
    if _memo is None:
        _memo = _memo_read(_memo_path())
        import atexit

        atexit.register(_memo_flush)
    key = f"{what}\0{text}"
    raw = _memo.get(key)
    if raw is not None:
        _memo_used.pop(key, None)
        _memo_used[key] = None
        return marshal.loads(raw)  # type: ignore[no-any-return]
    value = compute(text)
    if len(_memo) < 4 * MEMO_MAX:  # a long-lived process (the test harness) keeps a bounded memo
        try:
            _memo[key] = marshal.dumps(value)  # type: ignore[arg-type]
        except ValueError:
            return value
        _memo_used[key] = None
        _memo_new = True
    return value


def _memo_flush() -> None:
    """At exit, when this process computed something new: merge into the file (atomically replaced; a lost
    update of a concurrent process only costs it a recomputation later)."""
    path = _memo_path()
    if not _memo_new or _memo is None or path is None:
        return
    merged = _memo_read(path)
    for key in _memo_used:  # most recently used last
        merged.pop(key, None)
        merged[key] = _memo[key]
    for key in list(merged)[: max(0, len(merged) - MEMO_MAX)]:
        del merged[key]
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            marshal.dump(merged, f)
        os.replace(tmp, path)
    except OSError:
        pass
