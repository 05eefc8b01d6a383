"""Cost of one simulated tool call over `python -c pass` (a benchmark, not a test).

96 % of the test suite's time is simulator tests, and every simulated `talosctl`/`kubectl`/`helm`/`flux` call is
a fresh interpreter: start-up, imports and one locked transaction on the JSON state. This prints the median
wall time of typical calls and its ratio to an empty interpreter start, for the interpreter first on PATH
(how the tests run the shims) and through the shim's re-exec (`python3` on PATH is another interpreter than
`K8S_OPS_SIM_PYTHON`, which costs a second start). `--importtime` adds the slowest imports of one call.

    .venv/bin/python benchmarks/sim_call.py [--runs 30] [--importtime]

Figures depend on the machine's load: note it (`uptime`) next to them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.sim.simlib.api import BIN, Sim  # noqa: E402

CALLS: list[tuple[str, list[str]]] = [
    ("talosctl version --client", ["talosctl", "version", "--client"]),
    ("talosctl get machinestatus (insecure)", ["talosctl", "-n", "10.5.0.14", "get", "machinestatus", "--insecure"]),
    (
        "talosctl etcd members",
        ["talosctl", "--talosconfig", "{root}/talosconfig", "-n", "10.5.0.11", "etcd", "members"],
    ),
    ("kubectl get nodes", ["kubectl", "--kubeconfig", "{root}/kubeconfig", "get", "nodes"]),
    ("helm list -A", ["helm", "--kubeconfig", "{root}/kubeconfig", "list", "-A"]),
    ("sim state --summary", ["sim", "state", "--summary"]),
]


def timed(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall seconds of `runs` runs (after one warm-up that also writes bytecode caches)."""
    subprocess.run(argv, env=env, capture_output=True, check=False)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=False)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--importtime", action="store_true", help="show the slowest imports of one talosctl call")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="k8s-ops-simcall-"))
    try:
        sim = Sim(tmp / "sim")
        sim.create(REPO / "clusters" / "demo" / "cluster.yaml")
        sim.make_ready()
        sim.set("reboot_seconds", 0.2)
        (tmp / "home").mkdir()
        venv_bin = str(Path(sys.executable).parent)
        base = {k: v for k, v in os.environ.items() if k not in ("TALOSCONFIG", "KUBECONFIG")}
        base.update(K8S_OPS_SIM_DIR=str(sim.root), K8S_OPS_SIM_PYTHON=sys.executable, HOME=str(tmp / "home"))
        direct = {**base, "PATH": os.pathsep.join([str(BIN), venv_bin, os.environ.get("PATH", "")])}
        other = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
        reexec = {**base, "PATH": os.pathsep.join([str(BIN), "/usr/local/bin:/usr/bin:/bin"])}

        empty = timed([sys.executable, "-c", "pass"], direct, args.runs)
        load = os.getloadavg()[0]
        print(f"load average {load:.2f}; median of {args.runs} runs; python -c pass = {empty * 1000:.1f} ms")
        print(f"{'call':<40} {'ms':>7} {'x pass':>7}")
        for label, argv in CALLS:
            cmd = [a.replace("{root}", str(sim.root)) for a in argv]
            cost = timed(cmd, direct, args.runs)
            print(f"{label:<40} {cost * 1000:>7.1f} {cost / empty:>7.2f}")
        if other is not None:
            cost = timed(["talosctl", "version", "--client"], reexec, args.runs)
            print(f"{'talosctl version --client via re-exec':<40} {cost * 1000:>7.1f} {cost / empty:>7.2f}"
                  f"   (python3 on PATH: {other})")  # fmt: skip
        if args.importtime:
            r = subprocess.run(
                [sys.executable, "-X", "importtime", str(BIN / "talosctl"), "-n", "10.5.0.14", "get", "machinestatus",
                 "--insecure"],
                env=direct, capture_output=True, text=True, check=False,
            )  # fmt: skip
            rows = []
            for line in r.stderr.splitlines():
                if line.startswith("import time:") and "cumulative" not in line:
                    _self_us, cum_us, name = (x.strip() for x in line.removeprefix("import time:").split("|"))
                    rows.append((int(cum_us), name))
            print("\nslowest imports (cumulative ms) of `talosctl get machinestatus --insecure`:")
            for cum, name in sorted(rows, reverse=True)[:15]:
                print(f"  {cum / 1000:>6.1f}  {name}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
