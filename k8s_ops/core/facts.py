"""Facts are the only reads: a command, a parser of its output and, optionally, a default when it fails.

Partial results are a core feature: a multi-target read (`talosctl -n a,b,c …`) prints what the answering
targets returned and exits non-zero for the rest. A `Fact(…, partial=True)` hands its parser every result, failed
or not, and the parser returns a `Partial` (values per target + why the call partly failed), so "which node did
not answer" is data rather than one failure for the whole call.

Read rounds are merged with a `Shelf` (one per rollout plan, never shared between runs): a round run through a
`Recording` runner keeps every read's result (and identical reads in flight at once run once); a later check that
runs through a `Served` runner gets each of those reads at most once from the shelf (if at most `max_age` seconds
old), any further read of it live. So the reads a
rolling upgrade makes right after a node came back can answer the next node's guard and gate, while a gate that
holds still polls live state. Only plain reads are shelved: no stdin, environment or temporary files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from k8s_ops.core.command import Command, Result, TempFile
from k8s_ops.core.errors import CommandFailed, ToolkitError
from k8s_ops.core.runner import Runner

__all__ = ["Fact", "Partial", "Recording", "Served", "Shelf", "dig"]

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


# --------------------------------------------------------------------------- merged read rounds

Key = tuple[tuple[str, ...], str | None]


def _key(command: Command) -> Key | None:
    """What identifies a shelvable read (argv and working directory), or None for anything else."""
    if command.mutates or command.stdin is not None or command.env or command.isolated:
        return None
    if any(isinstance(p, TempFile) for p in command.argv):
        return None
    return tuple(str(p) for p in command.argv), command.cwd


class Shelf:
    """Results of reads made ahead, by command, for at most `max_age` seconds (thread-safe)."""

    def __init__(self, max_age: float = 15.0) -> None:
        self.max_age = max_age
        self._items: dict[Key, tuple[float, Result]] = {}
        self._flight: dict[Key, _Flight] = {}
        self._lock = threading.Lock()

    def put(self, command: Command, result: Result) -> None:
        key = _key(command)
        if key is not None:
            with self._lock:
                self._items[key] = (time.monotonic(), result)

    def get(self, command: Command) -> Result | None:
        key = _key(command)
        if key is None:
            return None
        with self._lock:
            item = self._items.get(key)
        if item is None or time.monotonic() - item[0] > self.max_age:
            return None
        return item[1]

    def clear(self) -> None:
        """Forget everything: something changed the world (a hook ran), the next checks read live."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def run_once(self, runner: Runner, command: Command) -> Result:
        """Run a read; an identical read already running is waited for and shares its result. Shelves it."""
        key = _key(command)
        if key is None:
            return runner.run(command, check=False)
        with self._lock:
            flight = self._flight.get(key)
            owner = flight is None
            if owner:
                flight = self._flight[key] = _Flight()
        assert flight is not None
        if not owner:
            flight.done.wait()
            # the owner's own answer (never an older one from the shelf); if its read raised, read again
            return flight.result if flight.result is not None else runner.run(command, check=False)
        try:
            flight.result = runner.run(command, check=False)
            self.put(command, flight.result)
            return flight.result
        finally:
            with self._lock:
                self._flight.pop(key, None)
            flight.done.set()


class _Flight:
    """A read in flight: set `done` once `result` (None: the read raised) is known."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Result | None = None


def _checked(command: Command, result: Result, check: bool) -> Result:
    if check and not result.ok:
        raise CommandFailed(command.display(), result.returncode, result.stderr or result.stdout)
    return result


class Recording:
    """One read round: each read runs live once (identical reads of the round share it, also when they overlap
    in time) and every result is shelved for the checks that follow."""

    def __init__(self, runner: Runner, shelf: Shelf) -> None:
        self._runner = runner
        self._shelf = shelf
        self._round: dict[Key, threading.Event] = {}
        self._results: dict[Key, Result] = {}
        self._lock = threading.Lock()

    def run(self, command: Command, *, check: bool = True) -> Result:
        key = _key(command)
        if key is None:
            return self._runner.run(command, check=check)
        with self._lock:
            done = self._round.get(key)
            owner = done is None
            if owner:
                done = self._round[key] = threading.Event()
        assert done is not None
        if owner:
            try:
                self._results[key] = self._shelf.run_once(self._runner, command)
            finally:
                done.set()
        else:
            done.wait()
        result = self._results.get(key)
        if result is None:  # the owner's read raised: this one reads for itself
            result = self._shelf.run_once(self._runner, command)
        return _checked(command, result, check)


class Served:
    """A runner that answers each read once from the shelf (a merged earlier round), then live (and shelved)."""

    def __init__(self, runner: Runner, shelf: Shelf) -> None:
        self._runner = runner
        self._shelf = shelf
        self._used: set[Key] = set()
        self._lock = threading.Lock()
        self.hits = 0

    def run(self, command: Command, *, check: bool = True) -> Result:
        key = _key(command)
        if key is None:
            return self._runner.run(command, check=check)
        with self._lock:
            fresh = key not in self._used
            self._used.add(key)
        shelved = self._shelf.get(command) if fresh else None
        if shelved is not None:
            with self._lock:
                self.hits += 1
            return _checked(command, shelved, check)
        return _checked(command, self._shelf.run_once(self._runner, command), check)
