"""Helpers for tests that drive the simulator through PATH (used by tests/test_sim_*.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.sim.simlib.api import Sim


def run(
    sim: Sim, tool: str, *args: str, input: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return sim.run(tool, *args, input=input, timeout=timeout)


def ok(sim: Sim, tool: str, *args: str, input: str | None = None) -> str:
    r = sim.run(tool, *args, input=input)
    assert r.returncode == 0, f"{tool} {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


def applied(sim: Sim, *args: str) -> str:
    """`talosctl <args>` (an apply-config) succeeds with nothing on stdout; returns stderr, where talosctl prints
    the mode details and dry-run summary (helpers/mode.go PrintApplyResults)."""
    r = sim.run("talosctl", *args)
    assert r.returncode == 0, f"talosctl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    assert r.stdout == "", r.stdout
    return r.stderr


def write_configs(sim: Sim, tmp: Path, cluster: str = "demo") -> dict[str, Path]:
    out = {}
    for a in sim.cluster(cluster)["nodes"]:
        p = tmp / f"{a}.yaml"
        p.write_text(sim.machine_config(a))
        out[a] = p
    return out


def install_all(sim: Sim, tmp: Path, cluster: str = "demo") -> tuple[dict[str, Path], Path]:
    """apply-config --insecure to every node concurrently, wait until all run configured; returns configs,
    talosconfig."""
    configs = write_configs(sim, tmp, cluster)
    procs = [
        subprocess.Popen(
            ["talosctl", "apply-config", "--insecure", "-n", a, "-f", str(p)],
            env=sim.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a, p in configs.items()
    ]
    for pr in procs:
        _, err = pr.communicate(timeout=30)
        assert pr.returncode == 0, err
    sim.settle()
    tc = sim.write_talosconfig(tmp / "talosconfig", cluster)
    return configs, tc


def bootstrap(sim: Sim, tmp: Path, cluster: str = "demo", *, cni: bool = False) -> tuple[Path, Path]:
    """Installed + etcd bootstrapped + kubeconfig written, and a CNI when `cni` (without one no node is Ready,
    so nothing that waits for Talos' readiness — `upgrade`/`reboot` with `--wait` — can finish).
    Returns (talosconfig, kubeconfig)."""
    _, tc = install_all(sim, tmp, cluster)
    first = sim.cluster(cluster)["nodes"][0]
    ok(sim, "talosctl", "--talosconfig", str(tc), "-n", first, "bootstrap")
    kc = tmp / "kubeconfig"
    ok(sim, "talosctl", "--talosconfig", str(tc), "-n", first, "kubeconfig", str(kc), "--merge=false", "--force")
    if cni:
        sim.install_cni(cluster)
    return tc, kc


def machinestatus(sim: Sim, node: str, *extra: str) -> dict[str, object]:
    out = ok(sim, "talosctl", "-n", node, "get", "machinestatus", "-o", "json", *extra)
    data: dict[str, object] = json.loads(out)
    return data
