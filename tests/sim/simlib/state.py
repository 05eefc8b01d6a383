"""The simulator's persistent world: one JSON file under `$K8S_OPS_SIM_DIR`, guarded by a file lock so
parallel tool invocations (the toolkit applies configs to several nodes at once) see consistent state.

Every invocation runs `with Store(root).tx() as world:`: load, advance time (reboots finishing, try-mode
rollbacks, etcd joins, in-cluster controllers), let the command act, advance again, save. Long waits
(`--wait`, `kubectl wait`, `health`) loop over short transactions and sleep outside the lock."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from .util import JSON, new_uuid, short_hash

SETTINGS_DEFAULTS: JSON = {
    "reboot_seconds": 0.2,  # wall-clock length of a simulated reboot / install / upgrade
    "latency": 0.0,  # seconds added to every tool invocation
    "timeout_scale": 1.0,  # multiplies --timeout/--wait-timeout style durations given to the tools
    "poll_interval": 0.05,  # how often waiting commands re-read the state
    "apiserver_start_seconds": 0.0,  # delay between etcd bootstrap and kube-apiserver answering
    "git_bad_pattern": "",  # regex: GitRepository URLs matching it are unreachable
    "git_revision": "",  # changes the simulated commit sha of every repository (a "new commit")
    "resolve_hostnames": False,  # let -n/--server use inventory hostnames (DNS); real setups often cannot
    "talosctl_version": "v1.12.11",
    "kubectl_version": "v1.35.0",
    "helm_version": "v3.19.0",
    "flux_version": "v2.7.5",
    "kubernetes_version": "v1.35.0",  # kubelet/apiserver version when the machine config names none
}

STAGE_DURING = {"reboot": "rebooting", "upgrade": "upgrading", "reset": "resetting", "install": "installing"}


def sim_root() -> Path:
    env = os.environ.get("K8S_OPS_SIM_DIR")
    if not env:
        raise SystemExit("simulator: K8S_OPS_SIM_DIR is not set (run `sim create` in a state directory first)")
    return Path(env)


def empty_state() -> JSON:
    return {"version": 1, "settings": {}, "clusters": {}, "nodes": {}, "faults": [], "helm_repos": {}, "seq": 0}


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or sim_root()
        self.path = self.root / "state.json"
        self.lock = FileLock(str(self.root / "state.lock"), timeout=120)

    def load(self) -> JSON:
        if not self.path.exists():
            return empty_state()
        data: JSON = json.loads(self.path.read_text())
        return data

    def save(self, data: JSON) -> None:
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        os.replace(tmp, self.path)

    @contextmanager
    def tx(self, *, tick: bool = True) -> Iterator[World]:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.lock:
            world = World(self.load(), time.time(), self.root)
            if tick:
                world.tick()
            yield world
            if tick:
                world.now = time.time()
                world.tick()
            self.save(world.data)


class World:
    """Typed-ish accessors over the JSON state."""

    def __init__(self, data: JSON, now: float, root: Path) -> None:
        self.data = data
        self.now = now
        self.root = root

    # ---- basics -------------------------------------------------------------------------------------
    @property
    def settings(self) -> JSON:
        return {**SETTINGS_DEFAULTS, **self.data.setdefault("settings", {})}

    def setting(self, key: str) -> Any:
        return self.settings[key]

    @property
    def nodes(self) -> dict[str, JSON]:
        nodes: dict[str, JSON] = self.data.setdefault("nodes", {})
        return nodes

    @property
    def clusters(self) -> dict[str, JSON]:
        clusters: dict[str, JSON] = self.data.setdefault("clusters", {})
        return clusters

    @property
    def faults(self) -> list[JSON]:
        faults: list[JSON] = self.data.setdefault("faults", [])
        return faults

    def next_seq(self) -> int:
        self.data["seq"] = int(self.data.get("seq", 0)) + 1
        return int(self.data["seq"])

    def scaled(self, seconds: float) -> float:
        return seconds * float(self.setting("timeout_scale"))

    # ---- lookup -------------------------------------------------------------------------------------
    def node(self, host: str) -> JSON | None:
        n = self.nodes.get(host)
        if n is None and self.setting("resolve_hostnames"):
            for cand in self.nodes.values():
                if cand["hostname"] == host:
                    return cand
        return n

    def cluster_by_vip(self, host: str) -> JSON | None:
        for c in self.clusters.values():
            if c.get("endpoint") == host:
                return c
        return None

    def cluster(self, name: str) -> JSON:
        return self.clusters[name]

    def cluster_nodes(self, cluster: JSON) -> list[JSON]:
        return [self.nodes[a] for a in cluster["nodes"] if a in self.nodes]

    # ---- faults -------------------------------------------------------------------------------------
    def fault(
        self,
        kind: str,
        *,
        node: str | None = None,
        cluster: str | None = None,
        text: str | None = None,
        tool: str | None = None,
        consume: bool = False,
    ) -> JSON | None:
        for f in self.faults:
            if f["kind"] != kind:
                continue
            if f.get("node") and node is not None and f["node"] not in (node, self._hostname(node)):
                continue
            if f.get("node") and node is None:
                continue
            if f.get("cluster") and cluster is not None and f["cluster"] != cluster:
                continue
            if f.get("tool") and tool is not None and f["tool"] != tool:
                continue
            if f.get("match") and (text is None or not re.search(f["match"], text)):
                continue
            if consume and f.get("count") is not None:
                f["count"] = int(f["count"]) - 1
                if f["count"] <= 0:
                    self.faults.remove(f)
            return f
        return None

    def _hostname(self, addr: str) -> str | None:
        n = self.nodes.get(addr)
        return n["hostname"] if n else None

    # ---- node lifecycle -----------------------------------------------------------------------------
    def phase(self, n: JSON) -> str:
        """up | pre (about to go down, API still answers) | down | booting (API back, not ready) | off."""
        if n.get("off"):
            return "off"
        r = n.get("reboot")
        if not r:
            return "up"
        el = self.now - float(r["start"])
        d = float(r["duration"])
        if r.get("never_return") and el >= 0.25 * d:
            return "down"
        if el < 0.25 * d:
            return "down" if r["kind"] in ("install", "boot") else "pre"
        if el < 0.6 * d:
            return "down"
        return "booting" if el < d else "up"

    def start_reboot(self, n: JSON, kind: str, after: JSON | None = None) -> None:
        never = self.fault("node-never-returns", node=n["address"], cluster=n["cluster"], consume=True) is not None
        n["reboot"] = {
            "kind": kind,
            "start": self.now,
            "duration": float(self.setting("reboot_seconds")),
            "after": after or {},
            "new_boot_id": new_uuid(),
            "never_return": never,
            "applied": False,
        }

    def _finish_boot(self, n: JSON) -> None:
        r = n["reboot"]
        after = r.get("after") or {}
        if after.get("reset"):
            n["config"] = None
            n["staged_config"] = None
            n["try"] = None
        if after.get("wipe_ephemeral"):
            n["etcd_data"] = False
        if "config" in after:
            n["config"] = after["config"]
        if n.get("staged_config"):
            n["config"] = n["staged_config"]
            n["staged_config"] = None
        if after.get("image"):
            n["installed_image"] = after["image"]
            n["talos_version"] = after.get("talos_version") or n["talos_version"]
            n["schematic"] = after.get("schematic")
        n["boot_id"] = r["new_boot_id"]
        if after.get("power_off"):
            n["off"] = True
            n["reboot"] = None
        r["applied"] = True

    def tick(self) -> None:
        for n in self.nodes.values():
            r = n.get("reboot")
            if r:
                ph = self.phase(n)
                if ph in ("booting", "up") and not r.get("applied"):
                    self._finish_boot(n)
                if (
                    n.get("reboot")
                    and self.now - float(r["start"]) >= float(r["duration"])
                    and not r.get("never_return")
                ):
                    n["reboot"] = None
            t = n.get("try")
            if t and self.now >= float(t["deadline"]):
                n["config"] = t["previous"]
                n["try"] = None
        from . import etcd  # local import: etcd imports this module

        for c in self.clusters.values():
            etcd.tick(self, c)
        from .controllers import run_all

        for c in self.clusters.values():
            if c.get("etcd", {}).get("bootstrapped"):
                run_all(self, c)

    # ---- config views -------------------------------------------------------------------------------
    def configured(self, n: JSON) -> bool:
        return bool(n.get("config"))

    def is_cp(self, n: JSON) -> bool:
        cfg = n.get("config")
        return cfg is not None and cfg["type"] in ("controlplane", "init")

    def node_name(self, n: JSON) -> str:
        cfg = n.get("config") or {}
        if cfg.get("hostname"):
            return str(cfg["hostname"])
        # HostnameConfig `auto: stable` (or nothing set): Talos derives talos-xxx-yyy from the machine id
        h = short_hash(n["address"], n["hostname"], n=6)
        return f"talos-{h[:3]}-{h[3:]}"

    def stage(self, n: JSON) -> str:
        ph = self.phase(n)
        if ph == "pre":
            return STAGE_DURING.get(n["reboot"]["kind"], "rebooting")
        if ph == "booting":
            return "booting"
        return "running" if self.configured(n) else "maintenance"
