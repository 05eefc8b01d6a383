"""Facts are the only reads: a command, a parser of its output and, optionally, a default when it fails.

Partial results are a core feature: a multi-target read (`talosctl -n a,b,c …`) prints what the answering
targets returned and exits non-zero for the rest. A `Fact(…, partial=True)` hands its parser every result, failed
or not, and the parser returns a `Partial` (values per target + why the call partly failed), so "which node did
not answer" is data rather than one failure for the whole call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import CommandFailed, ToolkitError
from k8s_ops.core.runner import Runner

__all__ = ["Fact", "Partial", "dig"]

T = TypeVar("T")
V = TypeVar("V")


@dataclass(frozen=True)
class Partial(Generic[V]):
    """Per-target answers of a multi-target read, and why the call (partly) failed (None: it did not)."""

    values: Mapping[str, V]
    error: str | None = None

    def get(self, target: str) -> V | None:
        return self.values.get(target)


@dataclass(frozen=True)
class Fact(Generic[T]):
    """Read one piece of world state. Facts never mutate and also run under --dry-run.

    A failed command raises CommandFailed, unless the fact has a default (`with_default`: returned instead) or
    is `partial` (the parser sees the failed result too and reports what did answer).
    """

    command: Command
    parse: Callable[[Result], T]
    default: T | None = None
    has_default: bool = False
    partial: bool = False

    def __post_init__(self) -> None:
        if self.command.mutates:
            raise ValueError(f"a fact must not mutate: {self.command.display()}")

    def gather(self, runner: Runner) -> T:
        result = runner.run(self.command, check=False)
        if not result.ok and not self.partial:
            if self.has_default:
                return self.default  # type: ignore[return-value]
            raise CommandFailed(self.command.display(), result.returncode, result.stderr or result.stdout)
        return self.parse(result)

    def try_gather(self, runner: Runner) -> T | None:
        """The fact's value, or None when the read failed in any way (unreachable API, node down, bad output)."""
        try:
            return self.gather(runner)
        except ToolkitError:
            return None

    @classmethod
    def with_default(cls, command: Command, parse: Callable[[Result], T], default: T) -> Fact[T]:
        return cls(command=command, parse=parse, default=default, has_default=True)


def dig(obj: Mapping[str, Any] | None, *keys: str, default: Any = None) -> Any:
    """`obj[k1][k2]…` in parsed JSON/YAML, or `default` where a level is missing, null or not a mapping — the
    one spelling of `(x.get("a") or {}).get("b")`."""
    cur: Any = obj
    for key in keys:
        if not isinstance(cur, Mapping):
            return default
        cur = cur.get(key)
        if cur is None:
            return default
    return cur
