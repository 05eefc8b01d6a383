"""One simulated world for bootstrap tests: the demo inventory copied to a temp clusters dir, a private HOME (with
a stray sops default key that must be ignored), the real 1Password code against the in-memory SDK fake, and the
simulator with the demo nodes in maintenance mode. Used by tests/test_bootstrap_sim.py and
tests/test_boot_sequence_sim.py (each module gets its own world)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from k8s_ops.bootstrap.run import Options, build_plan
from k8s_ops.core import paths
from k8s_ops.core import preflight as tools
from k8s_ops.core.plan import Plan
from k8s_ops.core.runner import SubprocessRunner
from k8s_ops.onepassword import sdk as op_sdk
from k8s_ops.talos import secrets as talos_secrets
from k8s_ops.talos.inventory import load_cluster
from k8s_ops.tools import sops
from tests.op_fake import FakeOnePassword
from tests.sim.simlib.api import BIN, Sim

REPO = Path(__file__).resolve().parent.parent


@dataclass
class World:
    sim: Sim
    clusters: Path
    runner: SubprocessRunner
    onepassword: FakeOnePassword
    secrets: list[str] = field(default_factory=list)

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        return self.sim.calls()[since:]

    def plan(self, **kw: Any) -> Plan:
        return build_plan(Options(cluster="demo", **kw), self.runner)

    def kubectl(self, *args: str) -> str:
        kc = paths.kubeconfig_path("demo")
        r = self.sim.run("kubectl", "--kubeconfig", str(kc), "--context", "demo", *args)
        assert r.returncode == 0, r.stderr
        return r.stdout


@contextmanager
def bootstrap_world(tmp: Path) -> Iterator[World]:
    """The world in `tmp` (environment patched until the context ends)."""
    clusters = tmp / "clusters"
    shutil.copytree(REPO / "clusters" / "demo", clusters / "demo")
    (tmp / "home").mkdir()
    mp = pytest.MonkeyPatch()
    env = {
        "K8S_OPS_SIM_DIR": str(tmp / "sim"),
        # the interpreter running the tests next: the shims' `#!/usr/bin/env python3` starts it directly
        "PATH": os.pathsep.join([str(BIN), os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "K8S_OPS_SIM_PYTHON": sys.executable,
        "HOME": str(tmp / "home"),
        "XDG_CONFIG_HOME": str(tmp / "home" / ".config"),
        "K8S_OPS_CLUSTERS_DIR": str(clusters),
        "K8S_OPS_BUILD_DIR": str(tmp / "build"),
        "K8S_OPS_STATE_DIR": str(tmp / "state"),
        "K8S_OPS_POLL_INTERVAL": "0.02",
        "K8S_OPS_TIMEOUT_SCALE": "0.03",
    }
    for k, v in env.items():
        mp.setenv(k, v)
    for k in ("TALOSCONFIG", "KUBECONFIG", "SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE"):
        mp.delenv(k, raising=False)
    # 1Password: the real onepassword code path against the in-memory SDK fake, vault from the demo inventory
    fake = FakeOnePassword(vaults=("k8s-ops-demo",))
    mp.setattr(op_sdk, "client_class", lambda: fake.Client)
    mp.setenv("OP_SERVICE_ACCOUNT_TOKEN", fake.token)
    # a stray sops default key file (a different key) must be ignored, never merged (cluster-template#1558)
    stray = tmp / "home" / ".config" / "sops" / "age" / "keys.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text(sops.generate_age_key()[0].reveal_text())
    tools.reset_cache()
    talos_secrets.clear_cache()
    sim = Sim(tmp / "sim")
    sim.set("reboot_seconds", 0.2)
    sim.set("poll_interval", 0.02)
    sim.create(clusters / "demo" / "cluster.yaml")
    w = World(sim, clusters, SubprocessRunner(), fake)
    cluster = load_cluster("demo")
    bundle = talos_secrets.load_bundle(cluster)
    key = talos_secrets.age_key_for(cluster).text().reveal_text()
    deploy_key = sops.Sops(key=talos_secrets.age_key_for(cluster)).decrypt(
        clusters / "demo" / "bootstrap" / "git-credentials.sops.yaml"
    )
    w.secrets = [
        *(line for line in key.splitlines() if line.startswith("AGE-SECRET-KEY-")),
        *(s.reveal_text() for s in bundle.mask_values() if len(s) >= 8),
        *(line.strip() for line in deploy_key.reveal_text().splitlines() if len(line.strip()) >= 40),
    ]
    try:
        yield w
    finally:
        mp.undo()
        tools.reset_cache()
        talos_secrets.clear_cache()
