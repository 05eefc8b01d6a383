"""Fidelity: our configs are Talos' own generator output (v1.12 contract) plus only the changes we mean to make.

Oracle: siderolabs/talos v1.12.11 `testdata/stability/v1.12/base-{controlplane,worker}.yaml`, generated from
`secrets.yaml` with `generate.NewInput("base", "https://base:6443", "1.28.0", WithVersionContract(v1.12))`
(`GOLDEN` below; the tests skip when that reference copy is absent).
"""

from __future__ import annotations

from typing import Any

import pytest

from k8s_ops.core.paths import repo_root
from k8s_ops.talos.inventory import Cluster
from k8s_ops.talos.patch import document_id
from k8s_ops.talos.render import GeneratorInput, generator_documents, render_node
from k8s_ops.talos.schematic import installer_image
from k8s_ops.talos.secrets import SecretsBundle
from k8s_ops.talos.yamlio import load_documents

GOLDEN = repo_root().parent / "shared" / "reference" / "talos" / "stability-v1.12"
pytestmark = pytest.mark.skipif(
    not GOLDEN.is_dir(), reason=f"Talos v1.12 stability goldens not found at {GOLDEN} (../shared is absent)"
)

Path_ = tuple[str, ...]


def golden(name: str) -> list[dict[str, Any]]:
    return load_documents((GOLDEN / name).read_text())


@pytest.fixture(scope="module")
def bundle() -> SecretsBundle:
    return SecretsBundle.from_yaml((GOLDEN / "secrets.yaml").read_text(), source="secrets.yaml")


class _GoldenCluster(Cluster):
    """The inventory only takes an IP endpoint (the VIP); the golden's generator input used `https://base:6443`."""

    @property
    def api_url(self) -> str:
        return "https://base:6443"


# A cluster/node description that reproduces the generator input: name, Kubernetes version, Talos' default pod and
# service subnets. Everything else here is what the inventory adds on purpose (listed in EXPECTED_* below).
INVENTORY: dict[str, Any] = {
    "name": "base",
    "id": 1,
    "domain": "base.example",
    "talosVersion": "v1.12.11",
    "kubernetesVersion": "v1.28.0",  # the generator took "1.28.0"; tags are v1.28.0 either way
    "endpoint": "10.5.0.10",
    "network": {
        "nodeCIDR": "10.5.0.0/24",
        "gateway": "10.5.0.1",
        "nameservers": ["10.5.0.1"],
        "podCIDR": "10.244.0.0/16",
        "serviceCIDR": "10.96.0.0/12",
    },
    "gitops": {"repository": "ssh://git@example.com/x.git", "branch": "main", "path": "clusters/base"},
    "onepassword": {"vault": "base"},
    "worker": {"labels": {"topology.kubernetes.io/zone": "w"}},
    "nodes": [
        {
            "hostname": "base-cp-1",
            "address": "10.5.0.11",
            "role": "controlplane",
            "installDisk": "/dev/sda",
            "interfaces": [{"name": "eth0"}],
        },
        {"hostname": "base-wk-1", "address": "10.5.0.21", "role": "worker", "installDisk": {"model": "QEMU*"}},
    ],
}


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return _GoldenCluster.model_validate(INVENTORY)


def flatten(value: Any, path: Path_ = ()) -> dict[Path_, Any]:
    """Leaf paths of mappings (lists are compared whole: order and content are part of the contract)."""
    if isinstance(value, dict) and value:
        out: dict[Path_, Any] = {}
        for key, sub in value.items():
            out.update(flatten(sub, (*path, str(key))))
        return out
    return {path: value}


def differences(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[Path_, tuple[Any, Any]]:
    a, b = flatten(ours), flatten(theirs)
    pairs = {p: (a.get(p, "<absent>"), b.get(p, "<absent>")) for p in sorted(a.keys() | b.keys())}
    return {p: pair for p, pair in pairs.items() if pair[0] != pair[1]}


# --- 1. the role templates are the generator ------------------------------------------------------------------


@pytest.mark.parametrize("role", ["controlplane", "worker"])
def test_role_template_equals_talos_generator_output(role: str, bundle: SecretsBundle) -> None:
    inp = GeneratorInput(cluster_name="base", endpoint="https://base:6443", kubernetes_version="1.28.0")
    ours = generator_documents(role, inp, bundle.data)  # type: ignore[arg-type]
    assert ours == golden(f"base-{role}.yaml")  # every field, every document, same order


# --- 2. a full render differs from the generator only where the inventory says so -----------------------------

SANS = ["10.5.0.10", "10.5.0.11"]  # the API VIP, then every control-plane address
EXPECTED_CONTROLPLANE: dict[Path_, Any] = {
    ("machine", "certSANs"): SANS,
    ("machine", "install", "image"): "<installer>",
    ("machine", "install", "disk"): "/dev/sda",
    ("cluster", "controlPlane", "endpoint"): "https://base:6443",  # same by construction, see _GoldenCluster
    ("cluster", "network", "cni", "name"): "none",  # Cilium, installed at bootstrap
    ("cluster", "proxy", "disabled"): True,  # Cilium replaces kube-proxy
    ("cluster", "coreDNS", "disabled"): True,  # CoreDNS is installed by Helm at bootstrap
    ("cluster", "apiServer", "certSANs"): SANS,
}
EXPECTED_WORKER: dict[Path_, Any] = {
    ("machine", "install", "image"): "<installer>",
    ("machine", "install", "diskSelector", "model"): "QEMU*",
    ("machine", "nodeLabels", "topology.kubernetes.io/zone"): "w",
    ("cluster", "network", "cni", "name"): "none",
    ("cluster", "proxy", "disabled"): True,
    ("cluster", "coreDNS", "disabled"): True,
}


@pytest.mark.parametrize(
    ("hostname", "role", "expected"),
    [("base-cp-1", "controlplane", EXPECTED_CONTROLPLANE), ("base-wk-1", "worker", EXPECTED_WORKER)],
)
def test_rendered_v1alpha1_equals_generator_except_inventory_fields(
    hostname: str, role: str, expected: dict[Path_, Any], cluster: Cluster, bundle: SecretsBundle
) -> None:
    cfg = render_node(cluster, cluster.node(hostname), bundle)
    ours = next(d for d in cfg.documents if "kind" not in d)
    theirs = golden(f"base-{role}.yaml")[0]
    diff = differences(ours, theirs)
    want = {p: v for p, v in expected.items() if p != ("cluster", "controlPlane", "endpoint")}
    assert set(diff) == set(want)
    for path, value in want.items():
        got = diff[path][0]
        assert got == (installer_image(cluster) if value == "<installer>" else value), path
    assert ours["machine"]["install"]["image"].startswith("factory.talos.dev/metal-installer/")
    assert ours["machine"]["install"]["image"].endswith(":v1.12.11")


def test_multidocs_replace_the_stable_hostname_and_add_the_inventory_documents(
    cluster: Cluster, bundle: SecretsBundle
) -> None:
    cp = render_node(cluster, cluster.node("base-cp-1"), bundle)
    hostname = {"apiVersion": "v1alpha1", "kind": "HostnameConfig"}
    assert golden("base-controlplane.yaml")[1] == {**hostname, "auto": "stable"}
    assert cp.documents[1] == {**hostname, "auto": "off", "hostname": "base-cp-1"}
    assert [str(document_id(d)) for d in cp.documents[2:]] == [
        "v1alpha1/ResolverConfig",
        "v1alpha1/LinkConfig/eth0",
        "v1alpha1/Layer2VIPConfig/10.5.0.10",
    ]
    wk = render_node(cluster, cluster.node("base-wk-1"), bundle)
    assert [str(document_id(d)) for d in wk.documents] == [
        "/v1alpha1",
        "v1alpha1/HostnameConfig",
        "v1alpha1/ResolverConfig",
    ]


# --- 3. secrets land where Talos puts them -------------------------------------------------------------------

# machine-config path -> bundle path, and whether workers carry it
SECRET_MAP: list[tuple[Path_, Path_, bool]] = [
    (("machine", "token"), ("trustdinfo", "token"), True),
    (("machine", "ca", "crt"), ("certs", "os", "crt"), True),
    (("machine", "ca", "key"), ("certs", "os", "key"), False),
    (("cluster", "id"), ("cluster", "id"), True),
    (("cluster", "secret"), ("cluster", "secret"), True),
    (("cluster", "token"), ("secrets", "bootstraptoken"), True),
    (("cluster", "ca", "crt"), ("certs", "k8s", "crt"), True),
    (("cluster", "ca", "key"), ("certs", "k8s", "key"), False),
    (("cluster", "secretboxEncryptionSecret"), ("secrets", "secretboxencryptionsecret"), False),
    (("cluster", "aggregatorCA", "crt"), ("certs", "k8saggregator", "crt"), False),
    (("cluster", "aggregatorCA", "key"), ("certs", "k8saggregator", "key"), False),
    (("cluster", "serviceAccount", "key"), ("certs", "k8sserviceaccount", "key"), False),
    (("cluster", "etcd", "ca", "crt"), ("certs", "etcd", "crt"), False),
    (("cluster", "etcd", "ca", "key"), ("certs", "etcd", "key"), False),
]


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return "<absent>"
        doc = doc[part]
    return doc


@pytest.mark.parametrize("hostname", ["base-cp-1", "base-wk-1"])
def test_secret_mapping(hostname: str, cluster: Cluster, bundle: SecretsBundle) -> None:
    cfg = render_node(cluster, cluster.node(hostname), bundle)
    doc = cfg.documents[0]
    worker = cfg.role == "worker"
    for config_path, bundle_path, on_workers in SECRET_MAP:
        value = _get(bundle.data, bundle_path)
        got = _get(doc, config_path)
        if not worker or on_workers:
            assert got == value, config_path
        elif config_path in (("machine", "ca", "key"), ("cluster", "ca", "key")):
            assert got == "", config_path  # the generator writes an empty key on workers
        else:
            assert got == "<absent>", config_path
        if worker and not on_workers:
            assert value not in cfg.text.decode(), config_path
    # the well-known values of the fixture
    assert doc["machine"]["token"] == "d8cwfa.eyvpi0xwxyarbfid"
    assert doc["cluster"]["token"] == "inn7ol.u4ehnti8qyls9ymo"
