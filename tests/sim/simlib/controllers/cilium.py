"""Cilium on Talos: the agent only starts with the values Talos requires;
otherwise its pods crash-loop, the DaemonSet never becomes available and nodes stay NotReady. Once running,
the operator registers Cilium's CRDs (they are not in the chart: cluster-template#1759)."""

from __future__ import annotations

from .. import helmstore
from ..kube import Kube
from ..manifests import crd
from ..util import JSON, dig, truthy
from . import controller

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

DEFAULT_AGENT_CAPS = [
    "CHOWN",
    "KILL",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "SYS_MODULE",
    "SYS_ADMIN",
    "SYS_RESOURCE",
    "DAC_OVERRIDE",
    "FOWNER",
    "SETGID",
    "SETUID",
]
DEFAULT_CLEAN_CAPS = ["NET_ADMIN", "SYS_MODULE", "SYS_ADMIN", "SYS_RESOURCE"]
CILIUM_CRDS = [
    ("CiliumNetworkPolicy", "ciliumnetworkpolicies", ("cnp",)),
    ("CiliumClusterwideNetworkPolicy", "ciliumclusterwidenetworkpolicies", ("ccnp",)),
    ("CiliumEndpoint", "ciliumendpoints", ("cep",)),
    ("CiliumIdentity", "ciliumidentities", ()),
    ("CiliumNode", "ciliumnodes", ("cn",)),
    ("CiliumLoadBalancerIPPool", "ciliumloadbalancerippools", ("ippools",)),
    ("CiliumL2AnnouncementPolicy", "ciliuml2announcementpolicies", ()),
    ("CiliumBGPClusterConfig", "ciliumbgpclusterconfigs", ()),
    ("CiliumBGPPeerConfig", "ciliumbgppeerconfigs", ()),
    ("CiliumBGPAdvertisement", "ciliumbgpadvertisements", ()),
    ("CiliumBGPNodeConfig", "ciliumbgpnodeconfigs", ()),
]
CLUSTER_SCOPED = {
    "CiliumClusterwideNetworkPolicy",
    "CiliumIdentity",
    "CiliumNode",
    "CiliumLoadBalancerIPPool",
    "CiliumL2AnnouncementPolicy",
    "CiliumBGPClusterConfig",
    "CiliumBGPPeerConfig",
    "CiliumBGPAdvertisement",
    "CiliumBGPNodeConfig",
}


def problems(values: JSON) -> list[str]:
    """Why the agent would crash on Talos with these Helm values (empty = it runs)."""
    out = []
    if dig(values, "ipam", "mode") != "kubernetes":
        out.append(f"ipam.mode is {dig(values, 'ipam', 'mode')!r}, Talos needs 'kubernetes'")
    if not truthy(values.get("kubeProxyReplacement")):
        out.append("kubeProxyReplacement must be true (Talos runs without kube-proxy)")
    host, port = values.get("k8sServiceHost"), values.get("k8sServicePort")
    if host not in ("localhost", "127.0.0.1") or str(port) != "7445":
        out.append(f"k8sServiceHost/k8sServicePort are {host}:{port}, KubePrism is localhost:7445")
    if dig(values, "cgroup", "autoMount", "enabled") is not False:
        out.append("cgroup.autoMount.enabled must be false (note the capital M)")
    if dig(values, "cgroup", "hostRoot") != "/sys/fs/cgroup":
        out.append("cgroup.hostRoot must be /sys/fs/cgroup")
    agent = dig(values, "securityContext", "capabilities", "ciliumAgent") or DEFAULT_AGENT_CAPS
    clean = dig(values, "securityContext", "capabilities", "cleanCiliumState") or DEFAULT_CLEAN_CAPS
    if "SYS_MODULE" in agent or "SYS_MODULE" in clean:
        out.append("SYS_MODULE must be dropped from securityContext.capabilities (Talos forbids loading modules)")
    return out


@controller("cilium", order=30)
def cilium(world: Any, cluster: JSON, kube: Kube) -> bool:
    rt = cluster.setdefault("runtime", {})
    cni = rt.setdefault("cni", {})
    broken = rt.setdefault("broken", {})
    ds = kube.find("DaemonSet", "kube-system", "cilium", group="apps")
    changed = False
    if ds is None:
        if cni.pop("cilium", None) is not None:
            changed = True
        return changed
    rel = None
    for r in helmstore.latest_all(kube, "kube-system"):
        if r["chart"]["metadata"]["name"] == "cilium":
            rel = r
    values = rel["config"] if rel else {}
    probs = problems(values)
    key = "apps/DaemonSet/kube-system/cilium"
    if probs:
        msg = "cilium-agent CrashLoopBackOff: " + "; ".join(probs)
        if broken.get(key) != msg:
            broken[key] = msg
            changed = True
        if cni.get("cilium") is not False:
            cni["cilium"] = False
            changed = True
        return changed
    if key in broken:
        del broken[key]
        changed = True
    available = int(dig(ds, "status", "numberAvailable", default=0) or 0) > 0
    if cni.get("cilium") != available:
        cni["cilium"] = available
        changed = True
    op = kube.find("Deployment", "kube-system", "cilium-operator", group="apps")
    if available and op is not None and int(dig(op, "status", "availableReplicas", default=0) or 0) > 0:
        for kind, plural, short in CILIUM_CRDS:
            if kube.find("CustomResourceDefinition", None, f"{plural}.cilium.io") is None:
                scope = "Cluster" if kind in CLUSTER_SCOPED else "Namespaced"
                ver = ("v2alpha1", "v2") if "BGP" in kind or "Pool" in kind or "L2" in kind else ("v2",)
                kube.put(
                    crd("cilium.io", kind, plural, versions=ver, short=short, scope=scope), manager="cilium-operator"
                )
                changed = True
    return changed
