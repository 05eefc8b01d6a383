"""batch/v1 Jobs that no other controller owns (no ownerReferences): one pod each, then Complete or Failed.

As the Job controller reports it (kubernetes pkg/controller/job; batch/v1 JobStatus, FIDELITY.md "Jobs"):
* a new Job gets a pod `<job>-<hash>` labelled `batch.kubernetes.io/job-name=<job>` and `job-name=<job>`, and
  `status.active: 1`, `status.startTime`;
* on the next pass it finishes: `status.succeeded: 1` and the condition `Complete=True` — or, under the fault
  `job-fails` (match `<ns>/<name>`, `message`), `status.failed: backoffLimit + 1` and `Failed=True` with reason
  `BackoffLimitExceeded`; the pod's log (`kubectl logs job/<name>`) is the fault's message, else "done";
* the pod stays (phase Succeeded/Failed) until the Job is deleted, which removes it (background propagation).
Jobs with an owner (VolSync's movers, CronJobs) are left to their owners."""

from __future__ import annotations

from ..kube import Kube, set_condition
from ..util import JSON, dig, rfc3339, short_hash
from . import controller

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

FAULT = "job-fails"
FAULTS = {FAULT: "Jobs without an owner whose ns/name matches --match fail (their pod log is --message)"}
LOG_ANNOTATION = "sim.k8s-ops.dev/log"


def _pod(job: JSON, phase: str, log: str) -> JSON:
    ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
    labels = {**(dig(job, "spec", "template", "metadata", "labels") or {}), "job-name": name}
    labels["batch.kubernetes.io/job-name"] = name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{short_hash(ns, name, n=5)}",
            "namespace": ns,
            "labels": labels,
            "annotations": {LOG_ANNOTATION: log},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "controller": True}],
        },
        "spec": {"containers": dig(job, "spec", "template", "spec", "containers") or []},
        "status": {"phase": phase},
    }


@controller("jobs", order=60)
def jobs(world: Any, cluster: JSON, kube: Kube) -> bool:
    changed = False
    names: set[tuple[str, str]] = set()
    for job in kube.all_of_kind("Job", "batch"):
        if job["metadata"].get("ownerReferences"):
            continue
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        names.add((ns, name))
        status = job.get("status") or {}
        conds = status.get("conditions") or []
        if any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conds):
            continue
        if not status.get("active"):
            kube.put(_pod(job, "Running", ""), manager="job-controller", status=True)
            kube.set_status(job, {"active": 1, "startTime": rfc3339(world.now)})
            changed = True
            continue
        fault = world.fault(FAULT, cluster=cluster["name"], text=f"{ns}/{name}")
        if fault is not None:
            limit = int(dig(job, "spec", "backoffLimit", default=6))
            message = str(fault.get("message") or "job failed")
            kube.put(_pod(job, "Failed", message), manager="job-controller", status=True)
            conds = set_condition(
                conds,
                "Failed",
                "True",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                world.now,
            )
            kube.set_status(job, {"failed": limit + 1, "startTime": status.get("startTime"), "conditions": conds})
        else:
            kube.put(_pod(job, "Succeeded", "done"), manager="job-controller", status=True)
            conds = set_condition(conds, "Complete", "True", "", "", world.now)
            kube.set_status(job, {"succeeded": 1, "startTime": status.get("startTime"), "conditions": conds})
        changed = True
    # a deleted Job's pods go with it
    for key, o in list(kube.objects.items()):
        if o["kind"] != "Pod":
            continue
        owners = o["metadata"].get("ownerReferences") or []
        mine = [r for r in owners if r.get("kind") == "Job"]
        if not mine or LOG_ANNOTATION not in (o["metadata"].get("annotations") or {}):
            continue
        if (o["metadata"]["namespace"], mine[0].get("name")) not in names:
            kube.delete_key(key)
            changed = True
    return changed
