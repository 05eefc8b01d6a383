"""Facts about Talos nodes and their Kubernetes nodes: the only reads lifecycle plans and gates make.

Single-node reads are plain `k8s_ops.core.facts.Fact`s. Multi-node reads (`-n a,b,c`) are partial facts
(`Fact(…, partial=True)` returning a `Partial`): talosctl prints what the answering nodes returned and exits
non-zero for the rest, and a rolling upgrade needs exactly that split ("which node did not answer") rather than
one failure for the whole call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from k8s_ops.core import settings
from k8s_ops.core.command import Result, TempFile
from k8s_ops.core.errors import ToolkitError, last_error_line
from k8s_ops.core.facts import Fact, Partial
from k8s_ops.core.runner import Runner
from k8s_ops.core.secret import Secret
from k8s_ops.tools import kubectl
from k8s_ops.tools.kubectl import KubeTarget
from k8s_ops.tools.talosctl import (
    ApplyMode,
    ApplyPreview,
    EtcdAlarm,
    EtcdMember,
    EtcdStatus,
    Extension,
    MachineStatus,
    Talosctl,
    TalosctlOutputError,
    installed_schematic,
    parse_apply_preview,
    parse_boot_id,
    parse_etcd_alarms,
    parse_etcd_members,
    parse_etcd_status,
    parse_extensions,
    parse_failing_services,
    parse_machinestatus,
    parse_service_states,
    parse_versions,
)

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Cluster, Node

__all__ = [
    "ApplyTarget",
    "KubeNode",
    "ResetFacts",
    "ResetTarget",
    "UpgradeTarget",
    "boot_id",
    "etcd_alarms",
    "etcd_members",
    "etcd_services",
    "etcd_status",
    "failing_services",
    "first_healthy_etcd",
    "gather_apply_targets",
    "gather_k8s_versions",
    "gather_reset_facts",
    "gather_upgrade_targets",
    "installed_extensions",
    "kube_nodes",
    "machine_statuses",
    "maintenance_status",
    "talos_versions",
]

T = TypeVar("T")


def _partial(parse: Callable[[str], Mapping[str, T]], nodes: Sequence[str]) -> Callable[[Result], Partial[T]]:
    def run(result: Result) -> Partial[T]:
        try:
            values = dict(parse(result.stdout))
        except TalosctlOutputError as exc:
            return Partial({}, str(exc))
        # One node asked and answered without a NODE column/field: key it by that node.
        if len(nodes) == 1 and "" in values and nodes[0] not in values:
            values[nodes[0]] = values.pop("")
        return Partial(values, None if result.ok else last_error_line(result))

    return run


# --------------------------------------------------------------------------- Talos


def machine_statuses(tctl: Talosctl, addresses: Sequence[str]) -> Fact[Partial[MachineStatus]]:
    """Stage and readiness of each node (authenticated; a node in maintenance mode does not answer)."""
    return Fact(tctl.machinestatus(addresses), _partial(parse_machinestatus, addresses), partial=True)


def etcd_services(tctl: Talosctl, addresses: Sequence[str]) -> Fact[Partial[str]]:
    """The etcd service STATE of each controlplane: `Preparing` while it waits to be bootstrapped or to join,
    `Running` once it runs (siderolabs/talos v1.12.11 internal/app/machined/pkg/system/services/etcd.go)."""
    return Fact(tctl.service_etcd(addresses), _partial(parse_service_states, addresses), partial=True)


def maintenance_status(tctl: Talosctl, address: str, host: str) -> Fact[MachineStatus | None]:
    """The node's status over the maintenance API, or None when it refuses (configured) or is unreachable.

    A configured node rejects `--insecure` calls, so an answer means: no config yet, apply with `--insecure`.
    """

    def parse(result: Result) -> MachineStatus | None:
        statuses = parse_machinestatus(result.stdout)
        status = next(iter(statuses.values()), None)
        return status if status is not None and status.stage == "maintenance" else None

    return Fact.with_default(tctl.machinestatus([address], insecure=True, host=host), parse, None)


def boot_id(tctl: Talosctl, address: str, host: str) -> Fact[str]:
    """The node's current boot id; a change proves it rebooted."""
    return Fact(tctl.boot_id(address, host=host), lambda r: parse_boot_id(r.stdout))


def talos_versions(tctl: Talosctl, addresses: Sequence[str]) -> Fact[Partial[str]]:
    """The running Talos version tag of each node (`v1.12.11`)."""
    return Fact(tctl.version(addresses), _partial(parse_versions, addresses), partial=True)


def installed_extensions(tctl: Talosctl, addresses: Sequence[str]) -> Fact[Partial[tuple[Extension, ...]]]:
    """The system extensions installed on each node (`get extensions`).

    A node without extensions prints nothing, so an answering node absent from the output has none: absent
    nodes count as "none installed" unless the error output names them (they did not answer).
    """

    def parse(result: Result) -> Partial[tuple[Extension, ...]]:
        try:
            values = dict(parse_extensions(result.stdout))
        except TalosctlOutputError as exc:
            return Partial({}, str(exc))
        if len(addresses) == 1 and "" in values:
            values.setdefault(addresses[0], values.pop(""))
        error = None if result.ok else last_error_line(result)
        failed = "" if result.ok else (result.stderr or result.stdout)
        for addr in addresses:
            # One node asked and the call failed: it did not answer. Several: those the errors name did not.
            unanswered = not result.ok and (len(addresses) == 1 or addr in failed)
            if addr not in values and not unanswered:
                values[addr] = ()
        return Partial(values, error)

    return Fact(tctl.extensions(addresses), parse, partial=True)


def etcd_members(tctl: Talosctl, address: str) -> Fact[list[EtcdMember]]:
    """etcd's member list as one controlplane sees it."""
    return Fact(tctl.etcd_members(address), lambda r: parse_etcd_members(r.stdout))


def failing_services(tctl: Talosctl, address: str) -> Fact[list[str]]:
    """The node's services that are not Running/Finished or fail their health check."""
    return Fact(tctl.services(address), lambda r: parse_failing_services(r.stdout))


def etcd_alarms(tctl: Talosctl, address: str) -> Fact[list[EtcdAlarm]]:
    """etcd's active alarms (cluster-wide), read through one controlplane."""
    return Fact(tctl.etcd_alarms(address), lambda r: parse_etcd_alarms(r.stdout))


def etcd_status(tctl: Talosctl, addresses: Sequence[str]) -> Fact[Partial[EtcdStatus]]:
    """Each controlplane's etcd member status (missing = that member did not answer)."""
    return Fact(tctl.etcd_status(addresses), _partial(parse_etcd_status, addresses), partial=True)


# --------------------------------------------------------------------------- Kubernetes


@dataclass(frozen=True)
class KubeNode:
    """A Kubernetes node: Ready condition, kubelet version, cordon state."""

    name: str
    ready: bool
    kubelet_version: str
    unschedulable: bool = False
    reason: str = field(default="", compare=False)


def kube_node(obj: Mapping[str, Any]) -> KubeNode:
    """A `kubectl get nodes` item as a KubeNode."""
    o = kubectl.Obj(obj)
    cond = o.condition("Ready") or {}
    return KubeNode(
        name=o.name,
        ready=cond.get("status") == "True",
        kubelet_version=str(o.status("nodeInfo", "kubeletVersion", default="")),
        unschedulable=bool(o.path("spec", "unschedulable")),
        reason=str(cond.get("reason") or cond.get("message") or ""),
    )


def kube_nodes(kube: KubeTarget) -> Fact[dict[str, KubeNode]]:
    """Every Kubernetes node by name (= Talos hostname)."""

    def parse(result: Result) -> dict[str, KubeNode]:
        nodes = [kube_node(o) for o in kubectl.parse_items(result)]
        return {n.name: n for n in nodes}

    return Fact(kubectl.get(kube, "nodes", description="read Kubernetes nodes"), parse)


# --------------------------------------------------------------------------- per-operation snapshots


@dataclass(frozen=True)
class UpgradeTarget:
    """A node, the Talos version it runs now and the names of its installed system extensions (None: could
    not be read, see `error`)."""

    node: Node
    version: str | None
    error: str | None = None
    extensions: tuple[str, ...] | None = None
    schematic: str | None = None  # the schematic ID the node's image reports, when it reports one


@dataclass(frozen=True)
class ApplyTarget:
    """A node to apply to: its rendered config, whether it is in maintenance mode, and the dry-run preview."""

    node: Node
    config: Secret = field(repr=False)
    maintenance: bool
    preview: ApplyPreview | None = None

    def tempfile(self) -> TempFile:
        """The config as a file for talosctl (`$TMP/<host>.yaml`: an anonymous /dev/fd/N at run time), never on argv."""
        return TempFile(f"{self.node.hostname}.yaml", self.config)


@dataclass(frozen=True)
class ResetTarget:
    """A node to reset; `maintenance`: already wiped and waiting for a config."""

    node: Node
    maintenance: bool = False


@dataclass(frozen=True)
class ResetFacts:
    """What decides `--graceful` for resets, and the nodes to reset."""

    etcd_members: int | None = None  # None: etcd did not answer
    etcd_healthy: bool = False
    kube_api: bool = False
    targets: tuple[ResetTarget, ...] = ()


def _unreachable(error: str | None, tctl: Talosctl) -> ToolkitError:
    return ToolkitError(
        f"the Talos API does not answer on {', '.join(tctl.endpoints)}: {error or 'no output'}",
        hint=f"check the network and that {tctl.talosconfig} is this cluster's talosconfig "
        "(`invoke talos.talosconfig --cluster <c>` rewrites it)",
    )


def gather_upgrade_targets(runner: Runner, tctl: Talosctl, cluster: Cluster) -> list[UpgradeTarget]:
    """Every node's running Talos version and installed extensions (two concurrent calls over all nodes);
    refuses when no node answers at all."""
    addrs = [str(n.address) for n in cluster.nodes]
    with ThreadPoolExecutor(max_workers=2) as pool:
        asked = pool.submit(installed_extensions(tctl, addrs).gather, runner)
        versions = talos_versions(tctl, addrs).gather(runner)
        exts = asked.result()
    if not versions.values:
        raise _unreachable(versions.error, tctl)
    out = []
    for n in cluster.nodes:
        addr = str(n.address)
        version, installed = versions.get(addr), exts.get(addr)
        error = versions.error if version is None else (exts.error if installed is None else None)
        names = tuple(e.name for e in installed) if installed is not None else None
        schematic = installed_schematic(installed) if installed is not None else None
        out.append(UpgradeTarget(n, version, error, names, schematic))
    return out


def _parallel(fn: Callable[[Node], T], nodes: Sequence[Node]) -> list[T]:
    if len(nodes) <= 1:
        return [fn(n) for n in nodes]
    with ThreadPoolExecutor(max_workers=min(settings.concurrency(), len(nodes))) as pool:
        return list(pool.map(fn, nodes))


def gather_apply_targets(
    runner: Runner,
    tctl: Talosctl,
    nodes: Sequence[Node],
    configs: Mapping[str, Secret],
    *,
    mode: ApplyMode,
    maintenance: Mapping[str, bool] | None = None,
) -> list[ApplyTarget]:
    """Maintenance mode (over --insecure) and the `apply-config --dry-run` preview of every node.

    `maintenance` (hostname -> in maintenance mode) skips the probe where the caller already knows, e.g. the
    bootstrap's preflight. A configured node whose dry-run fails (rejected config, unreachable) fails the whole
    plan here, before anything is applied, with every such node named.
    """

    def one(node: Node) -> tuple[ApplyTarget | None, str | None]:
        addr = str(node.address)
        config = configs[node.hostname]
        known = None if maintenance is None else maintenance.get(node.hostname)
        if known is None:
            known = maintenance_status(tctl, addr, node.hostname).gather(runner) is not None
        if known:
            return ApplyTarget(node, config, maintenance=True), None
        probe = ApplyTarget(node, config, maintenance=False)
        cmd = tctl.apply_preview(addr, probe.tempfile(), mode=mode, insecure=False, host=node.hostname)
        result = runner.run(cmd, check=False)
        if not result.ok:
            return None, f"{node.hostname}: {last_error_line(result)}"
        try:
            # talosctl prints the dry-run summary on stderr (helpers/mode.go PrintApplyResults)
            return ApplyTarget(node, config, maintenance=False, preview=parse_apply_preview(result.stderr)), None
        except TalosctlOutputError as exc:
            return None, f"{node.hostname}: {exc}"

    answers = _parallel(one, nodes)
    errors = [e for _, e in answers if e]
    if errors:
        raise ToolkitError(
            "apply-config --dry-run failed, nothing was applied:\n" + "\n".join(f"  - {e}" for e in errors),
            hint="a rejected config names the field at fault; an unreachable node needs the network fixed first",
        )
    return [t for t, _ in answers if t is not None]


def gather_reset_facts(
    runner: Runner, tctl: Talosctl, cluster: Cluster, nodes: Sequence[Node], kube: KubeTarget
) -> ResetFacts:
    """Which targets are already in maintenance mode, etcd's member count and health, whether kube answers."""
    targets = _parallel(
        lambda n: ResetTarget(n, maintenance_status(tctl, str(n.address), n.hostname).gather(runner) is not None),
        nodes,
    )
    cps = [str(n.address) for n in cluster.controlplanes]
    statuses = etcd_status(tctl, cps).gather(runner)
    healthy = [a for a in cps if (s := statuses.get(a)) is not None and s.healthy]
    members: int | None = None
    if healthy:
        listed = etcd_members(tctl, healthy[0]).try_gather(runner)
        members = len(listed) if listed is not None else None
    kube_ok = kube_nodes(kube).try_gather(runner) is not None
    return ResetFacts(
        etcd_members=members,
        etcd_healthy=members is not None and len(healthy) == members,
        kube_api=kube_ok,
        targets=tuple(targets),
    )


def first_healthy_etcd(runner: Runner, tctl: Talosctl, cluster: Cluster) -> Node | None:
    """The first controlplane whose etcd member answers without errors (the snapshot source), or None."""
    statuses = etcd_status(tctl, [str(n.address) for n in cluster.controlplanes]).gather(runner)
    for node in cluster.controlplanes:
        st = statuses.get(str(node.address))
        if st is not None and st.healthy:
            return node
    return None


def gather_k8s_versions(runner: Runner, kube: KubeTarget) -> tuple[dict[str, str] | None, str | None]:
    """Kubelet version by node and the API server version (None where the API did not answer)."""
    nodes = kube_nodes(kube).try_gather(runner)
    kubelets = {name: n.kubelet_version for name, n in nodes.items()} if nodes is not None else None
    server = Fact(kubectl.version(kube), kubectl.parse_server_version).try_gather(runner)
    return kubelets, server
