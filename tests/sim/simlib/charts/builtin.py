"""Charts the bootstrap installs: cilium, coredns, flux-operator, flux-instance."""

from __future__ import annotations

from ..manifests import crd, simple, workload
from ..util import JSON, dig
from . import Chart, register


def _cilium(release: str, ns: str, values: JSON, version: str) -> list[JSON]:
    cfg = {
        "ipam": str(dig(values, "ipam", "mode") or "cluster-pool"),
        "kube-proxy-replacement": str(values.get("kubeProxyReplacement", "false")).lower(),
        "k8s-service-host": str(values.get("k8sServiceHost", "")),
        "k8s-service-port": str(values.get("k8sServicePort", "")),
        "cluster-name": str(dig(values, "cluster", "name") or "default"),
        "cluster-id": str(dig(values, "cluster", "id") or 0),
    }
    return [
        simple("v1", "ServiceAccount", "cilium", ns),
        simple("v1", "ServiceAccount", "cilium-operator", ns),
        simple("v1", "ConfigMap", "cilium-config", ns, data=cfg),
        workload(
            "DaemonSet",
            "cilium",
            ns,
            labels={"k8s-app": "cilium", "app.kubernetes.io/name": "cilium-agent"},
            host_network=True,
            image=f"quay.io/cilium/cilium:v{version.lstrip('v')}",
        ),
        workload(
            "Deployment",
            "cilium-operator",
            ns,
            labels={"io.cilium/app": "operator", "name": "cilium-operator"},
            replicas=int(dig(values, "operator", "replicas") or 2),
            host_network=True,
            image=f"quay.io/cilium/operator-generic:v{version.lstrip('v')}",
        ),
    ]


def _coredns(release: str, ns: str, values: JSON, version: str) -> list[JSON]:
    app = str(values.get("k8sAppLabelOverride") or "coredns")
    name = str(values.get("fullnameOverride") or (release if "coredns" in release else f"{release}-coredns"))
    svc = simple(
        "v1",
        "Service",
        str(dig(values, "service", "name") or name),
        ns,
        spec={
            "selector": {"k8s-app": app},
            "clusterIP": dig(values, "service", "clusterIP") or "10.43.0.10",
            "ports": [{"name": "udp-53", "port": 53, "protocol": "UDP"}],
        },
    )
    return [
        workload(
            "Deployment",
            name,
            ns,
            labels={"k8s-app": app, "app.kubernetes.io/name": "coredns"},
            replicas=int(values.get("replicaCount", 1)),
            image=f"coredns/coredns:{version}",
        ),
        svc,
    ]


def _flux_operator(release: str, ns: str, values: JSON, version: str) -> list[JSON]:
    cols = [
        {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
        {"jsonPath": '.status.conditions[?(@.type=="Ready")].status', "name": "Ready", "type": "string"},
        {"jsonPath": '.status.conditions[?(@.type=="Ready")].message', "name": "Status", "type": "string"},
    ]
    return [
        crd("fluxcd.controlplane.io", "FluxInstance", "fluxinstances", columns=cols),
        crd("fluxcd.controlplane.io", "FluxReport", "fluxreports", columns=cols),
        crd("fluxcd.controlplane.io", "ResourceSet", "resourcesets", columns=cols),
        crd("fluxcd.controlplane.io", "ResourceSetInputProvider", "resourcesetinputproviders", columns=cols),
        simple("v1", "ServiceAccount", "flux-operator", ns),
        workload(
            "Deployment",
            "flux-operator",
            ns,
            labels={"app.kubernetes.io/name": "flux-operator"},
            image=f"ghcr.io/controlplaneio-fluxcd/flux-operator:v{version.lstrip('v')}",
        ),
    ]


def _flux_instance(release: str, ns: str, values: JSON, version: str) -> list[JSON]:
    inst = values.get("instance") or {}
    spec: JSON = {
        "distribution": {
            "version": dig(inst, "distribution", "version") or "2.x",
            "registry": dig(inst, "distribution", "registry") or "ghcr.io/fluxcd",
            "artifact": dig(inst, "distribution", "artifact")
            or "oci://ghcr.io/controlplaneio-fluxcd/flux-operator-manifests",
        },
        "components": inst.get("components")
        or ["source-controller", "kustomize-controller", "helm-controller", "notification-controller"],
        "cluster": inst.get("cluster") or {"type": "kubernetes", "networkPolicy": True, "domain": "cluster.local"},
    }
    for key in ("sync", "kustomize", "sharding", "storage", "commonMetadata"):
        if inst.get(key):
            spec[key] = inst[key]
    return [
        {
            "apiVersion": "fluxcd.controlplane.io/v1",
            "kind": "FluxInstance",
            "metadata": {"name": "flux", "namespace": ns},
            "spec": spec,
        }
    ]


register(Chart("cilium", "1.18.4", "1.18.4", _cilium))
register(Chart("coredns", "1.45.0", "1.13.1", _coredns))
register(Chart("flux-operator", "0.36.0", "v0.36.0", _flux_operator))
register(Chart("flux-instance", "0.36.0", "v0.36.0", _flux_instance))
