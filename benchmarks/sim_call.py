"""Cost of one simulated tool call over `python -c pass` (a benchmark, not a test).

96 % of the test suite's time is simulator tests, and every simulated `talosctl`/`kubectl`/`helm`/`flux` call is
a fresh interpreter: start-up, imports and one locked transaction on the JSON state. This prints the median
wall time of typical calls and its ratio to an empty interpreter start, for the interpreter first on PATH
(how the tests run the shims) and through the shim's re-exec (`python3` on PATH is another interpreter than
`K8S_OPS_SIM_PYTHON`, which costs a second start). `--importtime` adds the slowest imports of one call.

    .venv/bin/python benchmarks/sim_call.py [--runs 30] [--importtime]

`--rollout` prices instead the calls one round of `benchmarks/rolling_upgrade.py` makes, on its world (3
controlplanes, 30 workers, everything up at the old version): all-node reads, etcd reads, the multi-type kubectl
read, with median and minimum, and `talosctl upgrade --wait` once per worker in logical time (the whole call: the
upgrade and every poll until the node is back). Measured on the 2-core dev box (load 0.7, 21 runs; `python -c pass`
21 ms): median 39.5-48.3 ms per call (etcd members 39.5, all-node version 40.8, machinestatus 43.0, extensions
43.3, kubectl nodes 44.4, five-type kubectl get 48.3), `upgrade --wait` of 6 steps 90 ms. Before the shims skipped
`site` and the simulator its eager imports, re-parsing and re-serialising (tests/sim/README.md, "Cost of a call"):
84-110 ms per call, 150 ms for the upgrade.

    .venv/bin/python benchmarks/sim_call.py --rollout [--runs 15] [--workers 30] [--only SUBSTRING]

Figures depend on the machine's load: note it (`uptime`) next to them.
"""

from __future__ import annotations

import argparse
import json
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


def samples(
    argv: list[str], runs: int, env: dict[str, str] | None = None
) -> tuple[list[float], subprocess.CompletedProcess[bytes]]:
    """Wall seconds of `runs` runs (after one warm-up that also writes bytecode caches), and the last result."""
    last = subprocess.run(argv, env=env, capture_output=True, check=False)
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        last = subprocess.run(argv, env=env, capture_output=True, check=False)
        out.append(time.perf_counter() - started)
    return out, last


def timed(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall seconds of `runs` runs."""
    return statistics.median(samples(argv, runs, env)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--importtime", action="store_true", help="show the slowest imports of one talosctl call")
    parser.add_argument("--rollout", action="store_true", help="the calls of a rolling-upgrade round, 3 + N nodes")
    parser.add_argument("--workers", type=int, default=30, help="with --rollout: workers besides 3 controlplanes")
    parser.add_argument("--only", default="", help="with --rollout: only the calls whose label contains this")
    args = parser.parse_args()
    if args.rollout:
        rollout(args)
        return
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


KUBE_TYPES = "nodes,pods,poddisruptionbudgets.v1.policy,volumeattachments.v1.storage.k8s.io,daemonsets.v1.apps"


def calls(talosconfig: str, kubeconfig: str, workers: int) -> list[tuple[str, list[str]]]:
    tc = ["talosctl", "--talosconfig", talosconfig]
    kc = ["kubectl", "--kubeconfig", kubeconfig]
    every = ",".join(node_addresses(workers))
    cps = "10.5.0.11,10.5.0.12,10.5.0.13"
    return [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        (f"talosctl -n <all {workers + 3}> version", [*tc, "-n", every, "version"]),
        ("talosctl -n <all> get machinestatus -o json", [*tc, "-n", every, "get", "machinestatus", "-o", "json"]),
        ("talosctl -n <all> get extensions -o json", [*tc, "-n", every, "get", "extensions", "-o", "json"]),
        ("talosctl -n <3 cps> etcd status", [*tc, "-n", cps, "etcd", "status"]),
        ("talosctl -n cp1 etcd members", [*tc, "-n", "10.5.0.11", "etcd", "members"]),
        ("kubectl get <5 types> -A -o json", [*kc, "get", KUBE_TYPES, "--all-namespaces", "-o", "json"]),
        ("kubectl get nodes -o json", [*kc, "get", "nodes", "-o", "json"]),
    ]


def node_addresses(workers: int) -> list[str]:
    cp = [f"10.5.0.{11 + i}" for i in range(3)]
    return cp + [f"10.5.0.{13 + i}" if 13 + i < 255 else f"10.5.1.{13 + i - 254}" for i in range(1, workers + 1)]


def rollout(args: argparse.Namespace) -> None:
    from benchmarks import rolling_upgrade as ru

    with ru.world(10, args.workers) as (sim, _tmp):
        from k8s_ops.core import paths

        talosconfig = str(paths.talosconfig_path("demo"))
        kubeconfig = str(paths.kubeconfig_path("demo"))
        print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} runs; 3 + {args.workers} nodes")
        print(f"{'call':<48} {'median ms':>9} {'min ms':>7}  rc")
        for label, argv in calls(talosconfig, kubeconfig, args.workers):
            if args.only not in label:
                continue
            runs, last = samples(argv, args.runs)
            median, low = statistics.median(runs) * 1000, min(runs) * 1000
            print(f"{label:<48} {median:>9.1f} {low:>7.1f}  {last.returncode}")
            if last.returncode:
                print("   ", last.stderr.decode()[:300])
        label = "talosctl -n <worker> upgrade --wait (+polls)"
        if args.only in label:
            sim.set("time", "logical")
            sim.set("poll_interval", 0.0)
            sim.set("reboot_seconds", 0.2)
            image = f"ghcr.io/siderolabs/installer:{ru.NEW}"
            took, polls = [], []
            for addr in node_addresses(args.workers)[3 : 3 + min(args.runs, args.workers)]:
                before = float(sim.state()["clock"])
                started = time.perf_counter()
                r = subprocess.run(["talosctl", "--talosconfig", talosconfig, "-n", addr, "upgrade", "--image", image,
                                    "--wait"], capture_output=True, check=False)  # fmt: skip
                took.append(time.perf_counter() - started)
                polls.append(round((float(sim.state()["clock"]) - before) / 0.05))
                if r.returncode:
                    print("   ", r.returncode, r.stderr.decode()[-300:])
            print(f"{label:<48} {statistics.median(took) * 1000:>9.1f} {min(took) * 1000:>7.1f}"
                  f"  ({json.dumps(sorted(set(polls)))} steps)")  # fmt: skip


if __name__ == "__main__":
    main()
