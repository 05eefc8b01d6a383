"""Commands are data: an argv tuple plus stdin, env and what the command is for. Never a shell string."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from k8s_ops.core.secret import MASK, Secret

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner

__all__ = ["Command", "Result", "TempFile", "cmd"]


@dataclass(frozen=True)
class TempFile:
    """Content handed to a tool as a file path: written 0600 into a 0700 temp dir for the call, then removed."""

    label: str
    content: Secret | bytes

    def display(self) -> str:
        return f"$TMP/{self.label}"


@dataclass(frozen=True)
class Result:
    """What a finished command returned."""

    returncode: int
    stdout: str = ""
    stderr: str = ""
    data: bytes | None = field(default=None, repr=False, compare=False)  # stdout's exact bytes, when kept

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def stdout_bytes(self) -> bytes:
        """stdout byte for byte (binary output survives); a fake's text answer encoded as UTF-8."""
        return self.data if self.data is not None else self.stdout.encode()


@dataclass(frozen=True)
class Command:
    """One external command. Secrets go through `stdin` or `TempFile`s, never on argv.

    `isolated`: the process inherits nothing from the caller's environment but PATH and locale (see
    runner.ISOLATED_INHERIT); HOME and XDG_CONFIG_HOME point at a fresh empty 0700 directory, which is also the
    working directory unless `cwd` is set. `env` is then the whole of what the tool sees (sops runs like this).
    """

    argv: tuple[str | TempFile, ...]
    stdin: Secret | bytes | None = None
    env: tuple[tuple[str, str | Secret], ...] = ()
    description: str = ""
    mutates: bool = False
    node: str | None = None
    timeout: float | None = None
    cwd: str | None = None
    meta: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    isolated: bool = False

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("a command needs at least the executable")
        for part in self.argv:
            if isinstance(part, Secret):
                raise TypeError("a Secret must never be placed on argv; use stdin or TempFile")

    @property
    def tool(self) -> str:
        first = self.argv[0]
        return first.label if isinstance(first, TempFile) else first.rsplit("/", 1)[-1]

    def display_argv(self) -> list[str]:
        return [p.display() if isinstance(p, TempFile) else p for p in self.argv]

    def display(self) -> str:
        """The exact command line as an operator would type it, secrets masked."""
        line = shlex.join(self.display_argv())
        envs = " ".join(f"{k}={MASK if isinstance(v, Secret) else shlex.quote(v)}" for k, v in self.env)
        if envs:
            line = f"{envs} {line}"
        if self.stdin is not None:
            line += f"  < stdin ({len(self.stdin)} bytes{', masked' if isinstance(self.stdin, Secret) else ''})"
        return line

    def apply(self, runner: Runner) -> Result:
        """Run it (the Effect interface; a non-zero exit raises CommandFailed)."""
        return runner.run(self)

    def to_json(self) -> dict[str, Any]:
        stdin: str | None
        if self.stdin is None:
            stdin = None
        elif isinstance(self.stdin, Secret):
            stdin = MASK
        else:
            stdin = f"<{len(self.stdin)} bytes>"
        return {
            "argv": self.display_argv(),
            "stdin": stdin,
            "env": {k: (MASK if isinstance(v, Secret) else v) for k, v in self.env},
            "mutates": self.mutates,
            "node": self.node,
            "description": self.description,
        }


def cmd(
    *argv: str | TempFile,
    stdin: Secret | bytes | None = None,
    env: Mapping[str, str | Secret] | None = None,
    description: str = "",
    mutates: bool = False,
    node: str | None = None,
    timeout: float | None = None,
) -> Command:
    """Shorthand constructor: `cmd("talosctl", "version", mutates=False)`."""
    return Command(
        argv=tuple(argv),
        stdin=stdin,
        env=tuple(sorted((env or {}).items())),
        description=description,
        mutates=mutates,
        node=node,
        timeout=timeout,
    )
