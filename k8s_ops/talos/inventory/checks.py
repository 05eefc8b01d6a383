"""Checks pydantic cannot express per field: cross-field, cross-node and cross-cluster rules, on the raw data."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from k8s_ops.core.errors import Problem, field_path
from k8s_ops.core.paths import looks_like_key_material
from k8s_ops.talos.inventory.models import (
    _M,
    _VAR_NAME_RE,
    GENERATED_VARS,
    PATCHES_DIR,
    Network,
    Node,
    resolve_interfaces,
)
from k8s_ops.talos.inventory.problems import aliases, short, unechoed
from k8s_ops.talos.inventory.source import Path_, Source


def _ip(value: Any) -> IPv4Address | IPv6Address | None:
    try:
        return ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        return None


def as_network(value: Any) -> IPv4Network | IPv6Network | None:
    try:
        return ipaddress.ip_network(value) if isinstance(value, str) else None
    except ValueError:
        return None


def items(value: Any) -> Iterator[tuple[int, Any]]:
    return enumerate(value) if isinstance(value, list) else iter(())


def check_semantics(src: Source, dir_name: str, siblings: Sequence[Sibling]) -> list[Problem]:
    out: list[Problem] = []
    P = src.problem

    name = src.get("name")
    if isinstance(name, str) and name != dir_name:
        out.append(P(("name",), f"{short(name)} must equal the cluster directory name {dir_name!r}"))

    # cluster ids and pod CIDRs must be unique across the clusters that mesh together
    cid = src.get("id")
    pod = as_network(src.get("network", "podCIDR"))
    for sib in siblings:
        if isinstance(cid, int) and not isinstance(cid, bool) and sib.id == cid:
            out.append(P(("id",), f"cluster id {cid} is also used by cluster {sib.name!r} ({sib.file})"))
        if pod is not None and sib.pod_cidr is not None and pod.overlaps(sib.pod_cidr):
            out.append(
                P(
                    ("network", "podCIDR"),
                    f"{pod} overlaps the pod CIDR {sib.pod_cidr} of cluster {sib.name!r} ({sib.file})",
                )
            )

    node_cidr = as_network(src.get("network", "nodeCIDR"))
    endpoint = _ip(src.get("endpoint"))
    gateway = _ip(src.get("network", "gateway"))

    # the three cluster CIDRs must be disjoint
    nets = [(k, as_network(src.get("network", k))) for k in ("nodeCIDR", "podCIDR", "serviceCIDR")]
    for i, (k1, n1) in enumerate(nets):
        for k2, n2 in nets[:i]:
            if n1 is not None and n2 is not None and n1.overlaps(n2):
                out.append(P(("network", k1), f"{n1} overlaps network.{k2} {n2}"))

    if node_cidr is not None:
        if endpoint is not None and endpoint not in node_cidr:
            out.append(P(("endpoint",), f"API VIP {endpoint} is outside network.nodeCIDR {node_cidr}"))
        if gateway is not None and gateway not in node_cidr:
            out.append(P(("network", "gateway"), f"gateway {gateway} is outside network.nodeCIDR {node_cidr}"))
    if endpoint is not None and endpoint == gateway:
        out.append(P(("endpoint",), f"API VIP {endpoint} equals network.gateway"))

    # nodes
    hostnames: dict[str, int] = {}
    addresses: dict[Any, int] = {}
    roles: list[Any] = []
    for i, n in items(src.get("nodes")):
        if not isinstance(n, dict):
            continue
        host = n.get("hostname")
        if isinstance(host, str):
            if host in hostnames:
                out.append(
                    P(("nodes", i, "hostname"), f"duplicate hostname {short(host)} (also nodes[{hostnames[host]}])")
                )
            else:
                hostnames[host] = i
        addr = _ip(n.get("address"))
        if addr is not None:
            if addr in addresses:
                out.append(P(("nodes", i, "address"), f"duplicate address {addr} (also nodes[{addresses[addr]}])"))
            else:
                addresses[addr] = i
            if node_cidr is not None and addr not in node_cidr:
                out.append(P(("nodes", i, "address"), f"{addr} is outside network.nodeCIDR {node_cidr}"))
            if addr == endpoint:
                out.append(
                    P(
                        ("endpoint",),
                        f"API VIP {endpoint} equals the address of node {short(host)} (the VIP must be a free address)",
                    )
                )
            if addr == gateway:
                out.append(P(("nodes", i, "address"), f"{addr} equals network.gateway"))
        roles.append(n.get("role"))
        out += _check_interfaces(src, i, n, unique_aliases=_aliases_match_one(src.get("talosVersion")))
        out += _check_volumes(src, i, n)

    if roles and all(r in ("controlplane", "worker") for r in roles):
        cps = roles.count("controlplane")
        if cps == 0:
            out.append(P(("nodes",), "no controlplane node: at least one node needs role: controlplane"))
        elif cps % 2 == 0 and src.get("allowEvenControlPlanes") is not True:
            out.append(
                P(
                    ("nodes",),
                    f"{cps} controlplane nodes: etcd needs an odd number for quorum "
                    "(set allowEvenControlPlanes: true to accept this)",
                )
            )

    # vars
    variables = src.get("vars")
    if isinstance(variables, dict):
        for key in variables:
            if not isinstance(key, str):
                out.append(
                    P(
                        ("vars", key),
                        f"variable name {short(key)} is not a string (YAML reads true/false/null/numbers so); quote it",
                    )
                )
            elif not _VAR_NAME_RE.match(key):
                out.append(
                    P(
                        ("vars", key),
                        f"{short(key)} is not a valid variable name "
                        "(letters, digits and '_', not starting with a digit)",
                    )
                )
            elif key in GENERATED_VARS:
                out.append(P(("vars", key), f"{key} is generated from the inventory and cannot be set in vars"))

    # patch files must exist under patches/
    patch_lists: list[Path_] = [("patches",), ("controlplane", "patches"), ("worker", "patches")]
    patch_lists += [("nodes", i, "patches") for i, _ in items(src.get("nodes"))]
    patches_dir = src.file.parent / PATCHES_DIR
    for where in patch_lists:
        for j, ref in items(src.get(*where)):
            bad_ref = not isinstance(ref, str) or not ref or Path(ref).is_absolute() or ".." in Path(ref).parts
            if not bad_ref and not (patches_dir / ref).is_file():
                out.append(P((*where, j), f"patch file not found: {patches_dir / ref}"))

    # the Image Factory hashes these lists as given: a duplicate changes the schematic ID
    for key, what in (("extensions", "extension"), ("extraKernelArgs", "kernel argument")):
        seen: dict[Any, int] = {}
        for j, value in items(src.get("schematic", key)):
            if not isinstance(value, str):
                continue
            if value in seen:
                out.append(
                    P(
                        ("schematic", key, j),
                        f"duplicate {what} {short(value)} (also {key}[{seen[value]}]): the Image Factory hashes "
                        "the list as given, so the duplicate yields a different schematic ID (and installer image) "
                        "than intended; remove it",
                    )
                )
            else:
                seen[value] = j

    for j, check in items(src.get("upgrade", "healthChecks")):
        if isinstance(check, dict) and isinstance(check.get("expr"), str):
            msg = _cel_error(check["expr"])
            if msg:
                out.append(P(("upgrade", "healthChecks", j, "expr"), msg))
    return out


def _check_interfaces(src: Source, i: int, node: dict[str, Any], *, unique_aliases: bool) -> list[Problem]:
    out: list[Problem] = []
    names: dict[str, int] = {}
    macs: dict[str, Path_] = {}  # exact bond-member MAC -> where it was first selected, across the node
    for j, itf in items(node.get("interfaces")):
        if not isinstance(itf, dict):
            continue
        base: Path_ = ("nodes", i, "interfaces", j)
        name = itf.get("name")
        if isinstance(name, str):
            if name in names:
                out.append(
                    src.problem((*base, "name"), f"duplicate interface {short(name)} (also interfaces[{names[name]}])")
                )
            names[name] = j
        if itf.get("bond") is not None and itf.get("deviceSelector") is not None:
            out.append(
                src.problem(
                    (*base, "deviceSelector"),
                    "an interface is either a bond (bond.members select the links) or one selected link, not both",
                )
            )
        if itf.get("deviceSelector") == {}:
            out.append(src.problem((*base, "deviceSelector"), "empty selector: set hardwareAddr, driver, ..."))
        for k, member in items((itf.get("bond") or {}).get("members") if isinstance(itf.get("bond"), dict) else None):
            if member == {}:
                out.append(src.problem((*base, "bond", "members", k), "empty selector: set hardwareAddr, driver, ..."))
            elif isinstance(member, dict):
                where = (*base, "bond", "members", k)
                out += _check_bond_member(src, where, member, macs, unique_aliases=unique_aliases)
        ids: dict[Any, int] = {}
        for k, vlan in items(itf.get("vlans")):
            if isinstance(vlan, dict) and isinstance(vlan.get("id"), int):
                if vlan["id"] in ids:
                    out.append(
                        src.problem(
                            (*base, "vlans", k, "id"), f"duplicate VLAN id {vlan['id']} (also vlans[{ids[vlan['id']]}])"
                        )
                    )
                ids[vlan["id"]] = k
    return out


_GLOB_CHARS = frozenset("*?[")
_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}(?:(?::[0-9A-Fa-f]{2}){14})?$")  # EUI-48 or IPoIB (20)
_MAC_FIELDS = ("hardwareAddr", "permanentAddr")
_MULTI_MATCH_ALIASES = (1, 13)  # LinkAliasConfig selectors may match several links from Talos v1.13 on


def _aliases_match_one(version: Any) -> bool:
    """Whether this Talos version skips a LinkAliasConfig whose selector does not match exactly one link.

    True before v1.13. A missing or malformed version counts as the supported v1.12 (reported on its own).
    """
    m = re.match(r"^v(\d+)\.(\d+)\.\d+$", version) if isinstance(version, str) else None
    return m is None or (int(m[1]), int(m[2])) < _MULTI_MATCH_ALIASES


def _check_bond_member(
    src: Source, where: Path_, member: dict[str, Any], macs: dict[str, Path_], *, unique_aliases: bool
) -> list[Problem]:
    """A bond member selector must pin one port (rules in the `Bond` docstring); its MAC is selected once per node."""
    out: list[Problem] = []
    pinned = reported = False
    for key in _MAC_FIELDS:
        value = member.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value or '"' in value or "\\" in value:
            reported = True  # the field validator reports it; one problem per mistake
            continue
        if _GLOB_CHARS & set(value):
            if unique_aliases:
                reported = True
                out.append(
                    src.problem(
                        (*where, key),
                        f"{short(value)} is a glob, but on Talos v1.12 a bond member's selector must match exactly one "
                        "link: a MAC glob matches every port of a multi-port NIC, so Talos skips the alias and the "
                        "bond gets no member (the node goes offline). List one member per port, each with its "
                        f'exact MAC, e.g. {{{key}: "f8:f2:1e:20:57:a0"}} and {{{key}: "f8:f2:1e:20:57:a1"}}',
                    )
                )
            continue
        if not _MAC_RE.match(value):
            reported = True
            out.append(
                src.problem(
                    (*where, key), f"{short(value)} is not a MAC address like f8:f2:1e:20:57:a0: it would match no link"
                )
            )
            continue
        pinned = True
        mac = value.lower()
        if mac in macs:
            out.append(
                src.problem(
                    (*where, key),
                    f"MAC {mac} is already a bond member at {field_path(macs[mac])}: each port can be selected once",
                )
            )
        else:
            macs[mac] = where
    bus_path = member.get("busPath")
    if isinstance(bus_path, str) and bus_path and not _GLOB_CHARS & set(bus_path):
        pinned = True
    if unique_aliases and not pinned and not reported:
        given = ", ".join(k for k, v in member.items() if v is not None) or "nothing"
        out.append(
            src.problem(
                where,
                f"this selector ({given}) does not pin one port: driver, pciID and physical are the same for every "
                "port of a NIC, and on Talos v1.12 a bond member's selector must match exactly one link (otherwise "
                "Talos skips the alias and the bond gets no member). Add the port's exact hardwareAddr "
                '(e.g. hardwareAddr: "f8:f2:1e:20:57:a0") or busPath, one member per port',
            )
        )
    return out


def _check_volumes(src: Source, i: int, node: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    seen: dict[str, int] = {}
    for j, vol in items(node.get("volumes")):
        if not isinstance(vol, dict):
            continue
        name = vol.get("name")
        if isinstance(name, str):
            if name in seen:
                out.append(
                    src.problem(
                        ("nodes", i, "volumes", j, "name"),
                        f"duplicate volume {short(name)} (also volumes[{seen[name]}])",
                    )
                )
            seen[name] = j
        if isinstance(vol.get("match"), str):
            msg = _cel_error(vol["match"])
            if msg:
                out.append(src.problem(("nodes", i, "volumes", j, "match"), msg))
        out += _check_volume_size(src, ("nodes", i, "volumes", j), vol)
    return out


def _check_volume_size(src: Source, where: Path_, vol: dict[str, Any]) -> list[Problem]:
    """A UserVolumeConfig partition needs minSize or maxSize, and minSize <= an absolute maxSize.

    siderolabs/talos v1.12.11 pkg/machinery/config/types/block/volume_config.go (ProvisioningSpec.Validate):
    "min size or max size is required", "min size is greater than max size"; sizes parse like go-humanize
    (`100GiB`, `1TB`), and maxSize may be relative (`80%`, block/percentage_size.go).
    """
    from k8s_ops.talos.config_rules import parse_bytes

    out: list[Problem] = []
    raw_min, raw_max = vol.get("minSize"), vol.get("maxSize")
    if raw_min is None and raw_max is None:
        out.append(
            src.problem(
                where,
                "minSize or maxSize is required (Talos refuses a UserVolumeConfig without a size), "
                "e.g. maxSize: 100GiB",
            )
        )
        return out
    sizes: dict[str, int | None] = {}
    for key, raw in (("minSize", raw_min), ("maxSize", raw_max)):
        sizes[key] = None
        if raw is None:
            continue
        text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
        if not isinstance(text, str) or not text:
            out.append(src.problem((*where, key), f"{short(raw)} is not a size like 100GiB"))
            continue
        if key == "maxSize" and text.endswith("%"):
            try:
                pct = float(text[:-1])
            except ValueError:
                pct = -1.0
            if not 0 < pct <= 100:
                out.append(src.problem((*where, key), f"{short(text)} is not a percentage between 0 and 100, e.g. 80%"))
            continue
        try:
            sizes[key] = parse_bytes(text)
        except ValueError as exc:
            hint = " (relative sizes like 80% are for maxSize only)" if text.endswith("%") else ""
            out.append(
                src.problem((*where, key), f"{short(text)} is not a size like 100GiB: {unechoed(str(exc), text)}{hint}")
            )
    low, high = sizes["minSize"], sizes["maxSize"]
    if low is not None and high is not None and low > high:
        # both parsed as sizes: short, and no secret
        out.append(src.problem((*where, "minSize"), f"minSize {raw_min} is greater than maxSize {raw_max}"))
    return out


_CEL_SHOWN = 120  # the parser's message quotes the expression line and a caret


def _cel_error(expr: str) -> str | None:
    """A CEL syntax error message, or None. celpy is imported lazily: only inventories with CEL pay."""
    import celpy.celparser

    from k8s_ops.talos import cel

    try:
        cel.environment().compile(expr)
    except celpy.celparser.CELParseError as exc:
        detail = " ".join(str(exc).split())  # the parser quotes the expression: never key material, never all
        if looks_like_key_material(detail):
            return "not a valid CEL expression (not shown: it looks like key material)"
        return f"not a valid CEL expression: {detail if len(detail) <= _CEL_SHOWN else detail[:_CEL_SHOWN] + '...'}"
    return None


def _lenient(model: type[_M], raw: Any) -> _M | None:
    """`raw` as `model` ignoring unknown top-level keys (already reported), or None if still invalid."""
    if not isinstance(raw, dict):
        return None
    known = aliases(model).keys() | model.model_fields.keys()
    try:
        return model.model_validate({k: v for k, v in raw.items() if k in known})
    except ValidationError:
        return None


def check_links(src: Source) -> list[Problem]:
    """Node address on exactly one link; VLAN MTU within the parent's.

    Runs on every node that validates on its own (with a valid `network`), so these problems are reported
    together with unrelated ones elsewhere in the file.
    """
    out: list[Problem] = []
    network = _lenient(Network, src.get("network"))
    if network is None:
        return out  # reported by the full validation
    for i, raw in items(src.get("nodes")):
        node = _lenient(Node, raw)
        if node is None or not node.interfaces:
            continue
        itfs = resolve_interfaces(node, network)
        for j, itf in enumerate(itfs):
            for k, vlan in enumerate(itf.vlans):
                if vlan.mtu is not None and itf.mtu is not None and vlan.mtu > itf.mtu:
                    out.append(
                        src.problem(
                            ("nodes", i, "interfaces", j, "vlans", k, "mtu"),
                            f"VLAN MTU {vlan.mtu} exceeds the MTU {itf.mtu} of its parent {itf.name}",
                        )
                    )
        if any(itf.dhcp or any(v.dhcp for v in itf.vlans) for itf in itfs):
            continue
        holders = [itf.name for itf in itfs if any(a.ip == node.address for a in itf.addresses or ())]
        holders += [
            itf.vlan_name(v) for itf in itfs for v in itf.vlans if any(a.ip == node.address for a in v.addresses)
        ]
        if len(holders) != 1:
            where = "no interface" if not holders else f"{len(holders)} links ({', '.join(holders)})"
            out.append(
                src.problem(
                    ("nodes", i, "interfaces"),
                    f"the node address {node.address} must be on exactly one link, found on {where}",
                )
            )
    return out


@dataclass(frozen=True)
class Sibling:
    name: str
    file: Path
    id: int | None
    pod_cidr: IPv4Network | IPv6Network | None
