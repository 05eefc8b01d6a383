"""Gateway API release assets (kubernetes-sigs/gateway-api `standard-install.yaml`, `experimental-install.yaml`):
the CRDs of each channel, each annotated with the bundle version and channel as the real bundle is
(`gateway.networking.k8s.io/bundle-version: <tag>`, `gateway.networking.k8s.io/channel: standard|experimental`,
site-src/concepts/versioning.md "Version Indicators").

Which CRDs each channel holds, with scope and served versions, follows config/crd/<channel>/ at v1.3.0, v1.4.0
and v1.4.1 (hack/build-install-yaml.sh concatenates config/crd/<channel>/gateway*.yaml into <channel>-install.yaml).
Tags after v1.4.1 serve the v1.4 lists (assumption: enough for "a newer bundle is installed")."""

from __future__ import annotations

import re

from ..manifests import crd
from ..util import dump_yaml
from . import register

GROUP = "gateway.networking.k8s.io"
X_GROUP = "gateway.networking.x-k8s.io"
# (group, kind, plural, scope, served versions — the storage version last)
Kind = tuple[str, str, str, str, tuple[str, ...]]
STANDARD: list[Kind] = [
    (GROUP, "GatewayClass", "gatewayclasses", "Cluster", ("v1beta1", "v1")),
    (GROUP, "Gateway", "gateways", "Namespaced", ("v1beta1", "v1")),
    (GROUP, "HTTPRoute", "httproutes", "Namespaced", ("v1beta1", "v1")),
    (GROUP, "GRPCRoute", "grpcroutes", "Namespaced", ("v1",)),
    (GROUP, "ReferenceGrant", "referencegrants", "Namespaced", ("v1beta1",)),
]
# BackendTLSPolicy joined the standard channel (as v1) in v1.4.0; before that it was experimental (v1alpha3).
BACKEND_TLS_V1: Kind = (GROUP, "BackendTLSPolicy", "backendtlspolicies", "Namespaced", ("v1alpha3", "v1"))
BACKEND_TLS_ALPHA: Kind = (GROUP, "BackendTLSPolicy", "backendtlspolicies", "Namespaced", ("v1alpha3",))
EXPERIMENTAL_ONLY: list[Kind] = [
    (GROUP, "TCPRoute", "tcproutes", "Namespaced", ("v1alpha2",)),
    (GROUP, "TLSRoute", "tlsroutes", "Namespaced", ("v1alpha2", "v1alpha3")),
    (GROUP, "UDPRoute", "udproutes", "Namespaced", ("v1alpha2",)),
    (X_GROUP, "XBackendTrafficPolicy", "xbackendtrafficpolicies", "Namespaced", ("v1alpha1",)),
    (X_GROUP, "XListenerSet", "xlistenersets", "Namespaced", ("v1alpha1",)),
]
XMESH: Kind = (X_GROUP, "XMesh", "xmeshes", "Cluster", ("v1alpha1",))  # since v1.4.0


def _version_tuple(tag: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", tag)[:3])


def kinds(version: str, channel: str) -> list[Kind]:
    """The CRDs of `channel` at tag `version`."""
    since_1_4 = _version_tuple(version) >= (1, 4, 0)
    if channel == "standard":
        return STANDARD + ([BACKEND_TLS_V1] if since_1_4 else [])
    return (
        STANDARD
        + [BACKEND_TLS_V1 if since_1_4 else BACKEND_TLS_ALPHA]
        + EXPERIMENTAL_ONLY
        + ([XMESH] if since_1_4 else [])
    )


def install(m: re.Match[str]) -> str:
    version, channel = m.group("version"), m.group("channel")
    docs = []
    for group, kind, plural, scope, versions in kinds(version, channel):
        obj = crd(group, kind, plural, versions=versions, scope=scope)
        obj["metadata"]["annotations"] = {
            "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/3328",
            f"{GROUP}/bundle-version": version,
            f"{GROUP}/channel": channel,
        }
        docs.append(dump_yaml(obj))
    return "---\n".join(docs)


register(
    r"https://github\.com/kubernetes-sigs/gateway-api/releases/download/(?P<version>v\d+\.\d+\.\d+(?:-rc\.\d+)?)/"
    r"(?P<channel>standard|experimental)-install\.yaml",
    install,
)
