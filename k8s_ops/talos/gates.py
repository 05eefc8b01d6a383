"""Health gates and waits for node lifecycle operations, as `k8s_ops.core.plan.Check`s.

Gates are evaluated before a node is taken down and after it returns (`health_gate`, its parts read
concurrently): etcd has one healthy voting member per controlplane, every other node is Ready in Kubernetes
and running in Talos (none mid-upgrade), and each inventory `upgrade.healthChecks` CEL expression holds over its
object (fetched with `kubectl get -o json`). A failing gate *holds* the rollout — it is polled — for at most
`hold` seconds, then stops it with GateFailed naming the gate and the last thing it saw. Waits (node back,
Ready, maintenance mode, a fresh node booted) work the same way with their own timeouts. Every timeout is scaled by
K8S_OPS_TIMEOUT_SCALE (k8s_ops.core.wait).

CEL: an expression sees the object as `object` and, like tuppr, its top-level fields (`status`, `spec`,
`metadata`, …) as variables, so `status.ceph.health == 'HEALTH_OK'` and `object.status.numberReady > 0` both
work. It must evaluate to true; a missing field counts as "not yet" (with the CEL error as detail).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from k8s_ops.core.errors import CommandFailed, GateFailed, Problem, ProblemsError, ToolkitError, last_error_line
from k8s_ops.core.plan import Check
from k8s_ops.core.runner import Runner
from k8s_ops.core.wait import NotYet, wait_check, wait_for, wait_until
from k8s_ops.talos import cel, facts
from k8s_ops.tools import kubectl
from k8s_ops.tools.kubectl import KubeTarget
from k8s_ops.tools.talosctl import Talosctl

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Cluster, HealthCheck, Node

__all__ = [
    "BootMemo",
    "CelGate",
    "GateContext",
    "booted_config",
    "compile_health_checks",
    "etcd_healthy",
    "etcd_problem",
    "extensions_installed",
    "first_problems",
    "health_gate",
    "in_maintenance",
    "kube_node_ready",
    "kube_resource",
    "mid_upgrade_problem",
    "node_returned",
    "nodes_ready",
    "ready_problem",
    "record_boot_id",
    "talos_ready",
    "talos_ready_problem",
]

DEFAULT_HOLD = 300.0


@dataclass(frozen=True)
class CelGate:
    """One compiled inventory health check."""

    index: int
    check: HealthCheck
    program: Any = field(compare=False, repr=False)

    @property
    def target(self) -> str:
        where = f"{self.check.namespace}/" if self.check.namespace else ""
        return f"{self.check.kind} {where}{self.check.name}"

    @property
    def description(self) -> str:
        label = f"{self.check.description}: " if self.check.description else ""
        return f"health check {label}{self.target} satisfies `{self.check.expr}`"


@dataclass(frozen=True)
class GateContext:
    """What every gate needs: the inventory, how to reach Talos and Kubernetes, and how long to hold."""

    cluster: Cluster
    tctl: Talosctl
    kube: KubeTarget
    hold: float = DEFAULT_HOLD
    cel: tuple[CelGate, ...] = ()


def _addr(node: Node) -> str:
    return str(node.address)


# --------------------------------------------------------------------------- etcd


def etcd_problem(runner: Runner, ctx: GateContext) -> str | None:
    """Why etcd is not fully healthy, or None: every controlplane's member answers without errors, none is a
    learner, and the member list has exactly one member per controlplane."""
    cps = ctx.cluster.controlplanes
    # Both reads at once; members from the first controlplane, or from a healthy one if that one fails.
    with ThreadPoolExecutor(max_workers=2) as pool:
        status_f = pool.submit(facts.etcd_status(ctx.tctl, [_addr(n) for n in cps]).gather, runner)
        members_f = pool.submit(facts.etcd_members(ctx.tctl, _addr(cps[0])).try_gather, runner)
        statuses, members = status_f.result(), members_f.result()
    problems: list[str] = []
    healthy: list[Node] = []
    for cp in cps:
        st = statuses.get(_addr(cp))
        if st is None:
            problems.append(f"{cp.hostname}: etcd did not answer ({statuses.error or 'no status row'})")
        elif st.learner:
            problems.append(f"{cp.hostname}: still a learner")
        elif st.errors:
            problems.append(f"{cp.hostname}: {st.errors}")
        else:
            healthy.append(cp)
    if not healthy:
        return "; ".join(problems) or "no controlplane answered"
    if members is None:
        try:
            members = facts.etcd_members(ctx.tctl, _addr(healthy[0])).gather(runner)
        except ToolkitError as exc:
            return "; ".join([*problems, f"cannot list etcd members: {last_error_line(exc)}"])
    if len(members) != len(cps):
        names = ", ".join(m.hostname for m in members) or "none"
        problems.append(f"{len(members)} etcd members ({names}) but {len(cps)} controlplanes")
    problems += [f"{m.hostname}: member is a learner" for m in members if m.learner]
    return "; ".join(problems) if problems else None


def etcd_healthy(ctx: GateContext) -> Check:
    """Gate: etcd has one healthy voting member per controlplane (losing one keeps quorum)."""
    n = len(ctx.cluster.controlplanes)
    desc = f"etcd healthy: {n}/{n} members answer without errors (one per controlplane)"
    return wait_check(desc, lambda r: etcd_problem(r, ctx), timeout=ctx.hold)


# --------------------------------------------------------------------------- nodes


def _others(ctx: GateContext, exclude: Collection[str]) -> list[Node]:
    return [n for n in ctx.cluster.nodes if n.hostname not in exclude]


def _except(exclude: Collection[str]) -> str:
    return f" (except {', '.join(sorted(exclude))})" if exclude else ""


def ready_problem(runner: Runner, ctx: GateContext, hostnames: Sequence[str], kubelet: str | None = None) -> str | None:
    """Why these Kubernetes nodes are not all Ready (at kubelet `kubelet`, if given), or None."""
    try:
        nodes = facts.kube_nodes(ctx.kube).gather(runner)
    except ToolkitError as exc:
        return f"Kubernetes API: {last_error_line(exc)}"
    bad = []
    for name in hostnames:
        kn = nodes.get(name)
        if kn is None:
            bad.append(f"{name}: not registered")
        elif not kn.ready:
            bad.append(f"{name}: NotReady{' (' + kn.reason + ')' if kn.reason else ''}")
        elif kubelet is not None and kn.kubelet_version != kubelet:
            bad.append(f"{name}: kubelet {kn.kubelet_version}")
    return "; ".join(bad) if bad else None


def mid_upgrade_problem(runner: Runner, ctx: GateContext, exclude: Collection[str]) -> str | None:
    """Which other nodes are not in Talos stage running + ready (upgrading, rebooting, down), or None."""
    others = _others(ctx, exclude)
    return talos_ready_problem(runner, ctx, others) if others else None


def nodes_ready(ctx: GateContext, exclude: Collection[str] = ()) -> Check:
    """Gate: every other inventory node is a Ready Kubernetes node."""
    desc = "every other Kubernetes node Ready" + _except(exclude)
    names = [n.hostname for n in _others(ctx, exclude)]
    return wait_check(desc, lambda r: ready_problem(r, ctx, names), timeout=ctx.hold)


# --------------------------------------------------------------------------- CEL health checks


def kube_resource(api_version: str, kind: str) -> str:
    """The `kubectl get` resource argument for apiVersion+kind: `daemonset.v1.apps`, `configmap` (core)."""
    if "/" not in api_version:
        return kind.lower()
    group, version = api_version.split("/", 1)
    return f"{kind.lower()}.{version}.{group}"


def compile_health_checks(cluster: Cluster) -> tuple[CelGate, ...]:
    """Compile every `upgrade.healthChecks[].expr`; all syntax errors at once, field named."""
    if cluster.upgrade is None or not cluster.upgrade.health_checks:
        return ()
    out: list[CelGate] = []
    problems: list[Problem] = []
    for i, hc in enumerate(cluster.upgrade.health_checks):
        try:
            program = cel.compile_expression(hc.expr)
        except Exception as exc:  # celpy raises its own parse errors (CELParseError and friends)
            where = f"upgrade.healthChecks[{i}].expr"
            problems.append(Problem(str(cluster.file), where, f"invalid CEL: {cel.first_line(exc)}"))
            continue
        out.append(CelGate(i, hc, program))
    if problems:
        raise ProblemsError(problems)
    return tuple(out)


def evaluate_cel(gate: CelGate, obj: Mapping[str, Any]) -> str | None:
    """None when the expression is true over `obj`, else why not."""
    from celpy import celtypes
    from celpy.adapter import json_to_cel

    activation: dict[str, Any] = {k: json_to_cel(v) for k, v in obj.items() if k.isidentifier()}
    activation["object"] = json_to_cel(dict(obj))
    try:
        value = gate.program.evaluate(activation)
    except Exception as exc:  # CELEvalError and type errors surface as exceptions or values
        return f"{gate.target}: {_cel_error(exc)}"
    if isinstance(value, Exception):
        return f"{gate.target}: {_cel_error(value)}"
    if isinstance(value, celtypes.BoolType | bool):
        return None if bool(value) else f"{gate.target}: `{gate.check.expr}` is false"
    return f"{gate.target}: `{gate.check.expr}` is {value!s}, not a boolean"


def _cel_error(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    return str(args[0]) if args else type(exc).__name__


def cel_problem(runner: Runner, ctx: GateContext, gate: CelGate) -> str | None:
    hc = gate.check
    resource = kube_resource(hc.api_version, hc.kind)
    try:
        obj = kubectl.get_or_none(runner, ctx.kube, resource, hc.name, namespace=hc.namespace)
    except CommandFailed as exc:
        return f"{gate.target}: {last_error_line(exc.stderr)}"
    except ToolkitError as exc:
        return str(exc)
    if obj is None:
        return f"{gate.target}: not found"
    return evaluate_cel(gate, obj)


Probe = Callable[[], "str | None"]


def first_problems(probes: Sequence[tuple[str, Probe]]) -> str | None:
    """Run independent probes concurrently (each is one or two CLI calls); every failing one, named, or None."""

    def safe(probe: Probe) -> str | None:
        try:
            return probe()
        except ToolkitError as exc:
            return last_error_line(exc)

    if len(probes) == 1:
        results = [safe(probes[0][1])]
    else:
        with ThreadPoolExecutor(max_workers=len(probes)) as pool:
            results = list(pool.map(lambda p: safe(p[1]), probes))
    bad = [f"{name}: {problem}" for (name, _), problem in zip(probes, results, strict=True) if problem]
    return "; ".join(bad) if bad else None


def health_gate(ctx: GateContext, exclude: Collection[str], *, when: str) -> Check:
    """The full gate before taking `exclude` down (or after the rollout, with nothing excluded): etcd has one
    healthy member per controlplane, every other node is Ready and running (none mid-upgrade), and every CEL
    health check holds. The parts are read concurrently; the gate holds while any fails and names it."""
    n = len(ctx.cluster.controlplanes)
    others = [x.hostname for x in _others(ctx, exclude)]
    scope = "other " if exclude else ""
    parts: list[tuple[str, Callable[[Runner], str | None]]] = [
        (f"etcd {n}/{n} healthy", lambda r: etcd_problem(r, ctx)),
        (f"every {scope}node Ready{_except(exclude)}", lambda r: ready_problem(r, ctx, others)),
        (f"no {scope}node mid-upgrade", lambda r: mid_upgrade_problem(r, ctx, exclude)),
    ]
    for gate in ctx.cel:

        def cel_part(r: Runner, gate: CelGate = gate) -> str | None:
            return cel_problem(r, ctx, gate)

        parts.append((gate.description, cel_part))
    desc = f"health gate {when}: " + " · ".join(name for name, _ in parts)

    def run(runner: Runner) -> None:
        bound: list[tuple[str, Probe]] = [(name, _bind(fn, runner)) for name, fn in parts]
        wait_until(desc, lambda: first_problems(bound), timeout=ctx.hold)

    return Check(desc, run)


def _bind(fn: Callable[[Runner], str | None], runner: Runner) -> Probe:
    return lambda: fn(runner)


# --------------------------------------------------------------------------- waits after an action


class BootMemo:
    """The boot id read just before a node is rebooted, kept for the wait after it (one per step)."""

    def __init__(self) -> None:
        self.value: str | None = None


def record_boot_id(ctx: GateContext, node: Node, memo: BootMemo) -> Check:
    """Read the node's boot id right before acting, so the wait can tell the reboot happened."""
    desc = f"record the boot id of {node.hostname}"

    def run(runner: Runner) -> None:
        memo.value = facts.boot_id(ctx.tctl, _addr(node), node.hostname).gather(runner)

    return Check(desc, run)


def node_returned(
    ctx: GateContext, node: Node, memo: BootMemo | None, *, timeout: float, version: str | None = None
) -> Check:
    """Wait: the node rebooted (boot id changed), Talos reports stage running and ready (and `version`), and its
    Kubernetes node is Ready. The reads run concurrently on every poll."""
    addr = _addr(node)
    parts = (["new boot id"] if memo is not None else []) + ["stage running, ready"]
    parts += [f"Talos {version}"] if version else []
    parts.append("Kubernetes node Ready")
    desc = f"{node.hostname} back: " + ", ".join(parts)

    def rebooted(runner: Runner) -> str | None:
        assert memo is not None
        if memo.value is None:
            raise ToolkitError(f"the boot id of {node.hostname} was not read before acting")
        current = facts.boot_id(ctx.tctl, addr, node.hostname).gather(runner)
        return f"same boot id {current}: not rebooted yet" if current == memo.value else None

    def running(runner: Runner) -> str | None:
        statuses = facts.machine_statuses(ctx.tctl, [addr]).gather(runner)
        st = statuses.get(addr)
        if st is None:
            return f"no answer ({statuses.error or 'no status'})"
        return None if st.running_ready else st.describe()

    def at_version(runner: Runner) -> str | None:
        versions = facts.talos_versions(ctx.tctl, [addr]).gather(runner)
        seen = versions.get(addr)
        if seen is None:
            return f"no answer ({versions.error or 'no version'})"
        return None if seen == version else f"reports {seen}"

    def run(runner: Runner) -> None:
        probes: list[tuple[str, Probe]] = []
        if memo is not None:
            probes.append(("boot id", _bind(rebooted, runner)))
        probes.append(("Talos", _bind(running, runner)))
        if version:
            probes.append(("version", _bind(at_version, runner)))
        probes.append(("Kubernetes", lambda: ready_problem(runner, ctx, [node.hostname])))
        wait_until(desc, lambda: first_problems(probes), timeout=timeout)

    return Check(desc, run)


def extensions_installed(ctx: GateContext, node: Node, wanted: Sequence[str], *, timeout: float) -> Check:
    """Check: the node runs exactly the schematic's system extensions (`wanted`: official names).

    Extension statuses are set once at boot, so once the node is back a mismatch is final: it fails at once,
    naming the extensions; only "no answer" is waited for.
    """
    from k8s_ops.talos.schematic import extension_name, extensions_mismatch, schematic_id
    from k8s_ops.tools.talosctl import Extension, installed_schematic

    addr = _addr(node)
    names = ", ".join(extension_name(e) for e in wanted) or "none"
    desc = f"{node.hostname} runs the schematic's system extensions ({names})"

    def installed(runner: Runner) -> tuple[Extension, ...]:
        read = facts.installed_extensions(ctx.tctl, [addr]).gather(runner)
        exts = read.get(addr)
        if exts is None:
            raise NotYet(f"no answer ({read.error or 'no extension status'})")
        return exts

    def run(runner: Runner) -> None:
        exts = wait_for(desc, lambda: installed(runner), timeout=timeout)
        seen = tuple(e.name for e in exts)
        reported, expected = installed_schematic(exts), schematic_id(ctx.cluster)
        if reported is not None and reported != expected:
            raise GateFailed(
                desc,
                f"it came back with schematic {reported}, not {expected}",
                hint="the installer image was built from another schematic; compare `invoke talos.schematic`",
            )
        if problem := extensions_mismatch(wanted, seen):
            raise GateFailed(
                desc,
                f"it came back with other extensions: {problem}",
                hint="the installer image did not carry the schematic's extensions; check the schematic ID in "
                "the image (`invoke talos.schematic`) and that it exists on the Image Factory",
            )

    return Check(desc, run)


def kube_node_ready(ctx: GateContext, hostnames: Sequence[str], *, timeout: float, kubelet: str | None = None) -> Check:
    """Wait: these Kubernetes nodes are Ready (and run kubelet `kubelet`, if given)."""
    names = ", ".join(hostnames) if len(hostnames) <= 3 else f"all {len(hostnames)} nodes"
    desc = f"Kubernetes node{'s' if len(hostnames) > 1 else ''} {names} Ready" + (f" at {kubelet}" if kubelet else "")
    return wait_check(desc, lambda r: ready_problem(r, ctx, hostnames, kubelet), timeout=timeout)


def in_maintenance(ctx: GateContext, node: Node, *, timeout: float) -> Check:
    """Wait: the node answers on the maintenance API with stage maintenance (reset, ready for a new config)."""
    desc = f"{node.hostname} back in maintenance mode"

    def probe(runner: Runner) -> str | None:
        status = facts.maintenance_status(ctx.tctl, _addr(node), node.hostname).gather(runner)
        return None if status is not None else "not in maintenance mode yet"

    return wait_check(desc, probe, timeout=timeout)


# --------------------------------------------------------------------------- a fresh node, and Talos readiness
#
# What Talos reports while a cluster comes up (siderolabs/talos v1.12.11):
# * internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer_tasks.go (StartAllServices): the Boot sequence
#   waits for every loaded service — on a controlplane also etcd, which stays `Preparing` until the cluster is
#   bootstrapped or it joined — so a fresh controlplane stays in stage `booting` until `talosctl bootstrap`;
# * internal/app/machined/pkg/controllers/runtime/machine_status.go: `running` only once the Boot sequence ended;
#   `ready` needs time, network, services, static pods and the Kubernetes Node Ready (a CNI), each failing check
#   listed in `unmetConditions`.
# So a wait before the CNI asks for less than running + ready, and readiness is asserted after the CNI.

# The etcd service states of a controlplane that booted its config: waiting to be bootstrapped or to join, or
# running (it joined an existing cluster).
ETCD_BOOTED = ("Preparing", "Running")
# The stages of a node running its installed config; any other is maintenance, installing, a reboot or a reset.
_BOOTED = ("booting", "running")


def _booted_problem(runner: Runner, ctx: GateContext, node: Node) -> str | None:
    addr = _addr(node)
    statuses = facts.machine_statuses(ctx.tctl, [addr]).gather(runner)
    st = statuses.get(addr)
    if st is None:
        return f"no answer on the authenticated API yet ({statuses.error or 'installing or rebooting'})"
    if st.stage not in _BOOTED:
        return st.describe()
    if not node.is_controlplane:
        # A worker's Boot sequence ends without etcd: `running`, and not ready until the CNI runs.
        return None if st.stage == "running" else st.describe()
    services = facts.etcd_services(ctx.tctl, [addr]).gather(runner)
    state = services.get(addr)
    if state in ETCD_BOOTED:
        return None
    return f"etcd service {state or 'not reported'} ({services.error or st.describe()})"


def booted_config(ctx: GateContext, node: Node, *, timeout: float) -> Check:
    """Wait: a node installed from maintenance mode rebooted into its config and got as far as Talos lets it
    before the cluster exists. A controlplane: the authenticated API answers and its etcd service is
    `Preparing` (waiting for `talosctl bootstrap` or to join) or `Running` — never stage running or ready, which
    a fresh controlplane reaches only after the etcd bootstrap. A worker: stage running (not ready: no CNI)."""
    what = "etcd waiting to join or running" if node.is_controlplane else "stage running"
    desc = f"{node.hostname} installed and booted its config (authenticated API answers, {what})"
    return wait_check(desc, lambda r: _booted_problem(r, ctx, node), timeout=timeout)


def talos_ready_problem(runner: Runner, ctx: GateContext, nodes: Sequence[Node]) -> str | None:
    """Nodes not in stage running and ready, each with Talos' own unmet conditions, or None."""
    addrs = [_addr(n) for n in nodes]
    statuses = facts.machine_statuses(ctx.tctl, addrs).gather(runner)
    bad = []
    for n in nodes:
        st = statuses.get(_addr(n))
        if st is None:
            bad.append(f"{n.hostname}: no answer ({statuses.error or 'no status'})")
        elif not st.running_ready:
            bad.append(f"{n.hostname}: {st.describe()}")
    return "; ".join(bad) if bad else None


def talos_ready(ctx: GateContext, nodes: Sequence[Node], *, timeout: float) -> Check:
    """Wait: every node's Boot sequence ended (stage running) and Talos reports it ready — only possible once the
    CNI runs; while waiting, the failure names Talos' unmet conditions per node."""
    desc = f"Talos: {'all ' + str(len(nodes)) + ' nodes' if len(nodes) > 1 else nodes[0].hostname} running and ready"
    return wait_check(desc, lambda r: talos_ready_problem(r, ctx, nodes), timeout=timeout)
