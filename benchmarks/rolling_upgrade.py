"""Rolling Talos upgrade in the simulator: completion time over the lower bound (a benchmark, not a test).

A cluster of 3 controlplanes and 30 workers (by default) whose reboots last R seconds is upgraded with
`talos.upgrade-cluster` for K = 1, 3, 5 workers at a time, and with a naive serial loop
(`for n in nodes; talosctl upgrade -n $n --wait`, no gates, no verification) for comparison. The lower bound is
`3R + ceil(30/K)R`: controlplanes one at a time, then the worker batches, with zero overhead. The goal is a
ratio of at most 1.05, which needs the per-node overhead (gate reads, waits) small next to R.

    .venv/bin/python benchmarks/rolling_upgrade.py [--reboot 10] [--workers 30] [--k 1,3,5] [--no-serial] [--checks]

`--checks` also runs each K with the storage-aware extras of `upgrade:` — a list gate over 3 objects, a `command`
check, a preNode and a postNode `command` hook — and prints what they cost per node (seconds and tool calls) over
the plain run. The list gate joins the round's one kubectl read and the command check its round; a postNode hook
runs between a node's return and the next node's reads, so a round with hooks has its node-back poll, the hooks,
the next reads and the next preNode hooks one after the other (a batch's hooks run concurrently).

Reads per node: one round when a node (or a whole batch) is back — one all-node talosctl read each of version,
machine status and extensions, etcd status and members, and one kubectl get of nodes, pods, PodDisruptionBudgets,
VolumeAttachments and the checks' built-in kinds — which also answers the next node's guard and gate
(`k8s_ops.core.facts.Shelf`; a gate that holds polls live). No boot id: the new version proves the reboot. A
batch's members start polling together once their upgrades returned, so they share each read. "read phases/round"
counts groups of overlapping read calls (measured in-process) per reboot round, the fixed start (tool versions,
facts, lock, snapshot) included.

The simulator runs in wall-clock mode here (`sim set time wall`): tests use its logical clock, where a reboot
lasts a number of contacts with the node and no real time at all, which would make a completion time meaningless;
this benchmark is about real time spent around reboots of R seconds.

Each simulated tool call is a fresh Python process (40-48 ms on the idle dev box, `benchmarks/sim_call.py
--rollout`), so what is left per round — the upgrade call's start, the reboot seen up to one simulator poll late (50
ms), one round of six concurrent reads on 2 cores — is independent of R: the ratio approaches 1 as R grows (on real
hardware R is minutes). Measured on the idle 2-core dev box, R = 10 s, 3 + 30 nodes: K=1 1.027 (8.2 calls/node, 1.1
read phases/round), K=3 1.033 (4.1, 1.2), K=5 1.038 (3.3, 1.3); with `--checks` K=1 1.044 (12.1, 2.1), K=3 1.061
(5.7, 2.2), K=5 1.061 (4.4, 2.3). Earlier: 1.12 / 1.12-1.15 / 1.14-1.17 (14.3 / 8.9 / 7.2 calls/node) with two
Kubernetes reads and boot ids per node and 84-110 ms simulator calls; before the merged rounds 1.13-1.19 / 1.24-1.32
/ 1.29-1.57.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.sim.simlib.api import BIN, Sim  # noqa: E402

OLD, NEW = "v1.12.0", "v1.12.11"


@dataclass(frozen=True)
class Result:
    label: str
    k: int
    seconds: float
    bound: float
    calls: int
    reboot: float
    phases: int = 0  # sequential read phases (groups of overlapping read calls) of the whole run

    @property
    def ratio(self) -> float:
        return self.seconds / self.bound

    @property
    def rounds(self) -> int:
        """Sequential reboot rounds in the bound: one per controlplane, one per worker batch."""
        return round(self.bound / self.reboot)


def inventory(workers: int, version: str) -> dict[str, Any]:
    """The demo inventory with its 3 controlplanes and `workers` workers on 10.5.0.0/24 (then 10.5.1.0/24)."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "clusters" / "demo" / "cluster.yaml").read_text())
    doc["talosVersion"] = version
    cps = [n for n in doc["nodes"] if n["role"] == "controlplane"]
    template = next(n for n in doc["nodes"] if n["role"] == "worker")
    extra = []
    for i in range(1, workers + 1):
        node = yaml.safe_load(yaml.safe_dump(template))
        node["hostname"] = f"demo-wk-{i}"
        node["address"] = f"10.5.0.{13 + i}" if 13 + i < 255 else f"10.5.1.{13 + i - 254}"
        for itf in node.get("interfaces") or []:
            for j, member in enumerate((itf.get("bond") or {}).get("members") or []):
                if isinstance(member, dict) and "hardwareAddr" in member:
                    member["hardwareAddr"] = f"52:54:06:{i // 256:02x}:{i % 256:02x}:{j:02x}"
        extra.append(node)
    doc["nodes"] = [*cps, *extra]
    return doc


@contextlib.contextmanager
def world(reboot: float, workers: int) -> Iterator[tuple[Sim, Path]]:
    """A fresh simulator with a running cluster at OLD and an inventory asking for NEW; env set for the run."""
    tmp = Path(tempfile.mkdtemp(prefix="k8s-ops-bench-"))
    saved = dict(os.environ)
    try:
        clusters = tmp / "clusters"
        shutil.copytree(REPO / "clusters" / "demo", clusters / "demo")
        (clusters / "demo" / "cluster.yaml").write_text(yaml.safe_dump(inventory(workers, NEW), sort_keys=False))
        sim_inventory = tmp / "sim-inventory.yaml"
        sim_inventory.write_text(yaml.safe_dump(inventory(workers, OLD), sort_keys=False))
        venv_bin = str(Path(sys.executable).parent)  # `python3` for the shims: no re-exec per tool call
        os.environ.update(
            K8S_OPS_SIM_DIR=str(tmp / "sim"),
            K8S_OPS_SIM_PYTHON=sys.executable,
            PATH=os.pathsep.join([str(BIN), venv_bin, os.environ.get("PATH", "")]),
            HOME=str(tmp / "home"),
            K8S_OPS_CLUSTERS_DIR=str(clusters),
            K8S_OPS_BUILD_DIR=str(tmp / "build"),
            K8S_OPS_STATE_DIR=str(tmp / "state"),
            K8S_OPS_POLL_INTERVAL=str(max(0.02, reboot / 200)),
            K8S_OPS_TIMEOUT_SCALE="1",
        )
        for var in ("TALOSCONFIG", "KUBECONFIG"):
            os.environ.pop(var, None)
        (tmp / "home").mkdir()
        from k8s_ops.core import paths

        sim = Sim(tmp / "sim")
        sim.set("time", "wall")  # reboots take R real seconds (tests use the logical clock: tests/sim/README.md)
        sim.set("reboot_seconds", reboot)
        sim.set("poll_interval", max(0.01, reboot / 200))
        sim.create(sim_inventory)
        paths.build_dir("demo").mkdir(parents=True)
        sim.make_ready(kubeconfig=tmp / "sim-kubeconfig", talosconfig=paths.talosconfig_path("demo"))
        quietly(lambda: call_task("kubeconfig"))
        yield sim, tmp
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(tmp, ignore_errors=True)


def call_task(name: str, **kwargs: Any) -> None:
    from invoke.context import Context

    from k8s_ops.core import preflight as tools
    from k8s_ops.talos import tasks as talos_tasks

    tools.reset_cache()
    getattr(talos_tasks, name.replace("-", "_"))(Context(), cluster="demo", **kwargs)


def quietly(fn: Any) -> None:
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            fn()
    except BaseException:
        sys.stderr.write(sink.getvalue()[-4000:])
        raise


def check_done(sim: Sim) -> None:
    behind = {a: n["talos_version"] for a, n in sim.state()["nodes"].items() if n["talos_version"] != NEW}
    if behind:
        raise SystemExit(f"benchmark run left nodes behind: {behind}")


EXTRAS_PY = "pass"


def add_checks(sim: Sim) -> None:
    """The storage-aware extras: three ConfigMaps judged by one list gate, a command check, node hooks."""
    from tests.sim.simlib.kube import Kube

    with sim.store.tx() as tx:
        kube = Kube(tx.clusters["demo"], tx.now)
        for i in range(3):
            kube.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"pool-{i}", "namespace": "default",
                      "labels": {"app": "storage"}}, "data": {"health": "HEALTH_OK"}}, manager="bench")  # fmt: skip
    path = Path(os.environ["K8S_OPS_CLUSTERS_DIR"]) / "demo" / "cluster.yaml"
    doc = yaml.safe_load(path.read_text())
    run = [sys.executable, "-c", EXTRAS_PY]
    doc.setdefault("upgrade", {}).update(
        healthChecks=[
            *doc["upgrade"].get("healthChecks", []),
            {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default", "labelSelector": "app=storage",
             "expr": "data.health == 'HEALTH_OK'"},
            {"command": run},
        ],
        hooks={"preNode": [{"command": run}], "postNode": [{"command": run, "always": True}]},
    )  # fmt: skip
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@contextlib.contextmanager
def timeline() -> Iterator[list[tuple[float, float, bool]]]:
    """Every command the toolkit runs in this process, as (start, end, mutates)."""
    from k8s_ops.core import runner as runner_mod

    spans: list[tuple[float, float, bool]] = []
    lock = threading.Lock()
    original = runner_mod.SubprocessRunner.run

    def run(self: Any, command: Any, *, check: bool = True) -> Any:
        t0 = time.monotonic()
        try:
            return original(self, command, check=check)
        finally:
            with lock:
                spans.append((t0, time.monotonic(), bool(command.mutates)))

    runner_mod.SubprocessRunner.run = run  # type: ignore[method-assign]
    try:
        yield spans
    finally:
        runner_mod.SubprocessRunner.run = original  # type: ignore[method-assign]


def read_phases(spans: list[tuple[float, float, bool]]) -> int:
    """Sequential read phases: groups of read calls whose run times overlap (a concurrent round is one phase)."""
    phases, end = 0, -1.0
    for t0, t1, mutates in sorted(spans):
        if mutates:
            continue
        if t0 > end:
            phases += 1
        end = max(end, t1)
    return phases


def run_toolkit(reboot: float, workers: int, k: int, *, checks: bool = False) -> Result:
    with world(reboot, workers) as (sim, _):
        if checks:
            add_checks(sim)
        before = len(sim.calls())
        started = time.monotonic()
        with timeline() as spans:
            quietly(lambda: call_task("upgrade-cluster", max_unavailable=k, yes=True))
        seconds = time.monotonic() - started
        check_done(sim)
        bound = 3 * reboot + math.ceil(workers / k) * reboot
        label = f"upgrade-cluster K={k}" + (" +checks" if checks else "")
        return Result(label, k, seconds, bound, len(sim.calls()) - before, reboot, read_phases(spans))


def run_serial(reboot: float, workers: int) -> Result:
    """What a shell loop does: one `talosctl upgrade --wait` after the other, nothing checked in between."""
    from k8s_ops.core import paths
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.schematic import installer_image

    with world(reboot, workers) as (sim, _):
        cluster = load_cluster("demo")
        image = installer_image(cluster)
        before = len(sim.calls())
        started = time.monotonic()
        for node in cluster.nodes:
            subprocess.run(
                ["talosctl", "upgrade", "--talosconfig", str(paths.talosconfig_path("demo")), "-n", str(node.address),
                 "--image", image, "--timeout", "10m"],
                check=True, capture_output=True,
            )  # fmt: skip
        seconds = time.monotonic() - started
        check_done(sim)
        return Result("serial loop (no gates)", 1, seconds, (3 + workers) * reboot, len(sim.calls()) - before, reboot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reboot", type=float, default=10.0, help="simulated reboot duration R in seconds")
    parser.add_argument("--workers", type=int, default=30)
    parser.add_argument("--k", default="1,3,5", help="comma-separated max-unavailable values")
    parser.add_argument("--no-serial", action="store_true", help="skip the serial-loop baseline")
    parser.add_argument("--checks", action="store_true", help="also run with gates and hooks; print their cost")
    args = parser.parse_args()
    ks = [int(x) for x in args.k.split(",") if x]
    nodes = 3 + args.workers
    print(f"3 controlplanes + {args.workers} workers, reboot R = {args.reboot:g}s, {OLD} -> {NEW}")
    print(
        f"{'run':<30} {'time':>9} {'bound':>9} {'ratio':>7} {'calls':>6} {'calls/node':>10} {'overhead/round':>15} "
        f"{'read phases/round':>18}"
    )
    runs: list[tuple[str, int]] = [("toolkit", k) for k in ks] + ([] if args.no_serial else [("serial", 1)])
    plain: dict[int, Result] = {}
    extras: dict[int, Result] = {}

    def show(r: Result) -> None:
        per_round = (r.seconds - r.bound) / r.rounds
        phases = f"{r.phases / r.rounds:>18.1f}" if r.phases else f"{'-':>18}"
        print(
            f"{r.label:<30} {r.seconds:>8.1f}s {r.bound:>8.1f}s {r.ratio:>7.3f} {r.calls:>6} {r.calls / nodes:>10.1f} "
            f"{per_round:>14.2f}s {phases}",
            flush=True,
        )

    for kind, k in runs:
        r = run_toolkit(args.reboot, args.workers, k) if kind == "toolkit" else run_serial(args.reboot, args.workers)
        show(r)
        if kind == "toolkit":
            plain[k] = r
            if args.checks:
                extras[k] = run_toolkit(args.reboot, args.workers, k, checks=True)
                show(extras[k])
    print("bound = 3R + ceil(workers/K)R; goal: ratio <= 1.05")
    for k, r in extras.items():
        base = plain[k]
        print(
            f"gates+hooks K={k}: {(r.seconds - base.seconds) / nodes:+.2f}s and {(r.calls - base.calls) / nodes:+.1f} "
            "tool calls per node over the plain run",
            flush=True,
        )


if __name__ == "__main__":
    main()
