"""etcd membership and health per cluster, and the Kubernetes API's availability that depends on it."""

from __future__ import annotations

import secrets

from . import network
from .state import World
from .util import JSON


def etcd(cluster: JSON) -> JSON:
    e: JSON = cluster.setdefault("etcd", {"bootstrapped": False, "members": {}, "split_brain": []})
    return e


def new_member_id() -> str:
    return secrets.token_hex(8)


def add_member(world: World, cluster: JSON, n: JSON) -> None:
    e = etcd(cluster)
    e["members"][n["address"]] = {
        "id": new_member_id(),
        "hostname": world.node_name(n),
        "address": n["address"],
        "learner": False,
    }
    n["etcd_data"] = True


def member_healthy(world: World, cluster: JSON, addr: str) -> bool:
    n = world.nodes.get(addr)
    if n is None or not world.is_cp(n) or not n.get("etcd_data"):
        return False
    if world.phase(n) not in ("up", "booting", "pre"):
        return False
    return world.fault("etcd-unhealthy", node=addr, cluster=cluster["name"]) is None


def cluster_fault(world: World, cluster: JSON) -> bool:
    f = world.fault("etcd-unhealthy", cluster=cluster["name"])
    return f is not None and not f.get("node")


def quorum(world: World, cluster: JSON) -> bool:
    e = etcd(cluster)
    members = e["members"]
    if not e["bootstrapped"] or not members:
        return False
    healthy = sum(1 for a in members if member_healthy(world, cluster, a))
    return healthy * 2 > len(members)


def all_healthy(world: World, cluster: JSON) -> bool:
    e = etcd(cluster)
    return (
        e["bootstrapped"]
        and not cluster_fault(world, cluster)
        and all(member_healthy(world, cluster, a) for a in e["members"])
        and not e.get("split_brain")
    )


def tick(world: World, cluster: JSON) -> None:
    e = etcd(cluster)
    if not e["bootstrapped"]:
        return
    for n in world.cluster_nodes(cluster):
        if (
            world.is_cp(n)
            and world.phase(n) == "up"
            and n["address"] not in e["members"]
            and not n.get("etcd_data")
            and n["address"] not in e.get("split_brain", [])
        ):
            add_member(world, cluster, n)
    # the data lives on the members' EPHEMERAL partitions: once none holds it, the cluster's state is gone
    if not any(world.nodes.get(a, {}).get("etcd_data") for a in e["members"]):
        reset_cluster_data(cluster)


def reset_cluster_data(cluster: JSON) -> None:
    cluster["etcd"] = {"bootstrapped": False, "members": {}, "split_brain": []}
    cluster["k8s"] = {"objects": {}, "rv": 1, "owners": {}}
    cluster["runtime"] = {}


def api_available(world: World, cluster: JSON) -> bool:
    """kube-apiserver can serve (etcd quorum), ignoring which address is dialled."""
    e = etcd(cluster)
    if not e["bootstrapped"] or not quorum(world, cluster):
        return False
    return world.clock >= world.bootstrapped_clock(e) + float(world.setting("apiserver_start_seconds"))


def apiserver_up_on(world: World, n: JSON) -> bool:
    return world.is_cp(n) and world.phase(n) == "up" and bool(n.get("etcd_data"))


def vip_holder(world: World, cluster: JSON) -> JSON | None:
    """The controlplane node answering on the shared VIP.

    Talos' VIP operator campaigns for the address in etcd, so nobody holds it before etcd runs; and it runs
    only on a controlplane whose config has a Layer2VIPConfig for it on a link that exists and is up
    (siderolabs/talos v1.12.11 internal/app/machined/pkg/controllers/network/operator_vip_config.go,
    operator_spec.go). The link must also carry an address in the VIP's subnet and the node be reachable on
    its own address, else clients (and its etcd peers) cannot reach it — see simlib/network.py."""
    if not etcd(cluster)["bootstrapped"] or not quorum(world, cluster):
        return None
    vip = str(cluster.get("endpoint", ""))
    for a in etcd(cluster)["members"]:
        n = world.nodes.get(a)
        if n and apiserver_up_on(world, n):
            net = network.evaluate(n)
            if net.can_hold_vip(vip) and net.answers_on(n["address"]):
                return n
    return None
