"""The toolkit's own overhead per node for a whole-cluster operation (a benchmark, not a test).

`talos.apply-cluster` on fresh nodes (all in maintenance mode) over 3, 30 and 300 nodes, end to end through the
real code — inventory load, render, fact gathering, planning and the executor — against an in-process stand-in
for talosctl (tests/lifecycle_world.py) that answers instantly. With zero simulated latency every second measured
is the toolkit's own; the per-node figure should stay flat as the cluster grows (no quadratic work).

A second run gives every `apply-config` a fixed latency L and reports the peak number of applies in flight and
the wall time over the serial time (n·L): independent per-node steps must overlap, bounded by K8S_OPS_CONCURRENCY.

    .venv/bin/python benchmarks/overhead.py [--sizes 3,30,300] [--latency 0.02] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from k8s_ops.core.command import Command, Result  # noqa: E402
from k8s_ops.core.execute import execute  # noqa: E402
from k8s_ops.core.secret import Secret  # noqa: E402
from k8s_ops.talos import facts  # noqa: E402
from k8s_ops.talos.inventory import load_cluster  # noqa: E402
from k8s_ops.talos.lifecycle import Env, plan_apply  # noqa: E402
from k8s_ops.talos.render import render_cluster  # noqa: E402
from k8s_ops.talos.secrets import generate_bundle  # noqa: E402
from tests.lifecycle_world import World  # noqa: E402


def inventory(n: int) -> dict[str, object]:
    """3 controlplanes + n-3 workers on a /22, each with one static interface."""
    nodes = []
    for i in range(n):
        third, last = divmod(i + 11, 250)
        role = "controlplane" if i < 3 else "worker"
        nodes.append(
            {
                "hostname": f"bench-{'cp' if i < 3 else 'wk'}-{i + 1}",
                "address": f"10.9.{third}.{last}",
                "role": role,
                "installDisk": "/dev/sda",
                "interfaces": [{"name": "eth0"}],
            }
        )
    return {
        "name": "bench",
        "id": 9,
        "domain": "bench.internal",
        "talosVersion": "v1.12.0",
        "kubernetesVersion": "v1.35.0",
        "endpoint": "10.9.0.10",
        "network": {
            "nodeCIDR": "10.9.0.0/22",
            "gateway": "10.9.0.1",
            "nameservers": ["10.9.0.1"],
            "podCIDR": "10.48.0.0/16",
            "serviceCIDR": "10.49.0.0/16",
            "mtu": 1500,
        },
        "schematic": {"extensions": ["siderolabs/iscsi-tools"], "extraKernelArgs": []},
        "gitops": {"repository": "https://example.com/bench.git", "branch": "main", "path": "clusters/bench"},
        "onepassword": {"vault": "bench"},
        "nodes": nodes,
    }


class Runner:
    """The world's runner plus latency on apply-config, outside the world's lock, and an in-flight count."""

    def __init__(self, world: World, latency: float) -> None:
        self.world = world
        self.latency = latency
        self.lock = threading.Lock()
        self.inflight = 0
        self.peak = 0
        self.applies = 0

    def run(self, command: Command, *, check: bool = True) -> Result:
        argv = command.display_argv()
        applying = argv[:2] == ["talosctl", "apply-config"] and "--dry-run" not in argv
        if applying:
            with self.lock:
                self.inflight += 1
                self.applies += 1
                self.peak = max(self.peak, self.inflight)
            if self.latency:
                time.sleep(self.latency)
        try:
            return self.world.runner.run(command, check=check)
        finally:
            if applying:
                with self.lock:
                    self.inflight -= 1


def measure(clusters: Path, n: int, latency: float) -> tuple[float, Runner]:
    cluster_dir = clusters / "bench"
    cluster_dir.mkdir(parents=True, exist_ok=True)
    (cluster_dir / "cluster.yaml").write_text(yaml.safe_dump(inventory(n), sort_keys=False))
    bundle = generate_bundle()
    started = time.perf_counter()
    cluster = load_cluster("bench", clusters_dir=clusters)
    world = World(cluster)
    for node in world.nodes.values():
        node.maintenance = True
    runner = Runner(world, latency)
    env = Env.for_cluster(cluster)
    configs = {r.hostname: Secret(r.text) for r in render_cluster(cluster, bundle)}
    targets = facts.gather_apply_targets(runner, env.tctl, cluster.nodes, configs, mode="auto")
    plan = plan_apply(env, targets, "auto", max_unavailable=1)
    execute(plan, runner, yes=True, out=lambda _: None)
    return time.perf_counter() - started, runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,30,300")
    parser.add_argument("--latency", type=float, default=0.02, help="apply-config latency of the second run (s)")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    os.environ["K8S_OPS_CONCURRENCY"] = str(args.concurrency)
    os.environ.setdefault("K8S_OPS_POLL_INTERVAL", "0")
    os.environ.setdefault("K8S_OPS_STATE_DIR", tempfile.mkdtemp(prefix="k8s-ops-bench-state-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"apply-cluster on fresh nodes; concurrency bound {args.concurrency}")
    print(
        f"{'nodes':>6} {'zero latency':>13} {'per node':>10}   {'latency ' + str(args.latency) + 's':>14} "
        f"{'peak in flight':>15} {'wall/serial':>12}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            zero, _ = measure(Path(tmp) / f"z{n}", n, 0.0)
            slow, runner = measure(Path(tmp) / f"l{n}", n, args.latency)
            serial = runner.applies * args.latency
            print(
                f"{n:>6} {zero:>12.3f}s {zero / n * 1000:>8.2f}ms   {slow:>13.3f}s {runner.peak:>15} "
                f"{(slow - zero) / serial if serial else 0:>12.2f}"
            )
    print("per node should stay flat as nodes grow; peak in flight should reach the bound; wall/serial ≈ 1/bound")


if __name__ == "__main__":
    main()
