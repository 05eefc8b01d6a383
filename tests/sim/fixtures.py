"""pytest fixtures for the simulator. Registered from tests/conftest.py (`pytest_plugins`).

`sim`: an empty simulator in a temp dir; PATH starts with tests/sim/bin, K8S_OPS_SIM_DIR points at it,
HOME is a temp dir (so ~/.kube/config and ~/.talos/config are private), TALOSCONFIG/KUBECONFIG are unset.
Time is the simulator's logical clock (state.py): a reboot lasts 0.2 simulated seconds = 4 contacts with the
node (step_seconds 0.05), however slow the machine; waiting tools sleep 10 ms of real time between polls, which
changes no outcome. Each test has its own state dir, HOME and K8S_OPS_* dirs, so tests run in parallel
(pytest-xdist) without sharing anything.
`sim_demo`: `sim` plus the demo cluster (clusters/demo/cluster.yaml when present, else 3 controlplanes and
2 workers on 10.5.0.0/24), all nodes in maintenance mode."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sim.simlib.api import BIN, Sim

REPO = Path(__file__).resolve().parents[2]
DEMO_INVENTORY = REPO / "clusters" / "demo" / "cluster.yaml"


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    root = tmp_path / "sim-state"
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("K8S_OPS_SIM_DIR", str(root))
    # the interpreter running the tests first on PATH: `#!/usr/bin/env python3` then starts it directly
    pydir = os.path.dirname(sys.executable)
    monkeypatch.setenv("PATH", os.pathsep.join([str(BIN), pydir, os.environ.get("PATH", "")]))
    monkeypatch.setenv("K8S_OPS_SIM_PYTHON", sys.executable)
    monkeypatch.setenv("HOME", str(home))
    for var in ("TALOSCONFIG", "KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = Sim(root)
    s.set("reboot_seconds", 0.2)
    s.set("poll_interval", 0.01)
    yield s


@pytest.fixture
def sim_demo(sim: Sim) -> Sim:
    if DEMO_INVENTORY.exists():
        sim.create(DEMO_INVENTORY)
    else:
        sim.create()
    return sim
