"""Pause and resume: the one machinery that suspends Flux, pauses VolSync and KEDA, and resumes only what it paused.

What is paused, and how (upstream API fields; ledger rows in tests/sim/FIDELITY.md, "Day-2 pause/resume"):

* Flux Kustomizations and HelmReleases: `spec.suspend: true` (`flux suspend <kind> <name>`); resumed with
  `flux resume <kind> <name> --wait=false`, which also requests a reconcile.
* VolSync ReplicationSources: `spec.paused: true` ("paused can be used to temporarily stop replication"); resumed by
  removing the field (merge patch `null`, upstream default false).
* KEDA ScaledObjects: annotation `autoscaling.keda.sh/paused: "true"` (autoscaling stops at the current replica
  count); resumed by removing the annotation. An object carrying `autoscaling.keda.sh/paused-replicas` is paused
  already (KEDA holds it at that count) and is left alone.

An object that is paused already when the pause is planned is never touched and never resumed: the plan suspends
only what is running, and records exactly that in a state file (`record_path(cluster)`, 0600 in a 0700 directory
under the state dir), written BEFORE the first object is suspended, so a crash still leaves the record. A second
pause adds to the record (the union); `kubernetes.resume` reads it, resumes the recorded objects that are still
paused (never one that someone else resumed meanwhile, never one that was not recorded) and rewrites the record
without them.

API (all pure except `gather`, which only reads):

    selection = Selection(kinds=("flux", "volsync", "keda"), namespaces=("media",), exclude=())   # validated
    found = gather(runner, target, selection)              # -> tuple[Pausable, ...], sorted, with `paused` now
    bracket = pause_bracket(cluster, target, found)        # -> Bracket(before=steps, after=steps)
    plan = Plan(title, cluster, (*bracket.before, *your_steps, *bracket.after), on_failure="")

* `Bracket.before`: one step writing the record (this run's objects added), then one step per object that suspends
  it, each with an `Undo` that resumes it — so when any later step of the plan fails, or the run is interrupted
  (Ctrl-C), the pipeline's recovery resumes exactly what this run suspended (latest first). Objects paused already
  are no-op steps ("paused already: left as it is").
* `Bracket.after`: one step per suspended object that resumes it, then one step rewriting the record without them.
  Use both halves around an operation (e.g. `talos.upgrade-cluster --pause flux,volsync,keda`); use only `before`
  for `kubernetes.pause` (`plan_pause`), and `plan_resume` for `kubernetes.resume`.
* `Plan.on_failure` must not be None for the recovery to run: pass "" (the undos say what they did) or a sentence.

`PauseKind` names a kind ("kustomization", "helmrelease", "replicationsource", "scaledobject"); the CLI groups
("flux", "volsync", "keda") map to them with `KINDS_OF`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

from k8s_ops.core import paths
from k8s_ops.core.command import Command
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.plan import FileWrite, Plan, Step, Undo
from k8s_ops.core.runner import Runner
from k8s_ops.tools import flux
from k8s_ops.tools.flux import HELMRELEASE, KUSTOMIZATION
from k8s_ops.tools.kubectl import KubeTarget, Obj, list_or_empty, merge_patch

__all__ = [
    "GROUPS",
    "KEDA_PAUSED",
    "KEDA_PAUSED_REPLICAS",
    "KINDS_OF",
    "RESOURCE",
    "SCALEDOBJECT",
    "Bracket",
    "Group",
    "Pausable",
    "PauseKind",
    "PauseRecord",
    "Selection",
    "gather",
    "is_paused",
    "parse_groups",
    "pause_bracket",
    "pause_command",
    "plan_pause",
    "plan_resume",
    "read_record",
    "record_path",
    "resume_command",
]

PauseKind = Literal["kustomization", "helmrelease", "replicationsource", "scaledobject"]
Group = Literal["flux", "volsync", "keda"]
GROUPS: Final[tuple[Group, ...]] = get_args(Group)

SCALEDOBJECT: Final = "scaledobjects.keda.sh"
KEDA_PAUSED: Final = "autoscaling.keda.sh/paused"
KEDA_PAUSED_REPLICAS: Final = "autoscaling.keda.sh/paused-replicas"
_REPLICATIONSOURCE: Final = "replicationsources.volsync.backube"

RESOURCE: Final[Mapping[PauseKind, str]] = {
    "kustomization": KUSTOMIZATION,
    "helmrelease": HELMRELEASE,
    "replicationsource": _REPLICATIONSOURCE,
    "scaledobject": SCALEDOBJECT,
}
KINDS_OF: Final[Mapping[Group, tuple[PauseKind, ...]]] = {
    "flux": ("kustomization", "helmrelease"),
    "volsync": ("replicationsource",),
    "keda": ("scaledobject",),
}
_LABEL: Final[Mapping[PauseKind, str]] = {
    "kustomization": "Kustomization",
    "helmrelease": "HelmRelease",
    "replicationsource": "ReplicationSource",
    "scaledobject": "ScaledObject",
}
_VERB: Final[Mapping[PauseKind, tuple[str, str]]] = {
    "kustomization": ("suspend", "resume"),
    "helmrelease": ("suspend", "resume"),
    "replicationsource": ("pause", "unpause"),
    "scaledobject": ("pause autoscaling of", "resume autoscaling of"),
}
_DONE: Final[Mapping[PauseKind, str]] = {
    "kustomization": "resumed",
    "helmrelease": "resumed",
    "replicationsource": "unpaused",
    "scaledobject": "resumed autoscaling of",
}
_RECORD_VERSION = 1


def parse_groups(value: str | Iterable[str], *, option: str = "--pause") -> tuple[Group, ...]:
    """`flux,volsync,keda` (a comma list or the names) -> the groups, in canonical order; unknown names refused."""
    names = value.split(",") if isinstance(value, str) else list(value)
    wanted = {n.strip() for n in names if n.strip()}
    unknown = sorted(wanted - set(GROUPS))
    if unknown:
        raise ToolkitError(f"{option}: unknown {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    return tuple(g for g in GROUPS if g in wanted)


@dataclass(frozen=True)
class Selection:
    """What to pause: the groups (`GROUPS`), only these namespaces (empty: all), never these namespaces."""

    groups: tuple[Group, ...]
    namespaces: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.groups:
            raise ToolkitError("nothing selected to pause: name at least one of " + ", ".join(GROUPS))
        for ns in (*self.namespaces, *self.exclude):
            paths.check_kube_name("namespace", ns, namespace=True)

    @property
    def kinds(self) -> tuple[PauseKind, ...]:
        return tuple(k for g in self.groups for k in KINDS_OF[g])

    def selects(self, kind: PauseKind, namespace: str) -> bool:
        if kind not in self.kinds or namespace in self.exclude:
            return False
        return not self.namespaces or namespace in self.namespaces

    def describe(self) -> str:
        where = f" in {', '.join(self.namespaces)}" if self.namespaces else ""
        skip = f" (not in {', '.join(self.exclude)})" if self.exclude else ""
        return f"{', '.join(self.groups)}{where}{skip}"


@dataclass(frozen=True, order=True)
class Pausable:
    """One object that can be paused, and whether it is paused now (`paused`; not part of its identity)."""

    kind: PauseKind
    namespace: str
    name: str
    paused: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def label(self) -> str:
        return f"{_LABEL[self.kind]} {self.namespace}/{self.name}"


def is_paused(kind: PauseKind, obj: Mapping[str, Any]) -> bool:
    """Whether the live object is paused now (Flux `spec.suspend`, VolSync `spec.paused`, KEDA annotations)."""
    o = Obj(obj)
    if kind in ("kustomization", "helmrelease"):
        return bool(o.path("spec", "suspend", default=False))
    if kind == "replicationsource":
        return bool(o.path("spec", "paused", default=False))
    notes = o.annotations
    return str(notes.get(KEDA_PAUSED, "")).lower() == "true" or KEDA_PAUSED_REPLICAS in notes


def gather(runner: Runner, target: KubeTarget, selection: Selection) -> tuple[Pausable, ...]:
    """Read every object of the selected kinds (all namespaces, or each selected one); a kind whose CRD is not
    installed has none. The only reads of this module."""
    found: list[Pausable] = []
    for kind in selection.kinds:
        spaces: Sequence[str | None] = selection.namespaces or (None,)
        for ns in spaces:
            items = list_or_empty(runner, target, RESOURCE[kind], namespace=ns, all_namespaces=ns is None)
            for item in items:
                o = Obj(item)
                if selection.selects(kind, o.namespace):
                    found.append(Pausable(kind, o.namespace, o.name, is_paused(kind, item)))
    return tuple(sorted(set(found)))


def pause_command(target: KubeTarget, item: Pausable) -> Command:
    """The command that pauses `item`."""
    description = f"{_VERB[item.kind][0]} {item.label}"
    if item.kind in ("kustomization", "helmrelease"):
        return flux.suspend(target, item.kind, item.name, item.namespace)
    if item.kind == "replicationsource":
        patch: dict[str, Any] = {"spec": {"paused": True}}
    else:
        patch = {"metadata": {"annotations": {KEDA_PAUSED: "true"}}}
    return merge_patch(target, RESOURCE[item.kind], item.name, patch, namespace=item.namespace, description=description)


def resume_command(target: KubeTarget, item: Pausable) -> Command:
    """The command that resumes `item` (Flux: also requests a reconcile; VolSync/KEDA: the field is removed)."""
    description = f"{_VERB[item.kind][1]} {item.label}"
    if item.kind in ("kustomization", "helmrelease"):
        return flux.resume(target, item.kind, item.name, item.namespace)
    if item.kind == "replicationsource":
        patch: dict[str, Any] = {"spec": {"paused": None}}
    else:
        patch = {"metadata": {"annotations": {KEDA_PAUSED: None}}}
    return merge_patch(target, RESOURCE[item.kind], item.name, patch, namespace=item.namespace, description=description)


# --------------------------------------------------------------------------- the record


def record_path(cluster: str) -> Path:
    """What pause runs suspended on `cluster`: `<state_dir>/paused/<cluster>.json` (0600)."""
    return paths.state_dir() / "paused" / f"{paths.check_cluster_name(cluster)}.json"


@dataclass(frozen=True)
class PauseRecord:
    """The objects pause runs suspended and nobody resumed through the toolkit yet (keys, sorted)."""

    path: Path
    items: tuple[Pausable, ...] = ()

    def with_(self, added: Iterable[Pausable]) -> PauseRecord:
        keys = {i.key for i in self.items}
        extra = [Pausable(i.kind, i.namespace, i.name, True) for i in added if i.key not in keys]
        return PauseRecord(self.path, tuple(sorted((*self.items, *extra))))

    def without(self, removed: Iterable[Pausable]) -> PauseRecord:
        gone = {i.key for i in removed}
        return PauseRecord(self.path, tuple(i for i in self.items if i.key not in gone))

    def content(self) -> bytes:
        doc = {
            "version": _RECORD_VERSION,
            "paused": [{"kind": i.kind, "namespace": i.namespace, "name": i.name} for i in self.items],
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    def write(self) -> FileWrite:
        return FileWrite(self.path, self.content(), mode=0o600)


def read_record(cluster: str) -> PauseRecord:
    """The cluster's pause record (empty when there is none); a damaged file is an error naming it."""
    path = record_path(cluster)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return PauseRecord(path)
    try:
        doc = json.loads(raw)
        items = []
        for entry in doc["paused"]:
            kind = entry["kind"]
            if kind not in RESOURCE:
                raise ValueError(f"unknown kind {kind!r}")
            items.append(Pausable(kind, str(entry["namespace"]), str(entry["name"]), True))
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolkitError(
            f"{path}: not a pause record ({exc})",
            hint="inspect it, resume by hand (flux resume …), then delete the file",
        ) from None
    return PauseRecord(path, tuple(sorted(set(items))))


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Bracket:
    """Steps that pause (`before`, each undone by the recovery) and resume (`after`) what this run paused."""

    before: tuple[Step, ...]
    after: tuple[Step, ...]
    paused: tuple[Pausable, ...]


def pause_bracket(
    cluster: str, target: KubeTarget, found: Sequence[Pausable], *, record: PauseRecord | None = None
) -> Bracket:
    """Plan pausing every running object of `found` (from `gather`) and resuming them again; see the module doc."""
    current = read_record(cluster) if record is None else record
    todo = tuple(i for i in found if not i.paused)
    before: list[Step] = []
    after: list[Step] = []
    if todo:
        before.append(
            Step(
                f"record the {len(todo)} object(s) this run pauses in {current.path}",
                writes=(current.with_(todo).write(),),
            )
        )
    for item in found:
        if item.paused:
            before.append(Step(f"{_VERB[item.kind][0]} {item.label}", noop="paused already: left as it is"))
            continue
        resume = resume_command(target, item)
        before.append(
            Step(
                f"{_VERB[item.kind][0]} {item.label}",
                commands=(pause_command(target, item),),
                undo=Undo((resume,), f"{_DONE[item.kind]} {item.label}"),
            )
        )
        after.append(Step(f"{_VERB[item.kind][1]} {item.label}", commands=(resume,)))
    if todo:
        after.append(
            Step(
                f"drop the {len(todo)} resumed object(s) from {current.path}",
                writes=(current.with_(todo).without(todo).write(),),
            )
        )
    return Bracket(tuple(before), tuple(after), todo)


def plan_pause(cluster: str, target: KubeTarget, found: Sequence[Pausable], selection: Selection) -> Plan:
    """`kubernetes.pause`: pause every running object of `found` and record them; a failure resumes them again."""
    title = f"pause {selection.describe()}"
    if not found:
        return Plan(title, cluster, (Step("pause", noop=f"nothing of {selection.describe()} found"),))
    bracket = pause_bracket(cluster, target, found)
    already = len(found) - len(bracket.paused)
    notes = [f"{len(bracket.paused)} to pause, {already} paused already (never resumed by kubernetes.resume)"]
    notes.append(f"undo: invoke kubernetes.resume --cluster {cluster}")
    return Plan(title, cluster, bracket.before, notes=tuple(notes), on_failure="nothing is left paused by this run")


def plan_resume(
    cluster: str,
    target: KubeTarget,
    record: PauseRecord,
    live: Sequence[Pausable],
    selection: Selection,
) -> Plan:
    """`kubernetes.resume`: resume the recorded objects of `selection` that are still paused (`live`, from
    `gather`); recorded objects that are gone or were resumed meanwhile are dropped from the record untouched."""
    title = f"resume {selection.describe()} (what kubernetes.pause paused)"
    now = {i.key: i for i in live}
    chosen = [i for i in record.items if selection.selects(i.kind, i.namespace)]
    if not chosen:
        why = "nothing recorded" if not record.items else f"nothing recorded for {selection.describe()}"
        return Plan(title, cluster, (Step("resume", noop=f"{why} in {record.path}"),))
    steps: list[Step] = []
    for item in chosen:
        state = now.get(item.key)
        verb = _VERB[item.kind][1]
        if state is None:
            steps.append(Step(f"{verb} {item.label}", noop="gone from the cluster"))
        elif not state.paused:
            steps.append(Step(f"{verb} {item.label}", noop="not paused any more (resumed by someone else)"))
        else:
            steps.append(Step(f"{verb} {item.label}", commands=(resume_command(target, item),)))
    left = record.without(chosen)
    steps.append(
        Step(
            f"drop {len(chosen)} object(s) from {record.path}"
            + (f" ({len(left.items)} stay recorded)" if left.items else ""),
            writes=(left.write(),),
        )
    )
    notes = (f"{len(chosen)} recorded object(s) selected; objects paused before kubernetes.pause ran stay paused",)
    return Plan(title, cluster, tuple(steps), notes=notes)
