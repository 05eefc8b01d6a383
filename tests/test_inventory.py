"""The cluster inventory: shipped clusters load, every bad input is named (file, field, line), all at once."""

from __future__ import annotations

import copy
import re
from ipaddress import ip_address, ip_interface
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_ops.core import paths
from k8s_ops.core.errors import Problem, ProblemsError
from k8s_ops.talos import inventory
from k8s_ops.talos.inventory import Cluster, Taint, cluster_vars, load_all, load_cluster
from k8s_ops.talos.yamlio import load_documents

REPO_CLUSTERS = paths.repo_root() / "clusters"


# --------------------------------------------------------------------------- helpers


def base(name: str = "lab", cid: int = 7, net: str = "10.9.0") -> dict[str, Any]:
    """A valid inventory: 3 controlplanes + 1 worker, one bonded node, one plain node."""
    return {
        "name": name,
        "id": cid,
        "domain": "lab.example",
        "talosVersion": "v1.12.0",
        "kubernetesVersion": "v1.35.0",
        "endpoint": f"{net}.10",
        "network": {
            "nodeCIDR": f"{net}.0/24",
            "gateway": f"{net}.1",
            "nameservers": [f"{net}.1"],
            "podCIDR": f"10.{100 + cid}.0.0/16",
            "serviceCIDR": f"10.{200 + cid}.0.0/16",
        },
        "gitops": {"repository": "ssh://git@example.com/lab.git", "branch": "main", "path": f"clusters/{name}/flux"},
        "onepassword": {"vault": "lab"},
        "nodes": [
            {
                "hostname": f"{name}-cp-1",
                "address": f"{net}.11",
                "role": "controlplane",
                "installDisk": {"model": "Samsung SSD 870*"},
                "interfaces": [
                    {
                        "name": "bond0",
                        "bond": {
                            "mode": "802.3ad",
                            "members": [
                                {"hardwareAddr": "aa:bb:cc:00:01:a0", "driver": "i40e"},
                                {"hardwareAddr": "aa:bb:cc:00:01:a1", "driver": "i40e"},
                            ],
                        },
                        "mtu": 9000,
                        "vlans": [{"id": 100, "mtu": 1500}],
                    }
                ],
            },
            {"hostname": f"{name}-cp-2", "address": f"{net}.12", "role": "controlplane", "installDisk": "/dev/sda"},
            {"hostname": f"{name}-cp-3", "address": f"{net}.13", "role": "controlplane", "installDisk": "/dev/sda"},
            {"hostname": f"{name}-wk-1", "address": f"{net}.14", "role": "worker", "installDisk": "/dev/nvme0n1"},
        ],
    }


def write(root: Path, name: str, data: dict[str, Any] | str, patches: tuple[str, ...] = ()) -> Path:
    """Write clusters/<name>/cluster.yaml (+ empty patch files); returns the cluster.yaml path."""
    cdir = root / name
    (cdir / "patches").mkdir(parents=True, exist_ok=True)
    for p in patches:
        (cdir / "patches" / p).write_text("machine: {}\n")
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    f = cdir / "cluster.yaml"
    f.write_text(text)
    return f


def problems_of(root: Path, name: str) -> tuple[Problem, ...]:
    with pytest.raises(ProblemsError) as exc:
        load_cluster(name, clusters_dir=root)
    return exc.value.problems


def fields(problems: tuple[Problem, ...]) -> set[str]:
    return {p.field for p in problems}


def only(problems: tuple[Problem, ...], field: str) -> Problem:
    found = [p for p in problems if p.field == field]
    assert len(found) == 1, f"expected one problem at {field}, got {problems}"
    return found[0]


def bad(tmp_path: Path, mutate: Any, name: str = "lab") -> tuple[Path, tuple[Problem, ...]]:
    data = base(name)
    mutate(data)
    f = write(tmp_path, name, data)
    return f, problems_of(tmp_path, name)


# --------------------------------------------------------------------------- shipped clusters


def test_shipped_clusters_load() -> None:
    clusters = load_all(REPO_CLUSTERS)
    assert {"infra", "apps", "demo"} <= set(clusters)
    infra, apps, demo = clusters["infra"], clusters["apps"], clusters["demo"]

    assert (infra.id, infra.domain, infra.gitops.branch) == (1, "monosense.dev", "main")
    assert (apps.id, apps.domain, apps.gitops.branch) == (2, "monosense.io", "release")
    assert infra.api_url == "https://10.25.11.10:6443"
    assert [str(n.address) for n in infra.controlplanes] == ["10.25.11.11", "10.25.11.12", "10.25.11.13"]
    assert [str(n.address) for n in infra.workers] == ["10.25.11.14", "10.25.11.15"]
    assert str(apps.network.node_cidr) == "10.25.13.0/24"
    assert (str(apps.network.pod_cidr), str(apps.network.service_cidr)) == ("10.44.0.0/16", "10.45.0.0/16")
    for c in (infra, apps, demo):
        assert len(c.controlplanes) == 3 and len(c.workers) == 2
        assert c.path == REPO_CLUSTERS / c.name
        assert all(p.is_file() for n in c.nodes for p in c.patch_files(n))
        # realistic bonds: LACP over both ports of a NIC, each pinned by its exact MAC (a Talos v1.12 link
        # alias must match exactly one link), jumbo frames, a VLAN
        macs: list[str] = []
        for n in c.nodes:
            bond = n.interfaces[0].bond
            assert bond is not None and bond.mode == "802.3ad"
            assert n.interfaces[0].mtu == 9000 and n.interfaces[0].vlans
            assert len(bond.members) == 2
            for m in bond.members:
                assert isinstance(m, inventory.DeviceSelector) and m.driver
                assert m.hardware_addr is not None and re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", m.hardware_addr)
                macs.append(m.hardware_addr)
        assert len(set(macs)) == len(macs)
        assert any(v.name == "openebs" for n in c.workers for v in n.volumes)
    assert demo.age_key_file == REPO_CLUSTERS / "demo" / "demo.agekey"
    assert infra.age_key_file is None
    assert infra.secrets_file == REPO_CLUSTERS / "infra" / "talos" / "secrets.sops.yaml"


def test_cluster_vars_follow_operations_contract() -> None:
    infra = load_cluster("infra", clusters_dir=REPO_CLUSTERS)
    apps = load_cluster("apps", clusters_dir=REPO_CLUSTERS)
    v = cluster_vars(infra)
    assert list(v)[:7] == list(inventory.GENERATED_VARS)
    assert v["CLUSTER_NAME"] == "infra" and v["CLUSTER_ID"] == "1"
    assert v["CLUSTER_CIDR"] == "10.25.11.0/24"
    assert v["CLUSTER_POD_CIDR"] == "10.42.0.0/16" and v["CLUSTER_SVC_CIDR"] == "10.43.0.0/16"
    assert v["CLUSTER_API_ENDPOINT"] == "https://10.25.11.10:6443"
    assert v["OBSERVABILITY_ROLE"] == "hub" and v["CLUSTER_BGP_ASN"] == "65001"
    w = cluster_vars(apps)
    assert w["OBSERVABILITY_ROLE"] == "spoke" and w["CLUSTER_LB_CIDR"] == "10.25.13.200/28"
    assert all(isinstance(x, str) for x in (*v.values(), *w.values()))


def test_node_lookup_by_hostname_and_address() -> None:
    infra = load_cluster("infra", clusters_dir=REPO_CLUSTERS)
    assert infra.node("infra-cp-2").address == ip_address("10.25.11.12")
    assert infra.node("10.25.11.14").hostname == "infra-wk-1"
    with pytest.raises(ProblemsError) as exc:
        infra.node("infra-cp-9")
    (p,) = exc.value.problems
    assert "infra-cp-9" in p.message and "infra-cp-1 (10.25.11.11)" in p.message
    assert "infra-wk-2 (10.25.11.15)" in p.message and p.file.endswith("infra/cluster.yaml")


# --------------------------------------------------------------------------- clusters dir outside the repo


def test_clusters_dir_from_env_outside_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = base()
    data["patches"] = ["all.yaml"]
    write(tmp_path, "lab", data, patches=("all.yaml",))
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(tmp_path))
    cluster = load_cluster("lab")
    assert cluster.path == tmp_path / "lab"
    assert cluster.patch_files(cluster.nodes[0]) == (tmp_path / "lab" / "patches" / "all.yaml",)
    assert set(load_all()) == {"lab"}
    # the repo's clusters are not consulted (their ids would not clash anyway, but infra is not visible)
    with pytest.raises(ProblemsError) as exc:
        load_cluster("infra")
    assert exc.value.problems[0].file == str(tmp_path / "infra")
    assert "known clusters" in exc.value.problems[0].message and "lab" in exc.value.problems[0].message


def test_loading_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path, "good", base("good", cid=1, net="10.9.1"))
    data = base("bad", cid=2, net="10.9.2")
    data["id"] = 0
    write(tmp_path, "bad", data)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    load_cluster("good", clusters_dir=tmp_path)
    with pytest.raises(ProblemsError):
        load_cluster("bad", clusters_dir=tmp_path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


# --------------------------------------------------------------------------- bad input, one by one


def test_unknown_keys_with_suggestion(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["nodes"][1]["instalDisk"] = d["nodes"][1].pop("installDisk")
        d["colour"] = "blue"

    f, problems = bad(tmp_path, mutate)
    p = only(problems, "nodes[1].instalDisk")
    assert p.file == str(f) and "unknown key" in p.message and "did you mean 'installDisk'" in p.message
    assert "unknown key 'colour'" in only(problems, "colour").message
    assert only(problems, "nodes[1].installDisk").message == "required key is missing"


def test_missing_keys(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        del d["domain"]
        del d["nodes"][3]["role"]
        del d["network"]["gateway"]

    f, problems = bad(tmp_path, mutate)
    assert {"domain", "nodes[3].role", "network.gateway"} <= fields(problems)
    assert all(p.file == str(f) for p in problems)
    assert only(problems, "domain").message == "required key is missing"


def test_bad_ips_and_cidrs(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["nodes"][2]["address"] = "10.9.0.300"
        d["network"]["podCIDR"] = "10.42.0.0/33"
        d["network"]["serviceCIDR"] = "10.43.0.1/16"  # host bits set
        d["endpoint"] = "vip.lab"

    _, problems = bad(tmp_path, mutate)
    assert "'10.9.0.300' is not a valid IP address" in only(problems, "nodes[2].address").message
    assert "not a valid network" in only(problems, "network.podCIDR").message
    assert "host bits zero" in only(problems, "network.serviceCIDR").message
    assert "not a valid IP address" in only(problems, "endpoint").message


def test_node_address_outside_node_cidr(tmp_path: Path) -> None:
    _, problems = bad(tmp_path, lambda d: d["nodes"][3].update(address="10.9.1.14"))
    assert "outside network.nodeCIDR 10.9.0.0/24" in only(problems, "nodes[3].address").message


def test_duplicate_hostnames_and_addresses(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["nodes"][2]["hostname"] = "lab-cp-1"
        d["nodes"][3]["address"] = "10.9.0.12"

    _, problems = bad(tmp_path, mutate)
    assert "duplicate hostname 'lab-cp-1' (also nodes[0])" in only(problems, "nodes[2].hostname").message
    assert "duplicate address 10.9.0.12 (also nodes[1])" in only(problems, "nodes[3].address").message


def test_vip_equal_to_node_address(tmp_path: Path) -> None:
    _, problems = bad(tmp_path, lambda d: d.update(endpoint="10.9.0.13"))
    assert "equals the address of node 'lab-cp-3'" in only(problems, "endpoint").message


def test_vip_outside_node_cidr(tmp_path: Path) -> None:
    _, problems = bad(tmp_path, lambda d: d.update(endpoint="10.8.0.10"))
    assert "outside network.nodeCIDR" in only(problems, "endpoint").message


def test_no_controlplane(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        for n in d["nodes"]:
            n["role"] = "worker"

    _, problems = bad(tmp_path, mutate)
    assert "no controlplane" in only(problems, "nodes").message


def test_even_controlplanes_need_explicit_allow(tmp_path: Path) -> None:
    _, problems = bad(tmp_path, lambda d: d["nodes"][3].update(role="controlplane"))
    assert "4 controlplane nodes" in only(problems, "nodes").message
    assert "allowEvenControlPlanes" in only(problems, "nodes").message

    data = base()
    data["nodes"][3]["role"] = "controlplane"
    data["allowEvenControlPlanes"] = True
    write(tmp_path, "lab", data)
    assert len(load_cluster("lab", clusters_dir=tmp_path).controlplanes) == 4


def test_unknown_role(tmp_path: Path) -> None:
    _, problems = bad(tmp_path, lambda d: d["nodes"][1].update(role="master"))
    msg = only(problems, "nodes[1].role").message
    assert "unknown role 'master'" in msg and "'controlplane' or 'worker'" in msg


def test_name_must_equal_directory(tmp_path: Path) -> None:
    f = write(tmp_path, "lab", base(name="other"))
    p = only(problems_of(tmp_path, "lab"), "name")
    assert p.file == str(f) and "'other'" in p.message and "'lab'" in p.message and p.line == 1


def test_duplicate_cluster_ids_across_clusters(tmp_path: Path) -> None:
    write(tmp_path, "one", base("one", cid=5, net="10.9.1"))
    f2 = write(tmp_path, "two", base("two", cid=5, net="10.9.2"))
    p = only(problems_of(tmp_path, "two"), "id")
    assert p.file == str(f2) and "cluster id 5 is also used by cluster 'one'" in p.message
    # a sibling that fails to parse does not break the check or the load of a healthy cluster
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "cluster.yaml").write_text("id: [\n")
    with pytest.raises(ProblemsError) as exc:
        load_all(tmp_path)
    assert {p.file for p in exc.value.problems} == {
        str(tmp_path / "broken" / "cluster.yaml"),
        str(tmp_path / "one" / "cluster.yaml"),
        str(f2),
    }


def test_pod_cidrs_must_not_overlap_across_clusters(tmp_path: Path) -> None:
    write(tmp_path, "one", base("one", cid=5, net="10.9.1"))
    data = base("two", cid=6, net="10.9.2")
    data["network"]["podCIDR"] = "10.105.128.0/17"  # inside one's 10.105.0.0/16
    write(tmp_path, "two", data)
    assert (
        "overlaps the pod CIDR 10.105.0.0/16 of cluster 'one'"
        in only(problems_of(tmp_path, "two"), "network.podCIDR").message
    )


def test_missing_cluster_dir_and_file(tmp_path: Path) -> None:
    write(tmp_path, "lab", base())
    (p,) = problems_of(tmp_path, "nope")
    assert p.file == str(tmp_path / "nope") and "cluster directory not found" in p.message and "lab" in p.message
    (tmp_path / "empty").mkdir()
    (p,) = problems_of(tmp_path, "empty")
    assert p.file == str(tmp_path / "empty" / "cluster.yaml") and p.message == "file not found"
    with pytest.raises(ProblemsError) as exc:
        load_all(tmp_path / "absent")
    assert "clusters directory not found" in str(exc.value)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    text = "name: lab\nid: 7\nnodes:\n  - hostname: a\n    address: [10.9.0.11\n"
    f = write(tmp_path, "lab", text)
    (p,) = problems_of(tmp_path, "lab")
    assert p.file == str(f) and p.line is not None and p.line >= 5
    assert p.message.startswith("YAML syntax error")


def test_yaml_not_a_mapping(tmp_path: Path) -> None:
    write(tmp_path, "lab", "- just\n- a list\n")
    (p,) = problems_of(tmp_path, "lab")
    assert "expected a mapping" in p.message and p.line == 1


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    text = yaml.safe_dump(base(), sort_keys=False) + "domain: again.example\n"
    f = write(tmp_path, "lab", text)
    p = only(problems_of(tmp_path, "lab"), "domain")
    assert p.file == str(f) and "duplicate key (first defined on line 3)" in p.message
    assert p.line == len(text.splitlines())


def test_vars_names_and_generated_clash(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["vars"] = {"GOOD_1": "x", "bad-name": "y", "1ST": "z", "CLUSTER_ID": "9", "FLAG": True, "ASN": 65001}

    _, problems = bad(tmp_path, mutate)
    assert "not a valid variable name" in only(problems, "vars.bad-name").message
    assert "not a valid variable name" in only(problems, 'vars["1ST"]').message
    assert "generated" in only(problems, "vars.CLUSTER_ID").message
    assert "quote the value" in only(problems, "vars.FLAG").message
    assert not {"vars.GOOD_1", "vars.ASN"} & fields(problems)


def test_int_vars_become_strings(tmp_path: Path) -> None:
    data = base()
    data["vars"] = {"CLUSTER_BGP_ASN": 65001, "ROLE": "hub"}
    write(tmp_path, "lab", data)
    assert cluster_vars(load_cluster("lab", clusters_dir=tmp_path))["CLUSTER_BGP_ASN"] == "65001"


def test_patch_files_must_exist(tmp_path: Path) -> None:
    data = base()
    data["patches"] = ["here.yaml", "gone.yaml"]
    data["worker"] = {"patches": ["worker-gone.yaml"]}
    data["nodes"][2]["patches"] = ["node-gone.yaml"]
    data["nodes"][3]["patches"] = ["../escape.yaml"]
    f = write(tmp_path, "lab", data, patches=("here.yaml",))
    problems = problems_of(tmp_path, "lab")
    for field in ("patches[1]", "worker.patches[0]", "nodes[2].patches[0]"):
        assert "patch file not found" in only(problems, field).message
    assert "relative" in only(problems, "nodes[3].patches[0]").message
    assert "patches[0]" not in fields(problems)
    assert all(p.file == str(f) for p in problems)


def test_hostnames_must_be_dns_labels(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["nodes"][0]["hostname"] = "Lab_CP_1"
        d["nodes"][1]["hostname"] = "lab-cp-2.lab.example"

    _, problems = bad(tmp_path, mutate)
    assert "not a valid hostname" in only(problems, "nodes[0].hostname").message
    assert "not a valid hostname" in only(problems, "nodes[1].hostname").message


def test_cluster_name_rule(tmp_path: Path) -> None:
    long_name = "a" * 33
    _, problems = bad(tmp_path, lambda d: None, name=long_name)
    assert "at most 32 characters" in only(problems, "name").message
    _, problems = bad(tmp_path, lambda d: None, name="Lab")
    assert "not a valid cluster name" in only(problems, "name").message


def test_versions(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["talosVersion"] = "v1.11.2"
        d["kubernetesVersion"] = "1.35"

    _, problems = bad(tmp_path, mutate)
    assert "targets Talos v1.12.x" in only(problems, "talosVersion").message
    assert "not a version like v1.2.3" in only(problems, "kubernetesVersion").message


def test_cluster_cidrs_must_not_overlap(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["network"]["podCIDR"] = "10.9.0.0/16"  # contains the node subnet
        d["network"]["serviceCIDR"] = "10.9.0.128/25"

    _, problems = bad(tmp_path, mutate)
    assert "overlaps network.nodeCIDR" in only(problems, "network.podCIDR").message
    svc = [p.message for p in problems if p.field == "network.serviceCIDR"]
    assert any("nodeCIDR" in m for m in svc) and any("podCIDR" in m for m in svc)


def test_bad_cluster_id(tmp_path: Path) -> None:
    _, problems = bad(tmp_path, lambda d: d.update(id=256))
    assert "255" in only(problems, "id").message
    _, problems = bad(tmp_path, lambda d: d.update(id=True))
    assert "integer" in only(problems, "id").message


def test_install_disk_path_or_selector(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["nodes"][1]["installDisk"] = "sda"
        d["nodes"][2]["installDisk"] = {"model": "X*", "colour": "red"}

    _, problems = bad(tmp_path, mutate)
    assert "not a device path" in only(problems, "nodes[1].installDisk").message
    assert "unknown key 'colour'" in only(problems, "nodes[2].installDisk.colour").message
    assert len(problems) == 2  # one problem per mistake, not one per union member


def test_all_problems_reported_together_with_lines(tmp_path: Path) -> None:
    text = """\
name: lab
id: 7
domain: lab.example
talosVersion: v1.12.0
kubernetesVersion: v1.35.0
endpoint: 10.9.0.11
network:
  nodeCIDR: 10.9.0.0/24
  gateway: 10.9.0.1
  nameservers: [10.9.0.1]
  podCIDR: 10.42.0.0/16
  serviceCIDR: 10.43.0.0/16
gitops: {repository: ssh://git@example.com/lab.git, branch: main, path: clusters/lab/flux}
onepassword: {vault: lab}
vars: {CLUSTER_NAME: x}
nodes:
  - hostname: lab-cp-1
    address: 10.9.0.11
    role: controlplane
    installDisk: /dev/sda
  - hostname: lab-cp-1
    address: 10.9.9.12
    role: boss
    installDisk: /dev/sda
    extra: 1
"""
    f = write(tmp_path, "lab", text)
    problems = problems_of(tmp_path, "lab")
    got = {(p.field, p.line) for p in problems}
    assert {
        ("endpoint", 6),
        ("vars.CLUSTER_NAME", 15),
        ("nodes[1].hostname", 21),
        ("nodes[1].address", 22),
        ("nodes[1].role", 23),
        ("nodes[1].extra", 25),
    } <= got
    assert all(p.file == str(f) for p in problems)
    # the error message lists them all
    with pytest.raises(ProblemsError) as exc:
        load_cluster("lab", clusters_dir=tmp_path)
    text_out = str(exc.value)
    assert f"{len(problems)} problems found" in text_out and f"{f}:23: nodes[1].role" in text_out


# --------------------------------------------------------------------------- taints, volumes, upgrade


def test_taints_strings_and_objects(tmp_path: Path) -> None:
    data = base()
    data["nodes"][3]["taints"] = [
        "dedicated=gpu:NoSchedule",
        "spot:PreferNoSchedule",
        {"key": "a", "effect": "NoExecute"},
    ]
    write(tmp_path, "lab", data)
    node = load_cluster("lab", clusters_dir=tmp_path).nodes[3]
    assert node.taints == (
        Taint(key="dedicated", value="gpu", effect="NoSchedule"),
        Taint(key="spot", effect="PreferNoSchedule"),
        Taint(key="a", effect="NoExecute"),
    )
    assert [str(t) for t in node.taints] == ["dedicated=gpu:NoSchedule", "spot:PreferNoSchedule", "a:NoExecute"]

    _, problems = bad(tmp_path, lambda d: d["nodes"][3].update(taints=["nocolon", "k=v:Sometimes"]))
    assert "not a taint like" in only(problems, "nodes[3].taints[0]").message
    assert "unknown value 'Sometimes'" in only(problems, "nodes[3].taints[1]").message


def test_volumes(tmp_path: Path) -> None:
    vol = {"name": "openebs", "match": 'disk.model == "TEAM TM8FP6512G"', "minSize": "100GiB"}
    data = base()
    data["nodes"][3]["volumes"] = [vol]
    write(tmp_path, "lab", data)
    (v,) = load_cluster("lab", clusters_dir=tmp_path).nodes[3].volumes
    assert (v.name, v.min_size, v.filesystem) == ("openebs", "100GiB", "xfs")

    def mutate(d: dict[str, Any]) -> None:
        d["nodes"][3]["volumes"] = [vol, dict(vol), {"name": "bad name", "match": "disk.model == "}]

    _, problems = bad(tmp_path, mutate)
    assert "duplicate volume 'openebs'" in only(problems, "nodes[3].volumes[1].name").message
    assert "not a valid volume name" in only(problems, "nodes[3].volumes[2].name").message
    assert "not a valid CEL expression" in only(problems, "nodes[3].volumes[2].match").message


def test_volume_sizes_are_required_and_checked_like_talos(tmp_path: Path) -> None:
    """siderolabs/talos v1.12.11 block/volume_config.go: "min size or max size is required", min <= absolute max."""
    match = 'disk.model == "X"'
    ok = [
        {"name": "a", "match": match, "minSize": "100GiB", "grow": True},
        {"name": "b", "match": match, "maxSize": "80%"},
        {"name": "c", "match": match, "minSize": "1TB", "maxSize": "100%"},
        {"name": "d", "match": match, "minSize": 1073741824, "maxSize": "2GiB"},
    ]
    data = base()
    data["nodes"][3]["volumes"] = ok
    write(tmp_path, "lab", data)
    vols = load_cluster("lab", clusters_dir=tmp_path).nodes[3].volumes
    assert [(v.min_size, v.max_size, v.grow) for v in vols] == [
        ("100GiB", None, True),
        (None, "80%", None),
        ("1TB", "100%", None),
        ("1073741824", "2GiB", None),
    ]

    def mutate(d: dict[str, Any]) -> None:
        d["nodes"][3]["volumes"] = [
            {"name": "a", "match": match},
            {"name": "b", "match": match, "minSize": "2TiB", "maxSize": "100GiB"},
            {"name": "c", "match": match, "minSize": "50%"},
            {"name": "d", "match": match, "maxSize": "lots"},
            {"name": "e", "match": match, "maxSize": "150%"},
        ]

    _, problems = bad(tmp_path, mutate)
    assert only(problems, "nodes[3].volumes[0]").message == (
        "minSize or maxSize is required (Talos refuses a UserVolumeConfig without a size), e.g. maxSize: 100GiB"
    )
    assert only(problems, "nodes[3].volumes[1].minSize").message == "minSize 2TiB is greater than maxSize 100GiB"
    assert "relative sizes like 80% are for maxSize only" in only(problems, "nodes[3].volumes[2].minSize").message
    assert "'lots' is not a size like 100GiB" in only(problems, "nodes[3].volumes[3].maxSize").message
    assert "not a percentage between 0 and 100" in only(problems, "nodes[3].volumes[4].maxSize").message


def test_upgrade_settings(tmp_path: Path) -> None:
    check = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "namespace": "kube-system",
        "name": "cilium",
        "expr": "object.status.numberReady == object.status.desiredNumberScheduled",
    }
    data = base()
    data["upgrade"] = {"healthChecks": [check], "maxUnavailable": 1}
    write(tmp_path, "lab", data)
    up = load_cluster("lab", clusters_dir=tmp_path).upgrade
    assert up is not None and up.max_unavailable == 1 and up.health_checks[0].api_version == "apps/v1"

    def mutate(d: dict[str, Any]) -> None:
        broken = {k: v for k, v in check.items() if k != "expr"}  # without `name` a check selects every object
        d["upgrade"] = {"healthChecks": [dict(check, expr="object.status.("), broken], "maxUnavailable": 0}

    _, problems = bad(tmp_path, mutate)
    assert "not a valid CEL expression" in only(problems, "upgrade.healthChecks[0].expr").message
    assert "a `kind` health check needs expr" in only(problems, "upgrade.healthChecks[1]").message
    assert "greater than or equal to 1" in only(problems, "upgrade.maxUnavailable").message


# --------------------------------------------------------------------------- interfaces


def test_interface_defaults(tmp_path: Path) -> None:
    data = base()
    data["network"]["mtu"] = 1400
    data["nodes"][1]["interfaces"] = [
        {"name": "lan", "deviceSelector": {"hardwareAddr": "aa:bb:cc:00:02:*"}},
        {"name": "storage", "deviceSelector": {"driver": "mlx5_core"}, "addresses": ["172.16.0.12/24"]},
    ]
    write(tmp_path, "lab", data)
    c = load_cluster("lab", clusters_dir=tmp_path)
    (bond,) = c.node_interfaces(c.nodes[0])
    assert bond.kind == "bond" and bond.addresses == (ip_interface("10.9.0.11/24"),)
    assert bond.routes is not None and [(str(r.network), str(r.gateway)) for r in bond.routes] == [
        ("0.0.0.0/0", "10.9.0.1")
    ]
    assert bond.mtu == 9000 and bond.vlan_name(bond.vlans[0]) == "bond0.100" and bond.vlans[0].addresses == ()
    lan, storage = c.node_interfaces(c.nodes[1])
    assert lan.kind == "alias" and lan.mtu == 1400 and lan.addresses == (ip_interface("10.9.0.12/24"),)
    assert storage.addresses == (ip_interface("172.16.0.12/24"),) and storage.routes == ()
    assert c.primary_link(c.nodes[1]) == "lan"
    # no interfaces: Talos default networking (DHCP), nothing to resolve
    assert c.node_interfaces(c.nodes[3]) == () and c.primary_link(c.nodes[3]) is None


def test_interface_problems(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["nodes"][1]["interfaces"] = [
            {"name": "lan", "addresses": ["10.9.0.99/24"], "vlans": [{"id": 5}, {"id": 5}]},
        ]
        d["nodes"][2]["interfaces"] = [
            {"name": "bond0", "bond": {"members": [{}]}, "deviceSelector": {"driver": "i40e"}},
            {"name": "bond0"},
        ]
        d["nodes"][0]["interfaces"][0]["vlans"][0]["mtu"] = 9216

    _, problems = bad(tmp_path, mutate)
    assert "must be on exactly one link, found on no interface" in only(problems, "nodes[1].interfaces").message
    assert "duplicate VLAN id 5" in only(problems, "nodes[1].interfaces[0].vlans[1].id").message
    assert "not both" in only(problems, "nodes[2].interfaces[0].deviceSelector").message
    assert "empty selector" in only(problems, "nodes[2].interfaces[0].bond.members[0]").message
    assert "duplicate interface 'bond0'" in only(problems, "nodes[2].interfaces[1].name").message


def test_vlan_mtu_within_parent(tmp_path: Path) -> None:
    data = base()
    data["nodes"][0]["interfaces"][0]["mtu"] = 1500
    data["nodes"][0]["interfaces"][0]["vlans"][0]["mtu"] = 9000
    write(tmp_path, "lab", data)
    p = only(problems_of(tmp_path, "lab"), "nodes[0].interfaces[0].vlans[0].mtu")
    assert "exceeds the MTU 1500 of its parent bond0" in p.message


# --------------------------------------------------------------------------- merge rules


def test_merge_group_then_node(tmp_path: Path) -> None:
    data = base()
    data["patches"] = ["all.yaml"]
    data["controlplane"] = {"patches": ["cp.yaml"], "labels": {"zone": "m", "tier": "core"}}
    data["worker"] = {
        "patches": ["wk.yaml"],
        "labels": {"zone": "w"},
        "taints": ["dedicated=infra:NoSchedule", "spot:PreferNoSchedule"],
    }
    data["nodes"][0]["patches"] = ["cp-1.yaml"]
    data["nodes"][0]["labels"] = {"tier": "edge"}
    data["nodes"][3]["patches"] = ["wk-1.yaml"]
    data["nodes"][3]["taints"] = ["dedicated=gpu:NoSchedule"]
    write(tmp_path, "lab", data, patches=("all.yaml", "cp.yaml", "wk.yaml", "cp-1.yaml", "wk-1.yaml"))
    c = load_cluster("lab", clusters_dir=tmp_path)
    cp1, cp2, wk1 = c.nodes[0], c.nodes[1], c.nodes[3]

    assert c.node_patches(cp1) == ("all.yaml", "cp.yaml", "cp-1.yaml")
    assert c.node_patches(cp2) == ("all.yaml", "cp.yaml")
    assert c.node_patches(wk1) == ("all.yaml", "wk.yaml", "wk-1.yaml")
    assert c.patch_files(wk1)[-1] == tmp_path / "lab" / "patches" / "wk-1.yaml"
    assert c.node_labels(cp1) == {"zone": "m", "tier": "edge"}  # node beats group
    assert c.node_labels(cp2) == {"zone": "m", "tier": "core"}
    assert [str(t) for t in c.node_taints(wk1)] == ["spot:PreferNoSchedule", "dedicated=gpu:NoSchedule"]
    assert c.node_taints(cp1) == ()


# --------------------------------------------------------------------------- API niceties


def test_models_are_frozen_and_accept_snake_case() -> None:
    infra = load_cluster("infra", clusters_dir=REPO_CLUSTERS)
    with pytest.raises(ValueError, match="frozen"):
        infra.id = 9
    raw = copy.deepcopy(yaml.safe_load((REPO_CLUSTERS / "infra" / "cluster.yaml").read_text()))
    raw["talos_version"] = raw.pop("talosVersion")
    c = Cluster.model_validate(raw)
    assert c.talos_version == "v1.12.0"
    assert c.path == paths.clusters_dir() / "infra"  # not loaded from a directory: the default location


def test_device_selector_renders_as_valid_cel(tmp_path: Path) -> None:
    import celpy

    from k8s_ops.talos.render import link_selector

    infra = load_cluster("infra", clusters_dir=REPO_CLUSTERS)
    bond = infra.node("infra-cp-1").interfaces[0].bond
    assert bond is not None
    member = bond.members[0]
    assert isinstance(member, inventory.DeviceSelector)
    cel = link_selector(member, bond_member=True)
    assert cel == 'glob("f8:f2:1e:20:57:a0", mac(link.permanent_addr)) && glob("i40e", link.driver)'
    celpy.Environment().compile(cel)
    sel = inventory.DeviceSelector(bus_path="0000:01:00.*", physical=True)
    assert link_selector(sel, bond_member=False) == 'glob("0000:01:00.*", link.bus_path) && link.type == 1'
    _, problems = bad(
        tmp_path,
        lambda d: d["nodes"][0]["interfaces"][0]["bond"].update(members=[{"hardwareAddr": 'aa"bb'}, "eth1"]),
    )
    assert "without quotes" in only(problems, "nodes[0].interfaces[0].bond.members[0].hardwareAddr").message


def test_link_checks_reported_alongside_unrelated_problems(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["network"]["mtuu"] = 1  # unknown key elsewhere in the same section
        d["nodes"][0]["interfaces"][0]["vlans"][0]["addresses"] = ["10.9.0.11/24"]  # node address twice
        d["nodes"][3]["role"] = "boss"

    _, problems = bad(tmp_path, mutate)
    assert {"network.mtuu", "nodes[3].role"} <= fields(problems)
    assert "found on 2 links (bond0, bond0.100)" in only(problems, "nodes[0].interfaces").message


def test_non_string_yaml_keys(tmp_path: Path) -> None:
    text = yaml.safe_dump(base(), sort_keys=False) + "vars:\n  true: x\n"
    write(tmp_path, "lab", text)
    problems = problems_of(tmp_path, "lab")
    (p,) = [p for p in problems if p.field.startswith("vars")]
    assert p.field == "vars.True" and "quote it" in p.message and p.line == len(text.splitlines())


def test_inventory_reads_yaml_1_2_like_patches_and_talos(tmp_path: Path) -> None:
    # One dialect for cluster.yaml and patches: `on`/`yes`/`off` are strings (YAML 1.1 read them as booleans).
    data = base()
    data["vars"] = {"FEATURE": "on", "ENABLED": "yes"}
    text = yaml.safe_dump(data, sort_keys=False).replace("'on'", "on").replace("'yes'", "yes")
    assert "FEATURE: on\n" in text
    write(tmp_path, "lab", text)
    assert cluster_vars(load_cluster("lab", clusters_dir=tmp_path))["FEATURE"] == "on"
    assert load_documents("a: on\nb: yes\n") == [{"a": "on", "b": "yes"}]  # a patch reads them the same way


def test_merge_keys_and_anchors_in_the_inventory(tmp_path: Path) -> None:
    text = yaml.safe_dump(base(), sort_keys=False) + "vars:\n  A: &v x\n  B: *v\n"
    text += "upgrade: &u {maxUnavailable: 1}\nworker:\n  labels:\n    <<: {tier: wk}\n    zone: a\n"
    write(tmp_path, "lab", text)
    cluster = load_cluster("lab", clusters_dir=tmp_path)
    assert cluster.vars == {"A": "x", "B": "x"} and cluster.worker.labels == {"tier": "wk", "zone": "a"}


def test_yes_is_not_a_boolean_setting(tmp_path: Path) -> None:
    text = yaml.safe_dump(base(), sort_keys=False) + "allowEvenControlPlanes: yes\n"
    write(tmp_path, "lab", text)
    assert "allowEvenControlPlanes" in fields(problems_of(tmp_path, "lab"))


# --------------------------------------------------------------------------- bond members (Talos v1.12 aliases)


def _members(d: dict[str, Any], *members: Any) -> None:
    d["nodes"][0]["interfaces"][0]["bond"]["members"] = list(members)


MEMBER = "nodes[0].interfaces[0].bond.members"


def test_bond_member_mac_glob_is_rejected_on_v1_12(tmp_path: Path) -> None:
    f, problems = bad(
        tmp_path,
        lambda d: _members(
            d,
            {"hardwareAddr": "f8:f2:1e:20:57:*", "driver": "i40e"},
            {"hardwareAddr": "f8:f2:1e:20:57:a?"},
            {"permanentAddr": "f8:f2:1e:20:57:[ab]0"},
        ),
    )
    p = only(problems, f"{MEMBER}[0].hardwareAddr")
    assert p.file == str(f) and p.line is not None
    assert "'f8:f2:1e:20:57:*' is a glob" in p.message and "exactly one link" in p.message
    assert "every port of a multi-port NIC" in p.message and "one member per port" in p.message
    assert "exact MAC" in p.message
    assert "is a glob" in only(problems, f"{MEMBER}[1].hardwareAddr").message
    assert "is a glob" in only(problems, f"{MEMBER}[2].permanentAddr").message
    # one problem per mistake: the glob member is not also reported as "not pinned"
    assert not {f"{MEMBER}[{k}]" for k in range(3)} & fields(problems)
    assert len(problems) == 3


def test_bond_member_needs_an_exact_per_port_field(tmp_path: Path) -> None:
    f, problems = bad(
        tmp_path,
        lambda d: _members(
            d,
            {"driver": "i40e"},
            {"driver": "i40e", "pciID": "8086:1572", "physical": True},
            {"driver": "i40e", "busPath": "0000:01:00.*"},
        ),
    )
    for k in range(3):
        p = only(problems, f"{MEMBER}[{k}]")
        assert p.file == str(f) and "does not pin one port" in p.message and "exactly one link" in p.message
        assert "hardwareAddr" in p.message
    assert "(driver)" in only(problems, f"{MEMBER}[0]").message
    assert len(problems) == 3

    # an exact busPath or an exact MAC pins a port; plain link names are not selectors
    data = base()
    _members(
        data,
        {"driver": "i40e", "busPath": "0000:01:00.0"},
        {"permanentAddr": "AA:BB:CC:00:01:A1"},
        "enp2s0f0",
    )
    write(tmp_path, "lab", data)
    bond = load_cluster("lab", clusters_dir=tmp_path).nodes[0].interfaces[0].bond
    assert bond is not None and len(bond.members) == 3


def test_bond_member_mac_must_be_a_mac_and_selected_once(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        _members(
            d,
            {"hardwareAddr": "aa:bb:cc:00:01:a0"},
            {"hardwareAddr": "aa:bb:cc:00:01"},  # an octet short: matches no link
            {"hardwareAddr": "AA:BB:CC:00:01:A0"},  # the same port again (MACs compare case-insensitively)
        )
        d["nodes"][1]["interfaces"] = [
            {"name": "bond1", "bond": {"members": [{"permanentAddr": "aa:bb:cc:00:02:a0"}]}},
            # a MAC is selected once per node, across bonds too
            {"name": "bond2", "bond": {"members": [{"hardwareAddr": "aa:bb:cc:00:02:A0"}]}},
        ]

    _, problems = bad(tmp_path, mutate)
    assert "not a MAC address like" in only(problems, f"{MEMBER}[1].hardwareAddr").message
    msg = only(problems, f"{MEMBER}[2].hardwareAddr").message
    assert f"aa:bb:cc:00:01:a0 is already a bond member at {MEMBER}[0]" in msg
    msg = only(problems, "nodes[1].interfaces[1].bond.members[0].hardwareAddr").message
    assert "already a bond member at nodes[1].interfaces[0].bond.members[0]" in msg
    assert len(problems) == 3  # the short MAC is not also "not pinned"


def test_bond_member_glob_rule_is_tied_to_talos_v1_12(tmp_path: Path) -> None:
    # From v1.13 a multi-match alias is possible; the version itself is still unsupported by the renderer.
    def mutate(d: dict[str, Any]) -> None:
        d["talosVersion"] = "v1.13.0"
        _members(d, {"hardwareAddr": "aa:bb:cc:00:01:*"}, {"driver": "i40e"})

    _, problems = bad(tmp_path, mutate)
    assert fields(problems) == {"talosVersion"}


# --------------------------------------------------------------------------- schematic, 1Password


def test_schematic_duplicates_are_rejected(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["schematic"] = {
            "extensions": ["siderolabs/intel-ucode", "siderolabs/iscsi-tools", "siderolabs/intel-ucode"],
            "extraKernelArgs": ["net.ifnames=0", "console=ttyS0", "console=tty0", "net.ifnames=0"],
        }

    f, problems = bad(tmp_path, mutate)
    p = only(problems, "schematic.extensions[2]")
    assert p.file == str(f) and p.line is not None
    assert "duplicate extension 'siderolabs/intel-ucode' (also extensions[0])" in p.message
    assert "schematic ID" in p.message
    p = only(problems, "schematic.extraKernelArgs[3]")
    assert "duplicate kernel argument 'net.ifnames=0' (also extraKernelArgs[0])" in p.message
    assert len(problems) == 2  # console=ttyS0 and console=tty0 differ

    data = base()
    data["schematic"] = {"extensions": ["siderolabs/iscsi-tools", "siderolabs/intel-ucode"]}
    write(tmp_path, "lab", data)
    assert load_cluster("lab", clusters_dir=tmp_path).schematic.extensions == (
        "siderolabs/iscsi-tools",
        "siderolabs/intel-ucode",
    )


def test_onepassword_has_no_item_setting(tmp_path: Path) -> None:
    # the sync names its items itself (kubeconfig-<c>, talosconfig-<c>, sops-age-key-<c>, talos-secrets-<c>)
    f, problems = bad(tmp_path, lambda d: d["onepassword"].update(item="lab-talos"))
    p = only(problems, "onepassword.item")
    assert p.file == str(f) and p.message.startswith("unknown key 'item'") and "vault" in p.message
    assert len(problems) == 1
