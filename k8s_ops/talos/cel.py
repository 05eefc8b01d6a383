"""CEL, compiled in one place: one lazily built celpy Environment for the toolkit, and one way to compile an
expression into a program. celpy is imported only when an inventory uses CEL (health checks, volume matches).

Users: `k8s_ops.talos.gates` (upgrade health checks: compile, then evaluate over an object), the inventory's
syntax check and `config_rules`' machine-config CEL check (`environment().compile` and the CELParseError it raises).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["compile_expression", "environment", "first_line"]

_ENV: list[Any] = []
_LOCK = threading.Lock()


def environment() -> Any:
    """The shared `celpy.Environment` (built on first use)."""
    with _LOCK:
        if not _ENV:
            import celpy

            _ENV.append(celpy.Environment())
        return _ENV[0]


def compile_expression(expr: str) -> Any:
    """A runnable program for `expr`; celpy's parse errors (CELParseError and friends) propagate."""
    env = environment()
    return env.program(env.compile(expr))


def first_line(exc: BaseException) -> str:
    """The first line of a CEL error (celpy's parse errors span several lines with a caret), or its class name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
