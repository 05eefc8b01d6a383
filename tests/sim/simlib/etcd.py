"""etcd membership and health per cluster, and the Kubernetes API's availability that depends on it."""

from __future__ import annotations

from . import network
from .state import World
from .util import JSON


def etcd(cluster: JSON) -> JSON:
    e: JSON = cluster.setdefault("etcd", {"bootstrapped": False, "members": {}, "split_brain": []})
    return e


def new_member_id() -> str:
    import secrets  # local: each simulated call is a fresh interpreter, and few need it

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


# ---- the database of each member: size, in use, alarms (etcd status / defrag / alarm) ---------------------------
# etcd's default space quota (server/storage/quota.go DefaultQuotaBytes; Talos documents "2 GiB by default").
DEFAULT_QUOTA = 2 * 1024**3
PAGE = 4096  # bbolt page size: a database file is whole pages
BASE_IN_USE = 1_200_000  # a fresh Kubernetes control plane's keys, roughly
PER_OBJECT = 2_500
ETCD_VERSION = "3.6.11"  # Talos v1.12.11 DefaultEtcdVersion (pkg/machinery/constants/constants.go)
STORAGE_VERSION = "3.6.0"


def _pages(n: int) -> int:
    return -(-n // PAGE) * PAGE


def in_use_bytes(cluster: JSON, m: JSON) -> int:
    """Bytes in use in a member's database: a base plus the Kubernetes objects, unless a test set it."""
    if m.get("in_use") is not None:
        return int(m["in_use"])
    return _pages(BASE_IN_USE + PER_OBJECT * len(cluster.get("k8s", {}).get("objects", {})))


def db_size(cluster: JSON, m: JSON) -> int:
    """The member's database file: it only grows (freed pages stay in the file) until a defragmentation."""
    size = max(int(m.get("db_size") or 0), in_use_bytes(cluster, m))
    m["db_size"] = size
    return size


def quota(cluster: JSON) -> int:
    return int(etcd(cluster).get("quota") or DEFAULT_QUOTA)


def set_db(
    world: World, cluster_name: str, addr: str, *, db_size: int | None = None, in_use: int | None = None
) -> None:
    """Tests: pin a member's database file size and bytes in use (fragmentation = 1 - in_use/db_size)."""
    m = etcd(world.clusters[cluster_name])["members"][addr]
    if in_use is not None:
        m["in_use"] = in_use
    if db_size is not None:
        m["db_size"] = db_size
    raise_space_alarms(world.clusters[cluster_name])


def set_quota(world: World, cluster_name: str, quota_bytes: int) -> None:
    """Tests: the members' `quota-backend-bytes`."""
    etcd(world.clusters[cluster_name])["quota"] = quota_bytes
    raise_space_alarms(world.clusters[cluster_name])


def alarms(cluster: JSON) -> list[JSON]:
    """Active alarms, cluster-wide as etcd keeps them: [{"member": id, "alarm": "NOSPACE"|"CORRUPT"}]."""
    a: list[JSON] = etcd(cluster).setdefault("alarms", [])
    return a


def raise_alarm(cluster: JSON, member_id: str, alarm: str) -> None:
    if not any(x["member"] == member_id and x["alarm"] == alarm for x in alarms(cluster)):
        alarms(cluster).append({"member": member_id, "alarm": alarm})


def raise_space_alarms(cluster: JSON) -> None:
    """etcd raises NOSPACE when a write would grow the database past the quota (server/etcdserver/quota.go,
    apply.go); the simulator raises it as soon as a member's file is over the quota."""
    for m in etcd(cluster)["members"].values():
        if db_size(cluster, m) > quota(cluster):
            raise_alarm(cluster, m["id"], "NOSPACE")


# etcd-io/etcd v3.6 api/v3rpc/rpctypes/error.go ErrGRPCNoSpace: what a refused write answers (a gRPC
# ResourceExhausted); kube-apiserver passes it on as a 500 without a reason, so kubectl prints
# "Error from server: etcdserver: mvcc: database space exceeded".
NOSPACE_ERROR = "etcdserver: mvcc: database space exceeded"


def write_refused(cluster: JSON) -> str | None:
    """Why etcd refuses a write now (None: it accepts it).

    While a NOSPACE alarm is raised etcd's capped applier refuses every Put, every Txn that puts, and LeaseGrant;
    reads, and Txns that only delete, still pass (server/etcdserver/apply/apply.go `applierV3Capped`,
    uber_applier.go `restoreAlarms`). A write that finds the file over the quota raises the alarm first
    (v3rpc/quota.go `quotaAlarmer.check`)."""
    if not etcd(cluster).get("members"):
        return None
    raise_space_alarms(cluster)
    if any(a["alarm"] == "NOSPACE" for a in alarms(cluster)):
        return NOSPACE_ERROR
    return None


def leader_id(world: World, cluster: JSON) -> str:
    """The raft leader: the first healthy member in join order (the bootstrap node until it fails)."""
    members = etcd(cluster)["members"]
    for a, m in members.items():
        if member_healthy(world, cluster, a):
            return str(m["id"])
    return "0000000000000000"


def defragment(cluster: JSON, addr: str) -> None:
    """Defragmentation rewrites the member's file with only the pages in use."""
    m = etcd(cluster)["members"][addr]
    m["db_size"] = _pages(in_use_bytes(cluster, m))


def humanize_bytes(n: int) -> str:
    """go-humanize v1.0.1 `Bytes` (SI, base 1000): `0 B`…`9 B`, then one decimal below 10 (`5.3 MB`), else none."""
    import math

    if n < 10:
        return f"{n} B"
    sizes = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    e = math.floor(math.log(n) / math.log(1000))
    val = math.floor(n / 1000**e * 10 + 0.5) / 10
    return f"{val:.1f} {sizes[e]}" if val < 10 else f"{val:.0f} {sizes[e]}"
