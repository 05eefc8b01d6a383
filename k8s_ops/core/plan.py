"""Plans: the ordered steps an operation will take, shown by --dry-run exactly as the executor runs them."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k8s_ops.core.command import Command
from k8s_ops.core.secret import MASK, Secret

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner

__all__ = ["Check", "FileWrite", "Plan", "Step", "mask_text"]


@dataclass(frozen=True)
class Check:
    """A gate (before acting) or a wait (after acting). `run` raises GateFailed when not met in time."""

    description: str
    run: Callable[[Runner], None] = field(compare=False, repr=False)


def mask_text(text: str, mask: Sequence[Secret]) -> str:
    """Replace every occurrence of every secret value in `text` by ***; longest first so parts don't leak."""
    values = sorted({m.reveal_text() for m in mask if len(m) >= 4}, key=len, reverse=True)
    for value in values:
        text = text.replace(value, MASK)
    return text


@dataclass(frozen=True)
class FileWrite:
    """A file the step writes (atomically, with `mode`). `mask` lists secret values hidden in diffs."""

    path: Path
    content: bytes = field(repr=False)
    mode: int = 0o600
    mask: tuple[Secret, ...] = field(default=(), repr=False)

    def current(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def changed(self) -> bool:
        return self.current() != self.content

    def diff(self) -> str:
        """Unified diff against disk, secrets masked; empty when the file is already up to date."""
        old = self.current()
        if old == self.content:
            return ""
        try:
            old_text = "" if old is None else old.decode()
            new_text = self.content.decode()
        except UnicodeDecodeError:
            return f"binary file {self.path} changes ({len(self.content)} bytes)\n"
        lines = difflib.unified_diff(
            mask_text(old_text, self.mask).splitlines(keepends=True),
            mask_text(new_text, self.mask).splitlines(keepends=True),
            fromfile="/dev/null" if old is None else str(self.path),
            tofile=str(self.path),
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "mode": oct(self.mode), "changed": self.changed()}


@dataclass(frozen=True)
class Step:
    """One thing the operation does, with the gates before it and the waits after it."""

    description: str
    commands: tuple[Command, ...] = ()
    writes: tuple[FileWrite, ...] = ()
    before: tuple[Check, ...] = ()
    after: tuple[Check, ...] = ()
    noop: str | None = None
    guard: Callable[[Runner], str | None] | None = field(default=None, compare=False, repr=False)
    node: str | None = None
    group: str | None = None
    destructive: bool = False

    @property
    def mutates(self) -> bool:
        return bool(self.writes) or any(c.mutates for c in self.commands)

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "node": self.node,
            "noop": self.noop,
            "mutates": self.mutates,
            "destructive": self.destructive,
            "group": self.group,
            "before": [c.description for c in self.before],
            "commands": [c.to_json() for c in self.commands],
            "after": [c.description for c in self.after],
            "writes": [w.to_json() for w in self.writes],
        }


@dataclass(frozen=True)
class Plan:
    """An operation's steps in order. Pure data: building it never touches the world beyond facts."""

    title: str
    cluster: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()
    resume_hint: str | None = None

    @property
    def destructive(self) -> bool:
        return any(s.destructive and s.noop is None for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "cluster": self.cluster,
            "notes": list(self.notes),
            "steps": [s.to_json() for s in self.steps],
        }

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"

    def to_text(self) -> str:
        noops = sum(1 for s in self.steps if s.noop is not None)
        active = len(self.steps) - noops
        out = [f"Plan: {self.title} — cluster {self.cluster} ({active} steps, {noops} no-op)"]
        out += [f"  note: {n}" for n in self.notes]
        n = 0
        prev_group: str | None = None
        for step in self.steps:
            if step.noop is not None:
                out.append(f"[-] {step.description}: skipped — {step.noop}")
                prev_group = None
                continue
            n += 1
            tags = []
            if step.group is not None:
                tags.append("concurrent" if step.group == prev_group else f"group {step.group}")
            if step.destructive:
                tags.append("destructive")
            suffix = f"  ({', '.join(tags)})" if tags else ""
            out.append(f"[{n}] {step.description}{suffix}")
            prev_group = step.group
            out += [f"    gate: {c.description}" for c in step.before]
            for w in step.writes:
                diff = w.diff()
                out.append(f"    write {w.path} ({oct(w.mode)})" + ("" if diff else " — unchanged"))
                out += ["      " + line for line in diff.splitlines()]
            out += [f"    $ {c.display()}" for c in step.commands]
            out += [f"    wait: {c.description}" for c in step.after]
        return "\n".join(out) + "\n"
