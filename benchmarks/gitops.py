"""Benchmark gitops.validate on generated monorepos of 50, 200 and 800 apps (not a test; prints figures).

Each app is a Flux Kustomization (`ks.yaml`, targetNamespace, commonMetadata, a shared component, postBuild from
cluster-vars) over a Deployment, a Service and a ConfigMap with `${VAR}`s, grouped 25 apps per namespace. For each
size it prints the wall time of `validate_cluster` (kustomize builds through the shadow tree, substitution, graph,
schemas), the wall time of the bare `kubectl kustomize` builds of the same directories with the same pool size,
their ratio (goal <= 1.5x), the ratio of CPU seconds (this process plus its kubectl children: steadier on a
loaded machine), and peak memory (this process, and the largest kubectl child).

"bare s" times the exact kustomizations validate builds (Flux's rewrite of each path, written beforehand);
"plain s" the plain directories, without Flux's rewrite. On a shared, loaded machine use `--repeat 3` (best of 3,
interleaved).

Run: .venv/bin/python benchmarks/gitops.py [sizes...] [--workers N] [--repeat R]
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from k8s_ops.core.runner import SubprocessRunner  # noqa: E402
from k8s_ops.gitops.build import build_command, flux_kustomization, kubectl_binary, shadow_tree  # noqa: E402
from k8s_ops.gitops.validate import validate_cluster  # noqa: E402
from k8s_ops.talos.inventory import load_cluster  # noqa: E402

FIXTURE_CLUSTER = REPO / "tests" / "fixtures" / "gitops" / "repo" / "clusters" / "lab" / "cluster.yaml"
PER_NAMESPACE = 25

KS = """---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {app}
  namespace: flux-system
spec:
  targetNamespace: {ns}
  commonMetadata:
    labels:
      app.kubernetes.io/name: {app}
  components:
    - ../../../../components/common
  interval: 30m
  path: ./kubernetes/apps/{ns}/{app}/app
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  postBuild:
    substituteFrom:
      - kind: ConfigMap
        name: cluster-vars
"""

APP = """---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
spec:
  replicas: ${{APP_REPLICAS}}
  selector:
    matchLabels:
      app: {app}
  template:
    metadata:
      labels:
        app: {app}
    spec:
      containers:
        - name: app
          image: ghcr.io/example/{app}:1.0.0
          env:
            - name: DOMAIN
              value: {app}.${{CLUSTER_DOMAIN}}
          ports:
            - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: {app}
spec:
  selector:
    app: {app}
  ports:
    - port: 80
      targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {app}-config
data:
  cluster: ${{CLUSTER_NAME}}
  tier: ${{TIER:=backend}}
"""


def generate(root: Path, apps: int) -> list[tuple[str, dict[str, Any]]]:
    """Write the repository; return every Flux Kustomization's path and spec (what validate builds)."""

    def w(rel: str, text: str) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)

    w(
        "clusters/bench/cluster.yaml",
        FIXTURE_CLUSTER.read_text()
        .replace("name: lab", "name: bench")
        .replace("clusters/lab/flux", "clusters/bench/flux")
        .replace("sops:\n  ageKeyFile: lab.agekey\n", ""),
    )
    w("clusters/bench/flux/kustomization.yaml", "resources: [./apps.yaml]\n")
    w(
        "clusters/bench/flux/apps.yaml",
        KS.format(app="cluster-apps", ns="flux-system")
        .replace("./kubernetes/apps/flux-system/cluster-apps/app", "./clusters/bench/apps")
        .replace("  components:\n    - ../../../../components/common\n", "")
        .replace("  targetNamespace: flux-system\n", ""),
    )
    w(
        "kubernetes/components/common/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "labels:\n  - pairs:\n      monosense.dev/cluster: ${CLUSTER_NAME}\n",
    )
    namespaces: dict[str, list[str]] = {}
    paths: list[tuple[str, dict[str, Any]]] = []
    for i in range(apps):
        ns = f"ns-{i // PER_NAMESPACE:03d}"
        app = f"app-{i:04d}"
        namespaces.setdefault(ns, []).append(app)
        w(f"kubernetes/apps/{ns}/{app}/ks.yaml", KS.format(app=app, ns=ns))
        w(f"kubernetes/apps/{ns}/{app}/app/kustomization.yaml", "resources: [./resources.yaml]\n")
        w(f"kubernetes/apps/{ns}/{app}/app/resources.yaml", APP.format(app=app))
        spec = {"targetNamespace": ns, "components": ["../../../../components/common"]}
        paths.append((f"kubernetes/apps/{ns}/{app}/app", spec))
    for ns, members in namespaces.items():
        resources = "".join(f"  - ./{a}/ks.yaml\n" for a in members)
        w(f"kubernetes/apps/{ns}/kustomization.yaml", f"resources:\n  - ./namespace.yaml\n{resources}")
        w(f"kubernetes/apps/{ns}/namespace.yaml", f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
    w(
        "clusters/bench/apps/kustomization.yaml",
        "resources:\n" + "".join(f"  - ../../../kubernetes/apps/{ns}\n" for ns in namespaces),
    )
    return [("clusters/bench/flux", {}), ("clusters/bench/apps", {}), *paths]


def _cpu() -> float:
    """CPU seconds of this process and its finished children: steadier than wall time on a loaded machine."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bare(root: Path, builds: list[tuple[str, dict[str, Any]]], workers: int, *, flux: bool) -> tuple[float, float]:
    """Wall time of the `kubectl kustomize` runs alone (same pool size): of the plain directories, or (`flux`) of
    the very kustomizations validate builds (Flux's rewrite, written beforehand, outside the timing)."""
    runner = SubprocessRunner()
    kubectl = kubectl_binary()
    dirs: list[Path] = []
    shadows = Path(tempfile.mkdtemp(prefix="k8s-ops-bench-shadow-"))
    try:
        for i, (path, spec) in enumerate(builds):
            if flux:
                kustomization, _ = flux_kustomization(root / path, spec)
                (shadows / str(i)).mkdir()
                dirs.append(shadow_tree(root, Path(path), shadows / str(i), kustomization))
            else:
                dirs.append(root / path)
        started, cpu = time.perf_counter(), _cpu()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda d: runner.run(build_command(kubectl, d), check=False), dirs))
        elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
    finally:
        shutil.rmtree(shadows, ignore_errors=True)
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"bare build failed: {failed[0].stderr}")
    return elapsed, cpu


def main(argv: list[str]) -> None:
    workers = max(2, os.cpu_count() or 2)
    if "--workers" in argv:
        i = argv.index("--workers")
        workers = int(argv[i + 1])
        del argv[i : i + 2]
    repeat = 1
    if "--repeat" in argv:
        i = argv.index("--repeat")
        repeat = int(argv[i + 1])
        del argv[i : i + 2]
    sizes = [int(a) for a in argv] or [50, 200, 800]
    print(f"gitops.validate vs bare kustomize builds ({workers} parallel builds, kubectl {kubectl_binary()})")
    print(
        f"{'apps':>5} {'objects':>8} {'validate s':>11} {'bare s':>8} {'ratio':>6} {'cpu ratio':>10} "
        f"{'plain s':>8} {'self MiB':>9} {'child MiB':>10}"
    )
    for size in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="k8s-ops-bench-gitops-"))
        state = Path(tempfile.mkdtemp(prefix="k8s-ops-bench-state-"))
        try:
            builds = generate(tmp, size)
            os.environ["K8S_OPS_CLUSTERS_DIR"] = str(tmp / "clusters")
            os.environ["K8S_OPS_STATE_DIR"] = str(state)
            cluster = load_cluster("bench")
            inf = (float("inf"), float("inf"))
            plain, flux, valid = inf, inf, inf
            for _ in range(repeat):  # best of `repeat`, interleaved: a shared machine's load drifts
                plain = min(plain, bare(tmp, builds, workers, flux=False))
                flux = min(flux, bare(tmp, builds, workers, flux=True))
                started, cpu = time.perf_counter(), _cpu()
                report = validate_cluster(cluster, repo=tmp, runner=SubprocessRunner(), offline=True, workers=workers)
                valid = min(valid, (time.perf_counter() - started, _cpu() - cpu))
            if report.errors:
                raise SystemExit(f"unexpected findings: {report.errors[:3]}")
            self_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            child_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(
                f"{size:>5} {report.objects:>8} {valid[0]:>11.2f} {flux[0]:>8.2f} {valid[0] / flux[0]:>5.2f}x "
                f"{valid[1] / flux[1]:>9.2f}x {plain[0]:>8.2f} {self_mib:>9.0f} {child_mib:>10.0f}"
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
