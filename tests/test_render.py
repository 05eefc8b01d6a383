"""k8s_ops.talos.render and the talos.render task: inventory + secrets bundle -> per-node multi-document configs."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.core.errors import ProblemsError
from k8s_ops.core.plan import FileWrite
from k8s_ops.talos import secrets as secrets_mod
from k8s_ops.talos import yamlio
from k8s_ops.talos.inventory import Cluster, load_cluster
from k8s_ops.talos.patch import document_id
from k8s_ops.talos.render import RenderedConfig, link_selector, render_cluster, render_node
from k8s_ops.talos.schematic import schematic_id
from k8s_ops.talos.secrets import SecretsBundle, generate_bundle
from k8s_ops.talos.tasks import render
from k8s_ops.talos.yamlio import dump_documents, load_documents

CLUSTER_YAML = """\
name: lab
id: 7
domain: lab.example
talosVersion: v1.12.0
kubernetesVersion: v1.35.0
endpoint: 10.9.0.10
network:
  nodeCIDR: 10.9.0.0/24
  gateway: 10.9.0.1
  nameservers: [10.9.0.53, 1.1.1.1]
  timeservers: [time.cloudflare.com]
  podCIDR: 10.60.0.0/16
  serviceCIDR: 10.61.0.0/16
  mtu: 1500
schematic:
  extensions: [siderolabs/iscsi-tools]
  extraKernelArgs: [net.ifnames=0]
gitops: {repository: "ssh://git@example.com/x.git", branch: main, path: clusters/lab/flux}
onepassword: {vault: lab}
vars:
  SITE: lab-site
patches: [cluster.yaml]
controlplane:
  patches: [cp.yaml]
  labels: {tier: cp}
worker:
  patches: [wk.yaml]
  labels: {tier: wk}
  taints: ["dedicated=storage:NoSchedule"]
nodes:
  - hostname: lab-cp-1
    address: 10.9.0.11
    role: controlplane
    installDisk: /dev/nvme0n1
    interfaces:
      - name: bond0
        bond: {mode: 802.3ad, lacpRate: fast, xmitHashPolicy: layer3+4, miimon: 100,
               members: [{hardwareAddr: "F8:F2:1E:20:57:00", driver: i40e}, {hardwareAddr: "f8:f2:1e:20:57:01"}]}
        mtu: 9000
        vlans: [{id: 2512, mtu: 1500, addresses: [192.168.12.11/24]}]
  - hostname: lab-cp-2
    address: 10.9.0.12
    role: controlplane
    installDisk: {model: "Samsung SSD 870*", size: ">= 200GB"}
    interfaces:
      - name: net0
        deviceSelector: {hardwareAddr: "3c:fd:fe:35:10:*"}
  - hostname: lab-cp-3
    address: 10.9.0.13
    role: controlplane
    installDisk: /dev/sda
    interfaces:
      - name: enp1s0
      - name: enp2s0
        dhcp: true
        routes: [{network: 172.16.0.0/12, gateway: 10.9.0.254, metric: 50}]
  - hostname: lab-wk-1
    address: 10.9.0.14
    role: worker
    installDisk: {serial: "S6PNNS0W112233"}
    labels: {tier: special, disk: nvme}
    taints: ["gpu:NoExecute"]
    interfaces:
      - name: bond0
        bond: {members: [eth0, eth1]}
    volumes:
      - {name: openebs, match: 'disk.model == "TEAM TM8FP6512G"', minSize: 100GiB, filesystem: xfs}
    patches: [node.yaml]
  - hostname: lab-wk-2
    address: 10.9.0.15
    role: worker
    installDisk: /dev/sda
"""

PATCHES = {
    "cluster.yaml": (
        "machine:\n  sysctls:\n    order: cluster\n    site: '{{ vars.SITE }}'\n  certSANs: [cluster.example]\n"
    ),
    "cp.yaml": "machine:\n  sysctls:\n    order: group-cp\ncluster:\n  etcd:\n    advertisedSubnets: [10.9.0.0/24]\n",
    "wk.yaml": "machine:\n  sysctls:\n    order: group-wk\n    host: '{{ node.hostname }}-{{ node.role }}'\n",
    "node.yaml": "machine:\n  sysctls:\n    order: node\n  certSANs: ['{{ node.address }}']\n",
}


def make_cluster(root: Path, yaml_text: str = CLUSTER_YAML, patches: dict[str, str] | None = None) -> Cluster:
    cdir = root / "lab"
    (cdir / "patches").mkdir(parents=True, exist_ok=True)
    (cdir / "cluster.yaml").write_text(yaml_text)
    for name, text in (PATCHES if patches is None else patches).items():
        (cdir / "patches" / name).write_text(text)
    return load_cluster("lab", clusters_dir=root)


@pytest.fixture(scope="module")
def bundle() -> SecretsBundle:
    return generate_bundle()


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return make_cluster(tmp_path)


def rendered(cluster: Cluster, bundle: SecretsBundle) -> dict[str, RenderedConfig]:
    return {r.hostname: r for r in render_cluster(cluster, bundle)}


def by_kind(cfg: RenderedConfig) -> dict[str, dict[str, Any]]:
    return {str(document_id(d)): d for d in cfg.documents}


def main(cfg: RenderedConfig) -> dict[str, Any]:
    return by_kind(cfg)["/v1alpha1"]


# --- output shape -----------------------------------------------------------------------------------------------


def test_text_is_the_documents_and_byte_identical_across_runs(cluster: Cluster, bundle: SecretsBundle) -> None:
    first = rendered(cluster, bundle)
    second = rendered(cluster, bundle)
    assert list(first) == ["lab-cp-1", "lab-cp-2", "lab-cp-3", "lab-wk-1", "lab-wk-2"]
    for name, cfg in first.items():
        assert cfg.text == second[name].text
        assert cfg.text == render_node(cluster, cluster.node(name), bundle).text
        assert load_documents(cfg.text) == cfg.documents
        assert cfg.file_name == f"{name}.yaml"
        assert "LS0t" not in repr(cfg)  # repr never shows the config


def test_the_narrow_emitter_writes_what_pyyaml_writes(cluster: Cluster, bundle: SecretsBundle) -> None:
    # dump_document writes the block structure itself and asks PyYAML only for each distinct scalar: every
    # rendered document and every awkward scalar must come out byte for byte as the PyYAML dumper writes it.
    for cfg in rendered(cluster, bundle).values():
        for doc in cfg.documents:
            assert yamlio.dump_document(doc) == yamlio._pyyaml_dump(doc)
    awkward: list[Any] = ["on", "off", "yes", "0644", "1:20", "2024-01-01", "", " lead", "trail ", "x: y", "- a",
                          "#c", "a #b", "multi\nline", "multi\nline\n", "\n", "tail\n\n", "  indented\nx", "ünï",
                          "null", "~", "1.5", "0x1F", "*a", "&a", "!t", "%p", "@a", "`b", "{x}", "[y]", "a,b", "'q'",
                          '"d"', "x\ny  \nz", "line1\n\nline3", "\t", "-", "--- x", "...", "?", ":", 0, -1, 10**15,
                          True, False, None, {}, [], [[]], [{}], [["a", "b\nc"]], [{"a": "b\nc", "d": ["e"]}]]
    doc = {"top": {str(i): v for i, v in enumerate(awkward)}, "list": awkward, "k" * 200: 1, "on": {1: "x"}}
    assert yamlio.dump_document(doc) == yamlio._pyyaml_dump(doc)
    for value in awkward:
        assert yamlio.dump_document({"k": value, "nested": [{"k": value}]}) == yamlio._pyyaml_dump(
            {"k": value, "nested": [{"k": value}]}
        )


def test_documents_per_role(cluster: Cluster, bundle: SecretsBundle) -> None:
    out = rendered(cluster, bundle)
    assert list(by_kind(out["lab-cp-1"])) == [
        "/v1alpha1",
        "v1alpha1/HostnameConfig",
        "v1alpha1/ResolverConfig",
        "v1alpha1/TimeSyncConfig",
        "v1alpha1/LinkAliasConfig/bond0-m0",
        "v1alpha1/LinkAliasConfig/bond0-m1",
        "v1alpha1/BondConfig/bond0",
        "v1alpha1/VLANConfig/bond0.2512",
        "v1alpha1/Layer2VIPConfig/10.9.0.10",
    ]
    assert list(by_kind(out["lab-wk-1"])) == [
        "/v1alpha1",
        "v1alpha1/HostnameConfig",
        "v1alpha1/ResolverConfig",
        "v1alpha1/TimeSyncConfig",
        "v1alpha1/BondConfig/bond0",
        "v1alpha1/UserVolumeConfig/openebs",
    ]
    # no interfaces: Talos' default networking, no link documents
    assert list(by_kind(out["lab-wk-2"])) == [
        "/v1alpha1",
        "v1alpha1/HostnameConfig",
        "v1alpha1/ResolverConfig",
        "v1alpha1/TimeSyncConfig",
    ]


def test_hostname_resolvers_and_time_are_documents_never_legacy_fields(cluster: Cluster, bundle: SecretsBundle) -> None:
    for cfg in rendered(cluster, bundle).values():
        docs = by_kind(cfg)
        assert docs["v1alpha1/HostnameConfig"] == {
            "apiVersion": "v1alpha1",
            "kind": "HostnameConfig",
            "auto": "off",
            "hostname": cfg.hostname,
        }
        assert "auto: 'off'" in cfg.text.decode()  # quoted: PyYAML would read a bare off as false
        assert docs["v1alpha1/ResolverConfig"]["nameservers"] == [{"address": "10.9.0.53"}, {"address": "1.1.1.1"}]
        assert docs["v1alpha1/TimeSyncConfig"]["ntp"] == {"servers": ["time.cloudflare.com"]}
        assert main(cfg)["machine"]["network"] == {}


def test_cluster_wide_settings(cluster: Cluster, bundle: SecretsBundle) -> None:
    image = f"factory.talos.dev/metal-installer/{schematic_id(cluster)}:v1.12.0"
    for cfg in rendered(cluster, bundle).values():
        m, c = main(cfg)["machine"], main(cfg)["cluster"]
        assert m["type"] == cfg.role
        assert m["install"]["image"] == image
        assert "extraKernelArgs" not in m["install"]  # kernel args live in the schematic on 1.12
        assert m["install"]["grubUseUKICmdline"] is True
        assert m["features"]["kubePrism"] == {"enabled": True, "port": 7445}
        assert m["kubelet"]["image"] == "ghcr.io/siderolabs/kubelet:v1.35.0"
        assert c["network"] == {
            "dnsDomain": "cluster.local",
            "podSubnets": ["10.60.0.0/16"],
            "serviceSubnets": ["10.61.0.0/16"],
            "cni": {"name": "none"},
        }
        assert c["proxy"]["disabled"] is True
        assert c["coreDNS"] == {"disabled": True}
        assert c["clusterName"] == "lab"
        assert c["controlPlane"] == {"endpoint": "https://10.9.0.10:6443"}


def test_controlplane_specifics(cluster: Cluster, bundle: SecretsBundle) -> None:
    cfg = rendered(cluster, bundle)["lab-cp-1"]
    c = main(cfg)["cluster"]
    sans = ["10.9.0.10", "10.9.0.11", "10.9.0.12", "10.9.0.13"]
    assert c["apiServer"]["certSANs"] == sans
    assert main(cfg)["machine"]["certSANs"] == [*sans, "cluster.example"]  # + the cluster patch's SAN
    for part, image in (
        ("apiServer", "kube-apiserver"),
        ("controllerManager", "kube-controller-manager"),
        ("scheduler", "kube-scheduler"),
        ("proxy", "kube-proxy"),
    ):
        assert c[part]["image"] == f"registry.k8s.io/{image}:v1.35.0"
    assert by_kind(cfg)["v1alpha1/Layer2VIPConfig/10.9.0.10"]["link"] == "bond0"
    # workers carry no VIP and no control-plane SANs
    wk = rendered(cluster, bundle)["lab-wk-2"]
    assert not any(d.get("kind") == "Layer2VIPConfig" for d in wk.documents)
    assert main(wk)["machine"]["certSANs"] == ["cluster.example"]
    assert "apiServer" not in main(wk)["cluster"]


def test_install_disk_path_or_selector(cluster: Cluster, bundle: SecretsBundle) -> None:
    out = rendered(cluster, bundle)
    assert main(out["lab-cp-1"])["machine"]["install"]["disk"] == "/dev/nvme0n1"
    assert "diskSelector" not in main(out["lab-cp-1"])["machine"]["install"]
    assert main(out["lab-cp-2"])["machine"]["install"]["diskSelector"] == {
        "size": ">= 200GB",
        "model": "Samsung SSD 870*",
    }
    assert "disk" not in main(out["lab-cp-2"])["machine"]["install"]
    assert main(out["lab-wk-1"])["machine"]["install"]["diskSelector"] == {"serial": "S6PNNS0W112233"}


def test_labels_and_taints(cluster: Cluster, bundle: SecretsBundle) -> None:
    out = rendered(cluster, bundle)
    assert main(out["lab-cp-1"])["machine"]["nodeLabels"] == {
        "node.kubernetes.io/exclude-from-external-load-balancers": "",  # from the generator
        "tier": "cp",
    }
    assert main(out["lab-wk-1"])["machine"]["nodeLabels"] == {"tier": "special", "disk": "nvme"}
    assert main(out["lab-wk-1"])["machine"]["nodeTaints"] == {"dedicated": "storage:NoSchedule", "gpu": "NoExecute"}
    assert "nodeTaints" not in main(out["lab-cp-1"])["machine"]


def test_controlplane_secret_material_never_reaches_a_worker(cluster: Cluster, bundle: SecretsBundle) -> None:
    d = bundle.data
    cp_only = [
        d["certs"]["os"]["key"],
        d["certs"]["k8s"]["key"],
        d["certs"]["k8saggregator"]["key"],
        d["certs"]["k8sserviceaccount"]["key"],
        d["certs"]["etcd"]["key"],
        d["secrets"]["secretboxencryptionsecret"],
    ]
    out = rendered(cluster, bundle)
    for name in ("lab-wk-1", "lab-wk-2"):
        text = out[name].text.decode()
        assert not [v for v in cp_only if v in text]
        m, c = main(out[name])["machine"], main(out[name])["cluster"]
        assert m["ca"] == {"crt": d["certs"]["os"]["crt"], "key": ""}
        assert c["ca"] == {"crt": d["certs"]["k8s"]["crt"], "key": ""}
        assert m["token"] == d["trustdinfo"]["token"] and c["token"] == d["secrets"]["bootstraptoken"]
        for absent in ("aggregatorCA", "serviceAccount", "etcd", "secretboxEncryptionSecret"):
            assert absent not in c
    cp_text = out["lab-cp-1"].text.decode()
    assert all(v in cp_text for v in cp_only)


# --- network documents ---------------------------------------------------------------------------------------


def test_bond_with_selected_members(cluster: Cluster, bundle: SecretsBundle) -> None:
    docs = by_kind(rendered(cluster, bundle)["lab-cp-1"])
    assert docs["v1alpha1/LinkAliasConfig/bond0-m0"]["selector"] == {
        "match": 'glob("f8:f2:1e:20:57:00", mac(link.permanent_addr)) && glob("i40e", link.driver)'
    }
    assert docs["v1alpha1/LinkAliasConfig/bond0-m1"]["selector"] == {
        "match": 'glob("f8:f2:1e:20:57:01", mac(link.permanent_addr))'
    }
    assert docs["v1alpha1/BondConfig/bond0"] == {
        "apiVersion": "v1alpha1",
        "kind": "BondConfig",
        "name": "bond0",
        "links": ["bond0-m0", "bond0-m1"],
        "bondMode": "802.3ad",
        "miimon": 100,  # the inventory's; updelay/downdelay default to Talos' example (no 802.3ad warnings)
        "updelay": 200,
        "downdelay": 200,
        "xmitHashPolicy": "layer3+4",
        "lacpRate": "fast",
        "up": True,
        "mtu": 9000,
        "addresses": [{"address": "10.9.0.11/24"}],
        "routes": [{"gateway": "10.9.0.1"}],
    }
    assert docs["v1alpha1/VLANConfig/bond0.2512"] == {
        "apiVersion": "v1alpha1",
        "kind": "VLANConfig",
        "name": "bond0.2512",
        "vlanID": 2512,
        "parent": "bond0",
        "up": True,
        "mtu": 1500,
        "addresses": [{"address": "192.168.12.11/24"}],
    }


def test_bond_of_named_links_aliased_link_plain_links_and_dhcp(cluster: Cluster, bundle: SecretsBundle) -> None:
    out = rendered(cluster, bundle)
    assert by_kind(out["lab-wk-1"])["v1alpha1/BondConfig/bond0"]["links"] == ["eth0", "eth1"]
    cp2 = by_kind(out["lab-cp-2"])
    selector = cp2["v1alpha1/LinkAliasConfig/net0"]["selector"]
    assert selector == {"match": 'glob("3c:fd:fe:35:10:*", mac(link.hardware_addr))'}
    assert cp2["v1alpha1/LinkConfig/net0"] == {
        "apiVersion": "v1alpha1",
        "kind": "LinkConfig",
        "name": "net0",
        "up": True,
        "mtu": 1500,
        "addresses": [{"address": "10.9.0.12/24"}],
        "routes": [{"gateway": "10.9.0.1"}],
    }
    cp3 = by_kind(out["lab-cp-3"])
    assert list(cp3)[4:] == [
        "v1alpha1/LinkConfig/enp1s0",
        "v1alpha1/LinkConfig/enp2s0",
        "v1alpha1/DHCPv4Config/enp2s0",
        "v1alpha1/Layer2VIPConfig/10.9.0.10",
    ]
    assert cp3["v1alpha1/LinkConfig/enp2s0"]["routes"] == [
        {"destination": "172.16.0.0/12", "gateway": "10.9.0.254", "metric": 50}
    ]
    assert "addresses" not in cp3["v1alpha1/LinkConfig/enp2s0"]
    assert cp3["v1alpha1/Layer2VIPConfig/10.9.0.10"]["link"] == "enp1s0"


def test_user_volumes(cluster: Cluster, bundle: SecretsBundle) -> None:
    vol = by_kind(rendered(cluster, bundle)["lab-wk-1"])["v1alpha1/UserVolumeConfig/openebs"]
    assert vol == {
        "apiVersion": "v1alpha1",
        "kind": "UserVolumeConfig",
        "name": "openebs",
        "provisioning": {"diskSelector": {"match": 'disk.model == "TEAM TM8FP6512G"'}, "minSize": "100GiB"},
        "filesystem": {"type": "xfs"},
    }


def test_link_selector_cel_is_valid_cel(cluster: Cluster) -> None:
    import celpy

    from k8s_ops.talos.inventory import DeviceSelector

    # model_construct: the inventory refuses quotes in globs; the CEL literal must stay valid regardless
    sel = DeviceSelector.model_construct(
        hardware_addr="AA:bb:*", permanent_addr="cc:*", bus_path="0000:01:00.*", pci_id="8086:*",
        driver='we"ird', physical=True,
    )  # fmt: skip
    expr = link_selector(sel, bond_member=False)
    assert expr == (
        'glob("aa:bb:*", mac(link.hardware_addr)) && glob("cc:*", mac(link.permanent_addr)) && '
        'glob("0000:01:00.*", link.bus_path) && glob("we\\"ird", link.driver) && glob("8086:*", link.pciid) && '
        "link.type == 1"
    )
    celpy.Environment().compile(expr)  # raises on a syntax error


def test_rendered_configs_validate_against_the_talos_schema(cluster: Cluster, bundle: SecretsBundle) -> None:
    schema_file = Path(__file__).resolve().parents[2] / "shared" / "reference" / "talos" / "config.schema.json"
    if not schema_file.is_file():
        pytest.skip(f"Talos v1.12 schema not found at {schema_file} (../shared is absent)")
    from k8s_ops.talos.schema import TalosSchema

    schema = TalosSchema(json.loads(schema_file.read_text()))
    for cfg in rendered(cluster, bundle).values():
        problems, _ = schema.validate_documents(cfg.documents, file=cfg.file_name)
        assert problems == []


# --- patches ------------------------------------------------------------------------------------------------


def test_patch_order_cluster_then_group_then_node(cluster: Cluster, bundle: SecretsBundle) -> None:
    out = rendered(cluster, bundle)
    assert main(out["lab-cp-1"])["machine"]["sysctls"] == {"order": "group-cp", "site": "lab-site"}
    wk2 = main(out["lab-wk-2"])["machine"]["sysctls"]
    assert wk2 == {"order": "group-wk", "site": "lab-site", "host": "lab-wk-2-worker"}
    wk1 = main(out["lab-wk-1"])["machine"]
    assert wk1["sysctls"]["order"] == "node"
    assert wk1["certSANs"] == ["cluster.example", "10.9.0.14"]  # lists append in patch order
    assert main(out["lab-cp-1"])["cluster"]["etcd"]["advertisedSubnets"] == ["10.9.0.0/24"]


def test_patches_may_change_or_delete_generated_documents(tmp_path: Path, bundle: SecretsBundle) -> None:
    patches = {
        **PATCHES,
        "cluster.yaml": (
            "apiVersion: v1alpha1\nkind: TimeSyncConfig\n$patch: delete\n---\n"
            "apiVersion: v1alpha1\nkind: ResolverConfig\nnameservers: [{address: 9.9.9.9}]\n---\n"
            "machine:\n  install:\n    wipe: true\n"
        ),
    }
    out = rendered(make_cluster(tmp_path, patches=patches), bundle)
    docs = by_kind(out["lab-wk-2"])
    assert "v1alpha1/TimeSyncConfig" not in docs
    assert docs["v1alpha1/ResolverConfig"]["nameservers"][-1] == {"address": "9.9.9.9"}
    assert docs["/v1alpha1"]["machine"]["install"]["wipe"] is True


def _problems(excinfo: pytest.ExceptionInfo[ProblemsError]) -> list[str]:
    return [str(p) for p in excinfo.value.problems]


def test_undefined_variable_names_file_variable_and_line(tmp_path: Path, bundle: SecretsBundle) -> None:
    patches = {**PATCHES, "wk.yaml": "machine:\n  sysctls:\n    a: '{{ vars.NOPE }}'\n"}
    cluster = make_cluster(tmp_path, patches=patches)
    with pytest.raises(ProblemsError) as err:
        render_cluster(cluster, bundle)
    msgs = _problems(err)
    assert len(msgs) == 2  # both workers, each named
    assert all(str(cluster.patches_dir / "wk.yaml") + ":3:" in m and "NOPE" in m for m in msgs)
    assert any("lab-wk-1" in m for m in msgs) and any("lab-wk-2" in m for m in msgs)


def test_all_template_problems_are_reported_at_once(tmp_path: Path, bundle: SecretsBundle) -> None:
    patches = {
        **PATCHES,
        "cluster.yaml": "machine:\n  a: {{ node.hostname\n",
        "cp.yaml": "machine:\n  a: '{{ .MachineConfig.MachineNetwork.NetworkHostname }}'\n",
        "node.yaml": "- op: add\n  path: /machine/certSANs/-\n  value: x\n",
    }
    with pytest.raises(ProblemsError) as err:
        render_cluster(make_cluster(tmp_path, patches=patches), bundle)
    text = "\n".join(_problems(err))
    assert "cluster.yaml:2: jinja2 syntax error" in text
    assert "cp.yaml:2: Go template syntax" in text and "{% raw %}" in text
    assert text.count("cluster.yaml:2: jinja2 syntax error") == 1  # one file problem, not one per node
    # a JSON6902 patch would reach a multi-document config: Talos' own error, naming the file and node
    with pytest.raises(ProblemsError) as err2:
        render_cluster(make_cluster(tmp_path, patches={**PATCHES, "node.yaml": patches["node.yaml"]}), bundle)
    (only,) = _problems(err2)
    assert "node.yaml" in only
    assert "JSON6902 patches are not supported for multi-document machine configuration" in only
    assert "lab-wk-1" in only


def test_bad_patch_yaml_and_patch_errors_name_the_file(tmp_path: Path, bundle: SecretsBundle) -> None:
    patches = {**PATCHES, "wk.yaml": "machine:\n  nodeLabels:\n    missing: {$patch: delete}\n"}
    with pytest.raises(ProblemsError) as err:
        render_cluster(make_cluster(tmp_path, patches=patches), bundle, ["lab-wk-2"])
    (only,) = _problems(err)
    assert "wk.yaml" in only and "lookup failed" in only and "lab-wk-2" in only


def test_talos_rules_refuse_a_node_and_blame_the_patch_that_broke_them(tmp_path: Path, bundle: SecretsBundle) -> None:
    """config_rules runs after the inventory's documents and after each patch; every finding names the step."""
    patches = {
        **PATCHES,
        "wk.yaml": (
            "apiVersion: v1alpha1\nkind: UserVolumeConfig\nname: openebs\nprovisioning:\n"
            "  diskSelector: {match: 'disk.model == \"TEAM TM8FP6512G\"'}\n  minSize: 500GiB\n  maxSize: 10GiB\n---\n"
            "apiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n"
        ),
    }
    cluster = make_cluster(tmp_path, patches=patches)
    with pytest.raises(ProblemsError) as err:
        render_cluster(cluster, bundle, ["lab-wk-1", "lab-wk-2"])
    found = [(p.file, p.field, p.message) for p in err.value.problems]
    wk = str(cluster.patches_dir / "wk.yaml")
    for host in ("lab-wk-1", "lab-wk-2"):
        refuse = f"(node {host}: Talos refuses this config)"
        assert (wk, "HostnameConfig auto", f"'auto' and 'hostname' cannot be set at the same time {refuse}") in found
    # lab-wk-1 carries the volume from cluster.yaml; the patch breaks its sizes
    assert (wk, "UserVolumeConfig/openebs provisioning.minSize", "min size is greater than max size (node lab-wk-1: "
            "Talos refuses this config)") in found  # fmt: skip
    assert all(p.file == wk for p in err.value.problems)


@pytest.mark.parametrize("name", ["demo", "infra", "apps"])
def test_repository_clusters_render_and_pass_talos_rules(name: str, bundle: SecretsBundle) -> None:
    """Every node of the bundled inventories renders (render runs k8s_ops.talos.config_rules) with no Talos error."""
    from k8s_ops.talos.config_rules import errors_of, validate_documents

    inv = load_cluster(name, clusters_dir=Path(__file__).resolve().parents[1] / "clusters")
    for cfg in render_cluster(inv, bundle):
        assert errors_of(validate_documents(cfg.documents)) == [], cfg.hostname
        for vol in (d for d in cfg.documents if d.get("kind") == "UserVolumeConfig"):
            assert vol["provisioning"]["minSize"] == "100GiB" and vol["provisioning"]["grow"] is True


def test_user_volume_sizes_reach_provisioning(cluster: Cluster, bundle: SecretsBundle) -> None:
    (wk1,) = render_cluster(cluster, bundle, ["lab-wk-1"])
    vol = by_kind(wk1)["v1alpha1/UserVolumeConfig/openebs"]
    assert vol["provisioning"] == {"diskSelector": {"match": 'disk.model == "TEAM TM8FP6512G"'}, "minSize": "100GiB"}


def test_unknown_node_lists_the_known_ones(cluster: Cluster, bundle: SecretsBundle) -> None:
    with pytest.raises(ProblemsError, match=r"unknown node 'nope'; known nodes: lab-cp-1 \(10\.9\.0\.11\)"):
        render_cluster(cluster, bundle, ["nope"])
    (only,) = render_cluster(cluster, bundle, ["10.9.0.15"])
    assert only.hostname == "lab-wk-2"


def test_inventory_shapes_talos_cannot_hold_are_problems(tmp_path: Path, bundle: SecretsBundle) -> None:
    text = CLUSTER_YAML.replace('taints: ["gpu:NoExecute"]', 'taints: ["gpu:NoExecute", "gpu=a:NoSchedule"]')
    cp3_links = (
        "    interfaces:\n      - name: enp1s0\n      - name: enp2s0\n        dhcp: true\n"
        "        routes: [{network: 172.16.0.0/12, gateway: 10.9.0.254, metric: 50}]\n"
    )
    assert cp3_links in text
    cluster = make_cluster(tmp_path, text.replace(cp3_links, ""))
    with pytest.raises(ProblemsError) as err:
        render_cluster(cluster, bundle)
    msgs = _problems(err)
    assert len(msgs) == 2
    assert any("nodes[lab-wk-1]" in m and "one taint per key; 'gpu'" in m for m in msgs)
    assert any("nodes[lab-cp-3].interfaces" in m and "API VIP 10.9.0.10" in m for m in msgs)


def test_yaml_output_quotes_yaml11_lookalikes() -> None:
    docs = [{"auto": "off", "a": "yes", "b": "on", "mac": "10:20:30:40:50:59", "n": "0644"}, {"x": 1}]
    text = dump_documents(docs)
    assert text == "auto: 'off'\na: 'yes'\nb: 'on'\nmac: '10:20:30:40:50:59'\nn: '0644'\n---\nx: 1\n"
    assert load_documents(text) == docs


# --- the task ---------------------------------------------------------------------------------------------------


@pytest.fixture
def task_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundle: SecretsBundle) -> Iterator[dict[str, Any]]:
    """A cluster in a temp clusters dir, build dir in tmp, and a bundle loader that counts its calls."""
    make_cluster(tmp_path / "clusters")
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(tmp_path / "clusters"))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path / "build"))
    calls: list[str] = []

    def fake_load(cluster: Cluster) -> SecretsBundle:
        calls.append(cluster.name)
        return bundle

    monkeypatch.setattr(secrets_mod, "load_bundle", fake_load)
    yield {"build": tmp_path / "build" / "lab", "calls": calls, "clusters": tmp_path / "clusters"}


def test_task_writes_private_files_once_and_reports_changes(
    task_env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    render(Context(), cluster="lab")
    out_dir: Path = task_env["build"]
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == ["lab-cp-1.yaml", "lab-cp-2.yaml", "lab-cp-3.yaml", "lab-wk-1.yaml", "lab-wk-2.yaml"]
    assert stat.S_IMODE(out_dir.stat().st_mode) == 0o700
    assert all(stat.S_IMODE((out_dir / f).stat().st_mode) == 0o600 for f in files)
    assert task_env["calls"] == ["lab"]  # the bundle is loaded (decrypted) once per run
    first = capsys.readouterr().out
    assert f"rendered 5 config(s) to {out_dir}/ (5 new)" in first
    before = {f: (out_dir / f).read_bytes() for f in files}

    render(Context(), cluster="lab")
    assert "(5 unchanged)" in capsys.readouterr().out
    assert {f: (out_dir / f).read_bytes() for f in files} == before

    (out_dir / "lab-wk-2.yaml").write_bytes(b"old\n")
    (out_dir / "retired-node.yaml").write_bytes(b"x\n")
    render(Context(), cluster="lab", node="lab-wk-2")
    out = capsys.readouterr().out
    assert "1 changed" in out and "changed   lab-wk-2.yaml" in out
    assert (out_dir / "lab-wk-2.yaml").read_bytes() == before["lab-wk-2.yaml"]
    render(Context(), cluster="lab")
    assert "retired-node.yaml belongs to no node" in capsys.readouterr().out


def test_task_dry_run_writes_nothing_and_masks_secrets(
    task_env: dict[str, Any], capsys: pytest.CaptureFixture[str], bundle: SecretsBundle
) -> None:
    render(Context(), cluster="lab", dry_run=True)
    out = capsys.readouterr().out
    assert not task_env["build"].exists()
    assert "+++ " in out and "Plan: render the machine configs — cluster lab (5 steps, 0 no-op)" in out
    assert "[1] write lab-cp-1.yaml (new)" in out
    assert "***" in out
    leaked = [s for s in bundle.mask_values() if s.reveal_text() in out]
    assert leaked == []
    assert bundle.data["certs"]["os"]["crt"] in out  # certificates are public and shown


def test_task_out_dir_and_json(task_env: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "cfg"
    render(Context(), cluster="lab", out=str(target), dry_run=True, json=True)
    plan = json.loads(capsys.readouterr().out)
    assert [w["path"] for s in plan["steps"] for w in s["writes"]] == [
        str(target / f"{n}.yaml") for n in ("lab-cp-1", "lab-cp-2", "lab-cp-3", "lab-wk-1", "lab-wk-2")
    ]
    assert all(w["changed"] for s in plan["steps"] for w in s["writes"]) and not target.exists()
    render(Context(), cluster="lab", out=str(target))
    assert (target / "lab-cp-1.yaml").is_file() and stat.S_IMODE(target.stat().st_mode) == 0o700
    capsys.readouterr()
    render(Context(), cluster="lab", out=str(target), dry_run=True, json=True)
    assert all(s["noop"] == "same bytes on disk" for s in json.loads(capsys.readouterr().out)["steps"])


def test_task_writes_nothing_when_any_node_fails(task_env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    (task_env["clusters"] / "lab" / "patches" / "node.yaml").write_text("machine: {a: '{{ nope }}'}\n")
    with pytest.raises(Exit) as exc:
        render(Context(), cluster="lab")
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "node.yaml:1: undefined variable: 'nope' is undefined" in err
    assert "Traceback" not in err
    assert not task_env["build"].exists()


def test_task_bad_inventory_is_a_clean_error(task_env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    bad = CLUSTER_YAML.replace("endpoint: 10.9.0.10", "endpoint: x")
    (task_env["clusters"] / "lab" / "cluster.yaml").write_text(bad)
    with pytest.raises(Exit):
        render(Context(), cluster="lab")
    err = capsys.readouterr().err
    assert "endpoint" in err and "not a valid IP address" in err
    assert task_env["calls"] == [] and not task_env["build"].exists()


def test_task_missing_bundle_hints_gen_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_cluster(tmp_path / "clusters")
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(tmp_path / "clusters"))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path / "build"))
    with pytest.raises(Exit):
        render(Context(), cluster="lab")
    err = capsys.readouterr().err
    assert "no Talos secrets bundle" in err and "invoke talos.gen-secrets --cluster lab" in err
    assert not (tmp_path / "build").exists()


def test_masked_diff_hides_every_secret(bundle: SecretsBundle, tmp_path: Path) -> None:
    key = bundle.data["certs"]["etcd"]["key"]
    pem_line = base64.b64decode(key).decode().splitlines()[1]
    old = f"a: 1\nkey: {key}\n".encode()
    new = f"a: 2\nkey: {key}\npem: {pem_line}\n".encode()
    (tmp_path / "x.yaml").write_bytes(old)
    diff = FileWrite(tmp_path / "x.yaml", new, mask=tuple(bundle.mask_values())).diff()
    assert "-a: 1" in diff and "+a: 2" in diff and "+pem: ***" in diff
    assert key not in diff and pem_line not in diff
