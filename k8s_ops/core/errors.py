"""The toolkit's error tree. Every error a user can cause is a ToolkitError: tasks print it, no traceback.

* ToolkitError                    message for the operator; exit code 1
  + ProblemsError                 bad input: every Problem at once (file + field + message)
  + ToolNotFound                  an external CLI is missing or too old
  + CommandFailed                 an external command exited non-zero (argv, rc, stderr; secrets masked)
  + CommandTimeout                an external command ran past its timeout
  + SecretError                   decryption / key / 1Password failures
  + Aborted                       the operator declined, or confirmation was impossible
  + GateFailed                    a health gate or wait did not pass; names what was awaited
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Aborted",
    "CommandFailed",
    "CommandTimeout",
    "GateFailed",
    "Problem",
    "ProblemsError",
    "SecretError",
    "ToolNotFound",
    "ToolkitError",
]


class ToolkitError(Exception):
    """An error meant for the operator: printed as-is, never with a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where it is (file, dotted field path, line) and what is wrong."""

    file: str
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ProblemsError(ToolkitError):
    """Bad input. Carries every problem found, so the operator fixes them all in one go."""

    def __init__(self, problems: Iterable[Problem], *, hint: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        n = len(self.problems)
        lines = [f"{n} problem{'s' if n != 1 else ''} found:"] + [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines), hint=hint)


class ToolNotFound(ToolkitError):
    """An external tool is missing from PATH or older than required."""


class CommandFailed(ToolkitError):
    """An external command exited non-zero. `display` is the masked command line."""

    def __init__(self, display: str, returncode: int, stderr: str, *, hint: str | None = None) -> None:
        self.display = display
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip()
        msg = f"command failed (exit {returncode}): {display}"
        if tail:
            msg += "\n" + "\n".join("  | " + line for line in tail.splitlines()[-20:])
        super().__init__(msg, hint=hint)


class CommandTimeout(ToolkitError):
    """An external command did not finish within its timeout and was killed."""

    def __init__(self, display: str, timeout: float) -> None:
        self.display = display
        self.timeout = timeout
        super().__init__(f"command timed out after {timeout:g}s: {display}")


class SecretError(ToolkitError):
    """A secret could not be read, decrypted or stored."""


class Aborted(ToolkitError):
    """The operator said no, or could not be asked."""


class GateFailed(ToolkitError):
    """A wait or health gate did not pass in time."""

    def __init__(self, gate: str, detail: str, *, hint: str | None = None) -> None:
        self.gate = gate
        self.detail = detail
        super().__init__(f"{gate}: {detail}", hint=hint)


def format_problems(problems: Sequence[Problem]) -> str:
    """Render problems one per line, as ProblemsError does."""
    return "\n".join(f"  - {p}" for p in problems)
