"""Creating simulated clusters: from an inventory file (clusters/<name>/cluster.yaml, read directly — the
simulator does not import the toolkit) or from a plain description."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from . import network
from .schematic import register, schematic_id
from .state import World
from .util import JSON, new_uuid

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

DEFAULT_TALOS = "v1.12.11"


class InventoryError(ValueError):
    pass


def _host(endpoint: str) -> str:
    m = re.match(r"^(?:https?://)?\[?([^\]/:]+)\]?(?::\d+)?/?$", endpoint.strip())
    if not m:
        raise InventoryError(f"cannot read a host from endpoint {endpoint!r}")
    return m.group(1)


def read_inventory(path: Path) -> list[JSON]:
    """[{name, endpoint, talos_version, schematic, nodes: [{hostname, address, role, disk, interfaces}]}] from
    a cluster.yaml (`schematic`: {extensions, extra_kernel_args}); `interfaces` become the node's NICs."""
    data = yaml.safe_load(path.read_text()) or {}
    if isinstance(data.get("clusters"), dict):
        return [_one(v, k, path) for k, v in data["clusters"].items()]
    return [_one(data, data.get("name") or path.parent.name, path)]


def _one(d: JSON, name: str, path: Path) -> JSON:
    endpoint = d.get("endpoint") or d.get("vip") or d.get("cluster_api_addr") or d.get("controlPlaneEndpoint")
    if not endpoint:
        raise InventoryError(f"{path}: no `endpoint` (the API VIP) in cluster {name!r}")
    nodes = []
    for i, n in enumerate(d.get("nodes") or []):
        hostname = n.get("hostname") or n.get("name")
        address = n.get("address") or n.get("ip")
        role = n.get("role") or ("controlplane" if n.get("controller") or n.get("controlPlane") else "worker")
        if not hostname or not address:
            raise InventoryError(f"{path}: nodes[{i}] needs hostname and address")
        nodes.append(
            {
                "hostname": hostname,
                "address": str(address),
                "role": role,
                "disk": n.get("installDisk") or n.get("disk"),
                "interfaces": n.get("interfaces") or [],
            }
        )
    if not nodes:
        raise InventoryError(f"{path}: cluster {name!r} has no nodes")
    return {
        "name": str(name),
        "endpoint": _host(str(endpoint)),
        "talos_version": d.get("talosVersion") or DEFAULT_TALOS,
        "kubernetes_version": d.get("kubernetesVersion"),
        "schematic": {
            "extensions": [str(e) for e in (d.get("schematic") or {}).get("extensions") or []],
            "extra_kernel_args": [str(a) for a in (d.get("schematic") or {}).get("extraKernelArgs") or []],
        },
        "nodes": nodes,
    }


def _disks(spec: Any, idx: int) -> list[JSON]:
    d: JSON = {
        "id": "sda",
        "size": 512110190592,
        "pretty": "512 GB",
        "model": "Samsung SSD 870",
        "serial": f"S6PN{idx:08d}",
        "transport": "sata",
        "wwid": f"naa.5002538f{idx:08x}",
    }
    if isinstance(spec, str):
        d["id"] = spec.rsplit("/", 1)[-1]
        if d["id"].startswith("vd"):
            d.update(transport="virtio", model="QEMU HARDDISK")
    elif isinstance(spec, dict):
        for key in ("model", "serial", "wwid"):
            if spec.get(key):
                d[key] = str(spec[key]).replace("*", "")
    return [d]


def node_hardware(n: JSON) -> list[JSON]:
    """The NICs of a node spec: explicit `hardware` (tests building mismatches), else NICs matching the
    inventory's `interfaces`, else one virtio NIC (simlib/network.py)."""
    seed = f"{n['hostname']}/{n['address']}"
    try:
        if n.get("hardware") is not None:
            return network.hardware(n["hardware"], seed)
        return network.hardware_from_interfaces(n.get("interfaces") or [], seed)
    except network.HardwareError as e:
        raise InventoryError(f"node {n['hostname']}: {e}") from e


def with_hardware(specs: list[JSON], hardware: Mapping[str, Sequence[Mapping[str, Any]]] | None) -> list[JSON]:
    """Give nodes (by hostname or address) explicit NICs instead of those their `interfaces` imply, so a test
    can build a machine whose config names a link it does not have. Unknown node keys are an error."""
    if not hardware:
        return specs
    known = {k for spec in specs for n in spec["nodes"] for k in (n["hostname"], n["address"])}
    unknown = sorted(set(hardware) - known)
    if unknown:
        raise InventoryError(f"hardware for unknown node(s) {', '.join(unknown)}")
    for spec in specs:
        for n in spec["nodes"]:
            links = hardware.get(n["hostname"], hardware.get(n["address"]))
            if links is not None:
                n["hardware"] = [dict(x) for x in links]
    return specs


def add_cluster(world: World, spec: JSON, *, replace: bool = True) -> JSON:
    name = spec["name"]
    if name in world.clusters:
        if not replace:
            raise InventoryError(f"cluster {name!r} already exists")
        for a in world.clusters[name]["nodes"]:
            world.nodes.pop(a, None)
    for n in spec["nodes"]:
        other = world.nodes.get(n["address"])
        if other is not None and other["cluster"] != name:
            raise InventoryError(f"address {n['address']} already belongs to cluster {other['cluster']!r}")
    cluster: JSON = {
        "name": name,
        "endpoint": spec["endpoint"],
        "nodes": [n["address"] for n in spec["nodes"]],
        "etcd": {"bootstrapped": False, "members": {}, "split_brain": []},
        "k8s": {"objects": {}, "rv": 1, "owners": {}},
        "runtime": {},
        "k8s_version": None,
        "inventory_kubernetes_version": spec.get("kubernetes_version"),
        "test_pki": {
            "os_ca": base64.b64encode(
                f"-----BEGIN CERTIFICATE-----\nsim-os-ca-{name}-{secrets.token_hex(8)}\n-----END CERTIFICATE-----\n".encode()  # noqa: E501
            ).decode(),
            "k8s_ca": base64.b64encode(
                f"-----BEGIN CERTIFICATE-----\nsim-k8s-ca-{name}-{secrets.token_hex(8)}\n-----END CERTIFICATE-----\n".encode()  # noqa: E501
            ).decode(),
        },
    }
    world.clusters[name] = cluster
    sch = spec.get("schematic")
    if sch is not None:
        # Remember which extensions the inventory's schematic ID stands for (see simlib/schematic.py).
        sid = schematic_id(sch.get("extensions") or [], sch.get("extra_kernel_args") or [])
        if sid is not None:
            register(cluster, sid, sch.get("extensions") or [])
            cluster["inventory_schematic"] = sid
    for i, n in enumerate(spec["nodes"], start=1):
        world.nodes[n["address"]] = {
            "address": n["address"],
            "hostname": n["hostname"],
            "role": n["role"],
            "cluster": name,
            "config": None,
            "staged_config": None,
            "try": None,
            "reboot": None,
            "off": False,
            "boot_id": new_uuid(),
            "talos_version": spec.get("talos_version") or DEFAULT_TALOS,
            "installed_image": None,
            "schematic": None,
            "etcd_data": False,
            "created": world.now,
            "disks": _disks(n.get("disk"), i),
            "links": node_hardware(n),
        }
    return cluster


def wipe(world: World, cluster: str | None = None) -> None:
    """Every node back to maintenance mode with empty disks (DR drills): configs, etcd and API state gone."""
    from .etcd import reset_cluster_data

    for c in world.clusters.values():
        if cluster and c["name"] != cluster:
            continue
        for a in c["nodes"]:
            n = world.nodes[a]
            n.update(config=None, staged_config=None, reboot=None, off=False, etcd_data=False, boot_id=new_uuid())
            n["try"] = None
        reset_cluster_data(c)
