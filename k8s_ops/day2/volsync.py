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

import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from k8s_ops.core.command import Command
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.plan import Check, Plan, Step, Undo
from k8s_ops.core.runner import Runner
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
    list_or_empty,
    merge_patch,
    scale,
)

__all__ = [
    "JOB",
    "REPLICATIONDESTINATION",
    "REPLICATIONSOURCE",
    "RestoreFacts",
    "Workload",
    "destination_manifest",
    "find_source",
    "gather_restore_facts",
    "plan_restore",
    "plan_snapshot",
    "plan_unlock",
    "restore_name",
    "source_job",
    "sources_fact",
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


def destination_manifest(source: Mapping[str, Any], app: str, *, tag: str, previous: int | None) -> dict[str, Any]:
    """The ReplicationDestination that restores the source's latest (or `previous`-th older) restic snapshot
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
    rd = destination_manifest(source, app, tag=tag, previous=previous)

    ks = facts.kustomization
    hr = facts.helmrelease
    ks_ref = (_namespace(ks), _name(ks)) if ks is not None else None
    hr_ref = (_namespace(hr), _name(hr)) if hr is not None else None
    source_paused = bool(dig(source, "spec", "paused"))
    notes: list[str] = [
        f"restore into PVC {ns}/{pvc} from restic repository secret {rd['spec']['restic']['repository']}"
    ]
    if previous:
        notes.append(f"restoring the snapshot {previous} before the latest one")
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
            f"restore PVC {ns}/{pvc} from restic ({'latest' if not previous else f'previous={previous}'} snapshot)",
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


def _resume_step(target: KubeTarget, kind: flux.FluxKind, label: str, ref: tuple[str, str], **reconcile: bool) -> Step:
    """Resume a suspended Flux object (`ref` = namespace, name), reconcile it (`reconcile`: flux.reconcile's
    options) and wait until it is Ready."""
    ns, name = ref
    return Step(
        f"resume {label} {ns}/{name}",
        commands=(flux.resume(target, kind, name, ns), flux.reconcile(target, kind, name, ns, **reconcile)),
        after=(flux_ready_check(target, kind, name, ns),),
    )
