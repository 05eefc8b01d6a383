"""YAML in and out for the inventory, machine configs and patches, with Talos' (Go yaml.v3) reading of scalars.

One dialect for every file the toolkit reads (cluster.yaml and patches alike). Loading uses YAML 1.2 core rules
like Talos does: `off`, `on`, `yes`, `no`, `y`, `n` stay strings (PyYAML's YAML 1.1
default turns them into booleans, which breaks `HostnameConfig.auto: off`), `1:20` and `2024-01-01` stay strings,
and a key defined twice in one mapping is an error instead of "last one wins" (the inventory reads with `Loader`,
which keeps both and lets the inventory report the duplicate with both lines). libyaml's parser is used when
PyYAML has it (same nodes and line marks, several times faster); `PyLoader` is the pure-Python twin.

Dumping is deterministic: keys in insertion order (templates and merges define it), 2-space indent with
indented sequences (kubectl style; Talos writes 4 spaces, same data), no anchors/aliases, no line folding,
multi-line strings as `|` blocks.
Any string a YAML 1.1 reader could take for another type (`'off'`, `'yes'`, `'1:20'`, `'0644'` …) is quoted.

Reading is bounded, because a cluster file or patch may come from a pull request: `read_text` takes regular files
only (a FIFO, device, `/dev/zero` or directory is refused without opening it for a blocking read) up to
`MAX_FILE_BYTES`; `check_graph` refuses a document whose aliases expand past `MAX_EXPANDED_NODES` values
("billion laughs"), a recursive alias, or nesting deeper than `MAX_DEPTH`; NUL bytes and integers longer than
`MAX_INT_DIGITS` (Python refuses to convert them) are YAMLErrors with the line, never a ValueError from deep inside.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from k8s_ops.core.paths import redact

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPANDED_NODES",
    "MAX_FILE_BYTES",
    "MAX_INT_DIGITS",
    "Loader",
    "LocatedDocument",
    "PyLoader",
    "YAMLError",
    "check_graph",
    "dump_document",
    "dump_documents",
    "load_document",
    "load_documents",
    "load_located_documents",
    "nul_line",
    "read_text",
    "reader_error_line",
]

#: Largest YAML file read (cluster files and patches are a few KiB; a rendered machine config ~100 KiB).
MAX_FILE_BYTES = 4 << 20
#: Deepest nesting of mappings/sequences accepted (Talos configs nest about 10 levels).
MAX_DEPTH = 100
#: Most values a document may expand to once aliases are followed (each alias counts its whole subtree again).
MAX_EXPANDED_NODES = 200_000
#: Longest integer literal: Python refuses int() of more than 4300 decimal digits (sys.get_int_max_str_digits).
MAX_INT_DIGITS = 4300


class YAMLError(ValueError):
    """Unparseable or unacceptable YAML; the message names the line (1-based) when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _FILE_KINDS if test(mode)), "not a regular file")


def read_bytes(path: Path | str) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES; YAMLError for anything else.

    The file type is checked before opening (so a FIFO never blocks the read) and again on the open descriptor
    (opened non-blocking, so a file swapped for a FIFO in between cannot block either). OSError (missing file,
    permission) propagates for the caller to report.
    """
    kind = _not_regular(os.stat(path).st_mode)
    if kind is not None:
        raise YAMLError(f"not a regular file ({kind}); expected a YAML file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        kind = _not_regular(os.fstat(f.fileno()).st_mode)
        if kind is not None:
            raise YAMLError(f"not a regular file ({kind}); expected a YAML file")
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise YAMLError(f"file is larger than {MAX_FILE_BYTES} bytes; not a cluster file or patch")
    return data


def read_text(path: Path | str) -> str:
    """The UTF-8 text of a regular file of at most MAX_FILE_BYTES (`read_bytes`); YAMLError for anything else."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YAMLError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", data.count(b"\n", 0, exc.start) + 1) from None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_graph(root: yaml.Node) -> None:
    """Refuse a composed document that is recursive, nested deeper than MAX_DEPTH, or expands (aliases followed)
    to more than MAX_EXPANDED_NODES values. Iterative and linear in the distinct nodes: an alias is the same node
    object as its anchor, so its subtree's size and height are computed once."""
    height: dict[int, int] = {}
    size: dict[int, int] = {}
    open_: set[int] = set()  # the current path from the root: a child on it is a recursive alias
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = _children(node)
        if done:
            open_.discard(key)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            line = node.start_mark.line + 1
            if height[key] > MAX_DEPTH:
                raise YAMLError(f"invalid YAML: nested deeper than {MAX_DEPTH} levels", line)
            if size[key] > MAX_EXPANDED_NODES:
                raise YAMLError(
                    f"invalid YAML: aliases expand this document to more than {MAX_EXPANDED_NODES} values "
                    "(an alias of aliases, 'billion laughs'?)",
                    line,
                )
            continue
        if key in height:
            continue
        open_.add(key)
        stack.append((node, True))
        for kid in kids:
            if id(kid) in open_:
                raise YAMLError("invalid YAML: recursive alias (an anchor used inside itself)", kid.start_mark.line + 1)
            if id(kid) not in height:
                stack.append((kid, False))


# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution), as Go yaml.v3 resolves it.
_RESOLVERS: tuple[tuple[str, str, str], ...] = (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL)$", "~nN"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?(?:0|[1-9][0-9]*)|0[0-7]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),  # yaml.v3 merges `<<: *anchor` keys in YAML 1.2 too
)
MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_object(self: Any, node: yaml.Node, deep: bool = False) -> Any:
    """A value that cannot be built (an `!!int` of 5000 digits, an `!!timestamp` that is no date) is a
    ConstructorError at its line, not a ValueError/TypeError from inside PyYAML."""
    if node.tag == "tag:yaml.org,2002:int" and isinstance(node.value, str):
        digits = len(node.value.lstrip("+-"))
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {digits} digits (at most {MAX_INT_DIGITS})", node.start_mark
            )
    try:
        return yaml.constructor.SafeConstructor.construct_object(self, node, deep=deep)
    except yaml.YAMLError:
        raise
    except (ValueError, TypeError, AttributeError, OverflowError, IndexError, KeyError) as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"cannot read the {node.tag.rsplit(':', 1)[-1]} value ({type(exc).__name__})", node.start_mark
        ) from None


def _yaml12(base: Any) -> type[yaml.SafeLoader]:
    """`base` (libyaml's or PyYAML's safe loader) with the YAML 1.2 core implicit types instead of YAML 1.1's."""
    loader: Any = type(
        f"Yaml12{base.__name__}", (base,), {"yaml_implicit_resolvers": {}, "construct_object": _construct_object}
    )
    for tag, pattern, first in _RESOLVERS:
        loader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))
    loader.yaml_implicit_resolvers.setdefault("", []).append(("tag:yaml.org,2002:null", re.compile(r"^$")))
    result: type[yaml.SafeLoader] = loader
    return result


#: The dialect's pure-Python loader (keeps the last of duplicate keys; callers that index nodes report them).
PyLoader: type[yaml.SafeLoader] = _yaml12(yaml.SafeLoader)
#: The dialect's loader: libyaml's parser when PyYAML was built with it, else `PyLoader`.
Loader: type[yaml.SafeLoader] = _yaml12(yaml.CSafeLoader) if hasattr(yaml, "CSafeLoader") else PyLoader


def _unique_keys(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    class _UniqueKeyLoader(base):  # type: ignore[misc,valid-type]
        """The dialect with a key defined twice in one mapping as an error."""

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue  # merged keys may be overridden; PyYAML flattens them below
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable key: let PyYAML report it
                    break
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
            result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
            return result

    return _UniqueKeyLoader


_Loader = _unique_keys(Loader)


class _Dumper(yaml.SafeDumper):
    """SafeDumper with indented block sequences and no aliases."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _represent_str)


def _as_text(text: str | bytes) -> str:
    return text if isinstance(text, str) else text.decode("utf-8", "replace")


def nul_line(text: str | bytes) -> int | None:
    """1-based line of the first NUL byte, or None (a NUL means a binary file, never YAML)."""
    body = _as_text(text)
    at = body.find("\0")
    return None if at < 0 else body.count("\n", 0, at) + 1


def reader_error_line(exc: yaml.YAMLError, text: str | bytes) -> int | None:
    """The 1-based line of a YAML error: its mark, or for a reader error (a control character) its position."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(exc, "position", None)
    if isinstance(position, int):
        return _as_text(text).count("\n", 0, position) + 1
    return None


def _documents(
    text: str | bytes, loader_class: type[yaml.SafeLoader] | None = None
) -> Iterator[tuple[yaml.SafeLoader, yaml.Node, Any]]:
    """(loader, node, data) per non-empty document, each checked by `check_graph` before it is constructed; every
    problem a YAMLError with its line (the one bounded reading `load_documents` and `load_located_documents` share).
    `loader_class` (default: this module's dialect) is for files another tool reads with YAML 1.1 rules."""
    line = nul_line(text)
    if line is not None:
        raise YAMLError("invalid YAML: a NUL byte (binary data, not a YAML text)", line)
    loader = (loader_class or _Loader)(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            check_graph(node)
            data = loader.construct_document(node)
            if data is not None:
                yield loader, node, data
    except yaml.MarkedYAMLError as exc:
        problem = redact(exc.problem or "unreadable")  # it may quote the input (`found undefined alias 'x'`)
        raise YAMLError(f"invalid YAML: {problem}", reader_error_line(exc, text)) from None
    except yaml.YAMLError as exc:
        what = getattr(exc, "reason", None) or "unreadable"
        raise YAMLError(f"invalid YAML: {what}", reader_error_line(exc, text)) from None
    except RecursionError:  # the pure-Python parser nests a call per level; libyaml stops at 1000 levels itself
        raise YAMLError(f"invalid YAML: nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def load_documents(text: str | bytes, *, loader: type[yaml.SafeLoader] | None = None) -> list[Any]:
    """Every document of a (multi-document) YAML stream; empty documents (`---` alone, comments) are skipped.

    Bounded (module docstring): every problem is a YAMLError with its line. `loader`: another SafeLoader dialect
    (e.g. PyYAML's YAML 1.1 one, for files Kubernetes, Flux or helm read with YAML 1.1 rules), same bounds."""
    return [data for _, _, data in _documents(text, loader)]


def load_document(text: str | bytes, *, loader: type[yaml.SafeLoader] | None = None) -> Any:
    """The one document of a YAML text (None when empty), bounded as `load_documents`; YAMLError for several."""
    docs = load_documents(text, loader=loader)
    if len(docs) > 1:
        raise YAMLError(f"expected one YAML document, found {len(docs)}")
    return docs[0] if docs else None


@dataclass(frozen=True)
class LocatedDocument:
    """One document of a stream with the line (1-based) of every mapping key and sequence item, keyed by path
    (str keys, int indexes; `()` is the document's first line)."""

    data: Any
    lines: Mapping[tuple[Any, ...], int]

    def line(self, path: Sequence[Any] = ()) -> int:
        """The line of `path`, or of its nearest ancestor present in the file (a missing key is at its parent)."""
        parts = tuple(path)
        for n in range(len(parts), -1, -1):
            if parts[:n] in self.lines:
                return self.lines[parts[:n]]
        return 1


def _index_lines(
    loader: yaml.SafeLoader, node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]
) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == MERGE_TAG:
                continue
            k = key.value if key.tag == "tag:yaml.org,2002:str" else loader.construct_object(key)
            out.setdefault((*path, k), key.start_mark.line + 1)
            _index_lines(loader, value, (*path, k), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _index_lines(loader, item, (*path, i), out)


def load_located_documents(text: str | bytes) -> list[LocatedDocument]:
    """`load_documents` keeping line numbers: every non-empty document with its line index (same dialect, bounds
    and errors), for tools that report `file:line` (gitops.lint)."""
    out: list[LocatedDocument] = []
    for loader, node, data in _documents(text):
        lines: dict[tuple[Any, ...], int] = {(): node.start_mark.line + 1}
        _index_lines(loader, node, (), lines)
        out.append(LocatedDocument(data, lines))
    return out


def _pyyaml_dump(doc: Any) -> str:
    out: str = yaml.dump(
        doc,
        Dumper=_Dumper,
        indent=2,
        width=1 << 30,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )
    return out


def dump_document(doc: Any) -> str:
    """One document as YAML text (no `---`).

    The block structure (mappings, sequences, indentation) is written here, and each scalar is written exactly as
    `_Dumper` writes it, asked once per distinct value (memoised): configs repeat the same keys and values on
    every node, and PyYAML's pure-Python emitter spent two thirds of a render. Anything outside the narrow shape
    (a root that is not a non-empty mapping, a key PyYAML writes as a complex `? ` key, a type other than
    dict/list/str/int/bool/None) goes to `_Dumper` whole. tests/test_render_fidelity.py pins byte-identity.
    """
    if type(doc) is not dict or not doc:
        return _pyyaml_dump(doc)
    out: list[str] = []
    try:
        _mapping(doc, 0, out, inline=False)
    except _Unsupported:
        return _pyyaml_dump(doc)
    return "".join(out)


class _Unsupported(Exception):
    """A value the narrow emitter does not write; the document goes to PyYAML whole."""


_SCALARS = (str, int, bool, type(None))


@functools.lru_cache(maxsize=65536)
def _key_text(value: Any, kind: str) -> str:
    text = _pyyaml_dump({value: None})
    if text.startswith("?") or not text.endswith(": null\n") or text.count("\n") != 1:
        raise _Unsupported
    return text[: -len(": null\n")]


@functools.lru_cache(maxsize=65536)
def _value_text(value: Any, kind: str) -> tuple[str, tuple[str, ...]]:
    """(text after `k: `, lines of a block scalar's body relative to its indentation)."""
    first, *rest = _pyyaml_dump({"k": value}).split("\n")
    if not first.startswith("k: ") or rest[-1] != "":
        raise _Unsupported
    body = rest[:-1]
    if any(line and not line.startswith("  ") for line in body):
        raise _Unsupported
    return first[3:], tuple(line[2:] for line in body)


def _scalar(value: Any, col: int, out: list[str]) -> None:
    kind = type(value)
    if kind not in _SCALARS:
        raise _Unsupported
    text, body = _value_text(value, kind.__name__)
    out.append(text + "\n")
    pad = " " * (col + 2)
    for line in body:
        out.append(pad + line + "\n" if line else "\n")


def _mapping(doc: dict[Any, Any], col: int, out: list[str], *, inline: bool) -> None:
    pad = " " * col
    for i, (key, value) in enumerate(doc.items()):
        kind = type(key)
        if kind not in _SCALARS:
            raise _Unsupported
        out.append(("" if inline and i == 0 else pad) + _key_text(key, kind.__name__) + ":")
        _child(value, col, out)


def _sequence(items: list[Any], col: int, out: list[str], *, inline: bool) -> None:
    pad = " " * col
    for i, value in enumerate(items):
        out.append(("" if inline and i == 0 else pad) + "-")
        _child(value, col, out)


def _child(value: Any, col: int, out: list[str]) -> None:
    """The value after `key:` or `-` written at column `col`: inline scalars, nested blocks at col + 2."""
    kind = type(value)
    if kind is dict or kind is list:
        if not value:
            out.append(" {}\n" if kind is dict else " []\n")
            return
        block = out[-1].endswith(":")  # after `key:` the collection starts on the next line; after `-` inline
        out.append("\n" if block else " ")
        (_mapping if kind is dict else _sequence)(value, col + 2, out, inline=not block)
    else:
        out.append(" ")
        _scalar(value, col, out)


def dump_documents(docs: Iterable[Any]) -> str:
    """Documents joined by `---` lines, the way Talos writes a multi-document machine config."""
    return "---\n".join(dump_document(d) for d in docs)
