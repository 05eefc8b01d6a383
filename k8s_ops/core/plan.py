"""Plans: the ordered steps an operation will take, shown by --dry-run exactly as the executor runs them."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from k8s_ops.core.command import Command
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.files import write_private
from k8s_ops.core.secret import MASK, Secret

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner

__all__ = [
    "Action",
    "Check",
    "Effect",
    "EnsureDir",
    "EnsureMode",
    "FileWrite",
    "Plan",
    "Recovery",
    "Step",
    "Undo",
    "mask_text",
]


@runtime_checkable
class Effect(Protocol):
    """Anything a step changes. `Command`, `FileWrite`, `EnsureDir`, `EnsureMode`, `Action` (and the 1Password
    push/pull in k8s_ops.onepassword.effects) are effects; gates and waits (`Check`) only read.

    `display()` is the dry-run line, `to_json()` the same as data, `apply(runner)` does it (at execution only).
    """

    @property
    def mutates(self) -> bool: ...

    def display(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...

    def apply(self, runner: Runner) -> object: ...


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

    mutates = True

    def display(self) -> str:
        return f"write {self.path} ({oct(self.mode)})" + ("" if self.changed() else " — unchanged")

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "mode": oct(self.mode), "changed": self.changed()}

    def apply(self, runner: Runner) -> bool:
        """Write atomically; False when the file already had these bytes and mode."""
        return write_private(self.path, self.content, mode=self.mode)


@dataclass(frozen=True)
class EnsureDir:
    """A directory that must exist (created with its parents, `mode`). `existing_mode`: an existing directory
    is set to `mode` too (a private backups dir); False leaves a directory the user made as it is (~/.kube)."""

    path: Path
    mode: int = 0o700
    existing_mode: bool = True
    mutates = True

    def display(self) -> str:
        mode = oct(self.mode) if self.existing_mode else f"{oct(self.mode)} if created"
        return f"ensure directory {self.path} ({mode})"

    def to_json(self) -> dict[str, Any]:
        return {
            "effect": "ensure-dir",
            "path": str(self.path),
            "mode": oct(self.mode),
            "existing_mode": self.existing_mode,
        }

    def apply(self, runner: Runner) -> None:
        existed = self.path.is_dir()
        self.path.mkdir(parents=True, exist_ok=True, mode=self.mode)
        if self.existing_mode or not existed:
            os.chmod(self.path, self.mode)  # mkdir's mode is filtered by the umask


@dataclass(frozen=True)
class EnsureMode:
    """A file a tool wrote (e.g. talosctl's snapshot or kubeconfig) whose permissions are set to `mode`."""

    path: Path
    mode: int = 0o600
    mutates = True

    def display(self) -> str:
        return f"chmod {oct(self.mode)[2:]} {self.path}"

    def to_json(self) -> dict[str, Any]:
        return {"effect": "chmod", "path": str(self.path), "mode": oct(self.mode)}

    def apply(self, runner: Runner) -> None:
        try:
            os.chmod(self.path, self.mode)
        except FileNotFoundError:
            raise ToolkitError(f"{self.path} was not written (cannot set its mode {oct(self.mode)})") from None


@dataclass(frozen=True)
class Action:
    """A typed effect that is neither a command nor a file: `kind` + `target` name it in the plan and its data;
    `run` does it. Prefer a dedicated class when one exists (e.g. the 1Password push/pull effects)."""

    kind: str
    target: str
    run: Callable[[Runner], object] = field(compare=False, repr=False)
    detail: tuple[tuple[str, str], ...] = ()
    mutates: bool = True

    def display(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.detail)
        return f"{self.kind} {self.target}" + (f" ({extra})" if extra else "")

    def to_json(self) -> dict[str, Any]:
        return {"effect": self.kind, "target": self.target, **dict(self.detail)}

    def apply(self, runner: Runner) -> object:
        return self.run(runner)


@dataclass(frozen=True)
class Undo:
    """What reverts a step: commands run best-effort (check=False, latest step first) when this or a later step
    fails or the run is interrupted, and one phrase saying what they did ("resumed HelmRelease media/plex")."""

    commands: tuple[Command, ...]
    done: str


@dataclass(frozen=True)
class Recovery:
    """A plan's recovery, derived from its steps' `undo`s — never a second, hand-kept list (`Plan.recovery`).

    As built (`Recovery(plan)`) it previews every undo, latest step first (the dry run's "on failure" part);
    `after(started)` is what actually runs once execution failed: the undos of the steps that started only.
    `outcome` closes the message ("the app was NOT restored").
    """

    plan: Plan
    outcome: str = ""
    started: tuple[Step, ...] | None = None

    @property
    def undos(self) -> tuple[Undo, ...]:
        return self.plan.undos(self.started)

    @property
    def commands(self) -> tuple[Command, ...]:
        return tuple(c for u in self.undos for c in u.commands)

    @property
    def done(self) -> str:
        what = "; ".join(u.done for u in self.undos) or "nothing needed undoing"
        return f"recovered: {what}" + (f" — {self.outcome}" if self.outcome else "")

    def after(self, started: Sequence[Step]) -> Recovery:
        """The recovery for a run in which `started` steps began (in plan order)."""
        return replace(self, started=tuple(started))

    def to_json(self) -> dict[str, Any]:
        return {"commands": [c.to_json() for c in self.commands], "done": self.done}


@dataclass(frozen=True)
class Step:
    """One thing the operation does, with the gates before it and the waits after it.

    Effects run in this order (`effects`): `prepare` (typed effects such as EnsureDir), `writes`, `commands`,
    `finish` (e.g. EnsureMode on a file a tool wrote, a 1Password push). `before`/`after` and `guard` only read
    (the executor hands them a runner that refuses `mutates` commands). `undo` reverts the step when it or a later
    one fails (`Recovery`); `stage` names the part of a longer runbook the step belongs to (bootstrap stages).
    """

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
    prepare: tuple[Effect, ...] = ()
    finish: tuple[Effect, ...] = ()
    undo: Undo | None = None
    stage: str | None = None

    @property
    def effects(self) -> tuple[Effect, ...]:
        """Everything the step changes, in execution order: `prepare`, `writes`, `commands`, `finish`."""
        return (*self.prepare, *self.writes, *self.commands, *self.finish)

    @property
    def mutates(self) -> bool:
        return any(e.mutates for e in self.effects)

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "stage": self.stage,
            "node": self.node,
            "noop": self.noop,
            "mutates": self.mutates,
            "destructive": self.destructive,
            "group": self.group,
            "before": [c.description for c in self.before],
            "prepare": [e.to_json() for e in self.prepare],
            "commands": [c.to_json() for c in self.commands],
            "finish": [e.to_json() for e in self.finish],
            "after": [c.description for c in self.after],
            "writes": [w.to_json() for w in self.writes],
            "undo": None if self.undo is None else _undo_json(self.undo),
        }


def _undo_json(undo: Undo) -> dict[str, Any]:
    return {"commands": [c.to_json() for c in undo.commands], "done": undo.done}


@dataclass(frozen=True)
class Plan:
    """An operation's steps in order. Pure data: building it never touches the world beyond facts.

    `on_failure` states what a failed run leaves once the steps' undos ran ("the app was NOT restored"; "" when the
    undos say it all); None means the plan has no recovery (`--dry-run --json` shows `on_failure: null`).
    """

    title: str
    cluster: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()
    resume_hint: str | None = None
    on_failure: str | None = None

    @property
    def recovery(self) -> Recovery | None:
        """What runs when a step fails: the undos of the steps that ran (`Recovery.after`), or None."""
        return None if self.on_failure is None else Recovery(self, outcome=self.on_failure)

    @property
    def destructive(self) -> bool:
        return any(s.destructive and s.noop is None for s in self.steps)

    def undos(self, started: Sequence[Step] | None = None) -> tuple[Undo, ...]:
        """The recovery: the undo of every step in `started` (default: every active step), latest first."""
        ran = [s for s in self.steps if s.noop is None] if started is None else list(started)
        return tuple(s.undo for s in reversed(ran) if s.undo is not None)

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
            out += [_effect_line(e) for e in step.prepare]
            for w in step.writes:
                diff = w.diff()
                out.append(f"    write {w.path} ({oct(w.mode)})" + ("" if diff else " — unchanged"))
                out += ["      " + line for line in diff.splitlines()]
            out += [f"    $ {c.display()}" for c in step.commands]
            out += [_effect_line(e) for e in step.finish]
            out += [f"    wait: {c.description}" for c in step.after]
        return "\n".join(out) + "\n"


def _effect_line(effect: Any) -> str:
    """One effect of a step as the dry run shows it: a command line after `$` (like the step's commands)."""
    return f"    $ {effect.display()}" if isinstance(effect, Command) else f"    {effect.display()}"
