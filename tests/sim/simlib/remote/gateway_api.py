"""Gateway API release assets (kubernetes-sigs/gateway-api `standard-install.yaml`): the standard-channel CRDs,
each annotated with the bundle version and channel as the real bundle is."""

from __future__ import annotations

import re

from ..manifests import crd
from ..util import dump_yaml
from . import register

GROUP = "gateway.networking.k8s.io"
# (kind, plural, scope, served versions) of the standard channel; BackendTLSPolicy joined it in v1.4.0.
STANDARD = [
    ("GatewayClass", "gatewayclasses", "Cluster", ("v1beta1", "v1")),
    ("Gateway", "gateways", "Namespaced", ("v1beta1", "v1")),
    ("HTTPRoute", "httproutes", "Namespaced", ("v1beta1", "v1")),
    ("GRPCRoute", "grpcroutes", "Namespaced", ("v1",)),
    ("ReferenceGrant", "referencegrants", "Namespaced", ("v1beta1",)),
]
SINCE_1_4 = [("BackendTLSPolicy", "backendtlspolicies", "Namespaced", ("v1",))]


def _version_tuple(tag: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", tag)[:3])


def standard_install(m: re.Match[str]) -> str:
    version = m.group("version")
    kinds = STANDARD + (SINCE_1_4 if _version_tuple(version) >= (1, 4, 0) else [])
    docs = []
    for kind, plural, scope, versions in kinds:
        obj = crd(GROUP, kind, plural, versions=versions, scope=scope)
        obj["metadata"]["annotations"] = {
            "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/3328",
            f"{GROUP}/bundle-version": version,
            f"{GROUP}/channel": "standard",
        }
        docs.append(dump_yaml(obj))
    return "---\n".join(docs)


register(
    r"https://github\.com/kubernetes-sigs/gateway-api/releases/download/(?P<version>v\d+\.\d+\.\d+)/standard-install\.yaml",
    standard_install,
)
