"""The simulator's node network follows Talos v1.12 (tests/sim/simlib/network.py, tests/sim/fidelity/network.md):
a node has the NICs its hardware declares, LinkAliasConfig aliases a link only when its selector matches
exactly one, addresses and the API VIP exist only on links that exist and are up, and a node whose address
lands on no usable link does not answer on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sim.helpers import ok, run
from tests.sim.simlib import network
from tests.sim.simlib.api import Sim

CP1, CP2, CP3, WK1 = "10.5.0.11", "10.5.0.12", "10.5.0.13", "10.5.0.14"
VIP = "10.5.0.10"
DEMO = Path(__file__).resolve().parents[1] / "clusters" / "demo" / "cluster.yaml"
NO_ROUTE = "connect: no route to host"


def _doc(kind: str, **body: Any) -> dict[str, Any]:
    return {"apiVersion": "v1alpha1", "kind": kind, **body}


def bond_docs(address: str, macs: list[str], *, vip: bool = True, driver: str = "virtio_net") -> list[dict[str, Any]]:
    """What k8s_ops/talos/render.py emits for a demo node: one alias per bond member (exact permanent MAC and driver),
    the bond with the node address, a VLAN on it and, on controlplanes, the VIP on the bond."""
    docs = [
        _doc(
            "LinkAliasConfig",
            name=f"bond0-m{i}",
            selector={"match": f'glob("{mac}", mac(link.permanent_addr)) && glob("{driver}", link.driver)'},
        )
        for i, mac in enumerate(macs)
    ]
    docs += [
        _doc(
            "BondConfig",
            name="bond0",
            links=[f"bond0-m{i}" for i in range(len(macs))],
            bondMode="802.3ad",
            lacpRate="fast",
            up=True,
            mtu=9000,
            addresses=[{"address": f"{address}/24"}],
            routes=[{"gateway": "10.5.0.1"}],
        ),
        _doc("VLANConfig", name="bond0.2505", vlanID=2505, parent="bond0", up=True, mtu=1500),
    ]
    if vip:
        docs.append(_doc("Layer2VIPConfig", name=VIP, link="bond0"))
    return docs


def alias_docs(address: str, match: str) -> list[dict[str, Any]]:
    """A single aliased NIC (`interfaces: [{name: net0, deviceSelector: …}]`) carrying the address and VIP."""
    return [
        _doc("LinkAliasConfig", name="net0", selector={"match": match}),
        _doc("LinkConfig", name="net0", up=True, addresses=[{"address": f"{address}/24"}]),
        _doc("Layer2VIPConfig", name=VIP, link="net0"),
    ]


def ready(sim: Sim, tmp_path: Path, **create: Any) -> tuple[Path, Path]:
    """The demo cluster (optionally with other NICs), configured with DHCP configs and etcd running."""
    sim.create(DEMO, **create)
    sim.make_ready(cni=False, kubeconfig=tmp_path / "kubeconfig", talosconfig=tmp_path / "talosconfig")
    return tmp_path / "talosconfig", tmp_path / "kubeconfig"


def apply(sim: Sim, tc: Path, tmp_path: Path, addr: str, docs: list[dict[str, Any]]) -> None:
    """apply-config --mode no-reboot: Talos' network controllers act on a new config without a reboot."""
    path = tmp_path / f"{addr}.yaml"
    path.write_text(sim.machine_config(addr, vip=False, extra_docs=docs))
    ok(sim, "talosctl", "--talosconfig", str(tc), "-n", addr, "apply-config", "--mode", "no-reboot", "-f", str(path))


def links(sim: Sim, *args: str) -> dict[str, dict[str, Any]]:
    out = ok(sim, "talosctl", *args, "get", "links", "-o", "json")
    return {d["metadata"]["id"]: d["spec"] for d in map(json.loads, _json_stream(out))}


def _json_stream(text: str) -> list[str]:
    """`talosctl get -o json` prints one indented object per resource, back to back."""
    dec = json.JSONDecoder()
    out, pos = [], 0
    while pos < len(text.strip()):
        obj, end = dec.raw_decode(text, pos)
        out.append(json.dumps(obj))
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def holder(sim: Sim, tc: Path) -> str:
    """Which node answers on the VIP (its nodename, through the VIP as endpoint)."""
    out = ok(sim, "talosctl", "--talosconfig", str(tc), "-e", VIP, "-n", VIP, "get", "nodename", "-o", "json")
    return str(json.loads(out)["spec"]["nodename"])


# ---- get links --------------------------------------------------------------------------------------------
def test_get_links_in_maintenance_reports_the_inventory_hardware(sim_demo: Sim) -> None:
    got = links(sim_demo, "-n", CP1, "--insecure")
    assert list(got) == ["lo", "enp1s0", "enp2s0"]
    nic = got["enp1s0"]
    assert list(nic) == [
        "index", "type", "linkIndex", "flags", "hardwareAddr", "permanentAddr", "broadcastAddr", "mtu",
        "queueDisc", "operationalState", "kind", "slaveKind", "busPath", "pciID", "driver", "productID",
        "vendorID", "product", "vendor", "linkState", "port", "duplex",
    ]  # fmt: skip
    assert nic["hardwareAddr"] == nic["permanentAddr"] == "52:54:00:05:01:01"
    assert (nic["busPath"], nic["driver"], nic["pciID"], nic["type"], nic["kind"]) == (
        "0000:01:00.0",
        "virtio_net",
        "1AF4:1000",
        "ether",
        "",
    )
    assert (nic["operationalState"], nic["linkState"]) == ("up", True)  # maintenance: DHCP on every NIC
    assert got["enp2s0"]["hardwareAddr"] == "52:54:00:05:01:02"
    assert got["lo"]["type"] == "loopback" and got["lo"]["operationalState"] == "unknown"
    table = ok(sim_demo, "talosctl", "-n", CP1, "--insecure", "get", "links").splitlines()
    assert table[0].split() == [
        "NODE", "NAMESPACE", "TYPE", "ID", "VERSION", "ALIAS", "TYPE", "KIND", "HW", "ADDR", "OPER", "STATE",
        "LINK", "STATE",
    ]  # fmt: skip
    assert "LinkStatus" in table[2] and "52:54:00:05:01:01" in table[2]


def test_default_hardware_is_one_virtio_nic_with_a_stable_mac(sim: Sim) -> None:
    sim.create(nodes=[("a-cp-1", "10.6.0.11", "controlplane")], name="a", endpoint="10.6.0.10")
    first = sim.node("10.6.0.11")["links"]
    sim.create(nodes=[("a-cp-1", "10.6.0.11", "controlplane")], name="a", endpoint="10.6.0.10")
    assert sim.node("10.6.0.11")["links"] == first
    assert [x["name"] for x in first] == ["enp1s0"]
    assert first[0]["hardwareAddr"].startswith("52:54:00:") and first[0]["driver"] == "virtio_net"


def test_explicit_hardware_from_the_api_and_the_cli(sim: Sim, tmp_path: Path) -> None:
    eth0 = {"name": "eth0", "hardwareAddr": "AA:BB:CC:00:00:01", "driver": "e1000e"}
    sim.create(DEMO, hardware={"demo-cp-1": [eth0]})
    (nic,) = sim.node(CP1)["links"]
    assert (nic["name"], nic["hardwareAddr"], nic["pciID"]) == ("eth0", "aa:bb:cc:00:00:01", "8086:10D3")
    assert len(sim.node(CP2)["links"]) == 2  # the others keep what their interfaces imply
    with pytest.raises(ValueError, match="unknown link field"):
        sim.create(DEMO, hardware={CP1: [{"mac": "aa:bb:cc:00:00:01"}]})
    r = run(
        sim,
        "sim",
        "create",
        "--inventory",
        str(DEMO),
        "--link",
        f"{CP1}:name=eno1,hardwareAddr=52:54:00:aa:00:01,busPath=0000:03:00.0",
        "--link",
        f"{CP1}:hardwareAddr=52:54:00:aa:00:02,linkState=false",
    )
    assert r.returncode == 0, r.stderr
    got = sim.node(CP1)["links"]
    assert [(x["name"], x["busPath"], x["linkState"]) for x in got] == [
        ("eno1", "0000:03:00.0", True),
        ("enp2s0", "0000:02:00.0", False),
    ]
    r = run(sim, "sim", "create", "--inventory", str(DEMO), "--link", "nobody:name=eth0")
    assert r.returncode == 1 and "hardware for unknown node(s) nobody" in r.stderr


# ---- LinkAliasConfig ----------------------------------------------------------------------------------------
def test_correct_config_gives_aliases_bond_vlan_addresses_and_the_vip(sim: Sim, tmp_path: Path) -> None:
    tc, kc = ready(sim, tmp_path)
    for addr, k in ((CP1, 1), (CP2, 2), (CP3, 3)):
        apply(sim, tc, tmp_path, addr, bond_docs(addr, [f"52:54:00:05:0{k}:01", f"52:54:00:05:0{k}:02"]))
    got = links(sim, "--talosconfig", str(tc), "-n", CP1)
    assert list(got) == ["lo", "enp1s0", "enp2s0", "bond0", "bond0.2505"]
    assert [got[n].get("alias") for n in ("enp1s0", "enp2s0")] == ["bond0-m0", "bond0-m1"]
    bond = got["bond0"]
    assert (bond["kind"], bond["operationalState"], bond["mtu"], bond["bondMaster"]["mode"]) == (
        "bond",
        "up",
        9000,
        "802.3ad",
    )
    # enslaving gives every port the bond's address; the permanent one stays
    assert (got["enp2s0"]["hardwareAddr"], got["enp2s0"]["permanentAddr"]) == ("52:54:00:05:01:01", "52:54:00:05:01:02")
    assert got["enp1s0"]["slaveKind"] == "bond" and got["enp1s0"]["masterIndex"] == bond["index"]
    assert got["bond0.2505"]["vlan"] == {"vlanID": 2505, "vlanProtocol": "802.1q"}
    net = network.evaluate(sim.node(CP1))
    assert net.link("bond0") is not None and net.link("bond0").addresses == ["10.5.0.11/24"]  # type: ignore[union-attr]
    assert net.answers_on(CP1) and net.vips == {VIP: "bond0"} and net.notes == []
    assert holder(sim, tc) == "demo-cp-1"
    ok(sim, "kubectl", "--kubeconfig", str(kc), "get", "nodes")


def test_alias_matching_no_link_leaves_the_node_unreachable_and_without_the_vip(sim: Sim, tmp_path: Path) -> None:
    # cp-1's NICs are not the ones its inventory (and so its config) names: other MACs
    hw = [{"hardwareAddr": "52:54:00:99:00:01"}, {"hardwareAddr": "52:54:00:99:00:02"}]
    tc, _ = ready(sim, tmp_path, hardware={"demo-cp-1": hw})
    assert holder(sim, tc) == "demo-cp-1"  # DHCP config: reachable, VIP on its first NIC
    apply(sim, tc, tmp_path, CP1, bond_docs(CP1, ["52:54:00:05:01:01", "52:54:00:05:01:02"]))
    net = network.evaluate(sim.node(CP1))
    assert [x.alias for x in net.links if x.alias] == []
    assert "LinkAliasConfig bond0-m0: selector matched no link" in net.notes
    bond = net.link("bond0")
    assert bond is not None and bond.oper == "down"  # the bond exists but has no port
    assert not net.answers_on(CP1) and net.vips == {}
    r = run(sim, "talosctl", "--talosconfig", str(tc), "-n", CP1, "version")
    assert r.returncode == 1 and f"dial tcp {CP1}:50000: {NO_ROUTE}" in r.stderr
    r = run(sim, "talosctl", "--talosconfig", str(tc), "-e", CP2, "-n", CP1, "version")
    assert r.returncode == 1 and NO_ROUTE in r.stderr  # apid cannot proxy to it either
    assert holder(sim, tc) == "demo-cp-2"  # another controlplane takes the VIP over


def test_aliased_link_config_on_a_missing_nic_has_no_address(sim: Sim, tmp_path: Path) -> None:
    tc, kc = ready(sim, tmp_path)
    for addr in (CP1, CP2, CP3):
        apply(sim, tc, tmp_path, addr, alias_docs(addr, 'mac(link.permanent_addr) == "00:1a:2b:3c:4d:5e"'))
    for addr in (CP1, CP2, CP3):
        net = network.evaluate(sim.node(addr))
        assert net.link("net0") is None and all(x.addresses == [] for x in net.links)
        assert f"address {addr}/24: link net0 does not exist" in net.notes and not net.answers_on(addr)
    r = run(sim, "kubectl", "--kubeconfig", str(kc), "get", "nodes")
    assert r.returncode == 1 and f"dial tcp {VIP}:6443: {NO_ROUTE}" in r.stderr  # nobody holds the VIP
    r = run(sim, "talosctl", "--talosconfig", str(tc), "-e", VIP, "-n", VIP, "version")
    assert r.returncode == 1 and NO_ROUTE in r.stderr


def test_alias_matching_two_links_is_skipped_on_v1_12(sim: Sim, tmp_path: Path) -> None:
    tc, _ = ready(sim, tmp_path)
    # a vendor-prefix glob matches both ports of the NIC: Talos v1.12 warns and skips the alias
    apply(sim, tc, tmp_path, CP1, alias_docs(CP1, 'glob("52:54:00:05:01:*", mac(link.permanent_addr))'))
    net = network.evaluate(sim.node(CP1))
    assert net.link("net0") is None and [x.alias for x in net.links if x.alias] == []
    assert "LinkAliasConfig net0: link selector matched multiple links, skipping (enp1s0, enp2s0)" in net.notes
    assert not net.answers_on(CP1) and net.vips == {}
    r = run(sim, "talosctl", "--talosconfig", str(tc), "-n", CP1, "version")
    assert r.returncode == 1 and NO_ROUTE in r.stderr
    assert holder(sim, tc) == "demo-cp-2"


def test_one_port_matching_gives_a_degraded_but_working_bond(sim: Sim, tmp_path: Path) -> None:
    hw = [{"hardwareAddr": "52:54:00:05:01:01"}, {"hardwareAddr": "52:54:00:99:00:02"}]
    tc, _ = ready(sim, tmp_path, hardware={CP1: hw})
    apply(sim, tc, tmp_path, CP1, bond_docs(CP1, ["52:54:00:05:01:01", "52:54:00:05:01:02"]))
    got = links(sim, "--talosconfig", str(tc), "-n", CP1)
    assert got["enp1s0"].get("alias") == "bond0-m0" and "alias" not in got["enp2s0"]
    assert got["enp2s0"]["operationalState"] == "down"  # not configured, not brought up
    assert got["bond0"]["operationalState"] == "up" and holder(sim, tc) == "demo-cp-1"


def test_vip_on_a_link_without_the_node_subnet_is_not_held(sim: Sim, tmp_path: Path) -> None:
    tc, _ = ready(sim, tmp_path)
    docs = bond_docs(CP1, ["52:54:00:05:01:01", "52:54:00:05:01:02"], vip=False)
    apply(sim, tc, tmp_path, CP1, [*docs, _doc("Layer2VIPConfig", name=VIP, link="bond0.2505")])
    net = network.evaluate(sim.node(CP1))
    assert net.answers_on(CP1) and net.vips == {}
    assert holder(sim, tc) == "demo-cp-2"


def test_unplugged_nics_make_a_maintenance_node_unreachable(sim: Sim) -> None:
    sim.create(DEMO, hardware={CP1: [{"linkState": False}]})
    r = run(sim, "talosctl", "-n", CP1, "version", "--insecure")
    assert r.returncode == 1 and f"dial tcp {CP1}:50000: {NO_ROUTE}" in r.stderr
    sim.set_hardware(CP1, [{"linkState": True}])
    assert "Tag:" in ok(sim, "talosctl", "-n", CP1, "version", "--insecure")


# ---- the selector evaluator ----------------------------------------------------------------------------------
LINK = network.Link("enp1s0", 2, hw="52:54:00:05:01:01", perm="52:54:00:05:01:01", driver="virtio_net",
                    bus_path="0000:01:00.0", pci_id="1AF4:1000", alt_names=["enx525400050101"]).cel()  # fmt: skip


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('mac(link.permanent_addr) == "52:54:00:05:01:01"', True),
        ('glob("52:54:00:05:01:*", mac(link.hardware_addr))', True),
        ('glob("52:54:00:05:01:01", mac(link.permanent_addr)) && glob("virtio_net", link.driver)', True),
        ('glob("0000:01:00.0", link.bus_path) && glob("1AF4:1000", link.pciid)', True),
        ('link.driver == "i40e" || link.type == 1', True),
        ("link.type != 1", False),
        ('!(link.driver == "virtio_net")', False),
        ('"enx525400050101" in link.alt_names', True),
        ('glob("52:54:00:05:01:0?", mac(link.permanent_addr))', False),  # go-glob: only `*` is special
        ('link.driver.startsWith("virtio")', True),  # not in the small evaluator: cel-python
    ],
)
def test_link_selector_forms(expr: str, expected: bool) -> None:
    assert network.evaluate_selector(expr, LINK) is expected


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [("", "", True), ("", "a", False), ("*", "", True), ("a*", "abc", True), ("*c", "abc", True),
     ("a*c", "abbc", True), ("a*c", "abd", False), ("a?c", "abc", False), ("a?c", "a?c", True),
     ("[ab]", "a", False)],
)  # fmt: skip
def test_glob_is_go_glob(pattern: str, subject: str, expected: bool) -> None:
    assert network.glob(pattern, subject) is expected


def test_first_alias_wins_a_link(sim: Sim) -> None:
    sim.create(DEMO)
    docs = [
        _doc("LinkAliasConfig", name="a", selector={"match": 'mac(link.permanent_addr) == "52:54:00:05:01:01"'}),
        _doc("LinkAliasConfig", name="b", selector={"match": 'link.bus_path == "0000:01:00.0"'}),
    ]
    node = {**sim.node(CP1), "config": {"yaml": "---\n".join(yaml.safe_dump(d) for d in docs)}}
    net = network.evaluate(node)
    assert [(x.name, x.alias) for x in net.links if x.alias] == [("enp1s0", "a")]
    assert "LinkAliasConfig b: link enp1s0 already has alias a" in net.notes


def test_vlan_needs_its_parent_and_addresses_their_link(sim: Sim) -> None:
    sim.create(DEMO)
    docs = [
        _doc("VLANConfig", name="nope.10", vlanID=10, parent="nope", addresses=[{"address": "10.9.0.2/24"}]),
        _doc("LinkConfig", name="enp1s0", addresses=[{"address": f"{CP1}/24"}]),
        _doc("DummyLinkConfig", name="dummy0", addresses=[{"address": "10.8.0.1/32"}]),
    ]
    node = {**sim.node(CP1), "config": {"yaml": "---\n".join(yaml.safe_dump(d) for d in docs)}}
    net = network.evaluate(node)
    assert [x.name for x in net.links] == ["lo", "enp1s0", "enp2s0", "dummy0"]
    assert "VLANConfig nope.10: parent link nope does not exist" in net.notes
    assert "address 10.9.0.2/24: link nope.10 does not exist" in net.notes
    # a link document switches default DHCP off: the unmentioned NIC stays down, the address is static
    assert net.dhcp_link is None and net.link("enp2s0").oper == "down"  # type: ignore[union-attr]
    assert net.answers_on(CP1) and net.answers_on("10.8.0.1") and not net.answers_on("10.9.0.2")
