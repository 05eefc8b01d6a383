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
  part is one or two CLI reads and all parts run concurrently, so a gate costs about one call's latency. Reads are
  merged into one round per node (`gates.Ahead`, `k8s_ops.core.facts.Shelf`): the polls that see a node (the
  last of a batch) back also make the next node's guard and gate reads — one multi-node call per fact, identical
  reads once — and the guard and the gate take their first answers from that round (a gate that holds polls live;
  postNode hooks run first and the shelf is cleared, so the next reads follow them).
* **apply** asks `apply-config --dry-run` what applying would do: no change is a no-op; live changes on
  configured nodes run concurrently; a change that reboots a configured node is rolled like an upgrade
  (controlplanes one at a time, gated). Maintenance-mode nodes get `--insecure` (and only they do).
* **around each node** of a rollout (upgrade-cluster, apply-cluster's reboots, reboot-cluster; `around_node`,
  `around_rollout`): the window, the gate (with the PodDisruptionBudgets that would block the drain when the node
  is drained), `job` checks, an Alertmanager silence and preNode hooks, the action, the node back with its
  VolumeAttachments attached, then postNode hooks; hooks marked `always` are step undos, so the recovery runs them
  on failure and Ctrl-C, as it resumes what `--pause` suspended (`k8s_ops.day2.pause`). Canaries (a node's own
  `talosVersion`) go first, then the soak.
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from k8s_ops.core import settings
from k8s_ops.core.command import Command
from k8s_ops.core.errors import GateFailed, Problem, ProblemsError, ToolkitError
from k8s_ops.core.facts import Served, Shelf, dig
from k8s_ops.core.plan import Action, Check, Effect, EnsureDir, EnsureMode, FileWrite, Plan, Step, Undo
from k8s_ops.core.runner import Runner
from k8s_ops.core.wait import NotYet, wait_for
from k8s_ops.talos import facts, gates, hooks
from k8s_ops.talos.facts import ApplyTarget, ResetFacts, ResetTarget, UpgradeTarget
from k8s_ops.talos.gates import Ahead, BootMemo, CelGate, CommandGate, GateContext
from k8s_ops.talos.kuberound import KubeRound
from k8s_ops.talos.schematic import (
    extensions_mismatch,
    installer_image,
    installer_image_for,
    schematic_for,
    schematic_id,
)
from k8s_ops.tools import kubectl
from k8s_ops.tools.kubectl import KubeTarget
from k8s_ops.tools.talosctl import MAINTENANCE_MODES, ApplyMode, Talosctl, installed_schematic

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Cluster, Node
    from k8s_ops.talos.inventory.models import Upgrade
    from k8s_ops.talos.progress import Progress

__all__ = [
    "Env",
    "Rollout",
    "Timeouts",
    "apply_reboots",
    "around_node",
    "around_rollout",
    "default_max_unavailable",
    "graceful_for",
    "job_checks",
    "node_image",
    "node_version",
    "plan_apply",
    "plan_etcd_snapshot",
    "plan_health",
    "plan_kubeconfig",
    "plan_reboot",
    "plan_reboot_cluster",
    "plan_reset",
    "plan_shutdown_cluster",
    "plan_upgrade_cluster",
    "plan_upgrade_k8s",
    "plan_upgrade_node",
    "refuse_outside_window",
    "rollout_env",
    "select_nodes",
    "selected",
    "with_pauses",
    "with_posts",
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
class Rollout:
    """How a rolling operation runs (task flags): which nodes, the canary soak, talosctl upgrade's reboot mode and
    `--stage`, the pauses, the maintenance window."""

    canary_soak: float = 0.0
    reboot_mode: Literal["default", "powercycle"] | None = None
    stage: bool = False
    pause: tuple[str, ...] = ()
    ignore_window: bool = False
    selected: tuple[str, ...] | None = None  # hostnames --only/--exclude/--role left (None: every node)
    flags: tuple[str, ...] = ()  # the selection and mode flags, repeated in resume hints
    windowed: bool = False  # a rollout task (upgrade/apply/reboot-cluster) honours upgrade.window; one-node tasks don't


def select_nodes(
    cluster: Cluster, *, only: Sequence[str] = (), exclude: Sequence[str] = (), role: str | None = None
) -> list[Node]:
    """The nodes a rollout touches: `only` (hostnames or addresses; default every node) minus `exclude`, of `role`.
    Unknown names fail listing the known ones (`Cluster.node`)."""
    from k8s_ops.core.errors import ToolkitError

    if role not in (None, "", "controlplane", "worker"):
        raise ToolkitError(f"--role {role!r} is not one of: controlplane, worker")
    chosen = [cluster.node(n) for n in only] if only else list(cluster.nodes)
    dropped = {cluster.node(n).hostname for n in exclude}
    out = [n for n in cluster.nodes if n in chosen and n.hostname not in dropped and (not role or n.role == role)]
    if not out:
        raise ToolkitError("the node selection (--only/--exclude/--role) leaves no node")
    return out


@dataclass(frozen=True)
class Env:
    """Everything a plan builder needs besides facts: inventory, clients, compiled CEL gates, timeouts."""

    cluster: Cluster
    tctl: Talosctl
    kube: KubeTarget
    cel: tuple[CelGate, ...] = ()
    timeouts: Timeouts = Timeouts()
    task_prefix: str = "invoke"
    commands: tuple[CommandGate, ...] = ()
    rollout: Rollout = field(default_factory=lambda: Rollout())
    progress: Progress | None = field(default=None, compare=False)  # per-node states while the plan runs
    shelf: Shelf = field(default_factory=Shelf, compare=False, repr=False)  # merged read rounds (gates.Ahead)

    @classmethod
    def for_cluster(cls, cluster: Cluster, *, timeouts: Timeouts | None = None, rollout: Rollout | None = None) -> Env:
        return cls(
            cluster=cluster,
            tctl=Talosctl.for_cluster(cluster),
            kube=KubeTarget.for_cluster(cluster.name),
            cel=gates.compile_health_checks(cluster),
            timeouts=timeouts or Timeouts(),
            commands=gates.command_checks(cluster),
            rollout=rollout or Rollout(),
        )

    @property
    def gate(self) -> GateContext:
        return GateContext(
            self.cluster,
            self.tctl,
            self.kube,
            hold=self.timeouts.hold,
            cel=self.cel,
            commands=self.commands,
            shelf=self.shelf,
            # a rollout task reads Kubernetes once per round; one-off gates and waits read only what they need
            kube_round=KubeRound.for_checks(self.upgrade.health_checks) if self.rollout.windowed else None,
        )

    @property
    def upgrade(self) -> Upgrade:
        from k8s_ops.talos.inventory.models import Upgrade

        return self.cluster.upgrade if self.cluster.upgrade is not None else Upgrade()

    def rerun(self, task: str, *extra: str) -> str:
        return " ".join([self.task_prefix, task, "--cluster", self.cluster.name, *extra])


def _addr(node: Node) -> str:
    return str(node.address)


def _tool(seconds: float) -> float:
    """A timeout handed to talosctl itself (`--timeout`, `--wait-timeout`), scaled like every wait."""
    return seconds * settings.timeout_scale()


# --------------------------------------------------------------------------- around each node, around the rollout
#
# Per node (`around_node`): gates (`before`: health, PodDisruptionBudgets that would block the drain, the maintenance
# window) → `prepare`: `job` health checks, the Alertmanager silence, preNode hooks → the action → `after`: node
# back, its VolumeAttachments attached → a post-node step (only when the action ran): expire the silence, postNode
# hooks. postNode hooks marked `always` are also the action's undo, so the recovery runs them when this or a later
# step fails or the run is interrupted. Around the rollout (`around_rollout`): preCluster hooks first (a failing
# one stops before any node is touched), postCluster hooks last, `always` ones also as the first step's undo.


class _Ran:
    """Set by a node's last wait: its action ran and it came back (the post-node step runs only then)."""

    def __init__(self) -> None:
        self.value = False


def _hooks(env: Env, phase: str, node: Node | None) -> tuple[Effect, ...]:
    actions = getattr(env.upgrade.hooks, _PHASES[phase])
    return tuple(
        hooks.hook_effect(env.cluster, env.kube, h, phase=phase, node=node, index=i) for i, h in enumerate(actions)
    )


def _always(env: Env, phase: str, node: Node | None) -> Undo | None:
    actions = [h for h in getattr(env.upgrade.hooks, _PHASES[phase]) if h.always]
    if not actions:
        return None
    commands = tuple(hooks.hook_command(env.cluster, env.kube, h, phase=phase, node=node) for h in actions)
    where = f" for {node.hostname}" if node is not None else ""
    return Undo(commands, f"ran the {phase} hooks marked always{where}")


_PHASES = {"preCluster": "pre_cluster", "preNode": "pre_node", "postNode": "post_node", "postCluster": "post_cluster"}


def job_checks(env: Env, *, when: str) -> tuple[Effect, ...]:
    """The inventory's `job` health checks as effects (each creates, awaits and deletes a Job)."""
    out: list[Effect] = []
    for i, hc in enumerate(env.upgrade.health_checks):
        if hc.job is None:
            continue
        spec = hooks.load_job(env.cluster, hc.job, where=f"upgrade.healthChecks[{i}].job")
        label = f" ({hc.description})" if hc.description else ""
        out.append(
            hooks.job_effect(env.kube, spec, timeout=hc.timeout or env.timeouts.hold, what=f"job check{label} {when}")
        )
    return tuple(out)


def _marker(ran: _Ran, node: Node) -> Check:
    def mark(_: Runner) -> None:
        ran.value = True

    return Check(f"{node.hostname} done: its post-node steps follow", mark)


def around_node(
    env: Env,
    step: Step,
    node: Node,
    *,
    gated: bool,
    task: str,
    drains: bool = False,
    post_extra: tuple[Effect, ...] = (),
    ahead: Ahead | None = None,
) -> tuple[Step, Step | None]:
    """`step` (one node's action) with the rollout's per-node gates, effects and waits (see above), and its
    post-node step (None when there is nothing to do after the node). `task` names the rollout for resume hints.
    `ahead`: the next node's reads (`gates.Ahead`), given to the step's node-back wait too: they ride along with its
    polls, or, when the node has post-node steps, follow those."""
    if step.noop is not None:
        return step, None
    ctx = env.gate
    before: list[Check] = []
    if env.upgrade.window is not None and env.rollout.windowed and not env.rollout.ignore_window:
        before.append(gates.in_window(env.upgrade.window, rerun=env.rerun(task, *env.rollout.flags)))
    before += list(step.before)
    if drains:
        before.append(gates.pdbs_allow_drain(ctx, [node.hostname]))
    prepare: list[Effect] = list(job_checks(env, when=f"before {node.hostname}")) if gated else []
    am = env.upgrade.alertmanager
    memo = hooks.SilenceMemo()
    if am is not None:
        minutes = max(1.0, _tool(env.timeouts.upgrade) / 60)
        prepare.append(
            hooks.silence_create(am, node, memo, minutes=minutes, why=f"k8s-ops: {step.description}", kube=env.kube)
        )
    prepare += _hooks(env, "preNode", node)
    ran = _Ran()
    post: list[Effect] = list(post_extra)
    if am is not None:
        post.append(hooks.silence_expire(am, node, memo, kube=env.kube))
    post += _hooks(env, "postNode", node)
    # the next node's reads: with the node-back wait's polls (which got `ahead`), or after the post-node hooks
    if ahead is not None and not post:
        ahead.merged = True
    after = [*step.after, _marker(ran, node)]
    if env.progress is not None:
        # the same checks, timed per phase: the gates, the wait for the node back (the reboot), what follows it
        pg = env.progress
        h = node.hostname
        pg.add(h, node.role, "-", "-")
        before = [pg.timed(c, h, "gates") for c in before]
        if before:  # once the gates passed the node's action starts: hooks, then the upgrade or reboot
            before[-1] = pg.mark(before[-1], h, "rebooting")
        after = [pg.timed(after[0], h, "rebooting"), *(pg.timed(c, h, "verifying") for c in after[1:-1])]
        after.append(pg.mark(_marker(ran, node), h, "done"))
    undo = step.undo
    always = _always(env, "postNode", node)
    if always is not None:  # both undo the step: the always post-node hooks, then the step's own undo
        undo = always if undo is None else Undo((*always.commands, *undo.commands), f"{always.done}; {undo.done}")
    wrapped = replace(step, before=tuple(before), prepare=(*prepare, *step.prepare), after=tuple(after), undo=undo)
    if not post:
        return wrapped, None

    def guard(_: Runner) -> str | None:
        if not ran.value:
            return f"{node.hostname} was not touched in this run"
        env.shelf.clear()  # the hooks may change what the next gate sees: nothing read before them is reused
        return None

    return wrapped, Step(
        f"after {node.hostname}: post-node hooks",
        prepare=tuple(post),
        guard=guard,
        node=node.hostname,
        after=(ahead.check(f"{node.hostname} is back, its hooks ran"),) if ahead is not None else (),
    )


def with_posts(pairs: Sequence[tuple[Step, Step | None]]) -> list[Step]:
    """Each step followed by its post-node step; a concurrent group's post-node steps after the whole group, and
    concurrent too (its nodes went down and came back together; their pre-node hooks ran concurrently as well)."""
    out: list[Step] = []
    pending: list[Step] = []
    for i, (step, post) in enumerate(pairs):
        out.append(step)
        if post is not None:
            pending.append(post if step.group is None else replace(post, group=f"{step.group}: post-node"))
        nxt = pairs[i + 1][0] if i + 1 < len(pairs) else None
        if step.group is None or nxt is None or nxt.group != step.group:
            out += pending
            pending = []
    return out


def around_rollout(env: Env, steps: Sequence[Step], *, active: bool) -> tuple[list[Step], str | None]:
    """preCluster hooks (and pauses) before `steps`, postCluster hooks (and resumes) after; the plan's `on_failure`
    ("" when any step has an undo, else None). `active`: whether anything will be touched at all."""
    out = list(steps)
    if active:
        pre = _hooks(env, "preCluster", None)
        always = _always(env, "postCluster", None)
        if pre or always is not None:
            title = (
                "pre-cluster hooks" if pre else "the rollout starts (post-cluster hooks marked always run on failure)"
            )
            out.insert(0, Step(title, prepare=pre, undo=always))
        post = _hooks(env, "postCluster", None)
        if post:
            out.append(Step("post-cluster hooks", prepare=post))
    recovery = "" if any(s.undo is not None for s in out if s.noop is None) else None
    return out, recovery


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


def _version_guard(
    env: Env, node: Node, target: str, memo: BootMemo, ahead: Ahead | None = None, *, boot: bool = True
) -> Callable[[Runner], str | None]:
    """At execution: skip a node already at `target` (version and extensions); wait for one still
    mid-upgrade, then decide.

    The same read round tells the wait after the upgrade how to prove the node rebooted (`memo`): a node below
    `target` proves it by reaching `target` (its running version changes only by booting the new image; talosctl's
    own `--wait` has tracked the reboot); one already at `target` (only extensions or the schematic differ) and a
    staged upgrade (`boot`: talosctl does not wait) by a new boot id, read here. Version, machine status and
    extensions are one read over every node (shared by a batch's guards and the round that made them ahead:
    `ahead`); the first read is answered from that round, a wait for a node mid-upgrade reads live.
    """
    addr = _addr(node)
    everyone = [_addr(n) for n in env.cluster.nodes]
    if addr not in everyone:
        everyone = [addr]
    boot_id = facts.boot_id(env.tctl, addr, node.hostname)

    def read(runner: Runner) -> tuple[str | None, str | None, str | None]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            version = pool.submit(facts.talos_versions(env.tctl, everyone).gather, runner)
            status = pool.submit(facts.machine_statuses(env.tctl, everyone).gather, runner)
            exts = pool.submit(facts.installed_extensions(env.tctl, everyone).gather, runner)
            booted = pool.submit(boot_id.try_gather, runner) if boot else None
            st = status.result().get(addr)
            running = version.result().get(addr)
            if booted is not None:
                memo.set(booted.result(), running)
            elif running is not None and running != target:
                memo.set(None, running)  # reaching the target proves the reboot
            else:  # at the target already (only the extensions differ) or no answer: the boot id proves it
                memo.set(boot_id.try_gather(runner), running)
            installed = exts.result().get(addr)
            names = tuple(e.name for e in installed) if installed is not None else None
            schematic = installed_schematic(installed) if installed is not None else None
            why = _upgrade_reason(env, running, names, target, schematic)
            return running, why, (st.stage if st is not None else None)

    if ahead is not None:
        ahead.add(read)

    def guard(live: Runner) -> str | None:
        runner = Served(live, env.shelf)
        version, why, stage = read(runner)
        if version is not None and why is None:
            return _at_target(target)
        if stage == "running" and memo.ready:
            return None

        def settled() -> tuple[str | None] | None:
            v, w, st = read(runner)
            if st != "running" or v is None or not memo.ready:
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
    task: str = "talos.upgrade-cluster",
    fed_by: Ahead | None = None,
    ahead: Ahead | None = None,
) -> tuple[Step, Step | None]:
    """One node's upgrade. `fed_by`: the previous node's round reads this guard's facts; `ahead`: this node's
    round (once it is back) reads the next one's (`gates.Ahead`)."""
    node = target.node
    why = _pending(env, target, version)
    if why is None:
        return Step(f"upgrade {node.hostname} to Talos {version}", noop=_at_target(version), node=node.hostname), None
    if target.version is None or target.extensions is None:
        why += f": {target.error or 'no answer'}"
    ctx = env.gate
    memo = BootMemo()  # filled by the guard's read round, right before the gate and the upgrade
    before = (gate,) if gate is not None else ()
    after = (
        gates.node_returned(
            ctx,
            node,
            memo,
            timeout=env.timeouts.upgrade,
            version=version,
            volumes=True,
            extensions=env.cluster.schematic.extensions,
            ahead=ahead,
        ),
        *((after_gate,) if after_gate is not None else ()),
    )
    ro = env.rollout
    command = env.tctl.upgrade(
        _addr(node),
        image,
        timeout=_tool(env.timeouts.upgrade),
        host=node.hostname,
        reboot_mode=ro.reboot_mode,
        stage=ro.stage,
        # talosctl tracks a plain upgrade's reboot itself; a staged one is tracked by the wait below, which can tell
        # an upgrade that was staged but never booted (the boot id never changes)
        wait=not ro.stage,
    )
    # A staged upgrade reboots without Talos' drain: drain here, wait until the node's volumes are released (Rook
    # RWO volumes detach), and uncordon once the node is back (and in the recovery).
    staged = (_drain(env, node), _volumes_released(env, node)) if ro.stage else ()
    uncordon = (_uncordon(env, node),) if ro.stage else ()
    step = Step(
        f"upgrade {node.hostname} to Talos {version} ({why})",
        commands=(command,),
        prepare=staged,
        before=before,
        after=after,
        # a node at `version` already (extensions differ) needs its boot id read; others prove it by the version
        guard=_version_guard(env, node, version, memo, fed_by, boot=ro.stage or target.version == version),
        node=node.hostname,
        group=group,
        destructive=True,  # the node reboots into a new image: confirmed by the operator (or --yes)
        undo=Undo(uncordon, f"uncordoned {node.hostname}") if uncordon else None,
    )
    return around_node(env, step, node, gated=gate is not None, task=task, post_extra=uncordon, ahead=ahead)


def _pending(env: Env, target: UpgradeTarget, version: str) -> str | None:
    """Why this node needs the upgrade according to the gathered facts, or None (at the target)."""
    return _upgrade_reason(env, target.version, target.extensions, version, target.schematic)


def _gate(env: Env, names: Sequence[str], *, when: str, drain: bool = False, fed_by: Ahead | None = None) -> Check:
    """The health gate; `drain`: these nodes will be drained, so no PodDisruptionBudget may block that (same round);
    `fed_by`: the previous node's round makes its reads (`gates.Ahead`)."""
    return gates.health_gate(env.gate, names, when=when, drain=drain, ahead=fed_by)


def _batch_gate(
    env: Env, title: str, names: Sequence[str], i: int, *, drain: bool = False, fed_by: Ahead | None = None
) -> Step:
    """One gate for a batch (its members are excluded from "others") and the `job` checks, before it goes down."""
    return Step(
        f"health gate before {title} {', '.join(names)}",
        before=(_gate(env, names, when=f"before batch {i}", drain=drain, fed_by=fed_by),),
        prepare=job_checks(env, when=f"before batch {i}"),
    )


def _verify_after(env: Env, title: str, gate_when: str, job_when: str, *, fed_by: Ahead | None = None) -> Step:
    """The full gate and the `job` checks once every node is back."""
    return Step(
        f"verify the cluster after the {title}",
        before=(_gate(env, [], when=gate_when, fed_by=fed_by),),
        prepare=job_checks(env, when=job_when),
    )


def node_version(env: Env, node: Node) -> str:
    """The Talos version a node is upgraded to: its own `talosVersion` (a canary), else the cluster's."""
    return node.talos_version or env.cluster.talos_version


def node_image(env: Env, node: Node) -> str:
    return installer_image_for(schematic_for(env.cluster), node_version(env, node))


def plan_upgrade_node(env: Env, target: UpgradeTarget) -> Plan:
    """One node: the health gate (etcd N/N, others Ready and running, checks), upgrade, then back + version + Ready
    and the health gate again over the whole cluster. The installer image is the cluster's own."""
    host = target.node.hostname
    version = node_version(env, target.node)
    image = node_image(env, target.node)
    step, post = _upgrade_step(
        env,
        target,
        image,
        version,
        gate=_gate(env, [host], when=f"before {host} goes down", drain=True),
        after_gate=_gate(env, [], when=f"after {host} returned"),
        task="talos.upgrade-node",
    )
    steps, on_failure = around_rollout(env, with_posts([(step, post)]), active=step.noop is None)
    return Plan(
        f"upgrade {host} to Talos {version}",
        env.cluster.name,
        tuple(steps),
        notes=(f"installer image: {image}",),
        resume_hint=f"fix the cause, then re-run `{env.rerun('talos.upgrade-node', '--node', host)}`",
        on_failure=on_failure,
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
        from k8s_ops.backups.snapshot import SnapshotCorrupt, verify_file

        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise GateFailed(f"etcd snapshot {path}", "talosctl finished but wrote no file") from None
        if size == 0:
            raise GateFailed(f"etcd snapshot {path}", "the snapshot is empty")
        try:  # the SHA-256 etcd appends to every snapshot: a truncated or altered file is no backup
            verify_file(path)
        except SnapshotCorrupt as exc:
            raise GateFailed(f"etcd snapshot {path}", str(exc)) from None

    return Step(
        desc,
        prepare=(EnsureDir(directory, 0o700),),
        commands=(env.tctl.etcd_snapshot(_addr(source), path, host=source.hostname),),
        finish=(EnsureMode(path, stat.S_IRUSR | stat.S_IWUSR),),
        after=(Check(f"snapshot {path} is non-empty and verified", saved),),
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
    """The rolling upgrade runbook: etcd snapshot, canaries (nodes with their own talosVersion) then the soak,
    controlplanes one at a time, workers K at a time — each node with the rollout's gates, hooks and waits.

    Stops at the first failure (the executor never starts the next step); re-running resumes because nodes
    already at the target are no-ops (facts), re-checked at execution (guards). The installer image is the
    cluster's own (its schematic and the node's Talos version). `targets` may be a selection (--only/--exclude/
    --role): the gates still look at the whole cluster.
    """
    version = env.cluster.talos_version
    by_host = {t.node.hostname: t for t in targets}

    def pending(t: UpgradeTarget) -> bool:
        return _pending(env, t, node_version(env, t.node)) is not None

    canaries = [by_host[n.hostname] for n in env.cluster.nodes if n.hostname in by_host and n.talos_version]
    canary_hosts = {t.node.hostname for t in canaries}
    cps = [
        by_host[n.hostname]
        for n in env.cluster.controlplanes
        if n.hostname in by_host and n.hostname not in canary_hosts
    ]
    workers = [
        by_host[n.hostname] for n in env.cluster.workers if n.hostname in by_host and n.hostname not in canary_hosts
    ]
    todo = [t for t in (*canaries, *cps, *workers) if pending(t)]
    if env.progress is not None:
        for t in todo:
            env.progress.add(t.node.hostname, t.node.role, t.version or "?", node_version(env, t.node))
    source = snapshot_source or env.cluster.controlplanes[0]
    done = "every selected node already runs its target version with the schematic's extensions"
    first_step = _snapshot_step(env, source, snapshot, noop=None if todo else done)
    # A node's last round (once it is back) also reads the next node's guard and gate (`gates.Ahead`): `prev` is
    # the round of the previous node or batch (for the first node: the round after the snapshot), which feeds the
    # next gate and guards.
    prev: Ahead | None = None
    if todo:
        prev = Ahead(env.shelf)
        first_step = replace(first_step, after=(*first_step.after, prev.check("after the snapshot")))
    pairs: list[tuple[Step, Step | None]] = [(first_step, None)]

    def one(
        t: UpgradeTarget, *, gate: Check | None, group: str | None = None, ahead: Ahead | None = None
    ) -> tuple[Step, Step | None]:
        fed = prev if pending(t) else None
        return _upgrade_step(
            env, t, node_image(env, t.node), node_version(env, t.node), gate=gate, group=group, fed_by=fed,
            ahead=ahead if pending(t) else None,
        )  # fmt: skip

    def single(t: UpgradeTarget) -> tuple[Step, Step | None]:
        nonlocal prev
        h = t.node.hostname
        if not pending(t):
            return one(t, gate=_gate(env, [h], when=f"before {h} goes down", drain=drain))
        nxt = Ahead(env.shelf)
        pair = one(t, gate=_gate(env, [h], when=f"before {h} goes down", drain=drain, fed_by=prev), ahead=nxt)
        prev = nxt
        return pair

    order: list[str] = []
    drain = True  # Talos' upgrade drains the node (a staged one is drained here): PDBs are gated
    # Canaries first, each behind the full gate; then the gate must stay healthy for the soak.
    for t in canaries:
        h = t.node.hostname
        pairs.append(single(t))
        if pending(t):
            order.append(f"{h} (canary, {node_version(env, t.node)})")
    if any(pending(t) for t in canaries) and env.rollout.canary_soak > 0:
        names = ", ".join(t.node.hostname for t in canaries if pending(t))
        pairs.append((Step(f"soak the canary {names} for {env.rollout.canary_soak:g}s before the rest",
                           before=(gates.soak(env.gate, env.rollout.canary_soak, after=names),)), None))  # fmt: skip
        prev = None  # the soak reads live for its whole length: nothing read before it is reused
    # Controlplanes strictly one at a time, each behind the full gate (which also proves the previous one
    # returned healthy: etcd whole again, every node Ready, checks true).
    for t in cps:
        h = t.node.hostname
        pairs.append(single(t))
        if pending(t):
            order.append(h)
    pairs += [one(t, gate=None) for t in workers if not pending(t)]
    todo_workers = [t for t in workers if pending(t)]
    for i, batch in enumerate(worker_batches([t.node for t in todo_workers], max_unavailable), start=1):
        hosts = [n.hostname for n in batch]
        if len(batch) == 1:
            pairs.append(single(by_host[hosts[0]]))
            order.append(hosts[0])
            continue
        # One gate for the batch, then the batch concurrently.
        pairs.append((_batch_gate(env, "taking down", hosts, i, drain=drain, fed_by=prev), None))
        nxt = Ahead(env.shelf, expect=len(hosts))
        pairs += [one(by_host[n], gate=None, group=f"workers-{i}", ahead=nxt) for n in hosts]
        prev = nxt
        order.append("[" + " ".join(hosts) + "]")
    final = (
        _verify_after(env, "rollout", "after the last node returned", "after the last node", fed_by=prev)
        if todo
        else Step("verify the cluster after the rollout", noop="nothing was upgraded")
    )
    pairs.append((final, None))
    steps, on_failure = around_rollout(env, with_posts(pairs), active=bool(todo))
    extra: tuple[str, ...] = (
        ("--max-unavailable", str(max_unavailable)) if max_unavailable != _default_k(env.cluster) else ()
    )
    extra += env.rollout.flags
    notes = [
        f"installer image: {installer_image(env.cluster)}",
        f"etcd snapshot first: {snapshot}" if todo else "nothing to upgrade",
        "order: " + (" -> ".join(order) if order else "none"),
        f"workers {max_unavailable} at a time; controlplanes one at a time; every gate holds up to "
        f"{env.timeouts.hold:g}s before stopping the rollout",
    ]
    if env.rollout.selected is not None:
        notes.append("selected nodes: " + ", ".join(env.rollout.selected))
    return Plan(
        f"rolling upgrade to Talos {version}",
        env.cluster.name,
        tuple(steps),
        notes=tuple(notes),
        resume_hint=(
            f"fix the cause, then re-run `{env.rerun('talos.upgrade-cluster', *extra)}`: "
            f"nodes already at their target with the schematic's extensions are detected and skipped"
        ),
        on_failure=on_failure,
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
        after=(gates.node_returned(env.gate, node, memo, timeout=env.timeouts.apply, volumes=True),),
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
    # each behind the health gate, with the rollout's hooks and waits around each node.
    by_host = {t.node.hostname: t for t in rolling}
    roll_cps = [t.node for t in rolling if t.node.is_controlplane]
    roll_workers = [t.node for t in rolling if not t.node.is_controlplane]
    batches = [[n] for n in roll_cps] + worker_batches(roll_workers, max_unavailable)
    task_name = "talos.apply-node" if len(targets) == 1 else "talos.apply-cluster"
    pairs: list[tuple[Step, Step | None]] = []

    def rolled(t: ApplyTarget, gate: Check | None, group: str | None) -> tuple[Step, Step | None]:
        # apply-config reboots through Talos' reboot sequence, which stops pods without a drain: no PDB gate
        return around_node(
            env, _apply_step(env, t, mode, gate=gate, group=group), t.node, gated=gate is not None,
            task=task_name, drains=False,
        )  # fmt: skip

    for i, batch in enumerate(batches, start=1):
        names = [n.hostname for n in batch]
        if len(batch) == 1:
            gate = _gate(env, names, when=f"before {names[0]} reboots")
            pairs.append(rolled(by_host[names[0]], gate, None))
            continue
        pairs.append((_batch_gate(env, "rebooting", names, i), None))
        pairs += [rolled(by_host[n], None, f"reboot-{i}") for n in names]
    if rolling:
        pairs.append((_verify_after(env, "reboots", "after the last reboot", "after the last reboot"), None))
    rolled_steps, on_failure = around_rollout(env, with_posts(pairs), active=bool(rolling))
    steps += rolled_steps
    one = len(targets) == 1
    task = "talos.apply-node" if one else "talos.apply-cluster"
    extra = ("--node", targets[0].node.hostname) if one else ()
    return Plan(
        title or f"apply machine configs (mode {mode})",
        env.cluster.name,
        tuple(steps),
        notes=(
            "configs reach talosctl as anonymous in-memory files ($TMP/<host>.yaml is /dev/fd/N), never named on disk",
            "--insecure only for nodes in maintenance mode: "
            + (", ".join(t.node.hostname for t in fresh) if fresh else "none"),
        ),
        resume_hint=f"fix the cause, then re-run `{env.rerun(task, *extra, '--mode', mode, *env.rollout.flags)}`",
        on_failure=on_failure,
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


EMPTY_KUBECONFIG = b'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\ncurrent-context: ""\n'


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
    from k8s_ops.talos.yamlio import YAMLError
    from k8s_ops.tools.kubectl import read_kubeconfig

    try:
        data = read_kubeconfig(path)
    except FileNotFoundError:
        raise GateFailed(f"kubeconfig {path}", "talosctl wrote no file") from None
    except YAMLError as exc:
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


# --------------------------------------------------------------------------- rollout options, pauses, window


def rollout_env(
    env: Env,
    *,
    only: str = "",
    exclude: str = "",
    role: str = "",
    canary_soak: float = 0.0,
    reboot_mode: str = "",
    stage: bool = False,
    pause: str = "",
    ignore_window: bool = False,
    windowed: bool = True,
) -> Env:
    """`env` with the task's rollout flags checked and applied (comma lists for --only/--exclude/--pause; the
    inventory's `upgrade.pause` when --pause is not given)."""
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.day2.pause import parse_groups

    if reboot_mode not in ("", "default", "powercycle"):
        raise ToolkitError(f"--reboot-mode {reboot_mode!r} is not one of: default, powercycle")
    if canary_soak < 0:
        raise ToolkitError("--canary-soak must be a number of seconds, at least 0")
    names = [n for n in only.split(",") if n.strip()]
    dropped = [n for n in exclude.split(",") if n.strip()]
    chosen = select_nodes(env.cluster, only=names, exclude=dropped, role=role or None)
    selected = None if len(chosen) == len(env.cluster.nodes) else tuple(n.hostname for n in chosen)
    groups = parse_groups(pause) if pause else tuple(env.upgrade.pause)
    flags: list[str] = []
    for flag, value in (("--only", only), ("--exclude", exclude), ("--role", role), ("--pause", pause)):
        if value:
            flags += [flag, value]
    if reboot_mode:
        flags += ["--reboot-mode", reboot_mode]
    if stage:
        flags.append("--stage")
    if ignore_window:
        flags.append("--ignore-window")
    mode: Literal["default", "powercycle"] | None = None
    if reboot_mode == "powercycle":
        mode = "powercycle"
    elif reboot_mode == "default":
        mode = "default"
    rollout = Rollout(
        canary_soak=canary_soak,
        reboot_mode=mode,
        stage=stage,
        pause=tuple(groups),
        ignore_window=ignore_window,
        selected=selected,
        flags=tuple(flags),
        windowed=windowed,
    )
    return replace(env, rollout=rollout)


def selected(env: Env, nodes: Sequence[Node]) -> list[Node]:
    """`nodes` restricted to the rollout's selection."""
    chosen = env.rollout.selected
    return [n for n in nodes if chosen is None or n.hostname in chosen]


def refuse_outside_window(env: Env, task: str) -> None:
    """A rollout does not start outside `upgrade.window` unless --ignore-window."""
    from k8s_ops.core.errors import ToolkitError

    window = env.upgrade.window
    if window is None or env.rollout.ignore_window or not env.rollout.windowed:
        return
    problem = gates.window_problem(window)
    if problem is not None:
        raise ToolkitError(
            f"not starting: {problem}",
            hint=f"re-run `{env.rerun(task, *env.rollout.flags)}` inside the window, or add --ignore-window",
        )


def with_pauses(plan: Plan, env: Env, runner: Runner) -> Plan:
    """Around a rollout that touches nodes: pause the selected Flux/VolSync/KEDA objects that are running first
    (`k8s_ops.day2.pause`: recorded, each undone by the recovery) and resume exactly those at the end."""
    if not env.rollout.pause or not plan.destructive:
        return plan
    from k8s_ops.day2.pause import Selection, gather, pause_bracket

    selection = Selection(groups=env.rollout.pause)  # type: ignore[arg-type]
    found = gather(runner, env.kube, selection)
    bracket = pause_bracket(env.cluster.name, env.kube, found)
    note = (
        f"pause {selection.describe()}: {len(bracket.paused)} running object(s) paused first and resumed at the end "
        f"(after a failure or Ctrl-C too); {len(found) - len(bracket.paused)} paused already stay as they are"
    )
    return replace(
        plan,
        steps=(*bracket.before, *plan.steps, *bracket.after),
        notes=(*plan.notes, note),
        on_failure=plan.on_failure if plan.on_failure is not None else "",
    )


# --------------------------------------------------------------------------- reboot-cluster, shutdown-cluster


def _drain(env: Env, node: Node) -> Command:
    return Command(
        argv=kubectl.kubectl(
            env.kube,
            "drain",
            node.hostname,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            f"--timeout={int(_tool(env.timeouts.hold))}s",
        ),
        description=f"cordon and drain {node.hostname}",
        mutates=True,
        node=node.hostname,
        timeout=_tool(env.timeouts.hold) + 60,
    )


def _uncordon(env: Env, node: Node) -> Command:
    return Command(
        argv=kubectl.kubectl(env.kube, "uncordon", node.hostname),
        description=f"uncordon {node.hostname}",
        mutates=True,
        node=node.hostname,
    )


def _volumes_released(env: Env, node: Node) -> Action:
    """The wait for the node's VolumeAttachments to go, between the drain and the reboot (an effect of the step,
    because it must run after the drain and before the reboot; it only reads)."""
    check = gates.volumes_detached(env.gate, node, timeout=env.timeouts.hold)
    return Action("wait", check.description, check.run, mutates=False)


def plan_reboot_cluster(
    env: Env, nodes: Sequence[Node], *, max_unavailable: int, mode: Literal["default", "powercycle"] = "default"
) -> Plan:
    """Rolling reboot: controlplanes one at a time, workers K at a time, each behind the health gate. Talos' reboot
    stops pods without draining, so each node is drained first (PodDisruptionBudgets gate it), its VolumeAttachments
    awaited gone, rebooted, awaited back, uncordoned (also by the recovery)."""
    ctx = env.gate
    cps = [n for n in nodes if n.is_controlplane]
    workers = [n for n in nodes if not n.is_controlplane]
    batches = [[n] for n in cps] + worker_batches(workers, max_unavailable)
    pairs: list[tuple[Step, Step | None]] = []

    def one(node: Node, gate: Check | None, group: str | None) -> tuple[Step, Step | None]:
        memo = BootMemo()
        host = node.hostname
        step = Step(
            f"reboot {host} (mode {mode})",
            prepare=(_drain(env, node), _volumes_released(env, node)),
            commands=(env.tctl.reboot(_addr(node), timeout=_tool(env.timeouts.upgrade), host=host, mode=mode),),
            finish=(_uncordon(env, node),),
            before=(*((gate,) if gate is not None else ()), gates.record_boot_id(ctx, node, memo)),
            after=(gates.node_returned(ctx, node, memo, timeout=env.timeouts.upgrade, volumes=True),),
            node=host,
            group=group,
            destructive=True,
            undo=Undo((_uncordon(env, node),), f"uncordoned {host}"),
        )
        return around_node(env, step, node, gated=gate is not None, task="talos.reboot-cluster")

    for i, batch in enumerate(batches, start=1):
        names = [n.hostname for n in batch]
        if len(batch) == 1:
            pairs.append(one(batch[0], _gate(env, names, when=f"before {names[0]} reboots", drain=True), None))
            continue
        pairs.append((_batch_gate(env, "rebooting", names, i, drain=True), None))
        pairs += [one(n, None, f"reboot-{i}") for n in batch]
    pairs.append((_verify_after(env, "reboots", "after the last reboot", "after the last reboot"), None))
    steps, on_failure = around_rollout(env, with_posts(pairs), active=bool(nodes))
    return Plan(
        f"rolling reboot of {len(nodes)} node(s) (mode {mode})",
        env.cluster.name,
        tuple(steps),
        notes=(f"order: {' -> '.join('[' + ' '.join(n.hostname for n in b) + ']' for b in batches)}",),
        resume_hint=f"re-run `{env.rerun('talos.reboot-cluster', *env.rollout.flags)}` (every selected node reboots)",
        on_failure=on_failure if on_failure is not None else "",
    )


def plan_shutdown_cluster(env: Env, nodes: Sequence[Node]) -> Plan:
    """Shut nodes down: workers first, then controlplanes (the last controlplane last, so etcd keeps quorum while
    it can); Talos cordons and drains each itself; each is awaited until it no longer answers."""
    ctx = env.gate
    order = [*(n for n in nodes if not n.is_controlplane), *(n for n in nodes if n.is_controlplane)]
    steps = [
        Step(
            f"shut down {n.hostname} ({n.role})",
            commands=(env.tctl.shutdown(_addr(n), host=n.hostname),),
            after=(gates.node_down(ctx, n, timeout=env.timeouts.upgrade),),
            node=n.hostname,
            destructive=True,
        )
        for n in order
    ]
    return Plan(
        f"shut down {len(order)} node(s) of cluster {env.cluster.name}",
        env.cluster.name,
        tuple(steps),
        notes=("workers first, then controlplanes; power them on by hand (or out-of-band management)",),
        resume_hint=f"re-run `{env.rerun('talos.shutdown-cluster', *env.rollout.flags)}` for the nodes still up",
    )
