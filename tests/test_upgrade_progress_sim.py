"""A rollout that shows where it is: transitions as JSON lines with --json, a per-node summary at the end."""

from __future__ import annotations

import json

import pytest

from tests.sim.simlib.api import Sim
from tests.test_lifecycle_sim import lab, task

__all__ = ["lab"]


def test_json_lines_follow_each_node_and_the_summary_splits_gates_from_reboots(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    task("upgrade-cluster", only="demo-wk-1,demo-wk-2", json=True)
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for node in ("demo-wk-1", "demo-wk-2"):
        states = [e["state"] for e in events if e["node"] == node]
        # the extensions are read with the node-back wait (one merged round), so a rollout's node goes from
        # rebooting straight to done; "verifying" is what follows that wait (upgrade-node's after-gate)
        assert states == ["gates", "rebooting", "done"], states
        assert {(e["from"], e["to"], e["role"]) for e in events if e["node"] == node} == {
            ("v1.12.0", "v1.12.11", "worker")
        }
    first_wk2 = next(i for i, e in enumerate(events) if e["node"] == "demo-wk-2")
    assert all(e["node"] == "demo-wk-1" for e in events[:first_wk2])  # one node after the other
    assert "rollout summary:" in err and "time in gates" in err and "in reboots" in err
    assert "--json only changes --dry-run output" not in err  # a rollout's --json streams its progress
    assert "demo-wk-1" in err.split("rollout summary:")[1]
