"""The simulator's logical clock (tests/sim/simlib/state.py, ledger tests/sim/fidelity/time.md): simulated state
moves only with the sequence of tool calls, never with how fast they ran."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sim.helpers import ok, run
from tests.sim.simlib.api import BIN, Sim
from tests.sim.simlib.state import SETTINGS_DEFAULTS

WK1, CP1 = "10.5.0.14", "10.5.0.11"
SIMLIB = Path(__file__).resolve().parent / "sim" / "simlib"


@pytest.fixture
def ready(sim_demo: Sim) -> Sim:
    sim_demo.make_ready()
    return sim_demo


def talosctl(sim: Sim, *args: str) -> subprocess.CompletedProcess[str]:
    return run(sim, "talosctl", "--talosconfig", str(sim.root / "talosconfig"), *args)


def phases_seen(sim: Sim, node: str, contacts: int) -> list[tuple[str, bool]]:
    """(phase after the contact, whether the node answered) for `contacts` successive `version` calls."""
    out = []
    for _ in range(contacts):
        r = talosctl(sim, "-n", node, "version")
        out.append((sim.node(node)["phase"], "connection refused" not in r.stderr))
    return out


# reboot_seconds 0.2 / step_seconds 0.05 = 4 contacts: still up, down, booting, up
REBOOT = [("pre", True), ("down", False), ("booting", True), ("up", True)]


def test_a_reboot_passes_every_phase_once_per_contact(ready: Sim) -> None:
    assert ready.state()["settings"]["reboot_seconds"] == 0.2
    boot = ready.node(WK1)["boot_id"]
    talosctl(ready, "-n", WK1, "reboot", "--wait=false")
    assert ready.node(WK1)["phase"] == "pre"  # looking (the harness) is not a contact
    assert phases_seen(ready, WK1, 4) == REBOOT  # the refused call (down) still counted as a look
    assert ready.node(WK1)["boot_id"] != boot and ready.node(WK1).get("reboot") is None


def test_a_starved_caller_cannot_skip_a_phase(ready: Sim) -> None:
    """Every call sleeps longer than a whole reboot lasts before it acts: the phases are the same."""
    ready.set("latency", 0.25)
    talosctl(ready, "-n", WK1, "reboot", "--wait=false")
    assert phases_seen(ready, WK1, 4) == REBOOT


def test_calls_to_other_nodes_do_not_move_a_nodes_reboot_but_move_the_clock(ready: Sim) -> None:
    talosctl(ready, "-n", WK1, "reboot", "--wait=false")
    before = ready.state()["clock"]
    for _ in range(3):
        talosctl(ready, "-n", CP1, "version")
    assert ready.state()["clock"] == pytest.approx(before + 3 * 0.05)
    assert ready.node(WK1)["phase"] == "pre"
    assert phases_seen(ready, WK1, 4) == REBOOT


def test_a_tools_timeout_is_counted_in_polls(ready: Sim) -> None:
    """--timeout 1s x timeout_scale 0.2 = 0.2 s = 4 polls of 0.05 s after the call's own step."""
    ready.fault("node-never-returns", node=WK1)
    ready.set("timeout_scale", 0.2)
    before = ready.state()["clock"]
    r = talosctl(ready, "-n", WK1, "reboot", "--wait", "--timeout", "1s")
    assert r.returncode == 1 and "timeout waiting for the node to come back" in r.stderr
    assert ready.state()["clock"] == pytest.approx(before + 5 * 0.05)
    assert ready.node(WK1)["phase"] == "down"
    ready.clear_faults()  # the reboot goes on from "just went down"
    assert phases_seen(ready, WK1, 3) == REBOOT[1:]


def test_settle_and_advance_let_time_pass_for_everyone(ready: Sim) -> None:
    talosctl(ready, "-n", WK1, "reboot", "--wait=false")
    talosctl(ready, "-n", CP1, "reboot", "--wait=false")
    before = ready.state()["clock"]
    ready.settle()
    assert ready.node(WK1)["phase"] == ready.node(CP1)["phase"] == "up"
    assert ready.state()["clock"] == pytest.approx(before + 4 * 0.05)
    ok(ready, "sim", "advance", "1.5")
    assert ready.state()["clock"] == pytest.approx(before + 4 * 0.05 + 1.5)


def test_the_settings_table_is_the_one_source_of_keys(sim: Sim) -> None:
    read = set()
    for path in SIMLIB.rglob("*.py"):
        text = path.read_text()
        read |= set(re.findall(r"""setting\(\s*["'](\w+)["']""", text))
        read |= set(re.findall(r"""settings(?:\.get\(|\[)\s*["'](\w+)["']""", text))
    assert read and read <= set(SETTINGS_DEFAULTS), sorted(read - set(SETTINGS_DEFAULTS))
    ok(sim, "sim", "set", "volsync_job_seconds", "0.1")
    assert sim.state()["settings"]["volsync_job_seconds"] == 0.1
    r = run(sim, "sim", "set", "no_such_setting", "1")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run(sim, "sim", "set", "time", "sundial")
    assert r.returncode == 1 and "expected logical or wall" in r.stderr
    with pytest.raises(KeyError, match="no_such_setting"):
        sim.set("no_such_setting", 1)


def test_sim_python_that_is_a_venv_of_the_python3_on_path_is_used(sim: Sim, tmp_path: Path) -> None:
    """A venv's python resolves to its base interpreter; the shim must still start the venv (its packages),
    not the base interpreter first on PATH."""
    base = os.path.realpath(sys.executable)
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run in a virtualenv")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(base)
    (venv / "pyvenv.cfg").write_text(f"home = {os.path.dirname(base)}\ninclude-system-site-packages = false\n")
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    site.mkdir(parents=True)
    real_site = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))
    marker = tmp_path / "used"
    (site / "sim.pth").write_text(f"{real_site}\nimport os; open({str(marker)!r}, 'w').close()\n")
    basebin = tmp_path / "basebin"
    basebin.mkdir()
    (basebin / "python3").symlink_to(base)
    env = sim.env({"PATH": os.pathsep.join([str(BIN), str(basebin), os.environ["PATH"]])})
    env["K8S_OPS_SIM_PYTHON"] = str(venv / "bin" / "python")
    r = subprocess.run(["talosctl", "version", "--client"], env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert marker.exists()
