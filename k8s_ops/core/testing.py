"""Test doubles for the Runner boundary (httpx MockTransport style). Used by the test suite only."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping

from k8s_ops.core.command import Command, Result
from k8s_ops.core.runner import check_result

__all__ = ["FakeRunner"]

Answer = Result | Callable[[Command], Result]
Key = tuple[str, ...] | re.Pattern[str]


class FakeRunner:
    """Answers commands from a table of exact argv tuples or regexes over the display line.

    An undeclared command raises AssertionError, so a test sees every command its code runs. `handler`
    (called when no table entry matches) models stateful tools.
    """

    def __init__(
        self, table: Mapping[Key, Answer] | None = None, handler: Callable[[Command], Result] | None = None
    ) -> None:
        self.table = dict(table or {})
        self.handler = handler
        self.calls: list[Command] = []
        self._lock = threading.Lock()

    def run(self, command: Command, *, check: bool = True) -> Result:
        with self._lock:
            self.calls.append(command)
        answer = self._lookup(command)
        result = answer(command) if callable(answer) else answer
        return check_result(command, result) if check else result

    def _lookup(self, command: Command) -> Answer:
        argv = tuple(command.display_argv())
        if argv in self.table:
            return self.table[argv]
        line = command.display()
        for key, answer in self.table.items():
            if isinstance(key, re.Pattern) and key.search(line):
                return answer
        if self.handler is not None:
            return self.handler
        raise AssertionError(f"unexpected command: {line}")

    @property
    def argvs(self) -> list[list[str]]:
        return [c.display_argv() for c in self.calls]
