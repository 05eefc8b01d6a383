"""Where a rollout is: one state per node (waiting, gates, rebooting, verifying, done, failed), shown as it changes.

The plan builders wrap a node's gates, its reboot wait and its last check (`Progress.timed`, `Progress.mark`) without
changing what they check or how they are described, so `--dry-run` is unchanged. While the plan runs, every
transition is reported: on a terminal as a live table (rich), otherwise one line per transition on stderr, or with
`--json` one JSON object per line on stdout (`{"node", "role", "from", "to", "state", "elapsed"}`) for CI. At the
end `summary()` gives each node's duration and the time spent in gates against the time spent rebooting.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from k8s_ops.core.plan import Check

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner

__all__ = ["NodeProgress", "Progress"]

STATES = ("waiting", "gates", "rebooting", "verifying", "done", "failed", "skipped")


@dataclass
class NodeProgress:
    """One node's row."""

    node: str
    role: str
    before: str
    after: str
    state: str = "waiting"
    started: float | None = None
    finished: float | None = None
    spent: dict[str, float] = field(default_factory=dict)  # seconds per state (gates, rebooting, verifying)
    entered: float | None = None  # when the current state began

    def elapsed(self, now: float) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or now) - self.started


class Progress:
    """Rollout progress. `mode`: "live" (rich table on a terminal), "lines" (stderr), "json" (JSON lines on stdout),
    or "quiet" (collect only, for the summary)."""

    def __init__(self, mode: str = "lines", clock: Callable[[], float] = time.monotonic) -> None:
        self.mode = mode
        self.clock = clock
        self.nodes: dict[str, NodeProgress] = {}
        self._lock = threading.Lock()
        self._live: Any = None

    @classmethod
    def for_terminal(cls, *, json_lines: bool) -> Progress:
        if json_lines:
            return cls("json")
        return cls("live" if sys.stderr.isatty() else "lines")

    def add(self, node: str, role: str, before: str, after: str) -> None:
        self.nodes.setdefault(node, NodeProgress(node, role, before, after))

    # ------------------------------------------------------------------ transitions

    def transition(self, node: str, state: str) -> None:
        with self._lock:
            row = self.nodes.get(node)
            if row is None or row.state == state:
                return
            now = self.clock()
            if row.started is None:
                row.started = now
            old = row.state
            if row.entered is not None:
                row.spent[old] = row.spent.get(old, 0.0) + now - row.entered
            row.entered = now
            row.state = state
            if state in ("done", "failed", "skipped"):
                row.finished = now
            self._emit(row, old, now)

    def _emit(self, row: NodeProgress, old: str, now: float) -> None:
        if self.mode == "json":
            doc = {"node": row.node, "role": row.role, "from": row.before, "to": row.after, "state": row.state,
                   "previous": old, "elapsed": round(row.elapsed(now), 3)}  # fmt: skip
            sys.stdout.write(json.dumps(doc) + "\n")
            sys.stdout.flush()
        elif self.mode == "lines":
            print(f"progress: {row.node} {old} -> {row.state} ({row.elapsed(now):.0f}s)", file=sys.stderr, flush=True)
        elif self.mode == "live":
            self._refresh()

    def _table(self) -> Any:
        from rich.table import Table

        now = self.clock()
        table = Table(title="rollout")
        for col in ("node", "role", "version", "state", "elapsed"):
            table.add_column(col)
        for row in self.nodes.values():
            table.add_row(row.node, row.role, f"{row.before} -> {row.after}", row.state, f"{row.elapsed(now):.0f}s")
        return table

    def _refresh(self) -> None:
        from rich.console import Console
        from rich.live import Live

        if self._live is None:
            self._live = Live(self._table(), console=Console(stderr=True), auto_refresh=False)
            self._live.start()
        self._live.update(self._table(), refresh=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # ------------------------------------------------------------------ wrapping a plan's checks

    def timed(self, check: Check, node: str, phase: str) -> Check:
        """`check` unchanged (same description): `node` enters `phase` when it starts, `failed` if it fails."""

        def run(runner: Runner) -> None:
            self.transition(node, phase)
            try:
                check.run(runner)
            except BaseException:
                self.transition(node, "failed")
                raise

        return Check(check.description, run)

    def mark(self, check: Check, node: str, state: str) -> Check:
        """`check` unchanged; `node` enters `state` once it passed."""

        def run(runner: Runner) -> None:
            check.run(runner)
            self.transition(node, state)

        return Check(check.description, run)

    # ------------------------------------------------------------------ the end

    def summary(self) -> str:
        now = self.clock()
        touched = [r for r in self.nodes.values() if r.started is not None]
        if not touched:
            return "rollout: no node was touched"
        lines = ["rollout summary:"]
        for r in touched:
            parts = ", ".join(f"{k} {v:.0f}s" for k, v in r.spent.items() if k != "waiting")
            lines.append(f"  {r.node:<20} {r.state:<9} {r.elapsed(now):>6.0f}s" + (f"  ({parts})" if parts else ""))
        gates = sum(r.spent.get("gates", 0.0) for r in touched)
        reboots = sum(r.spent.get("rebooting", 0.0) for r in touched)
        lines.append(f"  time in gates {gates:.0f}s, in reboots {reboots:.0f}s")
        return "\n".join(lines)
