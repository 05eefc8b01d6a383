"""Deployments, DaemonSets and StatefulSets: status and Pods. Pods need a Ready node (a CNI) unless they use
the host network; a workload another controller marks broken (runtime["broken"]) crash-loops. Pods matching
the `pod-stuck-terminating` fault keep their deletionTimestamp forever."""

from __future__ import annotations

import copy

from ..kube import Kube, condition, set_condition
from ..util import JSON, dig, rfc3339, short_hash
from . import controller

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

KINDS = ("Deployment", "DaemonSet", "StatefulSet")


def _node_state(world: Any, cluster: JSON, kube: Kube) -> tuple[list[str], list[str]]:
    """(names of Ready schedulable nodes, names of nodes whose machine is up)."""
    up_names = {world.node_name(n) for n in world.cluster_nodes(cluster) if n.get("config") and world.phase(n) == "up"}
    ready, up = [], []
    for o in kube.all_of_kind("Node"):
        nm = o["metadata"]["name"]
        if nm in up_names:
            up.append(nm)
        if (condition(o, "Ready") or {}).get("status") == "True":
            ready.append(nm)
    return sorted(ready), sorted(up)


def _stuck(world: Any, cluster: JSON, ns: str, name: str) -> bool:
    return world.fault("pod-stuck-terminating", cluster=cluster["name"], text=f"{ns}/{name}") is not None


@controller("workloads", order=40)
def workloads(world: Any, cluster: JSON, kube: Kube) -> bool:
    broken = (cluster.get("runtime") or {}).get("broken", {})
    ready_nodes, up_nodes = _node_state(world, cluster, kube)
    changed = False
    wanted_pods: dict[str, JSON] = {}
    for kind in KINDS:
        for o in kube.all_of_kind(kind, "apps"):
            ns, name = o["metadata"]["namespace"], o["metadata"]["name"]
            key = f"apps/{kind}/{ns}/{name}"
            bad = broken.get(key)
            host = bool(dig(o, "spec", "template", "spec", "hostNetwork"))
            gen = o["metadata"].get("generation", 1)
            labels = dict(dig(o, "spec", "template", "metadata", "labels") or {})
            if kind == "DaemonSet":
                nodes = sorted({*up_nodes} | {x["metadata"]["name"] for x in kube.all_of_kind("Node")})
                placements = [(f"{name}-{short_hash(name, nd, n=5)}", nd) for nd in nodes]
                okset = set(up_nodes if host else ready_nodes)
                ready_list = [(p, nd) for p, nd in placements if nd in okset and not bad]
                st = {
                    "currentNumberScheduled": len(placements),
                    "desiredNumberScheduled": len(placements),
                    "numberAvailable": len(ready_list),
                    "numberReady": len(ready_list),
                    "numberMisscheduled": 0,
                    "updatedNumberScheduled": len(placements),
                    "observedGeneration": gen,
                }
                if len(placements) - len(ready_list):
                    st["numberUnavailable"] = len(placements) - len(ready_list)
            else:
                want = int(dig(o, "spec", "replicas", default=1))
                pool = up_nodes if host else ready_nodes
                runnable = bool(pool) and not bad
                if kind == "Deployment":
                    base = f"{name}-{short_hash(name, str(dig(o, 'spec', 'template')), n=10)}"
                    names = [f"{base}-{short_hash(base, str(i), n=5)}" for i in range(want)]
                else:
                    names = [f"{name}-{i}" for i in range(want)]
                placements = [(p, pool[i % len(pool)] if pool else "") for i, p in enumerate(names)]
                ready_list = placements if runnable else []
                n_ready = len(ready_list)
                st = {
                    "observedGeneration": gen,
                    "replicas": want,
                    "updatedReplicas": want,
                    "readyReplicas": n_ready,
                    "availableReplicas": n_ready,
                }
                if kind == "Deployment":
                    conds = dig(o, "status", "conditions") or []
                    avail = n_ready >= want
                    st["conditions"] = set_condition(
                        conds,
                        "Available",
                        "True" if avail else "False",
                        "MinimumReplicasAvailable" if avail else "MinimumReplicasUnavailable",
                        "Deployment has minimum availability."
                        if avail
                        else "Deployment does not have minimum availability.",
                        world.now,
                    )
                    st["conditions"] = set_condition(
                        st["conditions"],
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        f'ReplicaSet "{base}" has successfully progressed.',
                        world.now,
                    )
                    if want - n_ready:
                        st["unavailableReplicas"] = want - n_ready
            changed = kube.set_status(o, st) or changed
            ready_names = {p for p, _ in ready_list}
            for pod_name, node in placements:
                pod_key = f"/Pod/{ns}/{pod_name}"
                phase = "Running" if pod_name in ready_names else "Pending"
                reason = None
                if bad:
                    phase, reason = "Running", "CrashLoopBackOff"
                wanted_pods[pod_key] = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": pod_name,
                        "namespace": ns,
                        "labels": labels,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": True}],
                    },
                    "spec": {
                        "nodeName": node,
                        "containers": copy.deepcopy(dig(o, "spec", "template", "spec", "containers") or []),
                        # the template's volumes and pod securityContext, as a ReplicaSet's pods carry them
                        **{
                            k: copy.deepcopy(v)
                            for k in ("volumes", "securityContext")
                            if (v := dig(o, "spec", "template", "spec", k))
                        },
                        **({"hostNetwork": True} if host else {}),
                    },
                    "_status": {"phase": phase, "ready": pod_name in ready_names, "reason": reason, "message": bad},
                }
    # reconcile Pods owned by workloads
    for key, o in list(kube.objects.items()):
        if o["kind"] != "Pod":
            continue
        owners = o["metadata"].get("ownerReferences") or []
        if not any(r.get("kind") in KINDS for r in owners):
            continue
        ns, name = o["metadata"]["namespace"], o["metadata"]["name"]
        if key not in wanted_pods or o["metadata"].get("deletionTimestamp"):
            if _stuck(world, cluster, ns, name):
                if not o["metadata"].get("deletionTimestamp"):
                    o["metadata"]["deletionTimestamp"] = rfc3339(world.now)
                    changed = True
                continue
            kube.delete_key(key)
            changed = True
    for key, spec in wanted_pods.items():
        pst = spec.pop("_status")
        cur = kube.objects.get(key)
        if cur is None:
            if not kube.namespace_exists(spec["metadata"]["namespace"]):
                continue
            kube.put(spec, manager="kube-controller-manager")
            cur = kube.objects[key]
            changed = True
        if cur["metadata"].get("deletionTimestamp"):
            continue
        ready = "True" if pst["ready"] else "False"
        cstat: JSON = {
            "name": (spec["spec"]["containers"] or [{"name": "main"}])[0].get("name", "main"),
            "ready": pst["ready"],
            "restartCount": 5 if pst["reason"] else 0,
        }
        if pst["reason"]:
            cstat["state"] = {"waiting": {"reason": pst["reason"], "message": pst["message"]}}
        elif pst["ready"]:
            cstat["state"] = {"running": {}}
        status: JSON = {
            "phase": pst["phase"],
            "containerStatuses": [cstat],
            "conditions": set_condition(
                (cur.get("status") or {}).get("conditions", []),
                "Ready",
                ready,
                "" if pst["ready"] else "ContainersNotReady",
                "",
                world.now,
            ),
        }
        if pst["reason"]:
            status["reason"] = pst["reason"]
        changed = kube.set_status(cur, status) or changed
    return changed
