"""Typed confirmation before destructive operations, injectable: `execute(..., confirm=Prompt(...))`.

The default `confirm` asks on the terminal. Tests (and any non-terminal front end) pass a `Prompt` with their
own `ask`/`interactive`, or `answering("demo")`, instead of monkeypatching `input` and `sys.stdin`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from k8s_ops.core.errors import Aborted

__all__ = ["Confirm", "Prompt", "answering", "confirm"]


class Confirm(Protocol):
    """Returns when the operator confirmed `action` by typing `expected`; raises Aborted otherwise."""

    def __call__(self, expected: str, action: str, *, yes: bool) -> None: ...


def _stdin_isatty() -> bool:
    return sys.stdin.isatty()


def _input(question: str) -> str:
    try:
        return input(question)
    except EOFError:
        return ""


def _say(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass(frozen=True)
class Prompt:
    """A Confirm built from three injectable parts: is there someone to ask, how to ask, where to explain."""

    ask: Callable[[str], str] = field(default=_input)
    interactive: Callable[[], bool] = field(default=_stdin_isatty)
    say: Callable[[str], None] = field(default=_say)

    def __call__(self, expected: str, action: str, *, yes: bool) -> None:
        """Ask the operator to type `expected` before `action`. `--yes` skips; no TTY without `--yes` refuses."""
        if yes:
            return
        if not self.interactive():
            raise Aborted(
                f"refusing to {action} without confirmation: no terminal to ask on",
                hint="re-run with --yes to confirm non-interactively",
            )
        self.say(f"This will {action}.")
        answer = self.ask(f"Type '{expected}' to continue: ")
        if answer.strip() != expected:
            raise Aborted(f"not confirmed (expected '{expected}'); nothing was changed")


def answering(answer: str | None) -> Prompt:
    """A Prompt whose operator types `answer` (None: there is no terminal)."""
    return Prompt(ask=lambda _: answer or "", interactive=lambda: answer is not None, say=lambda _: None)


def confirm(expected: str, action: str, *, yes: bool) -> None:
    """The terminal prompt (looked up at call time, so `input`/`sys.stdin` stay patchable)."""
    Prompt()(expected, action, yes=yes)
