"""VolSync (restic mover): manual syncs of ReplicationSources and ReplicationDestinations, their mover Jobs
and pods, unlock, and failures — as backube/volsync behaves.

* A manual trigger (`spec.trigger.manual`) different from `status.lastManualSync` starts a sync: Job
  `volsync-src-<rs>` / `volsync-dst-<rd>` (backoffLimit 8) with one mover pod mounting the data PVC
  (source: `sourcePVC` for copyMethod Direct, else a `volsync-<rs>-src` snapshot clone; destination:
  `destinationPVC`). `lastSyncStartTime` is set. Schedules are not simulated (only manual triggers run).
* After `volsync_job_seconds` (setting, default 0.3 s of simulated time: steps of the world clock, one per
  tool call or poll — see state.py) the job succeeds: the mover pod goes, the job is deleted, and the
  object gets `lastManualSync=<tag>`, `lastSyncTime`, `lastSyncDuration` and `latestMoverStatus {result:
  Successful}`; a source with `spec.restic.unlock` gets `status.restic.lastUnlocked=<unlock>` (the unlock
  runs before the backup).
* The `volsync-job-fails` fault (match `<ns>/<rs-or-rd>`, `message`) makes the job reach its backoff limit
  (`status.failed: 8`); on the next pass VolSync records `latestMoverStatus {result: Failed, logs}` and deletes
  the job, then starts a new one (it retries for ever).
* `spec.paused: true` stops new syncs (a running job is stopped: its pod goes, the job stays with parallelism 0).
* A destination whose `destinationPVC` does not exist reports a Synchronizing=False error and runs no job.
Nothing runs unless a `volsync` Deployment is available.

Faults are read from the world's fault list; `sim fault` validates kinds against its own table, so tests add
`volsync-job-fails` with `tests.sim` helpers that append to the fault list directly."""

from __future__ import annotations

import copy
from typing import Any

from ..kube import Kube, set_condition
from ..util import JSON, dig, format_duration, rfc3339, short_hash
from . import controller

GROUP = "volsync.backube"
FAULT = "volsync-job-fails"
FAULTS = {FAULT: "VolSync mover jobs whose ns/name matches --match fail"}
BACKOFF_LIMIT = 8


def _running(kube: Kube) -> bool:
    for d in kube.all_of_kind("Deployment", "apps"):
        labels = d["metadata"].get("labels") or {}
        named = "volsync" in (d["metadata"]["name"], labels.get("app.kubernetes.io/name"))
        if named and int(dig(d, "status", "availableReplicas", default=0) or 0) >= 1:
            return True
    return False


def _claim(kind: str, o: JSON) -> str:
    restic = dig(o, "spec", "restic") or {}
    if kind == "ReplicationSource":
        src = str(dig(o, "spec", "sourcePVC") or "")
        return src if restic.get("copyMethod") == "Direct" else f"volsync-{o['metadata']['name']}-src"
    return str(restic.get("destinationPVC") or f"volsync-{o['metadata']['name']}-dst")


def _job(kind: str, o: JSON, now: float) -> tuple[JSON, JSON]:
    ns, name = o["metadata"]["namespace"], o["metadata"]["name"]
    job_name = f"volsync-{'src' if kind == 'ReplicationSource' else 'dst'}-{name}"
    labels = {"app.kubernetes.io/created-by": "volsync", "volsync.backube/owned-by": name}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": ns,
            "labels": labels,
            "annotations": {"sim.k8s-ops/started": str(now)},
            "ownerReferences": [{"apiVersion": f"{GROUP}/v1alpha1", "kind": kind, "name": name, "controller": True}],
        },
        "spec": {"backoffLimit": BACKOFF_LIMIT, "parallelism": 1, "template": {"metadata": {"labels": labels}}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job_name}-{short_hash(job_name, str(now), n=5)}",
            "namespace": ns,
            "labels": {**labels, "batch.kubernetes.io/job-name": job_name},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "controller": True}],
        },
        "spec": {
            "containers": [{"name": "restic", "image": "quay.io/backube/volsync:0.14.0"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": _claim(kind, o)}}],
        },
    }
    return job, pod


def _pods_of(kube: Kube, ns: str, job_name: str) -> list[str]:
    return [
        k
        for k, p in kube.objects.items()
        if p["kind"] == "Pod"
        and p["metadata"].get("namespace") == ns
        and (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") == job_name
    ]


def _sync(world: Any, cluster: JSON, kube: Kube, kind: str, o: JSON) -> bool:
    ns, name = o["metadata"]["namespace"], o["metadata"]["name"]
    prefix = "src" if kind == "ReplicationSource" else "dst"
    job_name = f"volsync-{prefix}-{name}"
    job = kube.find("Job", ns, job_name, group="batch")
    st = copy.deepcopy(o.get("status") or {})
    conds = st.get("conditions", [])
    tag = dig(o, "spec", "trigger", "manual")
    paused = bool(dig(o, "spec", "paused"))
    changed = False
    if paused:
        if job is not None and dig(job, "spec", "parallelism") != 0:
            new = copy.deepcopy(job)
            new["spec"]["parallelism"] = 0
            kube.put(new, manager="volsync")
            changed = True
        for k in _pods_of(kube, ns, job_name):
            kube.delete_key(k)
            changed = True
        return changed
    if job is None:
        if not tag or st.get("lastManualSync") == tag:
            return False
        if kind == "ReplicationDestination":
            pvc = dig(o, "spec", "restic", "destinationPVC")
            if pvc and kube.find("PersistentVolumeClaim", ns, pvc, group="") is None:
                st["conditions"] = set_condition(
                    conds,
                    "Synchronizing",
                    "False",
                    "Error",
                    f'PersistentVolumeClaim "{pvc}" not found',
                    world.now,
                )
                return kube.set_status(o, st)
        new_job, pod = _job(kind, o, world.clock)  # started on the logical clock (state.py)
        kube.put(new_job, manager="volsync")
        kube.set_status(kube.find("Job", ns, job_name, group="batch") or new_job, {"active": 1})
        kube.put(pod, manager="volsync")
        kube.set_status(kube.objects[kube.key_of(pod)], {"phase": "Running"})
        st["lastSyncStartTime"] = rfc3339(world.now)
        st["conditions"] = set_condition(
            conds, "Synchronizing", "True", "SyncInProgress", "Synchronization in-progress", world.now
        )
        kube.set_status(o, st)
        return True
    if dig(job, "spec", "parallelism") == 0:
        # unpaused again: the job runs on
        new = copy.deepcopy(job)
        new["spec"]["parallelism"] = 1
        new["metadata"].setdefault("annotations", {})["sim.k8s-ops/started"] = str(world.clock)
        kube.put(new, manager="volsync")
        return True
    jst = job.get("status") or {}
    if int(jst.get("failed") or 0) >= BACKOFF_LIMIT:
        fault = world.fault(FAULT, cluster=cluster["name"], text=f"{ns}/{name}") or {}
        logs = f"{fault.get('message') or 'Fatal: restic failed'}\nERROR: restic exited with status 1"
        st["latestMoverStatus"] = {"result": "Failed", "logs": logs}
        kube.set_status(o, st)
        for k in _pods_of(kube, ns, job_name):
            kube.delete_key(k)
        kube.delete_key(kube.key_of(job))  # VolSync deletes a failed job and starts over
        return True
    started = float((job["metadata"].get("annotations") or {}).get("sim.k8s-ops/started", world.clock))
    duration = float(world.setting("volsync_job_seconds"))
    if world.clock - started < duration - 1e-9:
        return False
    if world.fault(FAULT, cluster=cluster["name"], text=f"{ns}/{name}") is not None:
        for k in _pods_of(kube, ns, job_name):
            kube.delete_key(k)
        kube.set_status(job, {"failed": BACKOFF_LIMIT, "active": 0})
        return True
    for k in _pods_of(kube, ns, job_name):
        kube.delete_key(k)
    kube.delete_key(kube.key_of(job))
    st["lastManualSync"] = tag or st.get("lastManualSync", "")
    st["lastSyncTime"] = rfc3339(world.now)
    st["lastSyncDuration"] = format_duration(round(world.clock - started, 3) or 1.0)
    logs = "processed files, added to the repository" if kind == "ReplicationSource" else "restored snapshot"
    st["latestMoverStatus"] = {"result": "Successful", "logs": logs}
    unlock = dig(o, "spec", "restic", "unlock")
    if kind == "ReplicationSource" and unlock:
        st.setdefault("restic", {})["lastUnlocked"] = unlock
    if kind == "ReplicationDestination":
        pvc = dig(o, "spec", "restic", "destinationPVC")
        if pvc:
            st["latestImage"] = {"apiGroup": "", "kind": "PersistentVolumeClaim", "name": pvc}
    st["conditions"] = set_condition(
        conds,
        "Synchronizing",
        "False",
        "WaitingForManual",
        "Synchronization completed, waiting for manual trigger",
        world.now,
    )
    kube.set_status(o, st)
    return True


@controller("volsync", order=85)
def volsync(world: Any, cluster: JSON, kube: Kube) -> bool:
    if not _running(kube):
        return False
    changed = False
    for kind in ("ReplicationSource", "ReplicationDestination"):
        for o in kube.all_of_kind(kind, GROUP):
            changed = _sync(world, cluster, kube, kind, o) or changed
    return changed
