"""What one cluster's Kubernetes API says, read in five `kubectl get` calls: nodes, Flux Kustomizations,
HelmReleases, GitRepositories and OCIRepositories (all namespaces). Read-only; a cluster that does not answer is a
`ClusterFacts` with `error` set, never an exception, so one dead cluster never hides the others."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from k8s_ops.core.errors import CommandFailed, CommandTimeout, ToolkitError, last_error_line
from k8s_ops.tools.flux import FLUX_NAMESPACE, HELMRELEASE, KUSTOMIZATION, ROOT_KUSTOMIZATION, flux_status
from k8s_ops.tools.kubectl import KubeTarget, Obj, list_or_empty

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner

__all__ = [
    "GITREPOSITORY",
    "OCIREPOSITORY",
    "ClusterFacts",
    "NodeVersions",
    "read_cluster",
    "talos_version",
]

GITREPOSITORY: Final = "gitrepositories.source.toolkit.fluxcd.io"
OCIREPOSITORY: Final = "ocirepositories.source.toolkit.fluxcd.io"

# Talos' /etc/os-release PRETTY_NAME is "Talos (<version>)", which the kubelet reports as the Node's osImage
_TALOS_IMAGE = re.compile(r"^Talos \((?P<version>v[^)]+)\)$")


def talos_version(os_image: object) -> str | None:
    """`v1.12.11` from a Node's `status.nodeInfo.osImage` of `Talos (v1.12.11)`; None for another OS."""
    m = _TALOS_IMAGE.match(os_image) if isinstance(os_image, str) else None
    return m.group("version") if m else None


@dataclass(frozen=True)
class NodeVersions:
    """One Kubernetes Node: Talos version (from osImage), kubelet version, Ready."""

    name: str
    talos: str | None
    kubernetes: str | None
    ready: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "talos": self.talos, "kubernetes": self.kubernetes, "ready": self.ready}


@dataclass(frozen=True)
class ClusterFacts:
    """The live state `fleet.status` and `gitops.promote` read from one cluster; `error` when it did not answer."""

    cluster: str
    nodes: tuple[NodeVersions, ...] = ()
    git_repository: Mapping[str, Any] | None = None
    root_kustomization: Mapping[str, Any] | None = None
    not_ready: tuple[str, ...] = ()
    suspended: tuple[str, ...] = ()
    error: str | None = None


def _where(kind: str, obj: Obj) -> str:
    return f"{kind} {obj.namespace}/{obj.name}"


def read_cluster(runner: Runner, cluster: str, target: KubeTarget) -> ClusterFacts:
    """Read the cluster's nodes and Flux objects; any failure (no kubeconfig, unreachable API, bad output) becomes
    `ClusterFacts(error=…)`. A Flux kind that is not installed reads as none."""
    if not target.kubeconfig.is_file():
        return ClusterFacts(cluster, error=f"no kubeconfig at {target.kubeconfig} (invoke talos.kubeconfig)")
    try:
        nodes = list_or_empty(runner, target, "nodes", description="read the nodes")
        flux: dict[str, list[dict[str, Any]]] = {}
        for kind, resource in (
            ("Kustomization", KUSTOMIZATION),
            ("HelmRelease", HELMRELEASE),
            ("GitRepository", GITREPOSITORY),
            ("OCIRepository", OCIREPOSITORY),
        ):
            flux[kind] = list_or_empty(runner, target, resource, all_namespaces=True, description=f"read {kind}s")
    except (CommandFailed, CommandTimeout) as exc:
        return ClusterFacts(cluster, error=f"does not answer: {last_error_line(exc)}")
    except ToolkitError as exc:
        return ClusterFacts(cluster, error=last_error_line(exc))
    versions = []
    for raw in nodes:
        o = Obj(raw)
        versions.append(
            NodeVersions(
                o.name,
                talos_version(o.status("nodeInfo", "osImage")),
                o.status("nodeInfo", "kubeletVersion"),
                o.is_true("Ready"),
            )
        )
    not_ready: list[str] = []
    suspended: list[str] = []
    for kind in ("Kustomization", "HelmRelease"):
        for raw in flux[kind]:
            st = flux_status(raw)
            where = _where(kind, Obj(raw))
            if st.suspended:
                suspended.append(where)
            elif st.ready is not True:
                not_ready.append(
                    f"{where} ({st.reason or 'no Ready condition'}: {st.message})"
                    if st.message
                    else f"{where} ({st.reason or 'no Ready condition'})"
                )
    for kind in ("GitRepository", "OCIRepository"):
        suspended += [_where(kind, Obj(r)) for r in flux[kind] if Obj(r).path("spec", "suspend", default=False)]

    def root(kind: str) -> Mapping[str, Any] | None:
        return next(
            (r for r in flux[kind] if Obj(r).name == ROOT_KUSTOMIZATION and Obj(r).namespace == FLUX_NAMESPACE), None
        )

    return ClusterFacts(
        cluster,
        nodes=tuple(sorted(versions, key=lambda n: n.name)),
        git_repository=root("GitRepository"),
        root_kustomization=root("Kustomization"),
        not_ready=tuple(sorted(not_ready)),
        suspended=tuple(sorted(suspended)),
    )
