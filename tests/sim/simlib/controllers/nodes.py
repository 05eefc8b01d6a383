"""kubelets registering Node objects, their Ready condition (needs a CNI), and the manifests Talos applies at
bootstrap (flannel unless `cni: none`, kube-proxy unless disabled, CoreDNS unless disabled)."""

from __future__ import annotations

from ..kube import Kube, set_condition
from ..manifests import workload
from ..util import JSON, clone
from . import controller

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

NOT_READY_MSG = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)


def cni_ready(cluster: JSON) -> bool:
    return any((cluster.get("runtime") or {}).get("cni", {}).values())


@controller("talos-bootstrap-manifests", order=5)
def talos_manifests(world: Any, cluster: JSON, kube: Kube) -> bool:
    rt = cluster.setdefault("runtime", {})
    if rt.get("talos_manifests"):
        return False
    boot = next((world.nodes[a] for a in cluster.get("etcd", {}).get("members", {}) if a in world.nodes), None)
    if boot is None or not boot.get("config"):
        return False
    cfg = boot["config"]
    rt["talos_manifests"] = True
    rt.setdefault("cni", {})
    if cfg.get("cni") == "flannel":
        kube.put(
            workload("DaemonSet", "kube-flannel", "kube-system", labels={"k8s-app": "flannel"}, host_network=True),
            manager="talos",
        )
        rt["cni"]["flannel"] = True
    if not cfg.get("proxy_disabled"):
        kube.put(
            workload("DaemonSet", "kube-proxy", "kube-system", labels={"k8s-app": "kube-proxy"}, host_network=True),
            manager="talos",
        )
    if not cfg.get("coredns_disabled"):
        kube.put(
            workload("Deployment", "coredns", "kube-system", labels={"k8s-app": "kube-dns"}, replicas=2),
            manager="talos",
        )
    return True


@controller("kubelet-nodes", order=10)
def nodes(world: Any, cluster: JSON, kube: Kube) -> bool:
    changed = False
    ready_net = cni_ready(cluster)
    k8s_default = str(world.setting("kubernetes_version"))
    for n in world.cluster_nodes(cluster):
        name = world.node_name(n) if n.get("config") else None
        key = f"/Node//{name}" if name else None
        obj = kube.objects.get(key) if key else None
        # the kubelet runs once the node is configured and up, whether or not its Boot sequence has ended
        kubelet_running = bool(n.get("config")) and world.phase(n) == "up"
        if obj is None and kubelet_running:
            cfg = n["config"]
            labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
            if cfg["type"] in ("controlplane", "init"):
                labels["node-role.kubernetes.io/control-plane"] = ""
            kube.put(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"podCIDR": ""},
                },
                manager="kubelet",
            )
            obj = kube.objects[key]  # type: ignore[index]
            changed = True
        if obj is None:
            continue
        cfg = n.get("config") or {}
        st = clone(obj.get("status") or {})  # a copy every tick for every node: not copy.deepcopy (~5x slower)
        if kubelet_running:
            if ready_net:
                st["conditions"] = set_condition(
                    st.get("conditions", []),
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                    world.now,
                )
            else:
                st["conditions"] = set_condition(
                    st.get("conditions", []), "Ready", "False", "KubeletNotReady", NOT_READY_MSG, world.now
                )
        else:
            st["conditions"] = set_condition(
                st.get("conditions", []),
                "Ready",
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
                world.now,
            )
        st["addresses"] = [{"type": "InternalIP", "address": n["address"]}, {"type": "Hostname", "address": name or ""}]
        st["nodeInfo"] = {
            "kubeletVersion": cfg.get("kubelet_version") or k8s_default,
            "osImage": f"Talos ({n['talos_version']})",
            "kernelVersion": "6.12.57-talos",
            "containerRuntimeVersion": "containerd://2.1.5",
            "architecture": "amd64",
            "operatingSystem": "linux",
        }
        changed = kube.set_status(obj, st) or changed
    return changed
