"""Pods nobody owns (created directly, e.g. by a day-2 task): the scheduler binds one to a Ready node unless
`spec.nodeName` is set, and the kubelet runs it — phase Running with its containers running — once its node is
Ready. A pod pinned to a node that is not Ready stays Pending. Pods with an owner are their owners' business."""

from __future__ import annotations

from ..kube import Kube, condition
from ..util import JSON
from . import controller

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any


@controller("bare-pods", order=45)
def bare_pods(world: Any, cluster: JSON, kube: Kube) -> bool:
    ready = sorted(
        n["metadata"]["name"] for n in kube.all_of_kind("Node") if (condition(n, "Ready") or {}).get("status") == "True"
    )
    changed = False
    for pod in kube.all_of_kind("Pod"):
        meta = pod["metadata"]
        if meta.get("ownerReferences") or meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase"):
            continue
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            if not ready:
                continue
            pod.setdefault("spec", {})["nodeName"] = node = ready[0]
            changed = True
        if node not in ready:
            continue
        statuses = [
            {"name": c.get("name"), "ready": True, "restartCount": 0, "state": {"running": {}}}
            for c in (pod.get("spec") or {}).get("containers") or []
        ]
        changed = kube.set_status(pod, {"phase": "Running", "containerStatuses": statuses}) or changed
    return changed
