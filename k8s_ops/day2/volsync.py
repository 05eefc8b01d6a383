"""volsync.* plans: manual backup (snapshot), restore into the app's PVC, and restic repository unlock.

VolSync facts this module relies on (backube/volsync api/v1alpha1):

* `spec.trigger.manual: <tag>` starts a sync; the operator sets `status.lastManualSync = <tag>` when it is done.
  A manual tag takes precedence over `spec.trigger.schedule`, so a tag left behind silently stops the
  schedule: after a manual backup of a scheduled source the tag is removed again (merge patch `null`).
* `spec.restic.unlock: <tag>` runs `restic unlock` before the next sync and echoes `status.restic.lastUnlocked`.
* Mover jobs are `volsync-src-<ReplicationSource>` / `volsync-dst-<ReplicationDestination>`; a failed job is
  deleted by VolSync and retried, with `status.latestMoverStatus.result: Failed` and the logs left behind.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from k8s_ops.core.command import Command
from k8s_ops.core.errors import GateFailed, ToolkitError
from k8s_ops.core.plan import Action, Check, Plan, Step, Undo
from k8s_ops.core.runner import Runner
from k8s_ops.core.units import size_text
from k8s_ops.core.wait import StopWaiting, wait_check
from k8s_ops.day2.common import shell
from k8s_ops.day2.kubernetes import flux_ready_check
from k8s_ops.tools import flux
from k8s_ops.tools.flux import HELMRELEASE, KUSTOMIZATION, flux_status
from k8s_ops.tools.kubectl import (
    KubeTarget,
    Obj,
    apply_manifest,
    delete,
    dig,
    get_or_none,
    kubectl,
    list_or_empty,
    merge_patch,
    scale,
)

__all__ = [
    "JOB",
    "LOCKED_MARKERS",
    "REPLICATIONDESTINATION",
    "REPLICATIONSOURCE",
    "RestoreFacts",
    "Snapshot",
    "SourceStatus",
    "Workload",
    "destination_manifest",
    "find_source",
    "gather_restore_facts",
    "list_job_manifest",
    "parse_as_of",
    "parse_snapshots",
    "plan_list",
    "plan_manual_sync_all",
    "plan_restore",
    "plan_snapshot",
    "plan_unlock",
    "restore_name",
    "select_sources",
    "snapshot_label",
    "snapshots_table",
    "source_job",
    "source_status",
    "sources_fact",
    "status_table",
]

REPLICATIONSOURCE = "replicationsources.volsync.backube"
REPLICATIONDESTINATION = "replicationdestinations.volsync.backube"
JOB = "jobs.batch"
KS_NAME_LABEL = "kustomize.toolkit.fluxcd.io/name"
KS_NAMESPACE_LABEL = "kustomize.toolkit.fluxcd.io/namespace"
HR_NAME_LABEL = "helm.toolkit.fluxcd.io/name"
HR_NAMESPACE_LABEL = "helm.toolkit.fluxcd.io/namespace"
APP_LABEL = "app.kubernetes.io/name"

PODS_GONE_TIMEOUT = 600.0
WORKLOADS_READY_TIMEOUT = 900.0


def _name(obj: Mapping[str, Any]) -> str:
    return Obj(obj).name


def _namespace(obj: Mapping[str, Any]) -> str:
    return Obj(obj).namespace


def source_job(source_name: str) -> str:
    """The mover job VolSync runs for a ReplicationSource."""
    return f"volsync-src-{source_name}"


def restore_name(app: str) -> str:
    """The ReplicationDestination volsync.restore creates (and deletes) for an app."""
    return f"{app}-manual"


def destination_job(destination_name: str) -> str:
    """The mover job VolSync runs for a ReplicationDestination."""
    return f"volsync-dst-{destination_name}"


# --------------------------------------------------------------------------- finding the source


def sources_fact(runner: Runner, target: KubeTarget, namespace: str | None) -> list[dict[str, Any]]:
    """Every ReplicationSource (in `namespace`, or everywhere); none when VolSync is not installed."""
    return list_or_empty(runner, target, REPLICATIONSOURCE, namespace=namespace, all_namespaces=namespace is None)


def find_source(sources: Sequence[Mapping[str, Any]], app: str, namespace: str | None = None) -> Mapping[str, Any]:
    """The app's ReplicationSource: named `<app>`, else `<app>-backup`; one namespace only (else ask for it)."""
    for candidate in (app, f"{app}-backup"):
        found = [s for s in sources if _name(s) == candidate and (namespace is None or _namespace(s) == namespace)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            spaces = ", ".join(sorted(_namespace(s) for s in found))
            raise ToolkitError(
                f"ReplicationSource {candidate} exists in several namespaces ({spaces})",
                hint="pick one with --namespace",
            )
    where = f" in namespace {namespace}" if namespace else ""
    known = ", ".join(sorted(f"{_namespace(s)}/{_name(s)}" for s in sources)) or "none"
    raise ToolkitError(
        f"no ReplicationSource for app '{app}' (looked for {app} and {app}-backup){where}",
        hint=f"ReplicationSources on this cluster: {known}",
    )


def _restic(source: Mapping[str, Any]) -> Mapping[str, Any]:
    restic = dig(source, "spec", "restic")
    if not isinstance(restic, Mapping):
        raise ToolkitError(
            f"ReplicationSource {_namespace(source)}/{_name(source)} does not use the restic mover",
            hint="volsync tasks support restic-based ReplicationSources only",
        )
    return restic


def _schedule(source: Mapping[str, Any]) -> str | None:
    schedule = dig(source, "spec", "trigger", "schedule")
    return str(schedule) if schedule else None


def _refuse_paused(target: KubeTarget, source: Mapping[str, Any]) -> None:
    if dig(source, "spec", "paused"):
        ns, name = _namespace(source), _name(source)
        unpause = merge_patch(target, REPLICATIONSOURCE, name, {"spec": {"paused": False}}, namespace=ns)
        raise ToolkitError(
            f"ReplicationSource {ns}/{name} is paused (spec.paused: true): VolSync would never run the sync",
            hint=f"unpause it first: {unpause.display()}",
        )


# --------------------------------------------------------------------------- waiting on a mover


def _job_failure(job: Mapping[str, Any] | None) -> str | None:
    """Why a mover job failed, or None while it has not. VolSync gives up on a job (and deletes it) once
    `status.failed >= spec.backoffLimit`, before Kubernetes would mark it Failed, so both count."""
    if job is None:
        return None
    obj = Obj(job)
    failed = obj.condition("Failed")
    if failed is not None and failed.get("status") == "True":
        return f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".rstrip(": ")
    limit = obj.path("spec", "backoffLimit")
    count = obj.status("failed") or 0
    if isinstance(limit, int) and count >= limit:
        return f"BackoffLimitExceeded: {count} failed pod(s), backoffLimit {limit}"
    return None


def _mover_status(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    status = dig(obj, "status", "latestMoverStatus")
    return status if isinstance(status, Mapping) else None


def _mover_failure(obj: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> str | None:
    """A Failed latestMoverStatus that is not the one seen before the trigger (`baseline`)."""
    mover = _mover_status(obj)
    if mover is None or mover.get("result") != "Failed" or mover == baseline:
        return None
    logs = str(mover.get("logs") or "").strip().splitlines()[-8:]
    return "mover result Failed" + ("; last log lines:\n    " + "\n    ".join(logs) if logs else "")


def _mover_probe(
    target: KubeTarget,
    resource: str,
    name: str,
    namespace: str,
    job_name: str,
    *,
    baseline: Mapping[str, Any] | None,
    done: Callable[[Mapping[str, Any]], bool],
    pending: Callable[[Mapping[str, Any]], str],
) -> Callable[[Runner], str | None]:
    """Poll the VolSync object until `done` (None), else say why not; stop at once when its mover job fails."""

    def probe(runner: Runner) -> str | None:
        obj = get_or_none(runner, target, resource, name, namespace=namespace)
        if obj is None:
            raise StopWaiting(f"{resource.split('.')[0]} {namespace}/{name} disappeared")
        if done(obj):
            return None
        job = get_or_none(runner, target, JOB, job_name, namespace=namespace)
        why = _job_failure(job)
        if why is not None:
            # VolSync writes the mover's logs to the object when the job fails: read it again for them
            obj = get_or_none(runner, target, resource, name, namespace=namespace) or obj
            mover = _mover_failure(obj, baseline) or ""
            raise StopWaiting(f"job {namespace}/{job_name} failed: {why}" + (f"\n  {mover}" if mover else ""))
        why = _mover_failure(obj, baseline)
        if why is not None:
            raise StopWaiting(f"job {namespace}/{job_name} failed: {why}")
        if job is None:
            state = "not started yet"
        else:
            retries = int(Obj(job).status("failed") or 0)
            state = "running" + (f" ({retries} failed attempt(s) so far)" if retries else "")
        return f"{pending(obj)}; job {job_name} {state}"

    return probe


# --------------------------------------------------------------------------- snapshot / unlock


def _manual_sync_plan(
    cluster: str,
    target: KubeTarget,
    source: Mapping[str, Any],
    *,
    title: str,
    action: str,
    patch: Mapping[str, Any],
    tag: str,
    done: Callable[[Mapping[str, Any]], bool],
    waited: str,
    pending: Callable[[Mapping[str, Any]], str],
    timeout: float,
) -> Plan:
    ns, name = _namespace(source), _name(source)
    _restic(source)
    _refuse_paused(target, source)
    job = source_job(name)
    wait = wait_check(
        f"ReplicationSource {ns}/{name} {waited}",
        _mover_probe(
            target, REPLICATIONSOURCE, name, ns, job, baseline=_mover_status(source), done=done, pending=pending
        ),
        timeout=timeout,
        hint=f"{shell(target, 'kubectl', '-n', ns, 'describe', 'replicationsource', name)}; "
        f"{shell(target, 'kubectl', '-n', ns, 'logs', f'job/{job}')}",
        show_timeout=True,
    )
    trigger = merge_patch(target, REPLICATIONSOURCE, name, patch, namespace=ns, description=action)
    notes = [f"mover job: {ns}/{job}; tag {tag}"]
    schedule = _schedule(source)
    if not schedule:
        return Plan(title, cluster, (Step(action, commands=(trigger,), after=(wait,)),), notes=tuple(notes))
    clear = merge_patch(
        target,
        REPLICATIONSOURCE,
        name,
        {"spec": {"trigger": {"manual": None}}},
        namespace=ns,
        description="drop the manual trigger so the schedule applies again",
    )
    undo = Undo((clear,), f"dropped the manual trigger of ReplicationSource {ns}/{name}: schedule restored")
    steps = (
        Step(action, commands=(trigger,), after=(wait,), undo=undo),
        Step(f"restore the backup schedule ({schedule}) of {ns}/{name}", commands=(clear,)),
    )
    notes.append("a manual trigger overrides the schedule in VolSync, so it is removed once the sync is done")
    return Plan(title, cluster, steps, notes=tuple(notes), on_failure="")


def plan_snapshot(cluster: str, target: KubeTarget, source: Mapping[str, Any], *, epoch: int, timeout: float) -> Plan:
    """Trigger a manual backup, wait for `lastManualSync == <epoch>` (failing early on a failed mover job),
    then restore the schedule."""
    tag = str(epoch)
    ns, name = _namespace(source), _name(source)
    return _manual_sync_plan(
        cluster,
        target,
        source,
        title=f"back up {ns}/{name} now",
        action=f"trigger a manual sync of ReplicationSource {ns}/{name}",
        patch={"spec": {"trigger": {"manual": tag}}},
        tag=tag,
        done=lambda o: dig(o, "status", "lastManualSync") == tag,
        waited=f"lastManualSync={tag}",
        pending=lambda o: f"lastManualSync={dig(o, 'status', 'lastManualSync') or 'none'}",
        timeout=timeout,
    )


def plan_unlock(cluster: str, target: KubeTarget, source: Mapping[str, Any], *, epoch: int, timeout: float) -> Plan:
    """Request `restic unlock` (spec.restic.unlock) with a manual sync to carry it out; wait for
    `status.restic.lastUnlocked == <epoch>`; then restore the schedule."""
    tag = str(epoch)
    ns, name = _namespace(source), _name(source)

    def unlocked(o: Mapping[str, Any]) -> str | None:
        seen: str | None = dig(o, "status", "restic", "lastUnlocked")
        return seen

    return _manual_sync_plan(
        cluster,
        target,
        source,
        title=f"unlock the restic repository of {ns}/{name}",
        action=f"request restic unlock (and a sync to run it) on ReplicationSource {ns}/{name}",
        patch={"spec": {"restic": {"unlock": tag}, "trigger": {"manual": tag}}},
        tag=tag,
        done=lambda o: unlocked(o) == tag,
        waited=f"status.restic.lastUnlocked={tag}",
        pending=lambda o: f"lastUnlocked={unlocked(o) or 'none'}",
        timeout=timeout,
    )


# --------------------------------------------------------------------------- restore


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet to stop during a restore and its replicas before."""

    kind: str
    name: str
    replicas: int
    selector: tuple[tuple[str, str], ...] = ()

    def selects(self, pod: Mapping[str, Any]) -> bool:
        """The pod is one of this workload's (its labels match the workload's matchLabels)."""
        labels = Obj(pod).labels
        return bool(self.selector) and all(labels.get(k) == v for k, v in self.selector)

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class RestoreFacts:
    """Everything a restore plan needs, read from the cluster."""

    source: Mapping[str, Any]
    pvc_exists: bool
    kustomization: Mapping[str, Any] | None
    helmrelease: Mapping[str, Any] | None
    workloads: tuple[Workload, ...]
    leftover_destination: bool


def _pod_claims(template_spec: Mapping[str, Any]) -> set[str]:
    return {
        str(v["persistentVolumeClaim"].get("claimName"))
        for v in template_spec.get("volumes") or []
        if isinstance(v, Mapping) and isinstance(v.get("persistentVolumeClaim"), Mapping)
    }


def _uses_claim(workload: Mapping[str, Any], pvc: str, app: str) -> bool:
    obj = Obj(workload)
    if pvc in _pod_claims(obj.path("spec", "template", "spec", default={})):
        return True
    # StatefulSet claims are <template>-<sts>-<ordinal>
    for tmpl in obj.path("spec", "volumeClaimTemplates", default=[]):
        prefix = f"{_name(tmpl)}-{obj.name}-"
        if pvc.startswith(prefix) and pvc[len(prefix) :].isdigit():
            return True
    return obj.name == app or obj.labels.get(APP_LABEL) == app


def select_workloads(
    deployments: Sequence[Mapping[str, Any]], statefulsets: Sequence[Mapping[str, Any]], *, pvc: str, app: str
) -> tuple[Workload, ...]:
    """Deployments/StatefulSets that mount the PVC or belong to the app (by name or app.kubernetes.io/name)."""
    out = []
    for kind, objs in (("deployment", deployments), ("statefulset", statefulsets)):
        for obj in objs:
            if _uses_claim(obj, pvc, app):
                replicas = dig(obj, "spec", "replicas")
                match = dig(obj, "spec", "selector", "matchLabels", default={})
                selector = tuple(sorted((str(k), str(v)) for k, v in match.items()))
                out.append(Workload(kind, _name(obj), 1 if replicas is None else int(replicas), selector))
    return tuple(sorted(out, key=lambda w: w.ref))


def gather_restore_facts(runner: Runner, target: KubeTarget, app: str, namespace: str | None) -> RestoreFacts:
    """Read the app's ReplicationSource, PVC, Flux objects, workloads and any leftover restore object."""
    source = find_source(sources_fact(runner, target, namespace), app, namespace)
    ns = _namespace(source)
    pvc = str(dig(source, "spec", "sourcePVC") or "")
    pvc_exists = bool(pvc) and get_or_none(runner, target, "persistentvolumeclaims", pvc, namespace=ns) is not None
    labels = Obj(source).labels
    ks_name = labels.get(KS_NAME_LABEL) or app
    ks_ns = labels.get(KS_NAMESPACE_LABEL) or ns
    kustomization = get_or_none(runner, target, KUSTOMIZATION, ks_name, namespace=ks_ns)
    if kustomization is None and KS_NAME_LABEL not in labels and ks_ns != flux.FLUX_NAMESPACE:
        kustomization = get_or_none(runner, target, KUSTOMIZATION, app, namespace=flux.FLUX_NAMESPACE)
    deployments = list_or_empty(runner, target, "deployments.apps", namespace=ns)
    statefulsets = list_or_empty(runner, target, "statefulsets.apps", namespace=ns)
    workloads = select_workloads(deployments, statefulsets, pvc=pvc, app=app)
    helmrelease = get_or_none(runner, target, HELMRELEASE, app, namespace=ns)
    if helmrelease is None:
        # the release that owns the workloads, from the labels helm-controller puts on them
        for obj in [*deployments, *statefulsets]:
            wl = Obj(obj).labels
            if _name(obj) in {w.name for w in workloads} and wl.get(HR_NAME_LABEL):
                hr_ns = wl.get(HR_NAMESPACE_LABEL) or ns
                helmrelease = get_or_none(runner, target, HELMRELEASE, wl[HR_NAME_LABEL], namespace=hr_ns)
                if helmrelease is not None:
                    break
    leftover = get_or_none(runner, target, REPLICATIONDESTINATION, restore_name(app), namespace=ns) is not None
    return RestoreFacts(source, pvc_exists, kustomization, helmrelease, workloads, leftover)


_SECURITY_AND_MOVER_FIELDS = (
    "storageClassName",
    "accessModes",
    "cacheCapacity",
    "cacheStorageClassName",
    "cacheAccessModes",
    "customCA",
    "moverSecurityContext",
    "moverServiceAccount",
    "moverPodLabels",
    "moverResources",
    "moverAffinity",
)


def destination_manifest(
    source: Mapping[str, Any], app: str, *, tag: str, previous: int | None, as_of: str | None = None
) -> dict[str, Any]:
    """The ReplicationDestination that restores the source's latest (or `previous`-th older) restic snapshot —
    with `as_of` (RFC 3339), counted from the newest one taken at or before that time (`restoreAsOf`) —
    straight into the source PVC (`copyMethod: Direct`), with the source's repository and mover settings."""
    restic = _restic(source)
    spec: dict[str, Any] = {
        "repository": restic.get("repository"),
        "destinationPVC": dig(source, "spec", "sourcePVC"),
        "copyMethod": "Direct",
        # the PVC must end up as the snapshot was, not snapshot + whatever is there now
        "enableFileDeletion": True,
        "cleanupCachePVC": True,
    }
    for key in _SECURITY_AND_MOVER_FIELDS:
        if restic.get(key) not in (None, "", [], {}):
            spec[key] = restic[key]
    if previous is not None:
        spec["previous"] = previous
    if as_of is not None:
        spec["restoreAsOf"] = as_of
    return {
        "apiVersion": "volsync.backube/v1alpha1",
        "kind": "ReplicationDestination",
        "metadata": {
            "name": restore_name(app),
            "namespace": _namespace(source),
            "annotations": {"monosense.dev/created-by": "k8s-ops volsync.restore"},
        },
        "spec": {"trigger": {"manual": tag}, "restic": spec},
    }


def _pods_gone_check(target: KubeTarget, namespace: str, pvc: str, workloads: Sequence[Workload]) -> Check:
    def probe(runner: Runner) -> str | None:
        pods = list_or_empty(runner, target, "pods", namespace=namespace)
        left = []
        for pod in pods:
            if pvc in _pod_claims(dig(pod, "spec", default={})) or any(w.selects(pod) for w in workloads):
                left.append(f"{_name(pod)} ({dig(pod, 'status', 'phase', default='?')})")
        if left:
            return f"{len(left)} pod(s) still there: {', '.join(sorted(left)[:5])}"
        return None

    return wait_check(
        f"no pod of the app or using PVC {namespace}/{pvc} left",
        probe,
        timeout=PODS_GONE_TIMEOUT,
        hint=f"{shell(target, 'kubectl', '-n', namespace, 'get', 'pods', '-o', 'wide')} (finalizers? a stuck node?)",
        show_timeout=True,
    )


def _workloads_ready_check(target: KubeTarget, namespace: str, workloads: Sequence[Workload]) -> Check:
    def probe(runner: Runner) -> str | None:
        waiting = []
        for w in workloads:
            resource = "deployments.apps" if w.kind == "deployment" else "statefulsets.apps"
            obj = get_or_none(runner, target, resource, w.name, namespace=namespace)
            if obj is None:
                waiting.append(f"{w.ref} missing")
                continue
            ready = int(dig(obj, "status", "readyReplicas") or 0)
            want = int(dig(obj, "spec", "replicas") or 0)
            if want < w.replicas or ready < want:
                waiting.append(f"{w.ref} {ready}/{max(want, w.replicas)} ready")
        return ", ".join(waiting) if waiting else None

    return wait_check(
        f"{', '.join(w.ref for w in workloads)} Ready in {namespace}",
        probe,
        timeout=WORKLOADS_READY_TIMEOUT,
        hint=shell(target, "kubectl", "-n", namespace, "get", "pods"),
        show_timeout=True,
    )


def _scale_back(target: KubeTarget, namespace: str, workloads: Sequence[Workload]) -> tuple[Command, ...]:
    by_count: dict[int, list[str]] = {}
    for w in workloads:
        if w.replicas > 0:
            by_count.setdefault(w.replicas, []).append(w.ref)
    return tuple(
        scale(target, refs, n, namespace=namespace, description=f"scale {', '.join(refs)} back to {n}")
        for n, refs in sorted(by_count.items())
    )


def plan_restore(
    cluster: str,
    target: KubeTarget,
    facts: RestoreFacts,
    app: str,
    *,
    epoch: int,
    previous: int | None,
    timeout: float,
    as_of: str | None = None,
) -> Plan:
    """Stop the app (Flux suspended, source paused, workloads at zero), restore the PVC from restic, start it.

    Recovery (when ANY step fails or the run is interrupted) is derived from the steps that ran, latest first:
    each carries its `undo` — delete the restore object, scale the workloads back, unpause the source, resume
    Flux — and the message names what was undone.
    """
    source = facts.source
    ns, rs_name = _namespace(source), _name(source)
    _restic(source)
    pvc = str(dig(source, "spec", "sourcePVC") or "")
    if not pvc:
        raise ToolkitError(f"ReplicationSource {ns}/{rs_name} has no spec.sourcePVC: nothing to restore into")
    if not facts.pvc_exists:
        raise ToolkitError(
            f"PVC {ns}/{pvc} (spec.sourcePVC of ReplicationSource {rs_name}) does not exist",
            hint="a Direct restore writes into the existing claim: let Flux create it first",
        )
    if previous is not None and previous < 0:
        raise ToolkitError(f"--previous must be 0 or more (0 = latest snapshot), got {previous}")
    tag = f"restore-{epoch}"
    rd_name = restore_name(app)
    rd = destination_manifest(source, app, tag=tag, previous=previous, as_of=as_of)

    ks = facts.kustomization
    hr = facts.helmrelease
    ks_ref = (_namespace(ks), _name(ks)) if ks is not None else None
    hr_ref = (_namespace(hr), _name(hr)) if hr is not None else None
    source_paused = bool(dig(source, "spec", "paused"))
    notes: list[str] = [
        f"restore into PVC {ns}/{pvc} from restic repository secret {rd['spec']['restic']['repository']}"
    ]
    if as_of:
        notes.append(f"restoring the newest snapshot taken at or before {as_of} (restoreAsOf)")
    if previous:
        notes.append(f"restoring the snapshot {previous} before the {'selected' if as_of else 'latest'} one")
    for ref, kind, obj in (("Kustomization", "ks", ks), ("HelmRelease", "hr", hr)):
        if obj is None:
            notes.append(f"no Flux {ref} found for app {app}: nothing to suspend ({kind})")
        elif flux_status(obj).suspended:
            notes.append(f"{ref} {_namespace(obj)}/{_name(obj)} is suspended already: it is resumed at the end")
    if not facts.workloads:
        notes.append(f"no Deployment/StatefulSet of app {app} or using PVC {pvc} found in {ns}")
    manifest = yaml.safe_dump(rd, sort_keys=False, default_flow_style=False)
    notes.append("ReplicationDestination to create:\n" + textwrap.indent(manifest.rstrip(), "      "))

    def suspend_step(kind: flux.FluxKind, label: str, ref: tuple[str, str] | None) -> Step:
        if ref is None:
            return Step(f"suspend the app's {label}", noop=f"no {label} found")
        return Step(
            f"suspend {label} {ref[0]}/{ref[1]}",
            commands=(flux.suspend(target, kind, ref[1], ref[0]),),
            undo=Undo((flux.resume(target, kind, ref[1], ref[0]),), f"resumed {label} {ref[0]}/{ref[1]}"),
        )

    def set_paused(paused: bool | None, description: str) -> Command:
        patch = {"spec": {"paused": paused}}
        return merge_patch(target, REPLICATIONSOURCE, rs_name, patch, namespace=ns, description=description)

    pause_patch = set_paused(True, "pause scheduled backups (a backup now would save the half-restored volume)")
    unpause_patch = set_paused(None, "unpause scheduled backups")
    workload_refs = [w.ref for w in facts.workloads]
    scale_back = _scale_back(target, ns, facts.workloads)
    delete_rd = delete(target, REPLICATIONDESTINATION, [rd_name], namespace=ns, description=f"delete {rd_name}")
    rd_job = destination_job(rd_name)
    restore_wait = wait_check(
        f"ReplicationDestination {ns}/{rd_name} lastManualSync={tag}",
        _mover_probe(
            target,
            REPLICATIONDESTINATION,
            rd_name,
            ns,
            rd_job,
            baseline=None,
            done=lambda o: dig(o, "status", "lastManualSync") == tag,
            pending=lambda o: f"lastManualSync={dig(o, 'status', 'lastManualSync') or 'none'}",
        ),
        timeout=timeout,
        hint=shell(target, "kubectl", "-n", ns, "logs", f"job/{rd_job}"),
        show_timeout=True,
    )
    steps: list[Step] = [
        suspend_step("kustomization", "Kustomization", ks_ref),
        suspend_step("helmrelease", "HelmRelease", hr_ref),
        Step(f"pause ReplicationSource {ns}/{rs_name}", noop="paused already (left paused)")
        if source_paused
        else Step(
            f"pause ReplicationSource {ns}/{rs_name}",
            commands=(pause_patch,),
            undo=Undo((unpause_patch,), f"unpaused ReplicationSource {ns}/{rs_name}"),
        ),
        Step(f"remove leftover ReplicationDestination {ns}/{rd_name}", commands=(delete_rd,))
        if facts.leftover_destination
        else Step(f"remove leftover ReplicationDestination {ns}/{rd_name}", noop="none"),
        Step(
            f"stop {', '.join(workload_refs)} in {ns}" if workload_refs else f"check that nothing uses PVC {ns}/{pvc}",
            commands=(scale(target, workload_refs, 0, namespace=ns),) if workload_refs else (),
            after=(_pods_gone_check(target, ns, pvc, facts.workloads),),
            undo=Undo(
                scale_back,
                "scaled " + ", ".join(f"{w.ref} back to {w.replicas}" for w in facts.workloads if w.replicas),
            )
            if scale_back
            else None,
        ),
        Step(
            f"restore PVC {ns}/{pvc} from restic ({snapshot_label(previous, as_of)} snapshot)",
            commands=(apply_manifest(target, rd, description=f"create ReplicationDestination {rd_name}"),),
            after=(restore_wait,),
            destructive=True,
            undo=Undo(
                (delete(target, REPLICATIONDESTINATION, [rd_name], namespace=ns, wait=False),),
                f"deleted ReplicationDestination {ns}/{rd_name}",
            ),
        ),
        Step(f"delete ReplicationDestination {ns}/{rd_name}", commands=(delete_rd,)),
    ]
    if not source_paused:
        steps.append(Step(f"unpause ReplicationSource {ns}/{rs_name}", commands=(unpause_patch,)))
    if ks_ref is not None:
        steps.append(_resume_step(target, "kustomization", "Kustomization", ks_ref, with_source=True))
    if hr_ref is not None:
        # --force: a plain reconcile of an unchanged release would leave the replicas at zero
        steps.append(_resume_step(target, "helmrelease", "HelmRelease", hr_ref, force=True))
    if scale_back:
        steps.append(
            Step(
                f"start {', '.join(w.ref for w in facts.workloads if w.replicas > 0)} again",
                commands=scale_back,
                after=(_workloads_ready_check(target, ns, [w for w in facts.workloads if w.replicas > 0]),),
            )
        )

    flux_note = "" if ks_ref or hr_ref else "no Flux object had been suspended; "
    return Plan(
        f"restore app {app} in {ns} from its restic backup",
        cluster,
        tuple(steps),
        notes=tuple(notes),
        resume_hint=f"re-run: invoke volsync.restore --cluster {cluster} --app {app} --namespace {ns}",
        on_failure=flux_note + "the app was NOT restored",
    )


def snapshot_label(previous: int | None, as_of: str | None) -> str:
    """Which snapshot a restore takes, in words: "latest", "previous=2", "as of <t>", "as of <t>, previous=1"."""
    parts = [f"as of {as_of}"] if as_of else []
    if previous:
        parts.append(f"previous={previous}")
    return ", ".join(parts) or "latest"


def parse_as_of(value: str) -> str:
    """`--as-of`: an ISO 8601 / RFC 3339 time with a zone (`2026-01-02T03:04:05Z`, `…+01:00`, or a date
    `2026-01-02`, meaning its start in UTC), as the RFC 3339 UTC string VolSync's `restoreAsOf` takes."""
    text = value.strip()
    try:
        if len(text) == 10:
            moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ToolkitError(
            f"--as-of must be a time like 2026-01-02T03:04:05Z (RFC 3339) or a date 2026-01-02, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        raise ToolkitError(
            f"--as-of {value!r} has no time zone: add Z (UTC) or an offset such as +01:00",
        )
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _resume_step(target: KubeTarget, kind: flux.FluxKind, label: str, ref: tuple[str, str], **reconcile: bool) -> Step:
    """Resume a suspended Flux object (`ref` = namespace, name), reconcile it (`reconcile`: flux.reconcile's
    options) and wait until it is Ready."""
    ns, name = ref
    return Step(
        f"resume {label} {ns}/{name}",
        commands=(flux.resume(target, kind, name, ns), flux.reconcile(target, kind, name, ns, **reconcile)),
        after=(flux_ready_check(target, kind, name, ns),),
    )


# --------------------------------------------------------------------------- snapshot --all / unlock --all

LOCKED_MARKERS = ("repository is already locked", "unable to create lock", "failure locking repository")
"""What restic (and VolSync's mover script) print when the repository lock is held: "failure locking repository"
is the mover's message for restic's exit code 11."""


def select_sources(
    sources: Sequence[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """The restic sources that can run a manual sync now, and why each other one is skipped (paused, not restic)."""
    ok: list[Mapping[str, Any]] = []
    skipped: list[str] = []
    for source in sorted(sources, key=lambda s: (_namespace(s), _name(s))):
        ref = f"{_namespace(source)}/{_name(source)}"
        if not isinstance(dig(source, "spec", "restic"), Mapping):
            skipped.append(f"{ref} (not restic)")
        elif dig(source, "spec", "paused"):
            skipped.append(f"{ref} (paused)")
        else:
            ok.append(source)
    return ok, skipped


def _all_done_probe(
    target: KubeTarget,
    wanted: Mapping[tuple[str, str], Mapping[str, Any] | None],
    done: Callable[[Mapping[str, Any]], bool],
) -> Callable[[Runner], str | None]:
    """Wait until every source finished the manual sync: done, or a new Failed mover status (VolSync retries a
    failed mover for ever, so a failure is an end here; the closing check names it)."""

    def probe(runner: Runner) -> str | None:
        items = {
            (_namespace(o), _name(o)): o for o in list_or_empty(runner, target, REPLICATIONSOURCE, all_namespaces=True)
        }
        waiting = []
        for key, baseline in wanted.items():
            obj = items.get(key)
            if obj is None or done(obj) or _mover_failure(obj, baseline) is not None:
                continue
            waiting.append("/".join(key))
        if waiting:
            return f"{len(wanted) - len(waiting)} of {len(wanted)} finished; waiting for {', '.join(waiting[:5])}"
        return None

    return probe


def _all_result_check(
    target: KubeTarget, keys: Sequence[tuple[str, str]], done: Callable[[Mapping[str, Any]], bool], what: str
) -> Check:
    def run(runner: Runner) -> None:
        failed = []
        for ns, name in keys:
            obj = get_or_none(runner, target, REPLICATIONSOURCE, name, namespace=ns)
            if obj is None or done(obj):
                continue
            mover = _mover_status(obj) or {}
            logs = str(mover.get("logs") or "").strip().splitlines()
            failed.append(f"{ns}/{name}: {logs[-1] if logs else 'mover result ' + str(mover.get('result', '?'))}")
        if failed:
            raise GateFailed(
                f"{what} failed for {len(failed)} of {len(keys)} ReplicationSource(s)",
                "\n  - " + "\n  - ".join(failed),
                hint=shell(target, "kubectl", "get", "replicationsources", "-A"),
            )

    return Check(f"every {what} succeeded", run)


def plan_manual_sync_all(
    cluster: str,
    target: KubeTarget,
    sources: Sequence[Mapping[str, Any]],
    *,
    epoch: int,
    timeout: float,
    unlock: bool = False,
) -> Plan:
    """`volsync.snapshot --all` / `volsync.unlock --all`: trigger a manual sync (with `unlock`: and a restic
    unlock) of every selected source at once, wait until each finished or failed, put each schedule back, then
    name every source that failed. Paused and non-restic sources are skipped (noted)."""
    tag = str(epoch)
    what = "unlock" if unlock else "backup"
    title = f"{'unlock the restic repositories of' if unlock else 'back up'} every selected ReplicationSource"
    ready, skipped = select_sources(sources)
    notes = [f"skipped: {', '.join(skipped)}"] if skipped else []
    if not ready:
        return Plan(title, cluster, (Step(title, noop="no ReplicationSource selected"),), notes=tuple(notes))

    def done(o: Mapping[str, Any]) -> bool:
        if unlock:
            return bool(dig(o, "status", "restic", "lastUnlocked") == tag)
        return bool(dig(o, "status", "lastManualSync") == tag)

    patch: dict[str, Any] = {"spec": {"trigger": {"manual": tag}}}
    if unlock:
        patch["spec"]["restic"] = {"unlock": tag}
    triggers, clears = [], []
    for source in ready:
        ns, name = _namespace(source), _name(source)
        triggers.append(
            merge_patch(target, REPLICATIONSOURCE, name, patch, namespace=ns, description=f"{what} {ns}/{name}")
        )
        if _schedule(source):
            clears.append(
                merge_patch(
                    target,
                    REPLICATIONSOURCE,
                    name,
                    {"spec": {"trigger": {"manual": None}}},
                    namespace=ns,
                    description=f"restore the schedule of {ns}/{name}",
                )
            )
    wanted = {(_namespace(s), _name(s)): _mover_status(s) for s in ready}
    wait = wait_check(
        f"{len(ready)} ReplicationSource(s) finished the manual sync {tag}",
        _all_done_probe(target, wanted, done),
        timeout=timeout,
        hint=shell(target, "kubectl", "get", "replicationsources", "-A"),
        show_timeout=True,
    )
    undo = Undo(tuple(clears), "dropped the manual triggers: schedules restored") if clears else None
    steps = [
        Step(
            f"trigger a manual {what} of {len(ready)} ReplicationSource(s)",
            commands=tuple(triggers),
            after=(wait,),
            undo=undo,
        )
    ]
    if clears:
        steps.append(Step(f"restore the schedule of {len(clears)} scheduled source(s)", commands=tuple(clears)))
    steps.append(Step(f"check every {what}", after=(_all_result_check(target, list(wanted), done, what),)))
    notes.append(f"{len(ready)} source(s): {', '.join('/'.join(k) for k in wanted)}; tag {tag}")
    return Plan(title, cluster, tuple(steps), notes=tuple(notes), on_failure="" if clears else None)


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class SourceStatus:
    """One row of `volsync.status`."""

    namespace: str
    name: str
    last_sync: str
    duration: str
    next_sync: str
    result: str
    locked: bool
    paused: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "lastSync": self.last_sync or None,
            "duration": self.duration or None,
            "nextSync": self.next_sync or None,
            "result": self.result or None,
            "locked": self.locked,
            "paused": self.paused,
            "message": self.message or None,
        }


def source_status(source: Mapping[str, Any]) -> SourceStatus:
    """What a ReplicationSource's status says: last sync, its duration, the next one, the last mover result, and
    whether the last failure was a locked restic repository (its logs say so)."""
    mover = _mover_status(source) or {}
    logs = str(mover.get("logs") or "")
    result = str(mover.get("result") or "")
    locked = result == "Failed" and any(m in logs.lower() for m in LOCKED_MARKERS)
    message = ""
    if result == "Failed":
        lines = logs.strip().splitlines()
        message = lines[-1] if lines else ""
    return SourceStatus(
        namespace=_namespace(source),
        name=_name(source),
        last_sync=str(dig(source, "status", "lastSyncTime") or ""),
        duration=str(dig(source, "status", "lastSyncDuration") or ""),
        next_sync=str(dig(source, "status", "nextSyncTime") or ""),
        result=result,
        locked=locked,
        paused=bool(dig(source, "spec", "paused")),
        message=message,
    )


def status_table(rows: Sequence[SourceStatus]) -> str:
    """The rows as one aligned text table (a locked repository says `LOCKED`, a paused source `paused`)."""
    header = ("NAMESPACE", "NAME", "LAST SYNC", "DURATION", "NEXT SYNC", "RESULT", "LOCKED")
    body = [
        (
            r.namespace,
            r.name + (" (paused)" if r.paused else ""),
            r.last_sync or "-",
            r.duration or "-",
            r.next_sync or "-",
            r.result or "-",
            "LOCKED" if r.locked else "no",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in (header, *body)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- list

LIST_TIMEOUT = 600.0


@dataclass(frozen=True)
class Snapshot:
    """One restic snapshot of a repository (`restic snapshots --json`)."""

    time: str
    id: str
    short_id: str
    size: int | None  # summary.total_bytes_processed (restic 0.17+), None when restic did not record it
    hostname: str

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "id": self.id, "short_id": self.short_id, "size": self.size, "host": self.hostname}


def _restic_time(value: str) -> str:
    """restic's time (RFC 3339 with nanoseconds, any offset) as `YYYY-MM-DDTHH:MM:SSZ` in UTC; unparsable: as is."""
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = head + "." + digits[:6] + rest[len(digits) :]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_snapshots(text: str) -> list[Snapshot]:
    """`restic snapshots --json` output, oldest first (restic's order)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolkitError(f"restic did not print its snapshot list as JSON: {exc}: {text[:200]!r}") from None
    if not isinstance(data, list):
        raise ToolkitError(f"restic printed {type(data).__name__}, expected a list of snapshots")
    out = []
    for item in data:
        if not isinstance(item, Mapping):
            continue
        size = dig(item, "summary", "total_bytes_processed")
        out.append(
            Snapshot(
                time=_restic_time(str(item.get("time", ""))),
                id=str(item.get("id", "")),
                short_id=str(item.get("short_id") or str(item.get("id", ""))[:8]),
                size=int(size) if isinstance(size, int) else None,
                hostname=str(item.get("hostname", "")),
            )
        )
    return out


def snapshots_table(snapshots: Sequence[Snapshot]) -> str:
    """TIME, ID, SIZE — newest first."""
    rows = [("TIME", "ID", "SIZE")] + [(s.time, s.short_id, size_text(s.size, digits=3)) for s in reversed(snapshots)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows) + "\n"


def list_job_manifest(source: Mapping[str, Any], *, name: str, image: str) -> dict[str, Any]:
    """A Job running `restic snapshots --json` against the source's repository: the repository Secret is the
    container's environment (RESTIC_REPOSITORY, RESTIC_PASSWORD and the backend's credentials, as VolSync's own
    mover reads them), so no secret value passes through the toolkit. Read-only: `--no-lock`, `--no-cache`."""
    restic = _restic(source)
    repository = str(restic.get("repository") or "")
    if not repository:
        raise ToolkitError(f"ReplicationSource {_namespace(source)}/{_name(source)} has no spec.restic.repository")
    security = restic.get("moverSecurityContext")
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "restic",
                "image": image,
                "command": ["restic", "snapshots", "--json", "--no-lock", "--no-cache"],
                "envFrom": [{"secretRef": {"name": repository}}],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            }
        ],
    }
    # the mover's own user (it can read the repository, e.g. on NFS); else nobody: the restricted Pod Security
    # level admits the Job either way, and restic needs no root to read a repository
    pod_security = dict(security) if isinstance(security, Mapping) and security else {}
    pod_security.setdefault("runAsUser", 65534)
    pod_security.setdefault("runAsGroup", 65534)
    pod_security.setdefault("runAsNonRoot", pod_security["runAsUser"] != 0)
    pod_spec["securityContext"] = pod_security
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": _namespace(source),
            "labels": {"app.kubernetes.io/managed-by": "k8s-ops", "app.kubernetes.io/name": "volsync-list"},
            "annotations": {"monosense.dev/replicationsource": _name(source)},
        },
        "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 3600, "template": {"spec": pod_spec}},
    }


def _job_done_check(target: KubeTarget, name: str, namespace: str, timeout: float) -> Check:
    def probe(runner: Runner) -> str | None:
        job = get_or_none(runner, target, JOB, name, namespace=namespace)
        if job is None:
            raise StopWaiting(f"job {namespace}/{name} is gone")
        o = Obj(job)
        if o.is_true("Complete"):
            return None
        failed = _job_failure(job) or (f"{o.status('failed')} failed pod(s)" if o.status("failed") else None)
        if failed is not None:
            raise StopWaiting(f"job {namespace}/{name} failed: {failed}")
        return "running" if o.status("active") else "not started yet"

    return wait_check(
        f"job {namespace}/{name} complete",
        probe,
        timeout=timeout,
        hint=shell(target, "kubectl", "logs", f"job/{name}", "-n", namespace),
        show_timeout=True,
    )


def plan_list(
    cluster: str,
    target: KubeTarget,
    source: Mapping[str, Any],
    *,
    epoch: int,
    image: str,
    timeout: float = LIST_TIMEOUT,
) -> Plan:
    """Run a restic Job listing the source's repository, read its output (the step's result: the parsed
    snapshots), delete the Job — also when anything fails."""
    ns, rs = _namespace(source), _name(source)
    name = f"volsync-list-{rs}"[:52].rstrip("-") + f"-{epoch % 100000:05d}"
    manifest = list_job_manifest(source, name=name, image=image)
    remove = delete(target, JOB, [name], namespace=ns, wait=False, description=f"delete job {name}")
    logs = Command(argv=kubectl(target, "logs", f"job/{name}", "--namespace", ns), description=f"read {name}'s output")

    def read(runner: Runner) -> list[Snapshot]:
        return parse_snapshots(runner.run(logs).stdout)

    steps = (
        Step(
            f"run restic snapshots in job {ns}/{name} (repository Secret {_restic(source).get('repository')})",
            commands=(apply_manifest(target, manifest, description=f"create job {name}"),),
            after=(_job_done_check(target, name, ns, timeout),),
            undo=Undo((remove,), f"deleted job {ns}/{name}"),
        ),
        Step(
            f"read the snapshot list from job {name}",
            finish=(Action("read", f"kubectl logs job/{name}", read, mutates=False),),
        ),
        Step(f"delete job {ns}/{name}", commands=(remove,)),
    )
    return Plan(f"list the restic snapshots of {ns}/{rs}", cluster, steps, notes=(f"image {image}",), on_failure="")
