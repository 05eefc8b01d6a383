"""Typed confirmation before destructive operations."""

from __future__ import annotations

import sys

from k8s_ops.core.errors import Aborted

__all__ = ["confirm"]


def confirm(expected: str, action: str, *, yes: bool) -> None:
    """Ask the operator to type `expected` before `action`. `--yes` skips; no TTY without `--yes` refuses."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Aborted(
            f"refusing to {action} without confirmation: no terminal to ask on",
            hint="re-run with --yes to confirm non-interactively",
        )
    print(f"This will {action}.", file=sys.stderr)
    try:
        answer = input(f"Type '{expected}' to continue: ")
    except EOFError:
        answer = ""
    if answer.strip() != expected:
        raise Aborted(f"not confirmed (expected '{expected}'); nothing was changed")
