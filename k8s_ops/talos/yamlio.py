"""YAML in and out for machine configs and patches, with Talos' (Go yaml.v3) reading of scalars.

Loading uses YAML 1.2 core rules like Talos does: `off`, `on`, `yes`, `no`, `y`, `n` stay strings (PyYAML's YAML 1.1
default turns them into booleans, which breaks `HostnameConfig.auto: off`), `1:20` and `2024-01-01` stay strings,
and a key defined twice in one mapping is an error instead of "last one wins".

Dumping is deterministic: keys in insertion order (templates and merges define it), 2-space indent with
indented sequences (kubectl style; Talos writes 4 spaces, same data), no anchors/aliases, no line folding,
multi-line strings as `|` blocks.
Any string a YAML 1.1 reader could take for another type (`'off'`, `'yes'`, `'1:20'`, `'0644'` …) is quoted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

import yaml

__all__ = ["YAMLError", "dump_document", "dump_documents", "load_documents"]

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YAMLError(ValueError):
    """Unparseable YAML; the message names the line (1-based) when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """SafeLoader with YAML 1.2 core implicit types and duplicate-key detection."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
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


def _add_resolver(tag: str, pattern: str, first: str) -> None:
    _Loader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))


# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution), as Go yaml.v3 resolves it.
_add_resolver("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_add_resolver("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL)$", "~nN")
_add_resolver("tag:yaml.org,2002:int", r"^(?:[-+]?(?:0|[1-9][0-9]*)|0[0-7]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789")
_add_resolver(
    "tag:yaml.org,2002:float",
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    "-+0123456789.",
)
_Loader.yaml_implicit_resolvers.setdefault("", []).append(("tag:yaml.org,2002:null", re.compile(r"^$")))


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


def dump_document(doc: Any) -> str:
    """One document as YAML text (no `---`)."""
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


def dump_documents(docs: Iterable[Any]) -> str:
    """Documents joined by `---` lines, the way Talos writes a multi-document machine config."""
    return "---\n".join(dump_document(d) for d in docs)
