"""Stage 2 (talos): talosconfig, machine configs to every node, etcd bootstrapped exactly once, etcd healthy.

Order: write the talosconfig (kept while its client certificate is valid), apply the controlplanes (nodes in
maintenance mode with `--insecure`, and only they; `k8s_ops.talos.lifecycle.plan_apply`) and wait until each booted its
config with etcd waiting to join, bootstrap etcd on the first controlplane addressed directly (`-e <cp1> -n
<cp1>`: never the VIP, which only exists once etcd does), wait until etcd has one healthy voting member per
controlplane, then apply the workers concurrently.

Nothing here waits for a controlplane to be `running` or `ready`: Talos keeps a fresh controlplane `booting`
until etcd is bootstrapped (its Boot sequence waits for the etcd service, which waits to join), and no node is
`ready` before the CNI runs (`k8s_ops.talos.gates` cites the source). Readiness is asserted after the CNI stage
(`talos_ready_step`).

etcd is bootstrapped only when every controlplane positively reports its etcd service waiting for a
bootstrap (`Preparing`); a `Running` etcd anywhere means "already bootstrapped" (skip), and a controlplane that
cannot be asked stops the run: a second bootstrap on a node that has not joined yet splits etcd in two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from k8s_ops.core import settings
from k8s_ops.core.errors import GateFailed, ToolkitError, last_error_line
from k8s_ops.core.plan import Check, FileWrite, Step
from k8s_ops.core.runner import Runner
from k8s_ops.core.wait import NotYet, StopWaiting, wait_check, wait_for
from k8s_ops.talos import facts, gates
from k8s_ops.talos.facts import ApplyTarget
from k8s_ops.talos.lifecycle import Env, plan_apply
from k8s_ops.tools.talosctl import Talosctl, parse_machinestatus

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Node

__all__ = [
    "EtcdState",
    "NodeState",
    "etcd_state",
    "probe_node",
    "probe_nodes",
    "talos_ready_step",
    "talos_steps",
]


@dataclass(frozen=True)
class NodeState:
    """How a node answers on the Talos API: `maintenance`, `configured` (with its stage) or `unreachable`."""

    hostname: str
    address: str
    state: str
    detail: str = ""

    def describe(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.hostname} {self.address}: {self.state}{extra}"


def direct(tctl: Talosctl, address: str) -> Talosctl:
    """The same talosconfig with the node itself as the only endpoint (no proxying through another node)."""
    return Talosctl(tctl.talosconfig, (address,), tctl.binary)


def probe_node(runner: Runner, tctl: Talosctl, hostname: str, address: str) -> NodeState:
    """Maintenance API first (no credentials); else the authenticated API addressed directly."""
    if facts.maintenance_status(tctl, address, hostname).gather(runner) is not None:
        return NodeState(hostname, address, "maintenance", "waiting for a config; applied with --insecure")
    result = runner.run(direct(tctl, address).machinestatus([address], host=hostname), check=False)
    if result.ok:
        statuses = parse_machinestatus(result.stdout)
        st = statuses.get(address) or next(iter(statuses.values()), None)
        return NodeState(hostname, address, "configured", st.describe() if st else "answers")
    return NodeState(hostname, address, "unreachable", last_error_line(result))


def probe_nodes(runner: Runner, tctl: Talosctl, nodes: Sequence[Node]) -> list[NodeState]:
    """Every node's state: one authenticated call for all (a healthy cluster answers it whole), then a
    per-node probe for those that did not answer (maintenance mode, unreachable, or behind a node that is)."""
    addrs = [str(n.address) for n in nodes]
    statuses = facts.machine_statuses(tctl, addrs).gather(runner)
    out: dict[str, NodeState] = {}
    rest: list[Node] = []
    for n in nodes:
        st = statuses.get(str(n.address))
        if st is not None:
            out[n.hostname] = NodeState(n.hostname, str(n.address), "configured", st.describe())
        else:
            rest.append(n)
    if rest:
        with ThreadPoolExecutor(max_workers=max(1, min(settings.concurrency(), len(rest)))) as pool:
            found = pool.map(lambda n: probe_node(runner, tctl, n.hostname, str(n.address)), rest)
            out.update({s.hostname: s for s in found})
    return [out[n.hostname] for n in nodes]


# --------------------------------------------------------------------------- etcd


@dataclass(frozen=True)
class EtcdState:
    """Per controlplane: its etcd service state, or why it could not be read."""

    states: dict[str, str] = field(default_factory=dict)  # hostname -> Running / Preparing / …
    unknown: dict[str, str] = field(default_factory=dict)  # hostname -> error

    @property
    def bootstrapped(self) -> bool:
        return any(s == "Running" for s in self.states.values())

    def describe(self) -> str:
        parts = [f"{h}: {s}" for h, s in self.states.items()] + [f"{h}: {e}" for h, e in self.unknown.items()]
        return ", ".join(parts)


def etcd_state(runner: Runner, env: Env, tctl: Talosctl | None = None) -> EtcdState:
    """Every controlplane's etcd service state: one call for all, then a per-node look at the silent ones."""
    t = tctl or env.tctl
    cps = env.cluster.controlplanes
    found = facts.etcd_services(t, [str(cp.address) for cp in cps]).gather(runner)
    state = EtcdState()
    for cp in cps:
        addr = str(cp.address)
        value = found.get(addr)
        if value is not None:
            state.states[cp.hostname] = value
        elif facts.maintenance_status(t, addr, cp.hostname).gather(runner) is not None:
            state.states[cp.hostname] = "maintenance"
        else:
            single = facts.etcd_services(direct(t, addr), [addr]).gather(runner)
            value = single.get(addr)
            if value is None:
                state.unknown[cp.hostname] = single.error or "no STATE in the answer"
            else:
                state.states[cp.hostname] = value
    return state


def _bootstrap_guard(env: Env) -> Callable[[Runner], str | None]:
    """Skip when etcd already runs; else wait (bounded) until every controlplane reports its etcd `Preparing`.

    Controlplanes applied a moment ago may still be installing or rebooting, so an unknown state is waited on;
    one still in maintenance mode cannot join and stops the run at once."""

    def guard(runner: Runner) -> str | None:
        def settled() -> EtcdState | None:
            state = etcd_state(runner, env)
            if state.bootstrapped:
                return state
            fresh = [h for h, s in state.states.items() if s == "maintenance"]
            if fresh:
                raise StopWaiting(f"{', '.join(fresh)} in maintenance mode (no config applied): {state.describe()}")
            if state.unknown or any(s != "Preparing" for s in state.states.values()):
                raise NotYet(state.describe())
            return state

        try:
            state = wait_for(
                "every controlplane's etcd to wait for the bootstrap (service etcd: Preparing)",
                settled,
                timeout=env.timeouts.apply,
            )
        except GateFailed as exc:
            raise GateFailed(
                "etcd is not waiting for a bootstrap on every controlplane",
                last_error_line(exc),
                hint="bootstrapping while a controlplane cannot be asked could split etcd in two; fix the node "
                "(reachability, its config) and re-run",
            ) from None
        if state.bootstrapped:
            return f"etcd is already bootstrapped ({state.describe()})"
        return None

    return guard


def _etcd_healthy_probe(env: Env, runner: Runner) -> str | None:
    try:
        return gates.etcd_problem(runner, env.gate)
    except ToolkitError as exc:
        return last_error_line(exc)


def talos_steps(
    env: Env,
    *,
    talosconfig: FileWrite | None,
    talosconfig_note: str,
    controlplanes: Sequence[ApplyTarget],
    workers: Sequence[ApplyTarget],
    etcd: EtcdState | None,
    recover_from: Path | None = None,
    etcd_timeout: float = 900.0,
    confirm_bootstrap: bool = False,
) -> list[Step]:
    """Stage 2 steps from facts gathered at plan time (apply previews, etcd state), guards re-check at run.

    `confirm_bootstrap` (rebuild): the etcd bootstrap asks for the typed cluster name — it starts a new cluster.
    """
    cluster = env.cluster
    steps: list[Step] = []
    path = env.tctl.talosconfig
    if talosconfig is None:
        steps.append(Step(f"talosconfig {path}", noop=talosconfig_note))
    else:
        steps.append(Step(f"talosconfig {path} ({talosconfig_note})", writes=(talosconfig,)))
    if controlplanes:
        steps += plan_apply(env, controlplanes, "auto", max_unavailable=1).steps
    cp1 = cluster.controlplanes[0]
    addr = str(cp1.address)
    desc = f"bootstrap etcd once on {cp1.hostname} ({addr}, addressed directly — never the VIP {cluster.endpoint})"
    if recover_from is not None:
        desc += f", recovering from {recover_from}"
    if etcd is not None and etcd.bootstrapped:
        ignored = f"; {recover_from} NOT restored (etcd already runs)" if recover_from is not None else ""
        steps.append(Step(desc, noop=f"etcd is already bootstrapped ({etcd.describe()}){ignored}", node=cp1.hostname))
    else:
        before: list[Check] = []
        if recover_from is not None:
            before.append(_snapshot_readable(recover_from))
        steps.append(
            Step(
                desc,
                commands=(env.tctl.bootstrap(addr, host=cp1.hostname, recover_from=recover_from),),
                before=tuple(before),
                guard=_bootstrap_guard(env),
                node=cp1.hostname,
                destructive=confirm_bootstrap,
            )
        )
    n = len(cluster.controlplanes)
    wait_desc = f"wait for etcd: {n}/{n} healthy voting members (one per controlplane, no learners)"

    def healthy(runner: Runner) -> str | None:
        return _etcd_healthy_probe(env, runner)

    def etcd_done(runner: Runner) -> str | None:
        return f"etcd has {n}/{n} healthy members" if healthy(runner) is None else None

    steps.append(Step(wait_desc, after=(wait_check(wait_desc, healthy, timeout=etcd_timeout),), guard=etcd_done))
    if workers:
        steps += plan_apply(env, workers, "auto", max_unavailable=max(1, len(workers))).steps
    return steps


def talos_ready_step(env: Env, *, timeout: float) -> Step:
    """After the CNI: every node's Boot sequence ended (stage running) and Talos reports it ready — the first
    point in a bootstrap where Talos can (its `nodeReady` check needs the CNI). Waiting shows Talos' own unmet
    conditions per node; a re-run on a healthy cluster skips it."""
    nodes = env.cluster.nodes
    check = gates.talos_ready(env.gate, nodes, timeout=timeout)

    def done(runner: Runner) -> str | None:
        try:
            problem = gates.talos_ready_problem(runner, env.gate, nodes)
        except ToolkitError:
            return None
        return f"all {len(nodes)} nodes are running and ready" if problem is None else None

    return Step(check.description, after=(check,), guard=done)


def _snapshot_readable(path: Path) -> Check:
    desc = f"etcd snapshot {path} exists and is not empty"

    def run(_: Runner) -> None:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise GateFailed(desc, f"cannot read it: {exc.strerror}") from None
        if size == 0:
            raise GateFailed(desc, "the file is empty")

    return Check(desc, run)
