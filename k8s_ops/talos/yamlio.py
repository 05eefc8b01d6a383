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
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

import yaml

__all__ = ["Loader", "PyLoader", "YAMLError", "dump_document", "dump_documents", "load_documents"]

class YAMLError(ValueError):
    """Unparseable YAML; the message names the line (1-based) when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


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


def _yaml12(base: Any) -> type[yaml.SafeLoader]:
    """`base` (libyaml's or PyYAML's safe loader) with the YAML 1.2 core implicit types instead of YAML 1.1's."""
    loader: Any = type(f"Yaml12{base.__name__}", (base,), {"yaml_implicit_resolvers": {}})
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


def load_documents(text: str | bytes) -> list[Any]:
    """Every document of a (multi-document) YAML stream; empty documents (`---` alone, comments) are skipped."""
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise YAMLError(f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise YAMLError(f"invalid YAML: {exc}") from None
    return [d for d in docs if d is not None]


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
