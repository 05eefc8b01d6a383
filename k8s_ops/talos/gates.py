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

import contextlib
import re
import shlex
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from k8s_ops.core import settings
from k8s_ops.core.command import Command
from k8s_ops.core.errors import CommandFailed, GateFailed, Problem, ProblemsError, ToolkitError, last_error_line
from k8s_ops.core.facts import Recording, Served, Shelf, dig
from k8s_ops.core.plan import Check
from k8s_ops.core.runner import Runner
from k8s_ops.core.wait import NotYet, StopWaiting, wait_check, wait_for, wait_until
from k8s_ops.talos import cel, facts
from k8s_ops.talos.kuberound import ATTACHMENTS, NODES, PDBS, PODS, KubeRound
from k8s_ops.tools import kubectl
from k8s_ops.tools.kubectl import KubeTarget
from k8s_ops.tools.talosctl import Talosctl, parse_machinestatus

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Cluster, HealthCheck, Node
    from k8s_ops.talos.inventory.models import UpgradeWindow

__all__ = [
    "Ahead",
    "BootMemo",
    "CelGate",
    "CommandGate",
    "GateContext",
    "attachment_problem",
    "blocking_pdbs",
    "booted_config",
    "command_checks",
    "command_problem",
    "compile_health_checks",
    "etcd_healthy",
    "etcd_problem",
    "extensions_installed",
    "first_problems",
    "health_gate",
    "in_maintenance",
    "in_window",
    "kube_node_ready",
    "mid_upgrade_problem",
    "node_diagnostics",
    "node_down",
    "node_returned",
    "nodes_ready",
    "object_diagnostics",
    "pdb_problem",
    "pdbs_allow_drain",
    "ready_problem",
    "recent_events",
    "record_boot_id",
    "selected_objects",
    "soak",
    "talos_ready",
    "talos_ready_problem",
    "volumes_attached",
    "volumes_detached",
    "window_problem",
]

DEFAULT_HOLD = 300.0


@dataclass(frozen=True)
class CelGate:
    """One compiled inventory health check over one object (`name`) or every object a selector matches."""

    index: int
    check: HealthCheck
    program: Any = field(compare=False, repr=False)

    @property
    def target(self) -> str:
        hc = self.check
        where = f"{hc.namespace}/" if hc.namespace else ""
        if hc.name:
            return f"{hc.kind} {where}{hc.name}"
        sel = [f"labels {hc.label_selector}"] if hc.label_selector else []
        sel += [f"fields {hc.field_selector}"] if hc.field_selector else []
        scope = f" in {hc.namespace}" if hc.namespace else ""
        return f"{'every' if hc.match == 'all' else 'any'} {hc.kind}{scope}" + (f" ({', '.join(sel)})" if sel else "")

    @property
    def description(self) -> str:
        label = f"{self.check.description}: " if self.check.description else ""
        empty = ", none is fine" if self.check.allow_empty and not self.check.name else ""
        return f"health check {label}{self.target} satisfies `{self.check.expr}`{empty}"

    @property
    def timeout(self) -> float | None:
        return self.check.timeout


@dataclass(frozen=True)
class CommandGate:
    """An inventory `command` health check: an argv run on the operator machine (no shell), exit 0 = healthy."""

    index: int
    check: HealthCheck
    cwd: str

    @property
    def argv(self) -> tuple[str, ...]:
        assert self.check.command is not None
        return self.check.command

    @property
    def description(self) -> str:
        label = f"{self.check.description}: " if self.check.description else ""
        return f"health check {label}`{shlex.join(self.argv)}` exits 0"

    @property
    def timeout(self) -> float | None:
        return self.check.timeout

    def command(self, hold: float) -> Command:
        # a check only reads: the operator vouches for that by listing it as a health check
        return Command(argv=self.argv, description=self.description, cwd=self.cwd, timeout=self.timeout or hold)


@dataclass(frozen=True)
class GateContext:
    """What every gate needs: the inventory, how to reach Talos and Kubernetes, and how long to hold."""

    cluster: Cluster
    tctl: Talosctl
    kube: KubeTarget
    hold: float = DEFAULT_HOLD
    cel: tuple[CelGate, ...] = ()
    commands: tuple[CommandGate, ...] = ()
    # the rollout's merged read rounds (`Ahead`): a gate's first poll may be answered from the round before it
    shelf: Shelf = field(default_factory=Shelf, compare=False, repr=False)
    # a rollout reads nodes, pods, budgets, attachments and built-in checked kinds in one call per round (None: a
    # read per kind, for one-off gates and waits)
    kube_round: KubeRound | None = None

    @property
    def addresses(self) -> list[str]:
        """Every inventory node, in inventory order: the one multi-node read per fact a round shares."""
        return [_addr(n) for n in self.cluster.nodes]


def _addr(node: Node) -> str:
    return str(node.address)


# --------------------------------------------------------------------------- etcd


_ALARM = re.compile(r"memberID:(\d+) alarm:([A-Z]+)")


def etcd_problem(runner: Runner, ctx: GateContext) -> str | None:
    """Why etcd is not fully healthy, or None: no alarm is raised (NOSPACE, CORRUPT), every
    controlplane's member answers without errors, none is a learner, and the member list has exactly one member per
    controlplane."""
    cps = ctx.cluster.controlplanes
    # Both reads at once; members from the first controlplane, or from a healthy one if that one fails.
    with ThreadPoolExecutor(max_workers=2) as pool:
        status_f = pool.submit(facts.etcd_status(ctx.tctl, [_addr(n) for n in cps]).gather, runner)
        members_f = pool.submit(facts.etcd_members(ctx.tctl, _addr(cps[0])).try_gather, runner)
        statuses, members = status_f.result(), members_f.result()
    problems: list[str] = []
    # An alarm (NOSPACE: the backend quota is full and etcd refuses writes; CORRUPT) is cluster-wide and stays
    # until disarmed: no node may go down while one is raised. etcd's Status appends every alarm of the cluster to
    # each member's errors (`memberID:<decimal> alarm:<type>`), so the status read already names them.
    alarms: dict[str, None] = {}
    healthy: list[Node] = []
    for cp in cps:
        st = statuses.get(_addr(cp))
        if st is None:
            problems.append(f"{cp.hostname}: etcd did not answer ({statuses.error or 'no status row'})")
            continue
        for member, alarm in _ALARM.findall(st.errors):
            alarms[f"etcd alarm {alarm} on member {int(member):016x}"] = None
        errors = _ALARM.sub("", st.errors).strip(" ,")
        if st.learner:
            problems.append(f"{cp.hostname}: still a learner")
        elif errors:
            problems.append(f"{cp.hostname}: {errors}")
        else:
            healthy.append(cp)
    problems = [*alarms, *problems]
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
        if ctx.kube_round is not None:
            nodes = {n.name: n for n in map(facts.kube_node, ctx.kube_round.objects(runner, ctx.kube, NODES))}
        else:
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
    return talos_ready_problem(runner, ctx, others, read_all=True) if others else None


def nodes_ready(ctx: GateContext, exclude: Collection[str] = ()) -> Check:
    """Gate: every other inventory node is a Ready Kubernetes node."""
    desc = "every other Kubernetes node Ready" + _except(exclude)
    names = [n.hostname for n in _others(ctx, exclude)]
    return wait_check(desc, lambda r: ready_problem(r, ctx, names), timeout=ctx.hold)


# --------------------------------------------------------------------------- CEL health checks


def compile_health_checks(cluster: Cluster) -> tuple[CelGate, ...]:
    """Compile every `kind` check's `upgrade.healthChecks[].expr`; all syntax errors at once, field named."""
    if cluster.upgrade is None or not cluster.upgrade.health_checks:
        return ()
    out: list[CelGate] = []
    problems: list[Problem] = []
    for i, hc in enumerate(cluster.upgrade.health_checks):
        if hc.kind is None or hc.expr is None:
            continue
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


def command_checks(cluster: Cluster) -> tuple[CommandGate, ...]:
    """The inventory's `command` health checks (run from the cluster directory)."""
    if cluster.upgrade is None:
        return ()
    return tuple(
        CommandGate(i, hc, str(cluster.path))
        for i, hc in enumerate(cluster.upgrade.health_checks)
        if hc.command is not None
    )


def evaluate_cel(gate: CelGate, obj: Mapping[str, Any], label: str | None = None) -> str | None:
    """None when the expression is true over `obj`, else why not (named `label`, default the gate's target)."""
    from celpy import celtypes
    from celpy.adapter import json_to_cel

    who = label or gate.target
    activation: dict[str, Any] = {k: json_to_cel(v) for k, v in obj.items() if k.isidentifier()}
    activation["object"] = json_to_cel(dict(obj))
    try:
        value = gate.program.evaluate(activation)
    except Exception as exc:  # CELEvalError and type errors surface as exceptions or values
        return f"{who}: {_cel_error(exc)}"
    if isinstance(value, Exception):
        return f"{who}: {_cel_error(value)}"
    if isinstance(value, celtypes.BoolType | bool):
        return None if bool(value) else f"{who}: `{gate.check.expr}` is false"
    return f"{who}: `{gate.check.expr}` is {value!s}, not a boolean"


def _cel_error(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    return str(args[0]) if args else type(exc).__name__


def _object_label(obj: Mapping[str, Any]) -> str:
    o = kubectl.Obj(obj)
    return f"{o.namespace}/{o.name}" if o.namespace else o.name


def selected_objects(runner: Runner, ctx: GateContext, gate: CelGate) -> list[dict[str, Any]]:
    """The objects a check looks at: its one named object (or none), or every object its selectors match."""
    hc = gate.check
    assert hc.api_version is not None and hc.kind is not None
    if ctx.kube_round is not None and (folded := ctx.kube_round.selected(runner, ctx.kube, hc)) is not None:
        return folded
    resource = kubectl.resource_arg(hc.api_version, hc.kind)
    if hc.name:
        obj = kubectl.get_or_none(runner, ctx.kube, resource, hc.name, namespace=hc.namespace)
        return [] if obj is None else [obj]
    return kubectl.list_or_empty(
        runner,
        ctx.kube,
        resource,
        namespace=hc.namespace,
        all_namespaces=hc.namespace is None,
        selector=hc.label_selector,
        field_selector=hc.field_selector,
        description=f"read {gate.target}",
    )


def _judge(gate: CelGate, objects: Sequence[Mapping[str, Any]]) -> str | None:
    """`all`: every object passes; `any`: at least one does; none selected fails unless allowed."""
    hc = gate.check
    if not objects:
        if hc.name:
            return f"{gate.target}: not found"
        return None if hc.allow_empty else f"{gate.target}: no object matches (set allowEmpty: true if none is fine)"
    failing = [p for o in objects if (p := evaluate_cel(gate, o, _object_label(o))) is not None]
    if hc.name:
        return failing[0] if failing else None
    if hc.match == "any":
        if len(failing) < len(objects):
            return None
        return f"none of {len(objects)} passes: " + "; ".join(failing[:5])
    if not failing:
        return None
    more = f" (+{len(failing) - 5} more)" if len(failing) > 5 else ""
    return f"{len(failing)}/{len(objects)} not passing: " + "; ".join(failing[:5]) + more


def cel_problem(runner: Runner, ctx: GateContext, gate: CelGate) -> str | None:
    try:
        objects = selected_objects(runner, ctx, gate)
    except CommandFailed as exc:
        return f"{gate.target}: {last_error_line(exc.stderr)}"
    except ToolkitError as exc:
        return str(exc)
    return _judge(gate, objects)


def command_problem(runner: Runner, ctx: GateContext, gate: CommandGate) -> str | None:
    """None when the command exits 0; else its exit code and the last lines of its output."""
    result = runner.run(gate.command(ctx.hold), check=False)
    if result.ok:
        return None
    tail = [ln for ln in (result.stdout + "\n" + result.stderr).splitlines() if ln.strip()][-5:]
    return f"exit {result.returncode}" + (": " + " | ".join(tail) if tail else "")


# --------------------------------------------------------------------------- what a timed-out wait waited on


def object_diagnostics(runner: Runner, ctx: GateContext, gate: CelGate, *, events: int = 5) -> list[str]:
    """For a failing object check: each failing object's conditions and its most recent events (best effort:
    a read that fails is left out — this only explains a failure that is already certain)."""
    try:
        objects = selected_objects(runner, ctx, gate)
    except ToolkitError:
        return []
    lines: list[str] = []
    for obj in objects[:5]:
        if evaluate_cel(gate, obj) is None:
            continue
        o = kubectl.Obj(obj)
        label = f"{gate.check.kind} {_object_label(obj)}"
        conds = [
            f"{c.get('type')}={c.get('status')}"
            + (f" ({c.get('reason')}: {c.get('message')})" if c.get("message") else "")
            for c in o.status("conditions", default=[]) or []
            if isinstance(c, dict)
        ]
        lines.append(f"{label} conditions: " + ("; ".join(conds) if conds else "none reported"))
        lines += [f"{label} event: {e}" for e in recent_events(runner, ctx, obj, limit=events)]
    return lines


def recent_events(runner: Runner, ctx: GateContext, obj: Mapping[str, Any], *, limit: int = 5) -> list[str]:
    """The object's latest events (`kubectl get events --field-selector involvedObject.name=…`), newest last."""
    o = kubectl.Obj(obj)
    selector = f"involvedObject.name={o.name}"
    kind = o.path("kind")
    if kind:
        selector += f",involvedObject.kind={kind}"
    try:
        items = kubectl.list_or_empty(
            runner,
            ctx.kube,
            "events",
            namespace=o.namespace or None,
            all_namespaces=not o.namespace,
            field_selector=selector,
            description=f"read the events of {kind} {o.name}",
        )
    except ToolkitError:
        return []

    def when(e: Mapping[str, Any]) -> str:
        return str(e.get("lastTimestamp") or e.get("eventTime") or dig(e, "metadata", "creationTimestamp") or "")

    items.sort(key=when)
    return [f"{e.get('type', '')} {e.get('reason', '')}: {e.get('message', '')}".strip() for e in items[-limit:]]


def node_diagnostics(runner: Runner, ctx: GateContext, node: Node) -> list[str]:
    """For a node that did not come back in time: Talos' unmet conditions and the services not running healthy."""
    addr = _addr(node)
    lines: list[str] = []
    try:
        st = facts.machine_statuses(ctx.tctl, [addr]).gather(runner).get(addr)
        if st is not None:
            lines.append(f"{node.hostname} Talos: {st.describe()}")
    except ToolkitError:
        pass
    try:
        bad = facts.failing_services(ctx.tctl, addr).gather(runner)
        if bad:
            lines.append(f"{node.hostname} services not running healthy: {', '.join(bad)}")
    except ToolkitError:
        pass
    return lines


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


def health_gate(
    ctx: GateContext, exclude: Collection[str], *, when: str, drain: bool = False, ahead: Ahead | None = None
) -> Check:
    """The full gate before taking `exclude` down (or after the rollout, with nothing excluded): etcd has one
    healthy member per controlplane and no alarm, every other node is Ready and running (none mid-upgrade), every
    object check holds (on one object or on every selected one) and every command check exits 0. The parts are
    read concurrently; the gate holds while any fails and names it. A check with its own `timeout` stops the gate
    once that ran out; when the gate gives up, the failing objects' conditions and recent events are shown.
    `drain`: also no PodDisruptionBudget may block draining `exclude` (read in the same round). `ahead`: the
    previous node's round also makes this gate's reads, and its first poll is answered from them (`Ahead`)."""
    n = len(ctx.cluster.controlplanes)
    others = [x.hostname for x in _others(ctx, exclude)]
    scope = "other " if exclude else ""
    parts: list[tuple[str, Callable[[Runner], str | None], float | None]] = [
        (f"etcd {n}/{n} healthy, no alarm", lambda r: etcd_problem(r, ctx), None),
        (f"every {scope}node Ready{_except(exclude)}", lambda r: ready_problem(r, ctx, others), None),
        (f"no {scope}node mid-upgrade", lambda r: mid_upgrade_problem(r, ctx, exclude), None),
    ]
    if drain and exclude:
        draining = sorted(exclude)
        parts.append(
            (
                f"no PodDisruptionBudget blocks draining {', '.join(draining)}",
                lambda r: pdb_problem(r, ctx, draining),
                None,
            )
        )
    for gate in ctx.cel:

        def cel_part(r: Runner, gate: CelGate = gate) -> str | None:
            return cel_problem(r, ctx, gate)

        parts.append((gate.description, cel_part, gate.timeout))
    for cmd_gate in ctx.commands:

        def cmd_part(r: Runner, gate: CommandGate = cmd_gate) -> str | None:
            return command_problem(r, ctx, gate)

        parts.append((cmd_gate.description, cmd_part, cmd_gate.timeout))
    desc = f"health gate {when}: " + " · ".join(name for name, _, _ in parts)
    hold = max([ctx.hold, *(t for _, _, t in parts if t is not None)])

    if ahead is not None:
        ahead.add(lambda r: first_problems([(name, _bind(fn, r)) for name, fn, _ in parts]))

    def run(live: Runner) -> None:
        started = time.monotonic()
        scale = settings.timeout_scale()
        runner = Served(live, ctx.shelf)
        # each poll is one round: parts that make the same read (the round's one Kubernetes read) share it
        this_poll: list[Runner] = [runner]

        def bound(name: str, fn: Callable[[Runner], str | None], timeout: float | None) -> Probe:
            def probe() -> str | None:
                problem = fn(this_poll[0])
                if problem is not None and timeout is not None and time.monotonic() - started >= timeout * scale:
                    raise StopWaiting(f"{name}: {problem} (its timeout of {timeout:g}s ran out)")
                return problem

            return probe

        probes = [(name, bound(name, fn, t)) for name, fn, t in parts]

        def poll() -> str | None:
            this_poll[0] = Recording(runner, Shelf())
            return first_problems(probes)

        try:
            wait_until(desc, poll, timeout=hold)
        except GateFailed as exc:
            extra = [line for gate in ctx.cel if gate.description in exc.detail
                     for line in object_diagnostics(runner, ctx, gate)]  # fmt: skip
            if not extra:
                raise
            raise GateFailed(
                exc.gate, exc.detail + "\n" + "\n".join(f"  {ln}" for ln in extra), hint=exc.hint
            ) from None

    return Check(desc, run)


def _bind(fn: Callable[[Runner], str | None], runner: Runner) -> Probe:
    return lambda: fn(runner)


# --------------------------------------------------------------------------- waits after an action


class BootMemo:
    """What proves, after the action, that a node rebooted (one per step): the boot id read just before it, or —
    for an upgrade from an older version (`before`) — reaching the target version, which only booting the new image
    changes (`set` by the step's guard; `record_boot_id` sets the boot id)."""

    def __init__(self) -> None:
        self.value: str | None = None
        self.before: str | None = None  # the running version when no boot id was read: the target proves the reboot

    def set(self, boot_id: str | None, running: str | None) -> None:
        self.value = boot_id
        self.before = running if boot_id is None else None

    @property
    def ready(self) -> bool:
        """Whether the reboot can be proven: a boot id, or a version to leave behind."""
        return self.value is not None or self.before is not None


class Ahead:
    """The next node's guard and gate reads, made in the round that sees the last of `expect` nodes (a batch) back.

    `merged` (no post-node hooks between): the node-back wait of the batch's last node makes them in each of its
    polls, concurrently with its own probes (`node_returned`); otherwise each node's last step ends with `check()`
    and the last one runs them. Every read goes through a `Recording` runner (identical reads run once), so the
    guard and the gate that follow find them on the shelf and cost no round of their own. Their first poll uses
    those results (read when the previous node was seen back); a gate that holds polls live from its second poll on.
    """

    # how long a batch member, its action done, waits for the others' before its first poll (see `gather`)
    GATHER = 1.0

    def __init__(self, shelf: Shelf, expect: int = 1) -> None:
        self.shelf = shelf
        self.reads: list[Callable[[Runner], object]] = []
        self.merged = False  # set by the plan builder: the reads ride along with the node-back polls
        self._expect = expect
        self._left = expect
        self._gathered = 0
        self._all_gathered = threading.Event()
        self._made = False  # a poll of this batch made the reads
        self._lock = threading.Lock()

    def gather(self) -> bool:
        """A batch member's action is done: wait (at most `GATHER` seconds) until every member's is, so that their
        first node-back polls run at once and share each read. True for the member that completes the batch: when
        `merged`, its first poll also makes the next reads (one round for the batch's return and the next gate);
        if a member is not back in that round, the next gate's first poll sees it and polls again, live."""
        with self._lock:
            self._gathered += 1
            last = self._gathered == self._expect
        if last:
            self._all_gathered.set()
            return True
        self._all_gathered.wait(self.GATHER * settings.timeout_scale())
        return False

    def add(self, read: Callable[[Runner], object]) -> None:
        self.reads.append(read)

    @property
    def batch(self) -> bool:
        return self._expect > 1

    def rides_along(self) -> bool:
        """Whether a node-back poll should make the reads now: merged, and the poller is the last one out."""
        with self._lock:
            return self.merged and self._left == 1 and bool(self.reads)

    def read_all(self, runner: Runner) -> None:
        """Every registered read once, concurrently, shelved (failures are left to the checks themselves)."""
        if not self.reads:
            return
        recording = runner if isinstance(runner, Recording) else Recording(runner, self.shelf)

        def safe(read: Callable[[Runner], object]) -> None:
            with contextlib.suppress(ToolkitError, NotYet, StopWaiting):  # a head start: the check reads again
                read(recording)

        with ThreadPoolExecutor(max_workers=len(self.reads)) as pool:
            list(pool.map(safe, self.reads))

    def made(self) -> None:
        """A node-back poll of this batch makes the reads (`read_all` with the poll's runner)."""
        with self._lock:
            self._made = True

    def arrived(self, runner: Runner, *, read: bool = True) -> None:
        """One node is back; the last one makes the reads, unless a poll of the batch already did (or its own final
        poll: `read=False`)."""
        with self._lock:
            self._left -= 1
            last = self._left == 0
            made = self._made
        if last and read and not made:
            self.read_all(runner)

    def check(self, when: str) -> Check:
        return Check(f"read the next node's guard and gate in one round ({when})", self.arrived)


def record_boot_id(ctx: GateContext, node: Node, memo: BootMemo) -> Check:
    """Read the node's boot id right before acting, so the wait can tell the reboot happened."""
    desc = f"record the boot id of {node.hostname}"

    def run(runner: Runner) -> None:
        memo.value = facts.boot_id(ctx.tctl, _addr(node), node.hostname).gather(runner)

    return Check(desc, run)


def node_returned(
    ctx: GateContext,
    node: Node,
    memo: BootMemo | None,
    *,
    timeout: float,
    version: str | None = None,
    volumes: bool = False,
    extensions: Sequence[str] | None = None,
    ahead: Ahead | None = None,
) -> Check:
    """Wait: the node rebooted (boot id changed), Talos reports stage running and ready (and `version`), and its
    Kubernetes node is Ready (and, with `volumes`, every VolumeAttachment naming it is attached without error). The
    reads run concurrently on every poll; machine status, version and extensions are one read over every node,
    shared with the rest of the round (`Ahead`).

    `extensions` (official names): once the rest holds, the node must run exactly the schematic's system extensions
    (the same round read them). Extension statuses are set once at boot, so a mismatch then is final: it fails at
    once, naming them; only "no answer" is waited for.

    `ahead` (when `merged`): the next node's guard and gate reads ride along with the polls of the batch's last
    node, so the round that sees it back is also the next node's read round."""
    addr = _addr(node)
    everyone = ctx.addresses if node.hostname in {n.hostname for n in ctx.cluster.nodes} else [addr]
    proof = "new boot id" + (" (or the new version)" if version else "")
    parts = ([proof] if memo is not None else []) + ["stage running, ready"]
    parts += [f"Talos {version}"] if version else []
    parts.append("Kubernetes node Ready")
    parts += ["its VolumeAttachments attached"] if volumes else []
    if extensions is not None:
        from k8s_ops.talos.schematic import extension_name

        names = ", ".join(extension_name(e) for e in extensions) or "none"
        parts.append(f"the schematic's system extensions ({names})")
    desc = f"{node.hostname} back: " + ", ".join(parts)

    rebooted_seen: list[bool] = []  # whether any poll saw a new boot id (or no answer: the node went down)

    def rebooted(runner: Runner) -> str | None:
        assert memo is not None
        if memo.value is None:
            if version and memo.before is not None and memo.before != version:
                return None  # the `version` probe proves it: the node can only reach it by booting the new image
            raise ToolkitError(f"the boot id of {node.hostname} was not read before acting")
        try:
            current = facts.boot_id(ctx.tctl, addr, node.hostname).gather(runner)
        except ToolkitError:
            rebooted_seen.append(True)
            raise
        if current == memo.value:
            return f"same boot id {current}: not rebooted yet"
        rebooted_seen.append(True)
        return None

    def running(runner: Runner) -> str | None:
        statuses = facts.machine_statuses(ctx.tctl, everyone).gather(runner)
        st = statuses.get(addr)
        if st is None:
            return f"no answer ({statuses.error or 'no status'})"
        return None if st.running_ready else st.describe()

    def at_version(runner: Runner) -> str | None:
        versions = facts.talos_versions(ctx.tctl, everyone).gather(runner)
        seen = versions.get(addr)
        if seen is None:
            return f"no answer ({versions.error or 'no version'})"
        return None if seen == version else f"reports {seen}"

    seen_extensions: list[Any] = []  # this poll's answer: None (no answer) or the node's extensions

    def installed(runner: Runner) -> str | None:
        read = facts.installed_extensions(ctx.tctl, everyone).gather(runner)
        seen_extensions[:] = [read.get(addr)]
        return None  # judged once the rest holds (before the reboot the old extensions are expected)

    rode_along: list[bool] = []  # whether the last poll also made the next node's reads
    last_round: list[Recording] = []  # the reads of the poll that saw the node back
    rider = [False]  # this node completed its batch: its first poll makes the next reads (`Ahead.gather`)

    def poll(runner: Runner, probes: list[tuple[str, Probe]]) -> str | None:
        rode_along[:] = []
        first_of_batch, rider[0] = rider[0], False
        if ahead is not None and ahead.merged and (ahead.rides_along() or first_of_batch):
            rode_along.append(True)
            ahead.made()

            def next_reads() -> None:
                ahead.read_all(runner)
                return None

            probes = [*probes, ("next node", next_reads)]
        problem = first_problems(probes)
        if problem is not None or extensions is None:
            return problem
        exts = seen_extensions[0] if seen_extensions else None
        if exts is None:
            return "extensions: no answer"
        _extensions_final(ctx, _extensions_desc(node, extensions), extensions, exts)
        return None

    def one_poll(live: Runner) -> str | None:
        runner = Recording(live, ctx.shelf)  # one round: its reads run once, and serve the next guard and gate
        last_round[:] = [runner]
        probes: list[tuple[str, Probe]] = []
        if memo is not None:
            probes.append(("boot id", _bind(rebooted, runner)))
        probes.append(("Talos", _bind(running, runner)))
        if version:
            probes.append(("version", _bind(at_version, runner)))
        probes.append(("Kubernetes", lambda: ready_problem(runner, ctx, [node.hostname])))
        if volumes:
            probes.append(("volumes", lambda: attachment_problem(runner, ctx, node.hostname)))
        if extensions is not None:
            probes.append(("extensions", _bind(installed, runner)))
        return poll(runner, probes)

    def run(live: Runner) -> None:
        if ahead is not None and ahead.batch:  # a batch's members poll together (with post-node hooks too)
            rider[0] = ahead.gather()
        try:
            wait_until(desc, lambda: one_poll(live), timeout=timeout)
        except GateFailed as exc:
            if extensions is not None and exc.gate == _extensions_desc(node, extensions):
                raise  # the extensions came back wrong: final, already explained
            staged = memo is not None and memo.value is not None and not rebooted_seen
            raise _not_back(live, ctx, node, exc, staged=staged) from None
        if ahead is not None and ahead.merged:
            # the batch's last node back makes the next reads; those its final poll made are not made again
            ahead.arrived(last_round[0] if last_round else live, read=not rode_along)

    return Check(desc, run)


def _not_back(runner: Runner, ctx: GateContext, node: Node, exc: GateFailed, *, staged: bool) -> GateFailed:
    """The timeout of a node-back wait, explained: Talos' unmet conditions and failing services, and — when the
    boot id never changed — that the upgrade (or reboot) was accepted but never booted."""
    lines = node_diagnostics(runner, ctx, node)
    hint = exc.hint
    detail = exc.detail
    if staged:
        detail = (
            f"{node.hostname} never rebooted: its boot id is unchanged, so the new image is installed (staged) but "
            f"not booted. {detail}"
        )
        hint = (
            f"reboot it to boot the staged upgrade (`talosctl reboot -n {_addr(node)}`, or `invoke talos.reboot-node "
            f"--node {node.hostname}`), then re-run the rollout"
        )
    if lines:
        detail += "\n" + "\n".join(f"  {ln}" for ln in lines)
    return GateFailed(exc.gate, detail, hint=hint)


def extensions_installed(ctx: GateContext, node: Node, wanted: Sequence[str], *, timeout: float) -> Check:
    """Check: the node runs exactly the schematic's system extensions (`wanted`: official names).

    Extension statuses are set once at boot, so once the node is back a mismatch is final: it fails at once,
    naming the extensions; only "no answer" is waited for.
    """
    from k8s_ops.tools.talosctl import Extension

    addr = _addr(node)
    desc = _extensions_desc(node, wanted)

    def installed(runner: Runner) -> tuple[Extension, ...]:
        read = facts.installed_extensions(ctx.tctl, [addr]).gather(runner)
        exts = read.get(addr)
        if exts is None:
            raise NotYet(f"no answer ({read.error or 'no extension status'})")
        return exts

    def run(runner: Runner) -> None:
        exts = wait_for(desc, lambda: installed(runner), timeout=timeout)
        _extensions_final(ctx, desc, wanted, exts)

    return Check(desc, run)


def _extensions_desc(node: Node, wanted: Sequence[str]) -> str:
    from k8s_ops.talos.schematic import extension_name

    names = ", ".join(extension_name(e) for e in wanted) or "none"
    return f"{node.hostname} runs the schematic's system extensions ({names})"


def _extensions_final(ctx: GateContext, desc: str, wanted: Sequence[str], exts: Sequence[Any]) -> None:
    """GateFailed (named `desc`) unless the node came back with the schematic and exactly `wanted` extensions."""
    from k8s_ops.talos.schematic import extensions_mismatch, schematic_id
    from k8s_ops.tools.talosctl import installed_schematic

    seen = tuple(e.name for e in exts)
    reported, expected = installed_schematic(tuple(exts)), schematic_id(ctx.cluster)
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


def talos_ready_problem(
    runner: Runner, ctx: GateContext, nodes: Sequence[Node], *, read_all: bool = False
) -> str | None:
    """Nodes not in stage running and ready, each with Talos' own unmet conditions, or None. `read_all`: read
    every inventory node (the all-node read a rollout's round shares) and judge only `nodes`."""
    addrs = ctx.addresses if read_all else [_addr(n) for n in nodes]
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


# --------------------------------------------------------------------------- drains: PodDisruptionBudgets, volumes


def _selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A policy/v1 LabelSelector against pod labels: a null selector matches nothing, an empty one everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _evictable_without_pdb(pod: Mapping[str, Any]) -> bool:
    """Pods whose eviction no PDB can block or that a drain leaves alone: terminal or pending pods, pods already
    being deleted (the eviction API skips the budget for them), DaemonSet pods and mirror pods (not evicted)."""
    o = kubectl.Obj(pod)
    if o.status("phase") in ("Succeeded", "Failed", "Pending") or o.path("metadata", "deletionTimestamp"):
        return True
    owners = o.path("metadata", "ownerReferences", default=[]) or []
    if any(isinstance(r, dict) and r.get("kind") == "DaemonSet" for r in owners):
        return True
    return "kubernetes.io/config.mirror" in o.annotations


def blocking_pdbs(pods: Sequence[Mapping[str, Any]], pdbs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The PodDisruptionBudgets that would refuse evicting one of `pods` now: disruptionsAllowed 0, or a status
    the disruption controller has not computed for the budget's current generation. Each named with the pods."""
    out: list[str] = []
    for pdb in pdbs:
        p = kubectl.Obj(pdb)
        hit = [
            kubectl.Obj(pod).name
            for pod in pods
            if kubectl.Obj(pod).namespace == p.namespace
            and not _evictable_without_pdb(pod)
            and _selector_matches(p.path("spec", "selector"), kubectl.Obj(pod).labels)
        ]
        if not hit:
            continue
        allowed = p.status("disruptionsAllowed")
        if p.observed_generation < p.generation or allowed is None:
            why = "status not computed yet"
        elif int(allowed) <= 0:
            healthy, desired = p.status("currentHealthy", default="?"), p.status("desiredHealthy", default="?")
            why = f"disruptionsAllowed 0 ({healthy} healthy, {desired} required)"
        else:
            continue
        out.append(f"PodDisruptionBudget {p.namespace}/{p.name} ({why}) blocks evicting {', '.join(sorted(hit))}")
    return out


def pdb_problem(runner: Runner, ctx: GateContext, hostnames: Sequence[str]) -> str | None:
    """Which PDBs would block draining these nodes right now (one read of each kind), or None."""
    if not hostnames:
        return None
    try:
        if ctx.kube_round is not None:
            pods = ctx.kube_round.objects(runner, ctx.kube, PODS)
            pdbs = ctx.kube_round.objects(runner, ctx.kube, PDBS)
        else:
            pods, pdbs = _pods_and_pdbs(runner, ctx, hostnames)
    except ToolkitError as exc:
        return f"Kubernetes API: {last_error_line(exc)}"
    on_nodes = [p for p in pods if dig(p, "spec", "nodeName") in hostnames]
    found = blocking_pdbs(on_nodes, pdbs)
    return "; ".join(found) if found else None


def _pods_and_pdbs(
    runner: Runner, ctx: GateContext, hostnames: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pods on these nodes (one node: a field selector the API server evaluates, not every pod of the
    cluster) and every PodDisruptionBudget, read concurrently."""
    one = f"spec.nodeName={hostnames[0]}" if len(hostnames) == 1 else None
    with ThreadPoolExecutor(max_workers=2) as pool:
        pods_f = pool.submit(
            kubectl.list_or_empty,
            runner,
            ctx.kube,
            PODS.resource,
            all_namespaces=True,
            description=f"read the pods on {', '.join(hostnames)}",
            field_selector=one,
        )
        pdbs_f = pool.submit(
            kubectl.list_or_empty,
            runner,
            ctx.kube,
            PDBS.resource,
            all_namespaces=True,
            description="read PodDisruptionBudgets",
        )
        return pods_f.result(), pdbs_f.result()


def pdbs_allow_drain(ctx: GateContext, hostnames: Sequence[str]) -> Check:
    """Gate: no PodDisruptionBudget would block draining these nodes (held until they allow it, then named)."""
    desc = f"no PodDisruptionBudget blocks draining {', '.join(hostnames)}"
    hint = "the drain would stall on these budgets: scale the workload up, fix its unhealthy pods, or wait"
    return wait_check(desc, lambda r: pdb_problem(r, ctx, hostnames), timeout=ctx.hold, hint=hint)


def _attachments(runner: Runner, ctx: GateContext, hostname: str) -> list[kubectl.Obj]:
    if ctx.kube_round is not None:
        items = ctx.kube_round.objects(runner, ctx.kube, ATTACHMENTS)
    else:
        items = kubectl.list_or_empty(
            runner, ctx.kube, ATTACHMENTS.resource, description=f"read the VolumeAttachments of {hostname}"
        )
    return [kubectl.Obj(v) for v in items if dig(v, "spec", "nodeName") == hostname]


def volumes_detached(ctx: GateContext, node: Node, *, timeout: float) -> Check:
    """Wait: no VolumeAttachment names the node any more (its RWO volumes were released after the drain)."""
    desc = f"every VolumeAttachment of {node.hostname} gone (volumes released after the drain)"

    def probe(runner: Runner) -> str | None:
        left = _attachments(runner, ctx, node.hostname)
        if not left:
            return None
        return "still attached: " + ", ".join(
            f"{v.name} ({v.path('spec', 'source', 'persistentVolumeName')})" for v in left
        )

    return wait_check(desc, probe, timeout=timeout)


def attachment_problem(runner: Runner, ctx: GateContext, hostname: str) -> str | None:
    """Which VolumeAttachments naming the node are not attached or report an attach error, or None."""
    bad = []
    for v in _attachments(runner, ctx, hostname):
        err = v.status("attachError", "message")
        if err or v.status("attached") is not True:
            bad.append(f"{v.name}: {err or 'not attached yet'}")
    return "; ".join(bad) if bad else None


def volumes_attached(ctx: GateContext, node: Node, *, timeout: float) -> Check:
    """Wait: every VolumeAttachment naming the node is attached, none reports an attach error."""
    desc = f"every VolumeAttachment of {node.hostname} attached, none with an attach error"
    return wait_check(desc, lambda r: attachment_problem(r, ctx, node.hostname), timeout=timeout)


def soak(ctx: GateContext, seconds: float, *, after: str) -> Check:
    """The canary soak: the full gate must stay healthy for `seconds` (scaled); the first failure stops the
    rollout, naming what broke and when."""
    desc = f"canary soak: the health gate stays healthy for {seconds:g}s after {after}"
    full = health_gate(ctx, (), when=f"during the soak after {after}")

    def run(runner: Runner) -> None:
        full.run(runner)  # healthy at the start (held up to the gate hold)
        started = time.monotonic()
        end = started + seconds * settings.timeout_scale()
        parts = _soak_parts(ctx)
        while time.monotonic() < end:
            time.sleep(min(settings.poll_interval(), max(0.0, end - time.monotonic())))
            this_poll = Recording(runner, Shelf())  # parts that make the same read share it
            problem = first_problems([(name, _bind(fn, this_poll)) for name, fn in parts])
            if problem is not None:
                raise GateFailed(desc, f"broke after {time.monotonic() - started:.0f}s: {problem}")

    return Check(desc, run)


def _soak_parts(ctx: GateContext) -> list[tuple[str, Callable[[Runner], str | None]]]:
    parts: list[tuple[str, Callable[[Runner], str | None]]] = [
        ("etcd", lambda r: etcd_problem(r, ctx)),
        ("nodes Ready", lambda r: ready_problem(r, ctx, [n.hostname for n in ctx.cluster.nodes])),
    ]
    for gate in ctx.cel:
        parts.append((gate.description, lambda r, g=gate: cel_problem(r, ctx, g)))  # type: ignore[misc]
    for cmd_gate in ctx.commands:
        parts.append((cmd_gate.description, lambda r, g=cmd_gate: command_problem(r, ctx, g)))  # type: ignore[misc]
    return parts


# --------------------------------------------------------------------------- maintenance window

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def window_problem(window: UpgradeWindow, now: datetime | None = None) -> str | None:
    """None inside the window (its days, from `start` to `end` in its timezone; an `end` before `start` runs past
    midnight into the next day), else when it opens next."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(window.timezone)
    local = (now or datetime.now(UTC)).astimezone(tz)
    start_h, start_m = map(int, window.start.split(":"))
    end_h, end_m = map(int, window.end.split(":"))
    minute = local.hour * 60 + local.minute
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    day = _DAYS[local.weekday()]
    yesterday = _DAYS[(local.weekday() - 1) % 7]
    if start < end:
        inside = day in window.days and start <= minute < end
    else:  # past midnight
        inside = (day in window.days and minute >= start) or (yesterday in window.days and minute < end)
    if inside:
        return None
    days = ",".join(window.days)
    return (
        f"outside the maintenance window ({days} {window.start}-{window.end} {window.timezone}; "
        f"now {day} {local:%H:%M})"
    )


def in_window(window: UpgradeWindow, *, rerun: str) -> Check:
    """Gate (checked once, never held): the clock is inside `upgrade.window`. A rollout stops before the next node
    once the window closed; resuming later skips what is done."""
    desc = f"inside the maintenance window ({','.join(window.days)} {window.start}-{window.end} {window.timezone})"

    def run(_: Runner) -> None:
        problem = window_problem(window)
        if problem is not None:
            raise GateFailed(desc, problem, hint=f"re-run `{rerun}` inside the window, or add --ignore-window")

    return Check(desc, run)


def node_down(ctx: GateContext, node: Node, *, timeout: float) -> Check:
    """Wait: the node no longer answers the Talos API (shut down)."""
    addr = _addr(node)
    desc = f"{node.hostname} powered off (the Talos API no longer answers)"

    def probe(runner: Runner) -> str | None:
        result = runner.run(ctx.tctl.machinestatus([addr], host=node.hostname), check=False)
        if not result.ok:
            return None
        statuses = list(parse_machinestatus(result.stdout).values())
        return f"still answering ({statuses[0].describe() if statuses else 'no status'})"

    return wait_check(desc, probe, timeout=timeout)
