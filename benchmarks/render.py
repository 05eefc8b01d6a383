"""Benchmark k8s_ops.talos.render: synthetic clusters of 10, 100 and 1000 nodes (not a test; prints figures).

For each size it prints the render cost per node, the cost of serialising the same documents alone with PyYAML's
pure-Python dumper (`yaml.safe_dump_all`) and their ratio, the inventory load per node (cluster.yaml parsed with
libyaml's parser, and with the pure-Python one for comparison), and how many times the secrets bundle was
sops-decrypted. Goals: ratio <= 10, per-node cost flat as the cluster grows (linear total), exactly one decryption
per run.

The bundle is the demo cluster's real SOPS file (clusters/demo, test-only age key) when present, so the count
is of real `sops decrypt` calls; otherwise a generated plaintext bundle (0 decryptions by construction).

Run: .venv/bin/python benchmarks/render.py [sizes...]
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from k8s_ops.talos import secrets as secrets_mod  # noqa: E402
from k8s_ops.talos import yamlio  # noqa: E402
from k8s_ops.talos.inventory import load_cluster  # noqa: E402
from k8s_ops.talos.render import render_cluster  # noqa: E402
from k8s_ops.talos.secrets import SecretsBundle  # noqa: E402
from k8s_ops.tools import sops as sops_mod  # noqa: E402

DEMO = REPO / "clusters" / "demo"

PATCHES = {
    "all.yaml": (
        "machine:\n  kubelet:\n    nodeIP:\n      validSubnets: ['{{ cluster.network.node_cidr }}']\n"
        "  sysctls:\n    net.core.somaxconn: '65535'\n"
    ),
    "cp.yaml": "cluster:\n  etcd:\n    advertisedSubnets: ['{{ cluster.network.node_cidr }}']\n",
    "node.yaml": "machine:\n  nodeLabels:\n    bench/host: '{{ node.hostname }}'\n",
}


def cluster_yaml(n: int, *, key_file: bool) -> str:
    lines = [
        "name: bench",
        "id: 42",
        "domain: bench.example",
        "talosVersion: v1.12.0",
        "kubernetesVersion: v1.35.0",
        "endpoint: 10.100.0.10",
        "network: {nodeCIDR: 10.100.0.0/16, gateway: 10.100.0.1, nameservers: [10.100.0.1],"
        " podCIDR: 10.200.0.0/16, serviceCIDR: 10.201.0.0/16, mtu: 1500}",
        "schematic: {extensions: [siderolabs/iscsi-tools]}",
        "gitops: {repository: 'ssh://git@example.com/x.git', branch: main, path: clusters/bench}",
        "onepassword: {vault: bench}",
        *(["sops: {ageKeyFile: bench.agekey}"] if key_file else []),
        "patches: [all.yaml]",
        "controlplane: {patches: [cp.yaml], labels: {tier: cp}}",
        "worker: {labels: {tier: wk}, taints: ['dedicated=bench:NoSchedule']}",
        "nodes:",
    ]
    for i in range(n):
        role = "controlplane" if i < 3 else "worker"
        a, b = divmod(i + 11, 250)
        mac = f"f8:f2:1e:{i >> 16 & 0xff:02x}:{i >> 8 & 0xff:02x}:{i & 0xff:02x}"
        lines += [
            f"  - hostname: bench-{i:04d}",
            f"    address: 10.100.{a}.{b + 1}",
            f"    role: {role}",
            "    installDisk: {model: 'Samsung SSD 870*'}",
            "    interfaces:",
            "      - name: bond0",
            f"        bond: {{mode: 802.3ad, lacpRate: fast, members: [{{hardwareAddr: '{mac}', driver: i40e}}]}}",
            "        mtu: 9000",
            "        vlans: [{id: 2512, mtu: 1500}]",
        ]
        if i % 10 == 9:
            lines.append("    patches: [node.yaml]")
    return "\n".join(lines) + "\n"


def write_cluster(root: Path, n: int, *, encrypted: bool) -> None:
    cdir = root / "bench"
    (cdir / "patches").mkdir(parents=True)
    (cdir / "cluster.yaml").write_text(cluster_yaml(n, key_file=encrypted))
    for name, text in PATCHES.items():
        (cdir / "patches" / name).write_text(text)
    if encrypted:
        (cdir / "talos").mkdir()
        shutil.copy(DEMO / "talos" / "secrets.sops.yaml", cdir / "talos" / "secrets.sops.yaml")
        shutil.copy(DEMO / "demo.agekey", cdir / "bench.agekey")


def load_seconds(root: Path, runs: int, *, libyaml: bool) -> float:
    """Best time of `runs` inventory loads, parsing with libyaml's parser or the pure-Python one."""
    saved = yamlio.Loader
    yamlio.Loader = saved if libyaml else yamlio.PyLoader
    try:
        return best_of(runs, functools.partial(load_cluster, "bench", clusters_dir=root))[0]
    finally:
        yamlio.Loader = saved


def count_calls(obj: Any, name: str) -> list[int]:
    counter = [0]
    original: Callable[..., Any] = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return original(*args, **kwargs)

    setattr(obj, name, wrapper)
    return counter


def best_of(runs: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def measure(n: int, *, encrypted: bool, decryptions: list[int]) -> tuple[float, float, float, float, int]:
    """(render, dump, load with libyaml, load pure-Python seconds; sops decryptions) for a cluster of `n` nodes."""
    with tempfile.TemporaryDirectory() as tmp:
        write_cluster(Path(tmp), n, encrypted=encrypted)
        runs = 3 if n <= 100 else 1
        t_load_c = load_seconds(Path(tmp), runs, libyaml=True)
        t_load_py = load_seconds(Path(tmp), runs, libyaml=False)
        cluster = load_cluster("bench", clusters_dir=Path(tmp))
        secrets_mod.clear_cache()
        before = decryptions[0]
        bundle: SecretsBundle = secrets_mod.load_bundle(cluster) if encrypted else secrets_mod.generate_bundle()
        t_render, configs = best_of(runs, functools.partial(render_cluster, cluster, bundle))
        if encrypted:
            secrets_mod.load_bundle(cluster)  # a second load in the same run is served from memory
        used = decryptions[0] - before
        docs = [c.documents for c in configs]
        t_dump, _ = best_of(runs, functools.partial(dump_all, docs))
    return t_render, t_dump, t_load_c, t_load_py, used


def dump_all(docs: list[list[dict[str, Any]]]) -> list[str]:
    return [yaml.safe_dump_all(d, sort_keys=False) for d in docs]


def main(sizes: list[int]) -> int:
    encrypted = (DEMO / "talos" / "secrets.sops.yaml").is_file() and (DEMO / "demo.agekey").is_file()
    decryptions = count_calls(sops_mod.Sops, "decrypt")
    print(f"bundle: {'SOPS-encrypted (clusters/demo, test key)' if encrypted else 'generated plaintext'}")
    print(
        f"{'nodes':>6} {'render ms/node':>15} {'dump ms/node':>13} {'ratio':>6} {'total s':>8} "
        f"{'load ms/node':>13} {'(pure-Py)':>10} {'decrypts':>9}"
    )
    per_node: list[float] = []
    ok = True
    for n in sizes:
        t_render, t_dump, t_load_c, t_load_py, used = measure(n, encrypted=encrypted, decryptions=decryptions)
        ratio = t_render / t_dump
        per_node.append(t_render / n)
        row = f"{n:>6} {1000 * t_render / n:>15.2f} {1000 * t_dump / n:>13.2f} {ratio:>6.2f} {t_render:>8.2f}"
        print(f"{row} {1000 * t_load_c / n:>13.3f} {1000 * t_load_py / n:>10.3f} {used:>9}")
        ok &= ratio <= 10 and used == (1 if encrypted else 0)
    if len(per_node) > 1:
        growth = per_node[-1] / per_node[0]
        print(f"per-node cost {sizes[-1]} vs {sizes[0]} nodes: x{growth:.2f} (1.0 = perfectly linear)")
        ok &= growth <= 2.0
    print("goals met" if ok else "GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main([int(a) for a in sys.argv[1:]] or [10, 100, 1000]))
