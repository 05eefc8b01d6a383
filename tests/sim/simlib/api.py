"""Python API over a simulator state directory, for tests (the `sim` fixture returns a `Sim`)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from . import etcd as etcdmod
from .inventory import add_cluster, read_inventory, wipe, with_hardware
from .kube import Kube
from .sim_cli import add_fault, clear_faults
from .state import Store
from .util import JSON, dump_yaml

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

BIN = Path(__file__).resolve().parent.parent / "bin"


class Sim:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.root)

    # ---- setup --------------------------------------------------------------------------------------
    def create(
        self,
        inventory: Path | None = None,
        *,
        name: str = "demo",
        endpoint: str = "10.5.0.10",
        nodes: Sequence[tuple[str, str, str]] | None = None,
        talos_version: str = "v1.12.11",
        hardware: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> list[str]:
        """Create cluster(s) from an inventory file, or from (hostname, address, role) tuples. Returns names.

        `hardware` ({hostname or address: [NIC, ...]}, NIC fields as in `simlib/network.py` HARDWARE_FIELDS)
        replaces the NICs a node would get from its inventory `interfaces` (or the one default virtio NIC):
        the way to build a machine whose config names a link it does not have."""
        if inventory is not None:
            specs = read_inventory(Path(inventory))
        else:
            ns = nodes or [
                ("demo-cp-1", "10.5.0.11", "controlplane"),
                ("demo-cp-2", "10.5.0.12", "controlplane"),
                ("demo-cp-3", "10.5.0.13", "controlplane"),
                ("demo-wk-1", "10.5.0.14", "worker"),
                ("demo-wk-2", "10.5.0.15", "worker"),
            ]
            specs = [
                {
                    "name": name,
                    "endpoint": endpoint,
                    "talos_version": talos_version,
                    "nodes": [{"hostname": h, "address": a, "role": r} for h, a, r in ns],
                }
            ]
        specs = with_hardware(specs, hardware)
        with self.store.tx(tick=False) as w:
            for spec in specs:
                add_cluster(w, spec)
        return [s["name"] for s in specs]

    def set_hardware(self, node: str, links: Sequence[Mapping[str, Any]]) -> list[JSON]:
        """Replace a node's NICs (a swapped network card, a recabled port); returns them with defaults filled.
        The node's network follows at once, as Talos' controllers follow LinkStatus changes."""
        from .network import HardwareError, hardware

        with self.store.tx(tick=False) as w:
            n = w.nodes[node]
            try:
                n["links"] = hardware(links, f"{n['hostname']}/{n['address']}")
            except HardwareError as e:
                raise ValueError(f"node {n['hostname']}: {e}") from e
            return [dict(x) for x in n["links"]]

    def set_schematic(self, schematic_id: str, extensions: Sequence[str], cluster: str | None = None) -> None:
        """Tell the simulator which official extensions a schematic ID's images carry (every cluster, or one)."""
        from .schematic import register

        with self.store.tx(tick=False) as w:
            for c in w.clusters.values():
                if cluster in (None, c["name"]):
                    register(c, schematic_id, extensions)

    def fault(self, kind: str, node: str | None = None, **opts: Any) -> JSON:
        return add_fault(self.store, kind, node=node, **opts)

    def clear_faults(self, kind: str | None = None) -> None:
        clear_faults(self.store, kind)

    def set(self, key: str, value: Any) -> None:
        """A key of state.SETTINGS_DEFAULTS (KeyError otherwise), with a value of its type."""
        with self.store.tx(tick=False) as w:
            w.set_setting(key, value)

    def wipe(self, cluster: str | None = None) -> None:
        with self.store.tx(tick=False) as w:
            wipe(w, cluster)

    def power_on(self, node: str) -> None:
        with self.store.tx() as w:
            n = w.nodes[node]
            n["off"] = False
            w.start_reboot(n, "boot")

    # ---- inspection ---------------------------------------------------------------------------------
    def state(self) -> JSON:
        with self.store.tx() as w:
            return json.loads(json.dumps(w.data))  # type: ignore[no-any-return]

    def node(self, address: str) -> JSON:
        with self.store.tx() as w:
            n = dict(w.nodes[address])
            n["stage"] = w.stage(w.nodes[address])
            n["phase"] = w.phase(w.nodes[address])
            n["name"] = w.node_name(w.nodes[address])
            return n

    def cluster(self, name: str = "demo") -> JSON:
        with self.store.tx() as w:
            return json.loads(json.dumps(w.clusters[name]))  # type: ignore[no-any-return]

    def objects(self, cluster: str = "demo", kind: str | None = None, namespace: str | None = None) -> list[JSON]:
        with self.store.tx() as w:
            objs = Kube(w.clusters[cluster], w.now).objects.values()
            return [
                o
                for o in objs
                if (kind is None or o["kind"] == kind)
                and (namespace is None or o["metadata"].get("namespace") == namespace)
            ]

    def get_object(self, kind: str, name: str, namespace: str | None = None, cluster: str = "demo") -> JSON | None:
        for o in self.objects(cluster, kind, namespace):
            if o["metadata"]["name"] == name:
                return o
        return None

    def calls(self, tool: str | None = None) -> list[JSON]:
        p = self.root / "calls.log"
        if not p.exists():
            return []
        out = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        return [c for c in out if tool is None or c["tool"] == tool]

    def settle(self, timeout: float = 10.0) -> None:
        """Let simulated time pass until no node is mid-reboot (stuck nodes excepted); `timeout`: real seconds,
        used only under `clock: wall` (state.Store.settle)."""
        self.store.settle(timeout)

    def advance(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass for the clock and every node (try-mode rollbacks, jobs...)."""
        self.store.advance(seconds)

    # ---- tools --------------------------------------------------------------------------------------
    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["K8S_OPS_SIM_DIR"] = str(self.root)
        if not env.get("PATH", "").startswith(str(BIN)):
            env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra or {})
        return env

    def run(
        self,
        tool: str,
        *args: str,
        input: str | bytes | None = None,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        data = input.decode() if isinstance(input, bytes) else input
        return subprocess.run(
            [tool, *args],
            input=data,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(env),
            cwd=cwd,
            stdin=None if data is not None else subprocess.DEVNULL,
        )

    # ---- configs and client files -------------------------------------------------------------------
    def pki(self, cluster: str = "demo") -> JSON:
        return dict(self.cluster(cluster)["test_pki"])

    def machine_config(
        self,
        address: str,
        *,
        cni: str = "none",
        proxy_disabled: bool = True,
        coredns_disabled: bool = True,
        kubernetes_version: str = "v1.35.0",
        install_image: str | None = None,
        hostname: str | None = None,
        os_ca: str | None = None,
        extra: JSON | None = None,
        hostname_doc: bool = True,
        vip: bool = True,
        extra_docs: Sequence[JSON] = (),
    ) -> str:
        """A minimal valid v1.12 machine config for a node of a simulated cluster (role from the inventory).

        No link documents, so Talos runs DHCP on every NIC (the node answers on its address); a controlplane
        gets a Layer2VIPConfig for the cluster endpoint on its first NIC unless `vip=False` — without one no
        node would hold the VIP. `extra_docs` are appended (network documents for tests)."""
        with self.store.tx(tick=False) as w:
            n = w.nodes[address]
            c = w.clusters[n["cluster"]]
            first_nic = next((x["name"] for x in n.get("links") or [] if x.get("name") != "lo"), "enp1s0")
            pki = c["test_pki"]
            role = n["role"]
            host = hostname or n["hostname"]
            version = install_image or f"ghcr.io/siderolabs/installer:{n['talos_version']}"
            endpoint = c["endpoint"]
            cname = c["name"]
        main: JSON = {
            "version": "v1alpha1",
            "debug": False,
            "persist": True,
            "machine": {
                "type": role,
                "token": "sim.token",
                # Talos requires the CA key on a controlplane (v1alpha1_validation.go); its value is never used here
                "ca": {"crt": os_ca or pki["os_ca"], "key": "" if role == "worker" else "c2ltLW9zLWNhLWtleQ=="},
                "certSANs": [],
                "kubelet": {"image": f"ghcr.io/siderolabs/kubelet:{kubernetes_version}"},
                "network": {},
                "install": {"disk": "/dev/sda", "image": version, "wipe": False, "grubUseUKICmdline": True},
            },
            "cluster": {
                "clusterName": cname,
                "controlPlane": {"endpoint": f"https://{endpoint}:6443"},
                "network": {"cni": {"name": cni}, "dnsDomain": "cluster.local"},
                "ca": {"crt": pki["k8s_ca"], "key": ""},
                "proxy": {"disabled": proxy_disabled},
                "coreDNS": {"disabled": coredns_disabled},
            },
        }
        if role == "controlplane":
            main["cluster"]["apiServer"] = {"image": f"registry.k8s.io/kube-apiserver:{kubernetes_version}"}
        if extra:
            from .util import deep_merge

            main = deep_merge(main, extra)
        docs = [main]
        if hostname_doc:
            docs.append({"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": host, "auto": "off"})
        if vip and role == "controlplane":
            docs.append({"apiVersion": "v1alpha1", "kind": "Layer2VIPConfig", "name": endpoint, "link": first_nic})
        docs.extend(extra_docs)
        return "---\n".join(dump_yaml(d) for d in docs)

    def write_talosconfig(
        self,
        path: Path,
        cluster: str = "demo",
        *,
        endpoints: Sequence[str] | None = None,
        nodes: Sequence[str] | None = None,
        ca: str | None = None,
        context: str | None = None,
    ) -> Path:
        c = self.cluster(cluster)
        cps = [a for a in c["nodes"] if self.state()["nodes"][a]["role"] == "controlplane"]
        ctx_name = context or cluster
        data = {
            "context": ctx_name,
            "contexts": {
                ctx_name: {
                    "endpoints": list(endpoints if endpoints is not None else cps),
                    "nodes": list(nodes or []),
                    "ca": ca or c["test_pki"]["os_ca"],
                    "crt": "c2ltLWNsaWVudA==",
                    "key": "c2ltLWtleQ==",
                }
            },
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        path.chmod(0o600)
        return path

    def install_cni(self, cluster: str = "demo") -> None:
        """Install a valid Cilium into a bootstrapped cluster (what bootstrap's CNI stage does), so Nodes get Ready."""
        with self.store.tx() as w:
            c = w.clusters[cluster]
            if not etcdmod.etcd(c)["bootstrapped"]:
                raise RuntimeError(f"cluster {cluster}: etcd is not bootstrapped, there is no API to install into")
            _install_cilium(Kube(c, w.now))

    def make_ready(
        self,
        cluster: str = "demo",
        *,
        cni: bool = True,
        kubeconfig: Path | None = None,
        talosconfig: Path | None = None,
    ) -> None:
        """Fast path for tests above the bootstrap: every node configured and running, etcd bootstrapped on the
        first controlplane, a valid Cilium installed (when `cni`), and talosconfig/kubeconfig written."""
        from .machineconfig import summarise
        from .talosctl import kubeconfig_for

        addrs = self.cluster(cluster)["nodes"]
        configs = {a: self.machine_config(a) for a in addrs}
        with self.store.tx() as w:
            c = w.clusters[cluster]
            for a in addrs:
                n = w.nodes[a]
                # Installed from the inventory's schematic when the simulator knows it (its extensions), else
                # with the generic installer.
                sid = c.get("inventory_schematic")
                n.update(
                    config=summarise(configs[a]),
                    reboot=None,
                    off=False,
                    installed_image=f"factory.talos.dev/metal-installer/{sid}:{n['talos_version']}"
                    if sid
                    else f"ghcr.io/siderolabs/installer:{n['talos_version']}",
                    schematic=sid,
                )
            first = next(w.nodes[a] for a in addrs if w.nodes[a]["role"] == "controlplane")
            e = etcdmod.etcd(c)
            e.update(bootstrapped=True, bootstrapped_at=w.now - 3600, members={}, split_brain=[])
            etcdmod.add_member(w, c, first)
            c["k8s_version"] = "v1.35.0"
            kube = Kube(c, w.now)
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, manager="kube-apiserver")
            if cni:
                _install_cilium(kube)
            kc = kubeconfig_for(w, first)
        kpath = kubeconfig or (self.root / "kubeconfig")
        kpath.write_text(dump_yaml(kc))
        kpath.chmod(0o600)
        self.write_talosconfig(talosconfig or (self.root / "talosconfig"), cluster)


def _install_cilium(kube: Kube) -> None:
    """A deployed cilium release with the values Talos needs (the CNI that makes Nodes Ready)."""
    from . import helmstore
    from .charts import lookup
    from .helm import _manifest, _render

    chart = lookup("cilium")
    values = {
        "ipam": {"mode": "kubernetes"},
        "kubeProxyReplacement": True,
        "k8sServiceHost": "localhost",
        "k8sServicePort": 7445,
        "cgroup": {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"},
        "securityContext": {
            "capabilities": {
                "ciliumAgent": [
                    "CHOWN",
                    "KILL",
                    "NET_ADMIN",
                    "NET_RAW",
                    "IPC_LOCK",
                    "SYS_ADMIN",
                    "SYS_RESOURCE",
                    "DAC_OVERRIDE",
                    "FOWNER",
                    "SETGID",
                    "SETUID",
                ],
                "cleanCiliumState": ["NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"],
            }
        },
    }

    objs = _render(chart, "cilium", "kube-system", values, chart.version)
    for o in objs:
        kube.put(o, manager="helm")
    helmstore.store(
        kube,
        {
            "name": "cilium",
            "namespace": "kube-system",
            "version": 1,
            "chart": {
                "metadata": {"name": "cilium", "version": chart.version, "appVersion": chart.app_version},
                "ref": "oci://quay.io/cilium/charts/cilium",
            },
            "config": values,
            "manifest": _manifest(objs),
            "info": {
                "status": "deployed",
                "first_deployed": "",
                "last_deployed": "",
                "description": "Install complete",
            },
        },
    )
