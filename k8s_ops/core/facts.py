"""Facts are the only reads: a command, a parser of its output and, optionally, a default when it fails."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import CommandFailed
from k8s_ops.core.runner import Runner

__all__ = ["Fact"]

T = TypeVar("T")


@dataclass(frozen=True)
class Fact(Generic[T]):
    """Read one piece of world state. Facts never mutate and also run under --dry-run."""

    command: Command
    parse: Callable[[Result], T]
    default: T | None = None
    has_default: bool = False

    def __post_init__(self) -> None:
        if self.command.mutates:
            raise ValueError(f"a fact must not mutate: {self.command.display()}")

    def gather(self, runner: Runner) -> T:
        result = runner.run(self.command, check=False)
        if not result.ok:
            if self.has_default:
                return self.default  # type: ignore[return-value]
            raise CommandFailed(self.command.display(), result.returncode, result.stderr or result.stdout)
        return self.parse(result)

    @classmethod
    def with_default(cls, command: Command, parse: Callable[[Result], T], default: T) -> Fact[T]:
        return cls(command=command, parse=parse, default=default, has_default=True)
