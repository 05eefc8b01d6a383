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
* Restic repositories (one per `<ns>/<repository Secret>`, in the cluster's runtime state): a successful source
  sync adds a snapshot (`restic snapshots --json` fields: time, id, short_id, hostname `volsync`, paths `/data`,
  summary.total_bytes_processed); a destination picks one as the mover script does (`restoreAsOf`: newest at or
  before it, then `previous` older) and logs "Selected restic snapshot with id: <id>" or "No eligible snapshots
  found". A finished ownerless Job (jobs.py) running `restic snapshots --json` with a repository Secret as envFrom
  gets that repository's list as its pod log.
Nothing runs unless a `volsync` Deployment is available.

Faults are read from the world's fault list; `sim fault` validates kinds against its own table, so tests add
`volsync-job-fails` with `tests.sim` helpers that append to the fault list directly."""

from __future__ import annotations

import copy
import json

from ..kube import Kube, set_condition
from ..util import JSON, dig, format_duration, rfc3339, short_hash
from . import controller
from .jobs import LOG_ANNOTATION

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

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
    import hashlib  # local: loading OpenSSL costs every simulated call (a fresh interpreter) ~3 ms

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
    repo = _repository(cluster, ns, str(dig(o, "spec", "restic", "repository") or ""))
    if kind == "ReplicationSource":
        snap_id = hashlib.sha256(f"{ns}/{name}/{world.clock}/{len(repo)}".encode()).hexdigest()
        size = 1024 * 1024 * (17 + 3 * len(repo))
        repo.append(
            {
                "time": rfc3339(world.now),
                "tree": hashlib.sha256(snap_id.encode()).hexdigest(),
                "paths": ["/data"],
                "hostname": "volsync",
                "username": "root",
                "id": snap_id,
                "short_id": snap_id[:8],
                "summary": {"total_files_processed": 42, "total_bytes_processed": size},
            }
        )
        logs = f"processed files, added to the repository\nsnapshot {snap_id[:8]} saved"
    else:
        chosen = _select_snapshot(repo, dig(o, "spec", "restic", "restoreAsOf"), dig(o, "spec", "restic", "previous"))
        logs = (
            f"Selected restic snapshot with id: {chosen['id']}\nrestored snapshot"
            if chosen
            else "No eligible snapshots found\n=== No data will be restored ==="
        )
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


def _repository(cluster: JSON, ns: str, secret: str) -> list[JSON]:
    """The simulated restic repository behind the Secret `ns/secret`: its snapshots, oldest first, kept in the
    cluster's runtime state (a repository outlives the objects that write to it)."""
    return cluster.setdefault("runtime", {}).setdefault("restic", {}).setdefault(f"{ns}/{secret}", [])  # type: ignore[no-any-return]


def _epoch(value: str) -> float:
    from datetime import datetime  # local: each simulated call is a fresh interpreter, and few need it

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _select_snapshot(repo: list[JSON], as_of: Any, previous: Any) -> JSON | None:
    """As the restic mover script selects: newest first; with restoreAsOf, skip those taken after it; then skip
    `previous` more; None when nothing is left ("No eligible snapshots found")."""
    newest_first = sorted(repo, key=lambda s: _epoch(s["time"]), reverse=True)
    offset = 0
    if as_of:
        target = _epoch(str(as_of))
        while offset < len(newest_first) and _epoch(newest_first[offset]["time"]) > target:
            offset += 1
    offset += int(previous or 0)
    return newest_first[offset] if offset < len(newest_first) else None


def _list_jobs(cluster: JSON, kube: Kube) -> bool:
    """A Job of the product running `restic snapshots --json` with a repository Secret as its environment: once the
    Job controller (jobs.py) finished it, its pod's log is that repository's snapshot list, as restic prints it."""
    changed = False
    for pod in kube.all_of_kind("Pod"):
        notes = pod["metadata"].get("annotations") or {}
        if notes.get(LOG_ANNOTATION) != "done" or (pod.get("status") or {}).get("phase") != "Succeeded":
            continue
        for c in dig(pod, "spec", "containers") or []:
            argv = [*(c.get("command") or []), *(c.get("args") or [])]
            secrets = [dig(e, "secretRef", "name") for e in c.get("envFrom") or [] if dig(e, "secretRef", "name")]
            if "restic" in argv[:1] and "snapshots" in argv and "--json" in argv and secrets:
                ns = pod["metadata"]["namespace"]
                if kube.find("Secret", ns, secrets[0], group="") is None:
                    log = f'Error: secret "{secrets[0]}" not found'
                else:
                    log = json.dumps(_repository(cluster, ns, secrets[0]))
                pod["metadata"].setdefault("annotations", {})[LOG_ANNOTATION] = log
                changed = True
    return changed


@controller("volsync", order=85)
def volsync(world: Any, cluster: JSON, kube: Kube) -> bool:
    changed = _list_jobs(cluster, kube)
    if not _running(kube):
        return changed
    for kind in ("ReplicationSource", "ReplicationDestination"):
        for o in kube.all_of_kind(kind, GROUP):
            changed = _sync(world, cluster, kube, kind, o) or changed
    return changed
