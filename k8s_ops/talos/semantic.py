"""Semantic rules on a node's rendered documents: what the JSON schema cannot know about our clusters.

The schema says a config is well-formed; these rules say it is the config we mean to run:

* secrets: a worker carries no control-plane-only key material (machine CA key, Kubernetes/aggregator/etcd CA
  keys, service-account key, secretbox/aescbc secrets); a control plane carries all of it; `machine.type`
  matches the node's role;
* cluster shape: CNI `none` (Cilium is installed by the bootstrap), kube-proxy disabled (Cilium replaces it),
  KubePrism enabled on port 7445;
* install: `machine.install.image` is the Image Factory installer of the cluster's schematic and Talos version;
  no `machine.install.extraKernelArgs` (v1.12 refuses them with `grubUseUKICmdline`; kernel args belong in
  the schematic);
* hostname: exactly one HostnameConfig with `auto: 'off'` (a string — PyYAML's `off` is False) and the
  node's hostname; no legacy `machine.network.hostname` (talos#12541);
* exactly one v1alpha1 document; Layer2VIPConfig only on control planes.

Each finding is a `Problem(file, "<document> <json path>", message)`. Secret values are never quoted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from k8s_ops.core.errors import Problem
from k8s_ops.talos.schema import document_label

__all__ = [
    "CONTROLPLANE_SECRETS",
    "KUBEPRISM_PORT",
    "NodeExpectations",
    "check_documents",
]

KUBEPRISM_PORT = 7445

# Key material only control planes hold (workers get `ca.key: ""`).
CONTROLPLANE_SECRETS: tuple[tuple[str, ...], ...] = (
    ("machine", "ca", "key"),
    ("cluster", "ca", "key"),
    ("cluster", "aggregatorCA", "key"),
    ("cluster", "serviceAccount", "key"),
    ("cluster", "etcd", "ca", "key"),
    ("cluster", "secretboxEncryptionSecret"),
)
_WORKER_FORBIDDEN: tuple[tuple[str, ...], ...] = (*CONTROLPLANE_SECRETS, ("cluster", "aescbcEncryptionSecret"))

_MISSING = object()
_Report = Callable[[str, Sequence[str], str], None]


@dataclass(frozen=True)
class NodeExpectations:
    """What one node's config must say: its hostname, role and installer image."""

    hostname: str
    role: Literal["controlplane", "worker"]
    installer_image: str


def _get(doc: Any, path: Sequence[str]) -> Any:
    node = doc
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set(value: Any) -> bool:
    """A value that carries material (not missing, not empty, not a mapping of empties)."""
    if value is _MISSING or value is None or value == "" or value == [] or value == {}:
        return False
    if isinstance(value, Mapping):
        return any(_set(v) for v in value.values())
    return True


def check_documents(docs: Sequence[Any], expect: NodeExpectations, *, file: str) -> list[Problem]:
    """Every semantic problem in one node's documents (empty list: the config is what we mean)."""
    problems: list[Problem] = []

    def problem(label: str, path: Sequence[str], message: str) -> None:
        problems.append(Problem(file, f"{label} {'.'.join(path)}".strip(), message))

    mappings = [d for d in docs if isinstance(d, Mapping)]
    main = [d for d in mappings if "kind" not in d]
    if len(main) != 1:
        problem("v1alpha1", (), f"expected exactly one v1alpha1 document, found {len(main)}")
    if main:
        _check_main(main[0], expect, problem)

    hostnames = [d for d in mappings if d.get("kind") == "HostnameConfig"]
    if not hostnames:
        problem("HostnameConfig", (), f"missing: add HostnameConfig with hostname {expect.hostname!r} and auto 'off'")
    elif len(hostnames) > 1:
        problem("HostnameConfig", (), f"expected one HostnameConfig, found {len(hostnames)}")
    for doc in hostnames:
        auto = doc.get("auto", _MISSING)
        if auto is False:
            problem("HostnameConfig", ("auto",), "is boolean false; write 'off' quoted (YAML 1.1 reads off as false)")
        elif auto != "off":
            shown = "missing" if auto is _MISSING else repr(auto)
            problem("HostnameConfig", ("auto",), f"must be 'off' so the static hostname is used (is {shown})")
        if doc.get("hostname") != expect.hostname:
            problem("HostnameConfig", ("hostname",), f"must be {expect.hostname!r} (is {doc.get('hostname')!r})")

    if expect.role != "controlplane":
        for doc in mappings:
            if doc.get("kind") == "Layer2VIPConfig":
                problem(document_label(doc), (), "Layer2VIPConfig belongs on control planes only (the API VIP)")
    return problems


def _check_main(doc: Mapping[str, Any], expect: NodeExpectations, problem: _Report) -> None:
    label = "v1alpha1"
    machine_type = _get(doc, ("machine", "type"))
    if machine_type != expect.role:
        problem(label, ("machine", "type"), f"must be {expect.role!r} for this node (is {machine_type!r})")

    if expect.role == "worker":
        for path in _WORKER_FORBIDDEN:
            if _set(_get(doc, path)):
                problem(label, path, "control-plane-only secret material in a worker config (value not shown)")
    else:
        for path in CONTROLPLANE_SECRETS:
            if not _set(_get(doc, path)):
                problem(label, path, "a control plane needs this secret; it is missing or empty")

    cni = _get(doc, ("cluster", "network", "cni", "name"))
    if cni != "none":
        shown = "unset (Talos default flannel)" if cni is _MISSING else repr(cni)
        problem(label, ("cluster", "network", "cni", "name"), f"must be 'none': Cilium is the CNI (is {shown})")
    if _get(doc, ("cluster", "proxy", "disabled")) is not True:
        problem(label, ("cluster", "proxy", "disabled"), "must be true: Cilium replaces kube-proxy")

    prism = ("machine", "features", "kubePrism")
    if _get(doc, (*prism, "enabled")) is not True:
        problem(label, (*prism, "enabled"), "must be true (Cilium reaches the API through KubePrism)")
    port = _get(doc, (*prism, "port"))
    if port != KUBEPRISM_PORT:
        shown = "unset" if port is _MISSING else repr(port)
        problem(label, (*prism, "port"), f"must be {KUBEPRISM_PORT} (is {shown})")

    image = _get(doc, ("machine", "install", "image"))
    if image != expect.installer_image:
        shown = "unset" if image is _MISSING else repr(image)
        problem(
            label, ("machine", "install", "image"),
            f"must be the schematic's installer {expect.installer_image!r} (is {shown})",
        )  # fmt: skip
    if _get(doc, ("machine", "install", "extraKernelArgs")) is not _MISSING:
        problem(
            label, ("machine", "install", "extraKernelArgs"),
            "not allowed on Talos 1.12 (grubUseUKICmdline); put kernel args in the schematic",
        )  # fmt: skip
    if _get(doc, ("machine", "network", "hostname")) is not _MISSING:
        problem(
            label, ("machine", "network", "hostname"),
            "legacy field: the hostname belongs in the HostnameConfig document only (talos#12541)",
        )  # fmt: skip
