"""A cluster file as parsed YAML plus the line of every mapping key and sequence item.

The file is read in the toolkit's one YAML dialect (`k8s_ops.talos.yamlio.Loader`: YAML 1.2 core like Talos, so
`on`/`yes`/`off` are strings, exactly as in patches), with libyaml's parser when available. A key defined twice
is reported with both lines instead of "last one wins"."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from k8s_ops.core.errors import Problem, field_path
from k8s_ops.core.paths import redact
from k8s_ops.talos import yamlio

Path_ = tuple[Any, ...]  # str keys, int indexes; a YAML key can also be a bool/int/None


@dataclass
class Source:
    """A parsed YAML file plus the line of every mapping key and sequence item (1-based)."""

    file: Path
    data: Any
    lines: dict[Path_, int]

    def line(self, path: Path_) -> int | None:
        # the nearest ancestor that exists in the file: a missing key is reported at its parent
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def problem(self, path: Path_, message: str) -> Problem:
        return Problem(str(self.file), field_path(path), message, self.line(path))

    def get(self, *path: str | int) -> Any:
        """The raw value at `path`, or None when absent or the shape differs."""
        cur = self.data
        for p in path:
            cur = step(cur, p)
            if cur is ABSENT:
                return None
        return cur


ABSENT = object()


def step(cur: Any, part: str | int) -> Any:
    """`cur[part]` if `cur` is a list/dict holding it, else `ABSENT`."""
    if isinstance(cur, list):
        return cur[part] if isinstance(part, int) and 0 <= part < len(cur) else ABSENT
    if isinstance(cur, dict):
        return cur.get(part, ABSENT)
    return ABSENT


def read_yaml(file: Path, problems: list[Problem]) -> Source | None:
    """`file` parsed, or None with its problem added; bounded like every YAML read (`yamlio.read_text`,
    `yamlio.check_graph`: size, file type, aliases, nesting, NUL bytes, huge integers)."""
    try:
        text = yamlio.read_text(file)
    except FileNotFoundError:
        problems.append(Problem(str(file), "", "file not found"))
        return None
    except OSError as exc:
        problems.append(Problem(str(file), "", f"cannot read file: {exc.strerror or type(exc).__name__}"))
        return None
    except yamlio.YAMLError as exc:
        problems.append(Problem(str(file), "", str(exc), exc.line))
        return None
    nul = yamlio.nul_line(text)
    if nul is not None:
        problems.append(Problem(str(file), "", "YAML syntax error: a NUL byte (binary data, not a YAML text)", nul))
        return None
    loader = yamlio.Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            yamlio.check_graph(node)  # before indexing: `_index` follows aliases
        data = loader.construct_document(node) if node is not None else None
        lines: dict[Path_, int] = {}
        src = Source(file, data, lines)
        if node is not None:
            lines[()] = node.start_mark.line + 1
            _index(loader, node, (), src, problems)
    except yamlio.YAMLError as exc:
        problems.append(Problem(str(file), "", str(exc), exc.line))
        return None
    except yaml.MarkedYAMLError as exc:
        what = redact(" ".join(x for x in (exc.context, exc.problem) if x))  # it may quote the input
        problems.append(Problem(str(file), "", f"YAML syntax error: {what}", yamlio.reader_error_line(exc, text)))
        return None
    except yaml.YAMLError as exc:  # a reader error: a control character the YAML spec forbids
        what = getattr(exc, "reason", None) or "unreadable"
        problems.append(Problem(str(file), "", f"YAML error: {what}", yamlio.reader_error_line(exc, text)))
        return None
    finally:
        loader.dispose()
    return src


def _index(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, src: Source, problems: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == yamlio.MERGE_TAG:
                continue
            # the key as constructed (`true:` is True, `1:` is 1), so the path matches the data pydantic saw
            k = key.value if key.tag == "tag:yaml.org,2002:str" else loader.construct_object(key)
            p = (*path, k)
            if p in src.lines:
                # PyYAML silently keeps the last duplicate; a silently dropped setting is a trap
                first = src.lines[p]
                problems.append(
                    Problem(
                        str(src.file),
                        field_path(p),
                        f"duplicate key (first defined on line {first})",
                        key.start_mark.line + 1,
                    )
                )
                continue
            src.lines[p] = key.start_mark.line + 1
            _index(loader, value, p, src, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            src.lines[(*path, i)] = item.start_mark.line + 1
            _index(loader, item, (*path, i), src, problems)
