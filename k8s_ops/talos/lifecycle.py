"""Pure plan builders for per-node Talos operations: inventory + gathered facts in, `Plan` out.

Nothing here runs a command: the checks and guards carry closures that run later, under `execute`.

Decisions worth knowing:

* **Upgrades** use the schematic's factory installer (`factory.talos.dev/metal-installer/<id>:<v>`), never the
  generic installer (it drops extensions) and never `--preserve`. A node is at the target only when it runs
  talosVersion *and* exactly the schematic's system extensions (`get extensions`; a schematic change at the
  same version is rolled out like a version change). That is decided from facts at plan time *and* re-checked
  by a guard at execution; a node still mid-upgrade from an interrupted run is waited for, then re-checked,
  so no node is upgraded twice. After each upgrade the node must come back with those extensions.
* **upgrade-cluster** snapshots etcd first, upgrades controlplanes strictly one at a time, each behind the full
  health gate (etcd N/N healthy, every other node Ready and running, CEL checks), then workers in batches of K
  (one gate per batch, then a concurrent `Step.group`; `execute(max_concurrency=K)`). Each node is awaited back
  (new boot id, running + ready, target version, Kubernetes Ready); the gate before the next node is the
  "after it returned" check of the previous one, and a final step re-checks the gate after the last node. A gate
  part is one or two CLI reads and all parts run concurrently, so a gate costs about one call's latency.
* **apply** asks `apply-config --dry-run` what applying would do: no change is a no-op; live changes on
  configured nodes run concurrently; a change that reboots a configured node is rolled like an upgrade
  (controlplanes one at a time, gated). Maintenance-mode nodes get `--insecure` (and only they do).
* **reset** always targets the node itself (`-e N -n N`) and wipes STATE and EPHEMERAL, then waits for the node
  to come back in maintenance mode. `--graceful`: reset-node is graceful (cordon, drain, leave etcd) while the
  cluster can take it — a worker when the Kubernetes API answers, a controlplane when etcd is healthy and it is
  not the last member; otherwise `--graceful=false` (a graceful leave of the last member or without quorum
  hangs). reset-cluster is `--graceful=false` everywhere: every node is wiped, so draining only moves pods onto
  nodes about to be wiped (and can hang on PodDisruptionBudgets), and leaving etcd member by member buys
  nothing. Workers are reset before controlplanes.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from k8s_ops.core import settings
from k8s_ops.core.errors import GateFailed, Problem, ProblemsError, ToolkitError
from k8s_ops.core.facts import dig
from k8s_ops.core.plan import Check, EnsureDir, EnsureMode, FileWrite, Plan, Step
from k8s_ops.core.runner import Runner
from k8s_ops.core.wait import NotYet, wait_for
from k8s_ops.talos import facts, gates
from k8s_ops.talos.facts import ApplyTarget, ResetFacts, ResetTarget, UpgradeTarget
from k8s_ops.talos.gates import BootMemo, CelGate, GateContext
from k8s_ops.talos.schematic import extensions_mismatch, installer_image, schematic_id
from k8s_ops.tools import kubectl
from k8s_ops.tools.kubectl import KubeTarget
from k8s_ops.tools.talosctl import MAINTENANCE_MODES, ApplyMode, Talosctl, installed_schematic

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Cluster, Node

__all__ = [
    "Env",
    "Timeouts",
    "apply_reboots",
    "default_max_unavailable",
    "graceful_for",
    "plan_apply",
    "plan_etcd_snapshot",
    "plan_health",
    "plan_kubeconfig",
    "plan_reboot",
    "plan_reset",
    "plan_upgrade_cluster",
    "plan_upgrade_k8s",
    "plan_upgrade_node",
    "worker_batches",
]


@dataclass(frozen=True)
class Timeouts:
    """Seconds (before K8S_OPS_TIMEOUT_SCALE). `hold`: how long a failing gate may hold the rollout."""

    upgrade: float = 900.0
    ready: float = 600.0
    hold: float = 300.0
    reset: float = 900.0
    apply: float = 600.0
    upgrade_k8s: float = 3600.0
    health: float = 600.0


@dataclass(frozen=True)
class Env:
    """Everything a plan builder needs besides facts: inventory, clients, compiled CEL gates, timeouts."""

    cluster: Cluster
    tctl: Talosctl
    kube: KubeTarget
    cel: tuple[CelGate, ...] = ()
    timeouts: Timeouts = Timeouts()
    task_prefix: str = "invoke"

    @classmethod
    def for_cluster(cls, cluster: Cluster, *, timeouts: Timeouts | None = None) -> Env:
        return cls(
            cluster=cluster,
            tctl=Talosctl.for_cluster(cluster),
            kube=KubeTarget.for_cluster(cluster.name),
            cel=gates.compile_health_checks(cluster),
            timeouts=timeouts or Timeouts(),
        )

    @property
    def gate(self) -> GateContext:
        return GateContext(self.cluster, self.tctl, self.kube, hold=self.timeouts.hold, cel=self.cel)

    def rerun(self, task: str, *extra: str) -> str:
        return " ".join([self.task_prefix, task, "--cluster", self.cluster.name, *extra])


def _addr(node: Node) -> str:
    return str(node.address)


def _tool(seconds: float) -> float:
    """A timeout handed to talosctl itself (`--timeout`, `--wait-timeout`), scaled like every wait."""
    return seconds * settings.timeout_scale()


# --------------------------------------------------------------------------- upgrade


def _upgrade_reason(
    env: Env, version: str | None, extensions: Sequence[str] | None, target: str, schematic: str | None = None
) -> str | None:
    """Why the node needs the upgrade (running version, extensions, then the schematic ID its image reports —
    which also changes with kernel arguments), or None when it is at the target."""
    if version != target:
        return f"now {version}" if version else "version unknown"
    if extensions is None:
        return "installed extensions unknown"
    problem = extensions_mismatch(env.cluster.schematic.extensions, extensions)
    if problem:
        return f"extensions differ: {problem}"
    expected = schematic_id(env.cluster)
    if schematic is not None and schematic != expected:
        return f"schematic {schematic[:12]}… differs from {expected[:12]}… (kernel arguments or extensions changed)"
    return None


def _at_target(target: str) -> str:
    return f"already at {target} with the schematic's extensions"


def _version_guard(env: Env, node: Node, target: str, memo: BootMemo) -> Callable[[Runner], str | None]:
    """At execution: skip a node already at `target` (version and extensions); wait for one still
    mid-upgrade, then decide.

    The same read round records the node's boot id (into `memo`), so the wait after the upgrade can prove the
    node rebooted without a separate call.
    """
    addr = _addr(node)

    def read(runner: Runner) -> tuple[str | None, str | None, str | None]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            version = pool.submit(facts.talos_versions(env.tctl, [addr]).gather, runner)
            status = pool.submit(facts.machine_statuses(env.tctl, [addr]).gather, runner)
            exts = pool.submit(facts.installed_extensions(env.tctl, [addr]).gather, runner)
            boot = pool.submit(facts.boot_id(env.tctl, addr, node.hostname).try_gather, runner)
            st = status.result().get(addr)
            memo.value = boot.result()
            installed = exts.result().get(addr)
            names = tuple(e.name for e in installed) if installed is not None else None
            schematic = installed_schematic(installed) if installed is not None else None
            why = _upgrade_reason(env, version.result().get(addr), names, target, schematic)
            return version.result().get(addr), why, (st.stage if st is not None else None)

    def guard(runner: Runner) -> str | None:
        version, why, stage = read(runner)
        if version is not None and why is None:
            return _at_target(target)
        if stage == "running" and memo.value is not None:
            return None

        def settled() -> tuple[str | None] | None:
            v, w, st = read(runner)
            if st != "running" or v is None or memo.value is None:
                raise NotYet(f"stage {st}" if st else "no answer")
            return (w,)

        (why,) = wait_for(
            f"{node.hostname} to settle (mid-upgrade, rebooting or unreachable) before deciding to upgrade it",
            settled,
            timeout=env.timeouts.upgrade,
        )
        return f"{_at_target(target)} (an earlier, interrupted run finished it)" if why is None else None

    return guard


def _upgrade_step(
    env: Env,
    target: UpgradeTarget,
    image: str,
    version: str,
    *,
    gate: Check | None,
    after_gate: Check | None = None,
    group: str | None = None,
) -> Step:
    node = target.node
    why = _pending(env, target, version)
    if why is None:
        return Step(f"upgrade {node.hostname} to Talos {version}", noop=_at_target(version), node=node.hostname)
    if target.version is None or target.extensions is None:
        why += f": {target.error or 'no answer'}"
    ctx = env.gate
    memo = BootMemo()  # filled by the guard's read round, right before the gate and the upgrade
    before = (gate,) if gate is not None else ()
    after = (
        gates.node_returned(ctx, node, memo, timeout=env.timeouts.upgrade, version=version),
        gates.extensions_installed(ctx, node, env.cluster.schematic.extensions, timeout=env.timeouts.ready),
        *((after_gate,) if after_gate is not None else ()),
    )
    return Step(
        f"upgrade {node.hostname} to Talos {version} ({why})",
        commands=(env.tctl.upgrade(_addr(node), image, timeout=_tool(env.timeouts.upgrade), host=node.hostname),),
        before=before,
        after=after,
        guard=_version_guard(env, node, version, memo),
        node=node.hostname,
        group=group,
        destructive=True,  # the node reboots into a new image: confirmed by the operator (or --yes)
    )


def _pending(env: Env, target: UpgradeTarget, version: str) -> str | None:
    """Why this node needs the upgrade according to the gathered facts, or None (at the target)."""
    return _upgrade_reason(env, target.version, target.extensions, version, target.schematic)


def _gate(env: Env, names: Sequence[str], *, when: str) -> Check:
    return gates.health_gate(env.gate, names, when=when)


def plan_upgrade_node(env: Env, target: UpgradeTarget) -> Plan:
    """One node: the health gate (etcd N/N, others Ready and running, CEL), upgrade, then back + version + Ready
    and the health gate again over the whole cluster. The installer image is the cluster's own."""
    version = env.cluster.talos_version
    image = installer_image(env.cluster)
    host = target.node.hostname
    step = _upgrade_step(
        env,
        target,
        image,
        version,
        gate=_gate(env, [host], when=f"before {host} goes down"),
        after_gate=_gate(env, [], when=f"after {host} returned"),
    )
    return Plan(
        f"upgrade {host} to Talos {version}",
        env.cluster.name,
        (step,),
        notes=(f"installer image: {image}",),
        resume_hint=f"fix the cause, then re-run `{env.rerun('talos.upgrade-node', '--node', host)}`",
    )


def worker_batches(workers: Sequence[Node], k: int) -> list[list[Node]]:
    """Workers in inventory order, `k` at a time."""
    if k < 1:
        raise ValueError("max-unavailable must be at least 1")
    return [list(workers[i : i + k]) for i in range(0, len(workers), k)]


def _snapshot_step(env: Env, source: Node, path: Path, *, noop: str | None = None) -> Step:
    desc = f"snapshot etcd from {source.hostname} to {path}"
    if noop is not None:
        return Step(desc, noop=noop)
    directory = path.parent

    def saved(_: Runner) -> None:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise GateFailed(f"etcd snapshot {path}", "talosctl finished but wrote no file") from None
        if size == 0:
            raise GateFailed(f"etcd snapshot {path}", "the snapshot is empty")

    return Step(
        desc,
        prepare=(EnsureDir(directory, 0o700),),
        commands=(env.tctl.etcd_snapshot(_addr(source), path, host=source.hostname),),
        finish=(EnsureMode(path, stat.S_IRUSR | stat.S_IWUSR),),
        after=(Check(f"snapshot {path} is non-empty", saved),),
        node=source.hostname,
    )


def plan_upgrade_cluster(
    env: Env,
    targets: Sequence[UpgradeTarget],
    *,
    max_unavailable: int,
    snapshot: Path,
    snapshot_source: Node | None = None,
) -> Plan:
    """The rolling upgrade runbook: etcd snapshot, controlplanes one at a time, workers K at a time.

    Stops at the first failure (the executor never starts the next step); re-running resumes because nodes
    already at the target are no-ops (facts), re-checked at execution (guards). The installer image is the
    cluster's own (its schematic and Talos version).
    """
    version = env.cluster.talos_version
    image = installer_image(env.cluster)
    by_host = {t.node.hostname: t for t in targets}
    cps = [by_host[n.hostname] for n in env.cluster.controlplanes if n.hostname in by_host]
    workers = [by_host[n.hostname] for n in env.cluster.workers if n.hostname in by_host]
    pending = [t for t in (*cps, *workers) if _pending(env, t, version) is not None]
    source = snapshot_source or env.cluster.controlplanes[0]
    done = f"every node already runs {version} with the schematic's extensions"
    steps: list[Step] = [_snapshot_step(env, source, snapshot, noop=None if pending else done)]
    # Controlplanes strictly one at a time, each behind the full gate (which also proves the previous one
    # returned healthy: etcd whole again, every node Ready, CEL checks true).
    for t in cps:
        h = t.node.hostname
        steps.append(_upgrade_step(env, t, image, version, gate=_gate(env, [h], when=f"before {h} goes down")))
    steps += [_upgrade_step(env, t, image, version, gate=None) for t in workers if _pending(env, t, version) is None]
    todo_workers = [t for t in workers if _pending(env, t, version) is not None]
    order = [t.node.hostname for t in cps if _pending(env, t, version) is not None]
    for i, batch in enumerate(worker_batches([t.node for t in todo_workers], max_unavailable), start=1):
        names = [n.hostname for n in batch]
        if len(batch) == 1:
            gate = _gate(env, names, when=f"before {names[0]} goes down")
            steps.append(_upgrade_step(env, by_host[names[0]], image, version, gate=gate))
            order.append(names[0])
            continue
        # One gate for the batch (its members are excluded from "others"), then the batch concurrently.
        steps.append(
            Step(
                f"health gate before taking down {', '.join(names)}",
                before=(_gate(env, names, when=f"before batch {i}"),),
            )
        )
        steps += [_upgrade_step(env, by_host[n], image, version, gate=None, group=f"workers-{i}") for n in names]
        order.append("[" + " ".join(names) + "]")
    final = "verify the cluster after the rollout"
    steps.append(
        Step(final, before=(_gate(env, [], when="after the last node returned"),))
        if pending
        else Step(final, noop="nothing was upgraded")
    )
    extra = ("--max-unavailable", str(max_unavailable)) if max_unavailable != _default_k(env.cluster) else ()
    notes = [
        f"installer image: {image}",
        f"etcd snapshot first: {snapshot}" if pending else "nothing to upgrade",
        "order: " + (" -> ".join(order) if order else "none"),
        f"workers {max_unavailable} at a time; controlplanes one at a time; every gate holds up to "
        f"{env.timeouts.hold:g}s before stopping the rollout",
    ]
    return Plan(
        f"rolling upgrade to Talos {version}",
        env.cluster.name,
        tuple(steps),
        notes=tuple(notes),
        resume_hint=(
            f"fix the cause, then re-run `{env.rerun('talos.upgrade-cluster', *extra)}`: "
            f"nodes already at {version} with the schematic's extensions are detected and skipped"
        ),
    )


def _default_k(cluster: Cluster) -> int:
    return cluster.upgrade.max_unavailable if cluster.upgrade is not None else 1


def default_max_unavailable(cluster: Cluster) -> int:
    """`upgrade.maxUnavailable` from the inventory, else 1."""
    return _default_k(cluster)


def plan_etcd_snapshot(env: Env, path: Path, source: Node | None = None) -> Plan:
    """Stream an etcd snapshot from a controlplane to a 0600 file under the backups directory."""
    node = source or env.cluster.controlplanes[0]
    return Plan(
        "etcd snapshot",
        env.cluster.name,
        (_snapshot_step(env, node, path),),
        resume_hint=f"re-run `{env.rerun('talos.etcd-snapshot')}`",
    )


# --------------------------------------------------------------------------- apply


def apply_reboots(target: ApplyTarget, mode: ApplyMode) -> bool:
    """Whether applying in `mode` reboots the node (auto: as the dry-run preview says)."""
    if target.maintenance:
        return True  # installs to disk, then boots the installed system
    if mode == "reboot":
        return True
    if mode == "auto":
        return target.preview is not None and target.preview.reboots
    return False


def _apply_problems(env: Env, targets: Sequence[ApplyTarget], mode: ApplyMode) -> list[Problem]:
    problems = []
    for t in targets:
        if t.maintenance and mode not in MAINTENANCE_MODES:
            problems.append(
                Problem(
                    str(env.cluster.file),
                    f"nodes[{t.node.hostname}]",
                    f"{t.node.hostname} is in maintenance mode: --mode {mode} is not possible there "
                    f"(use one of {', '.join(MAINTENANCE_MODES)})",
                )
            )
    return problems


def _apply_step(env: Env, t: ApplyTarget, mode: ApplyMode, *, gate: Check | None, group: str | None) -> Step:
    node = t.node
    if t.preview is not None and t.preview.change == "none":
        return Step(f"apply config to {node.hostname}", noop=t.preview.summary, node=node.hostname)
    command = env.tctl.apply_config(_addr(node), t.tempfile(), mode=mode, insecure=t.maintenance, host=node.hostname)
    if t.maintenance:
        # A fresh node: nothing to gate; it installs, reboots and answers on the authenticated API — a
        # controlplane with etcd waiting for the bootstrap (or joining), never "ready" before a CNI exists.
        return Step(
            f"apply config to {node.hostname} (maintenance mode: --insecure; installs and reboots)",
            commands=(command,),
            after=(gates.booted_config(env.gate, node, timeout=env.timeouts.apply),),
            node=node.hostname,
            group=group,
        )
    what = t.preview.summary if t.preview is not None else "no dry-run preview"
    if not apply_reboots(t, mode):
        return Step(f"apply config to {node.hostname} ({what})", commands=(command,), node=node.hostname, group=group)
    memo = BootMemo()
    return Step(
        f"apply config to {node.hostname} with a reboot ({what})",
        commands=(command,),
        before=(*((gate,) if gate is not None else ()), gates.record_boot_id(env.gate, node, memo)),
        after=(gates.node_returned(env.gate, node, memo, timeout=env.timeouts.apply),),
        node=node.hostname,
        group=group,
    )


def plan_apply(
    env: Env,
    targets: Sequence[ApplyTarget],
    mode: ApplyMode,
    *,
    max_unavailable: int,
    title: str | None = None,
    talosconfig: FileWrite | None = None,
) -> Plan:
    """Apply rendered configs: fresh nodes together, live changes together, rebooting changes rolled.

    `talosconfig`: written first when missing — a node leaving maintenance mode is only visible through it.
    """
    problems = _apply_problems(env, targets, mode)
    if problems:
        raise ProblemsError(problems)
    fresh = [t for t in targets if t.maintenance]
    unchanged = [t for t in targets if not t.maintenance and t.preview is not None and t.preview.change == "none"]
    live = [t for t in targets if not t.maintenance and t not in unchanged and not apply_reboots(t, mode)]
    rolling = [t for t in targets if not t.maintenance and t not in unchanged and apply_reboots(t, mode)]
    steps: list[Step] = [_apply_step(env, t, mode, gate=None, group=None) for t in unchanged]
    if talosconfig is not None:
        steps.append(Step(f"write the talosconfig {talosconfig.path} (missing)", writes=(talosconfig,)))
    steps += [_apply_step(env, t, mode, gate=None, group="fresh" if len(fresh) > 1 else None) for t in fresh]
    steps += [_apply_step(env, t, mode, gate=None, group="live" if len(live) > 1 else None) for t in live]
    # Reboots of a configured cluster roll like upgrades: one controlplane at a time, workers K at a time,
    # each behind the health gate.
    by_host = {t.node.hostname: t for t in rolling}
    roll_cps = [t.node for t in rolling if t.node.is_controlplane]
    roll_workers = [t.node for t in rolling if not t.node.is_controlplane]
    batches = [[n] for n in roll_cps] + worker_batches(roll_workers, max_unavailable)
    for i, batch in enumerate(batches, start=1):
        names = [n.hostname for n in batch]
        if len(batch) == 1:
            gate = _gate(env, names, when=f"before {names[0]} reboots")
            steps.append(_apply_step(env, by_host[names[0]], mode, gate=gate, group=None))
            continue
        steps.append(
            Step(
                f"health gate before rebooting {', '.join(names)}",
                before=(_gate(env, names, when=f"before batch {i}"),),
            )
        )
        steps += [_apply_step(env, by_host[n], mode, gate=None, group=f"reboot-{i}") for n in names]
    if rolling:
        steps.append(
            Step("verify the cluster after the reboots", before=(_gate(env, [], when="after the last reboot"),))
        )
    one = len(targets) == 1
    task = "talos.apply-node" if one else "talos.apply-cluster"
    extra = ("--node", targets[0].node.hostname) if one else ()
    return Plan(
        title or f"apply machine configs (mode {mode})",
        env.cluster.name,
        tuple(steps),
        notes=(
            "configs are handed to talosctl as 0600 temporary files ($TMP/<host>.yaml), removed afterwards",
            "--insecure only for nodes in maintenance mode: "
            + (", ".join(t.node.hostname for t in fresh) if fresh else "none"),
        ),
        resume_hint=f"fix the cause, then re-run `{env.rerun(task, *extra, '--mode', mode)}`",
    )


# --------------------------------------------------------------------------- reboot


def plan_reboot(env: Env, node: Node, *, mode: Literal["default", "powercycle"] = "default") -> Plan:
    """Reboot one node behind the health gate; wait until it is back and Ready, then re-check the gate."""
    ctx = env.gate
    memo = BootMemo()
    host = node.hostname
    step = Step(
        f"reboot {host} (mode {mode})",
        commands=(env.tctl.reboot(_addr(node), timeout=_tool(env.timeouts.upgrade), host=host, mode=mode),),
        before=(_gate(env, [host], when=f"before {host} goes down"), gates.record_boot_id(ctx, node, memo)),
        after=(
            gates.node_returned(ctx, node, memo, timeout=env.timeouts.upgrade),
            _gate(env, [], when=f"after {host} returned"),
        ),
        node=host,
        destructive=True,
    )
    return Plan(
        f"reboot {host}",
        env.cluster.name,
        (step,),
        resume_hint=f"re-run `{env.rerun('talos.reboot-node', '--node', host)}` once the cause is fixed",
    )


# --------------------------------------------------------------------------- reset


def graceful_for(node: Node, f: ResetFacts, *, whole_cluster: bool) -> tuple[bool, str]:
    """--graceful for one reset, with the reason (see the module docstring)."""
    if whole_cluster:
        return False, "the whole cluster is wiped: no drain onto doomed nodes, no member-by-member etcd leave"
    if node.is_controlplane:
        if f.etcd_members is None or not f.etcd_healthy:
            return False, "etcd is not healthy: a graceful leave would hang"
        if f.etcd_members <= 1:
            return False, "last etcd member: it cannot leave etcd"
        return True, f"leaves etcd cleanly ({f.etcd_members} -> {f.etcd_members - 1} members)"
    if not f.kube_api:
        return False, "the Kubernetes API does not answer: cordon/drain impossible"
    return True, "cordon and drain first"


def _reset_step(env: Env, t: ResetTarget, f: ResetFacts, *, whole_cluster: bool, group: str | None) -> Step:
    node = t.node
    if t.maintenance:
        return Step(
            f"reset {node.hostname}", noop="already in maintenance mode (nothing installed to wipe)", node=node.hostname
        )
    graceful, why = graceful_for(node, f, whole_cluster=whole_cluster)
    before: tuple[Check, ...] = ()
    if node.is_controlplane and graceful:
        before = (gates.etcd_healthy(env.gate),)
    return Step(
        f"reset {node.hostname}: wipe STATE and EPHEMERAL, reboot into maintenance mode "
        f"(--graceful={'true' if graceful else 'false'}: {why})",
        commands=(
            env.tctl.reset(_addr(node), graceful=graceful, host=node.hostname, timeout=_tool(env.timeouts.reset)),
        ),
        before=before,
        after=(gates.in_maintenance(env.gate, node, timeout=env.timeouts.reset),),
        node=node.hostname,
        group=group,
        destructive=True,
    )


def plan_reset(env: Env, f: ResetFacts, *, whole_cluster: bool) -> Plan:
    """Reset nodes (workers first), each addressed directly, each awaited back in maintenance mode."""
    workers = [t for t in f.targets if not t.node.is_controlplane]
    cps = [t for t in f.targets if t.node.is_controlplane]
    steps: list[Step] = []
    active_workers = [t for t in workers if not t.maintenance]
    steps += [
        _reset_step(
            env,
            t,
            f,
            whole_cluster=whole_cluster,
            group="reset-workers" if whole_cluster and len(active_workers) > 1 and not t.maintenance else None,
        )
        for t in workers
    ]
    steps += [_reset_step(env, t, f, whole_cluster=whole_cluster, group=None) for t in cps]
    extra: tuple[str, ...] = ()
    if whole_cluster:
        title, task = f"reset every node of cluster {env.cluster.name}", "talos.reset-cluster"
    else:
        host = f.targets[0].node.hostname
        title, task, extra = f"reset {host}", "talos.reset-node", ("--node", host)
    return Plan(
        title,
        env.cluster.name,
        tuple(steps),
        notes=("workers first, then controlplanes; each node addressed directly (-e <node> -n <node>)",),
        resume_hint=f"re-run `{env.rerun(task, *extra)}`: nodes already in maintenance mode are skipped",
    )


# --------------------------------------------------------------------------- Kubernetes upgrade


def plan_upgrade_k8s(
    env: Env,
    to: str,
    *,
    kubelets: Mapping[str, str] | None,
    apiserver: str | None,
    source: Node | None = None,
) -> Plan:
    """`upgrade-k8s --dry-run`, then the real run against one controlplane; wait for every node Ready at `to`."""
    version = "v" + to.removeprefix("v")
    node = source or env.cluster.controlplanes[0]
    hosts = [n.hostname for n in env.cluster.nodes]
    at_target = kubelets is not None and all(kubelets.get(h) == version for h in hosts) and apiserver == version
    ctx = env.gate
    title = f"upgrade Kubernetes to {version}"
    if at_target:
        steps: tuple[Step, ...] = (Step(title, noop=f"the API server and every kubelet already run {version}"),)
    else:
        steps = (
            Step(
                f"check the Kubernetes upgrade to {version} (talosctl upgrade-k8s --dry-run)",
                commands=(
                    env.tctl.upgrade_k8s(_addr(node), version, dry_run=True, timeout=_tool(env.timeouts.upgrade_k8s)),
                ),
                before=(gates.etcd_healthy(ctx), gates.nodes_ready(ctx, ())),
                node=node.hostname,
            ),
            Step(
                f"upgrade Kubernetes to {version} via {node.hostname} (from {apiserver or 'unknown'})",
                commands=(
                    env.tctl.upgrade_k8s(_addr(node), version, dry_run=False, timeout=_tool(env.timeouts.upgrade_k8s)),
                ),
                after=(gates.kube_node_ready(ctx, hosts, timeout=env.timeouts.ready, kubelet=version),),
                node=node.hostname,
                destructive=True,  # restarts every control-plane component and kubelet
            ),
        )
    return Plan(
        title,
        env.cluster.name,
        steps,
        resume_hint=f"re-run `{env.rerun('talos.upgrade-k8s', '--to', version)}`: upgrade-k8s is idempotent",
    )


# --------------------------------------------------------------------------- kubeconfig, health


EMPTY_KUBECONFIG = b"apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\ncurrent-context: \"\"\n"


def plan_kubeconfig(env: Env, path: Path, node: Node | None = None) -> Plan:
    """Fetch the admin kubeconfig to `path` (0600, context = cluster name); until the VIP answers, point the
    server at a controlplane."""
    cp = node or env.cluster.controlplanes[0]
    name = env.cluster.name
    target = KubeTarget(path, name)
    server = kubectl.server_url(_addr(cp))

    def private(_: Runner) -> None:
        _check_kubeconfig(path, name)

    def vip_answers(runner: Runner) -> str | None:
        try:
            result = runner.run(kubectl.readyz(target), check=False)
        except ToolkitError:
            return None
        return f"the VIP {env.cluster.api_url} answers; keeping it as the server" if result.ok else None

    # talosctl applies --force-context-name only when it merges into an existing file; into a new path it writes
    # the raw kubeconfig with context `admin@<cluster>` (siderolabs/talos v1.12.11
    # cmd/talosctl/cmd/talos/kubeconfig.go: "merge doesn't make sense if target path doesn't exist"). So a missing
    # file is first created as an empty kubeconfig, and talosctl merges into it under the cluster's name.
    seed = () if path.exists() else (FileWrite(path, EMPTY_KUBECONFIG, 0o600),)
    fetch = Step(
        f"fetch the admin kubeconfig from {cp.hostname} to {path} (context {name})",
        commands=(env.tctl.kubeconfig(_addr(cp), path, context=name),),
        prepare=(EnsureDir(path.parent, 0o700, existing_mode=False),),
        writes=seed,
        finish=(EnsureMode(path, stat.S_IRUSR | stat.S_IWUSR),),
        after=(Check(f"{path} has context {name}", private),),
        node=cp.hostname,
    )
    point = Step(
        f"point the kubeconfig at {server} while the VIP {env.cluster.api_url} does not answer",
        commands=(kubectl.set_cluster_server(target, name, server),),
        guard=vip_answers,
    )
    return Plan(
        "fetch kubeconfig",
        name,
        (fetch, point),
        notes=(f"re-run this task once the VIP ({env.cluster.api_url}) answers to switch back to it",),
    )


def _check_kubeconfig(path: Path, context: str) -> None:
    import yaml

    try:
        data = yaml.safe_load(path.read_bytes())
    except FileNotFoundError:
        raise GateFailed(f"kubeconfig {path}", "talosctl wrote no file") from None
    except yaml.YAMLError as exc:
        raise GateFailed(f"kubeconfig {path}", f"not YAML: {exc}") from None
    names = [c.get("name") for c in dig(data, "contexts", default=[]) if isinstance(c, dict)]
    if context not in names:
        raise GateFailed(f"kubeconfig {path}", f"no context named {context!r} (found: {', '.join(map(str, names))})")


def plan_health(env: Env, node: Node | None = None) -> Plan:
    """`talosctl health` run server-side on a controlplane with the inventory's node lists (read-only)."""
    cp = node or env.cluster.controlplanes[0]
    step = Step(
        "check cluster health (talosctl health)",
        commands=(
            env.tctl.health(
                _addr(cp),
                controlplanes=[_addr(n) for n in env.cluster.controlplanes],
                workers=[_addr(n) for n in env.cluster.workers],
                wait_timeout=_tool(env.timeouts.health),
            ),
        ),
        node=cp.hostname,
    )
    return Plan("cluster health", env.cluster.name, (step,))
