"""Talos' own config validation rules, offline: what `talosctl validate --mode metal --strict` and a node's
ApplyConfiguration reject, with Talos' wording.

The JSON schema says a document is well-formed; it cannot say "a UserVolumeConfig needs minSize or maxSize"
or "HostnameConfig conflicts with machine.network.hostname". Those rules live in Go `Validate` methods, and
`talosctl` may not be installed where the toolkit runs, so they are ported here from siderolabs/talos v1.12.11:

* loading (`pkg/machinery/config/container/container.go` `New`): one v1alpha1 document ("duplicate
  v1alpha1.Config"), no two documents with the same kind and name ("duplicate document: Kind/name"), and no two
  link documents of different kinds with one name ("conflicting documents: LinkConfig/x and BondConfig/x");
* `Container.Validate` (same file): v1alpha1 `Config.Validate`
  (`pkg/machinery/config/types/v1alpha1/v1alpha1_validation.go`, `v1alpha1_{apiserver,controllermanager,
  scheduler,resources}config.go`, `v1alpha1_logging.go`, `pkg/machinery/labels/validate.go`), then every
  document's `Validate` (`types/network/*.go`, `types/block/*.go`, `types/cri/registry_mirror.go`,
  `types/runtime/extensions/service_config.go`), then the `V1Alpha1ConflictValidate` cross-document rules
  (HostnameConfig, ResolverConfig, TimeSyncConfig, VolumeConfig).

`--strict` turns only the v1alpha1 document's warnings into errors (prefixed "warning: "), exactly as Talos
does; a document's own warnings (e.g. BondConfig "miimon was not specified for 802.3ad bond") stay warnings.
A node's ApplyConfiguration validates without strict.

Known gaps (documented in tests/sim/FIDELITY.md, "Talos machine-config validation"): CEL expressions are parsed and
their variable names checked, but not type-checked (cel-go's "found no matching overload" is not reproduced);
RuntimeValidate (disks present on the node, Kubernetes version support) needs a live node and is out of scope;
wireguard keys and deprecated fields such as `machine.disks` partitions get only the checks listed below.

Pure: documents in, findings out. `talos_error` rebuilds the error text Talos prints (hashicorp multierror and
errors.Join formatting) for the simulator.
"""

from __future__ import annotations

import ipaddress
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "RuleFinding",
    "errors_of",
    "parse_bytes",
    "talos_error",
    "validate_documents",
    "warnings_of",
]

Mode = Literal["metal", "cloud", "container"]
Phase = Literal["load", "v1alpha1", "document", "conflict"]


@dataclass(frozen=True)
class RuleFinding:
    """One thing Talos' validation says about a config.

    Attributes:
        document: Talos' document id: `v1alpha1` for the main document, else `Kind` or `Kind/name`.
        field: dotted field path inside the document where the rule looks ("" when the rule is about the whole
            document); ours, Talos names no fields.
        message: Talos' own message for this one error or warning.
        warning: a warning (talosctl prints it as WARNING and goes on), not an error.
        phase: where Talos raises it: `load` (the container refuses the document set), `v1alpha1`, `document`
            or `conflict` (a document against the legacy v1alpha1 fields).
        group: Talos wraps some errors of the v1alpha1 document as one (e.g. "invalid machine node labels");
            the wrapper's prefix, kept apart so `talos_error` rebuilds the nested text.
        index: position of the document in the input.
    """

    document: str
    field: str
    message: str
    warning: bool = False
    phase: Phase = "document"
    group: str = ""
    index: int = 0

    @property
    def text(self) -> str:
        """The message as one line, with its group prefix."""
        return f"{self.group}: {self.message}" if self.group else self.message

    def __str__(self) -> str:
        where = f"{self.document} {self.field}".strip()
        kind = "warning" if self.warning else "error"
        return f"{where}: {kind}: {self.text}"


def errors_of(findings: Sequence[RuleFinding]) -> list[RuleFinding]:
    return [f for f in findings if not f.warning]


def warnings_of(findings: Sequence[RuleFinding]) -> list[RuleFinding]:
    return [f for f in findings if f.warning]


# --- small helpers -------------------------------------------------------------------------------------------

_NAMED_KINDS = frozenset(
    {
        "ExistingVolumeConfig", "RawVolumeConfig", "SwapVolumeConfig", "UserVolumeConfig", "VolumeConfig",
        "RegistryAuthConfig", "RegistryMirrorConfig", "RegistryTLSConfig", "ExtensionServiceConfig",
        "PCIDriverRebindConfig", "BondConfig", "BridgeConfig", "DHCPv4Config", "DHCPv6Config", "DummyLinkConfig",
        "EthernetConfig", "HCloudVIPConfig", "Layer2VIPConfig", "LinkAliasConfig", "LinkConfig",
        "NetworkRuleConfig", "StaticHostConfig", "VLANConfig", "WireguardConfig", "KmsgLogConfig",
        "TrustedRootsConfig",
    }
)  # fmt: skip
# network/link.go conflictingLinkKinds: one link name, one link document kind
_LINK_KINDS = ("BondConfig", "BridgeConfig", "DummyLinkConfig", "LinkConfig", "VLANConfig", "WireguardConfig")
_CONFLICTS: dict[str, tuple[str, ...]] = {k: tuple(o for o in _LINK_KINDS if o != k) for k in _LINK_KINDS}
_CONFLICTS["Layer2VIPConfig"] = ("HCloudVIPConfig",)
_CONFLICTS["HCloudVIPConfig"] = ("Layer2VIPConfig",)


def _doc_id(doc: Mapping[str, Any]) -> str:
    """container.go docID: `Kind` or `Kind/name` for named kinds."""
    kind = str(doc.get("kind"))
    if kind in _NAMED_KINDS:
        return f"{kind}/{_str(doc.get('name'))}"
    return kind


def _str(value: Any) -> str:
    """A scalar as Go's decoder would hold it in a string field ("" when absent)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _get(doc: Any, *path: str) -> Any:
    node = doc
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _int(value: Any) -> int:
    """An integer field (0 when absent or not an integer, as Go's zero value)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _set(value: Any) -> bool:
    """Go's non-zero: present and not empty."""
    return value is not None and value != "" and value != [] and value != {}


def _multierror(messages: Sequence[str]) -> str:
    """hashicorp/go-multierror ListFormatFunc."""
    if len(messages) == 1:
        return f"1 error occurred:\n\t* {messages[0]}\n\n"
    points = "\n\t".join(f"* {m}" for m in messages)
    return f"{len(messages)} errors occurred:\n\t{points}\n\n"


def _go_quote(value: str) -> str:
    """Go's %q for printable strings."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- sizes (github.com/dustin/go-humanize ParseBytes, used by block ByteSize) -------------------------------

_BYTE_UNITS: dict[str, int] = {"": 1, "b": 1}
for _i, (_iec, _si) in enumerate((("ki", "k"), ("mi", "m"), ("gi", "g"), ("ti", "t"), ("pi", "p"), ("ei", "e")), 1):
    _BYTE_UNITS[_iec] = _BYTE_UNITS[_iec + "b"] = 1024**_i
    _BYTE_UNITS[_si] = _BYTE_UNITS[_si + "b"] = 1000**_i


def parse_bytes(text: str) -> int:
    """Bytes in a size like `100GiB`, `1.5TB`, `500M` (humanize.ParseBytes); ValueError with humanize's message."""
    digits = 0
    for ch in text:
        if not (ch.isdigit() or ch in ".,"):
            break
        digits += 1
    number = text[:digits].replace(",", "")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{number}": invalid syntax') from None
    unit = text[digits:].strip().lower()
    if unit not in _BYTE_UNITS:
        raise ValueError(f"unhandled size name: {unit}")
    value *= _BYTE_UNITS[unit]
    if value >= 2.0**64:
        raise ValueError(f"too large: {text}")
    return math.floor(value)


def _percentage(text: str) -> float:
    """block PercentageSize.UnmarshalText."""
    if not text.endswith("%"):
        raise ValueError("percentage must end with '%'")
    try:
        value = float(text[:-1])
    except ValueError:
        raise ValueError(
            f'invalid percentage value: strconv.ParseFloat: parsing "{text[:-1]}": invalid syntax'
        ) from None
    if value < 0 or value > 100:
        raise ValueError(f"percentage must be between 0 and 100, got {value:g}")
    return value


# --- CEL (pkg/machinery/cel/celenv/celenv.go environments) ---------------------------------------------------

_UNIT_CONSTANTS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "kB", "MB", "GB", "TB", "PB", "EB")
_CEL_DISK_VARS = frozenset({"disk", "system_disk", *_UNIT_CONSTANTS})
_CEL_LINK_VARS = frozenset({"link"})
_CEL_BUILTINS = frozenset(
    {"true", "false", "null", "in", "int", "uint", "double", "string", "bool", "bytes", "list", "map", "type",
     "dyn", "null_type"}
)  # fmt: skip
_CEL_MACROS = ("all", "exists", "exists_one", "map", "filter")
_CEL_TOKEN = re.compile(
    r"""(?P<str>[rRbB]*("{3}[\s\S]*?"{3}|'{3}[\s\S]*?'{3}|"(\\.|[^"\\])*"|'(\\.|[^'\\])*'))"""
    r"|(?P<num>\d[\w.]*)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<ws>\s+)|(?P<op>.)"
)


def _cel_error(expr: str, variables: frozenset[str]) -> str | None:
    """cel-go's compile error text for syntax errors and undeclared references; None when it compiles.

    Type checking (overloads) is not reproduced: see the module docstring.
    """
    import celpy.celparser

    from k8s_ops.talos import cel

    try:
        cel.environment().compile(expr)
    except celpy.celparser.CELParseError as exc:
        # cel-go names the ANTLR token it expected; celpy only gives the position (wording: assumption)
        line, col = getattr(exc, "line", None) or 1, getattr(exc, "column", None) or 1
        return _cel_located(expr, int(line), int(col), "Syntax error: invalid expression")
    tokens = [(m.lastgroup, m.group(), m.start()) for m in _CEL_TOKEN.finditer(expr) if m.lastgroup != "ws"]
    bound: set[str] = set()
    for i, (kind, text, _) in enumerate(tokens):
        macro = kind == "ident" and text in _CEL_MACROS and i >= 1 and tokens[i - 1][1] == "."
        if macro and i + 2 < len(tokens) and tokens[i + 1][1] == "(" and tokens[i + 2][0] == "ident":
            bound.add(tokens[i + 2][1])
    errors: list[str] = []
    for i, (kind, text, pos) in enumerate(tokens):
        if kind != "ident" or text in _CEL_BUILTINS or text in variables or text in bound:
            continue
        if i >= 1 and tokens[i - 1][1] == ".":
            continue  # a field or method
        if i + 1 < len(tokens) and tokens[i + 1][1] == "(":
            continue  # a function call: functions are checked with types, which we do not do
        line = expr.count("\n", 0, pos) + 1
        col = pos - (expr.rfind("\n", 0, pos) + 1) + 1
        errors.append(_cel_located(expr, line, col, f"undeclared reference to '{text}' (in container '')"))
    return "\n".join(errors) if errors else None


def _cel_located(expr: str, line: int, col: int, message: str) -> str:
    """cel-go common.Errors.ToDisplayString for one error."""
    source = expr.splitlines()[line - 1] if expr.splitlines() else ""
    return f"ERROR: <input>:{line}:{col}: {message}\n | {source}\n | {'.' * (col - 1)}^"


# --- IP parsing with Go's wording ----------------------------------------------------------------------------


def _parse_addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _parse_prefix(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """netip.ParsePrefix: address/bits (host bits allowed)."""
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        return None


def _subnet_or_address(text: str) -> bool:
    """siderolabs/net ParseSubnetOrAddress."""
    return (_parse_prefix(text) if "/" in text else _parse_addr(text)) is not None


def _ip_or_cidr_error(text: str) -> str | None:
    """v1alpha1_validation.go validateIPOrCIDR."""
    if "/" in text:
        return None if _parse_prefix(text) is not None else f"invalid CIDR address: {text}"
    return None if _parse_addr(text) is not None else f"failed to parse IP address {_go_quote(text)}"


def _endpoint_uri_error(text: str) -> str | None:
    """siderolabs/net ValidateEndpointURI."""
    try:
        u = urllib.parse.urlsplit(text)
        port = u.port
    except ValueError as exc:
        return f"parse {_go_quote(text)}: {exc}"
    if u.netloc.count(":") > 2 and ("[" not in u.netloc or "]" not in u.netloc):
        return "IPv6 addresses MUST be enclosed by square brackets"
    if not u.hostname:
        return "hostname must not be blank"
    if port is not None and not 1 <= port <= 65535:
        return "port number must be between 1 and 65535"  # assumption: wording of validatePortNumber
    return None


# --- the collector -------------------------------------------------------------------------------------------


class _Doc:
    """Collects one document's findings in Talos' order."""

    def __init__(self, doc_id: str, index: int, phase: Phase) -> None:
        self.doc_id = doc_id
        self.index = index
        self.phase: Phase = phase
        self.findings: list[RuleFinding] = []

    def err(self, field: str, message: str, *, group: str = "") -> None:
        self.findings.append(RuleFinding(self.doc_id, field, message, False, self.phase, group, self.index))

    def warn(self, field: str, message: str) -> None:
        self.findings.append(RuleFinding(self.doc_id, field, message, True, self.phase, "", self.index))


# --- v1alpha1 (pkg/machinery/config/types/v1alpha1/v1alpha1_validation.go) -----------------------------------

_MACHINE_TYPES = {"init": "init", "controlplane": "controlplane", "worker": "worker", "join": "worker", "": "worker"}
_PROTECTED_KUBELET_FIELDS = (
    "apiVersion",
    "authentication",
    "authorization",
    "cgroupRoot",
    "kind",
    "kubeletCgroups",
    "port",
    "protectKernelDefaults",
    "resolvConf",
    "rotateCertificates",
    "systemCgroups",
    "staticPodPath",
    "seccompDefault",
)  # fmt: skip  pkg/machinery/kubelet/kubelet.go ProtectedConfigurationFields
_TALOS_ROLES = ("os:admin", "os:operator", "os:reader", "os:etcd:backup", "os:impersonator")
_ADDRESS_SORT = ("v1", "v2")
_DNS_NAME = re.compile(r"^([a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})(\.[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})*[._]?$")
_KUBESPAN_MIN_MTU = 1280


def _is_valid_dns_name(name: str) -> bool:
    return bool(name) and len(name) - name.count(".") <= 255 and bool(_DNS_NAME.match(name))


def _machine_type(raw: Any) -> str:
    """machine.ParseType: init, controlplane, worker ("join" and "" too), else unknown."""
    return _MACHINE_TYPES.get(_str(raw), "unknown")


def _validate_v1alpha1(doc: Mapping[str, Any], c: _Doc, mode: Mode, strict: bool) -> None:
    machine = doc.get("machine")
    if not isinstance(machine, Mapping):
        c.err("machine", "machine instructions are required")
        return
    mtype = _machine_type(machine.get("type"))
    controlplane = mtype in ("init", "controlplane")
    _validate_cluster(doc.get("cluster"), c, controlplane=controlplane)

    install = machine.get("install")
    if mode in ("metal",):
        if not isinstance(install, Mapping):
            c.err("machine.install", f"install instructions are required in {_go_quote(mode)} mode")
        else:
            if not _set(install.get("disk")) and not isinstance(install.get("diskSelector"), Mapping):
                c.err("machine.install", "either install disk or diskSelector should be defined")
            if _list(install.get("extraKernelArgs")) and install.get("grubUseUKICmdline") is True:
                c.err(
                    "machine.install.extraKernelArgs",
                    "install.extraKernelArgs and install.grubUseUKICmdline can't be used together",
                )
    if mode == "container":
        host_dns = _map(_get(machine, "features", "hostDNS"))
        if host_dns.get("enabled") is not True:
            c.err(
                "machine.features.hostDNS.enabled",
                "feature HostDNS should be enabled in container mode (.machine.features.hostDNS.enabled)",
            )
        if host_dns.get("forwardKubeDNSToHost") is not True:
            c.err(
                "machine.features.hostDNS.forwardKubeDNSToHost",
                "feature HostDNS should forward kube-dns to host in container mode "
                "(.machine.features.hostDNS.forwardKubeDNSToHost)",
            )

    raw_type = _str(machine.get("type"))
    if mtype != "unknown" and mtype != raw_type:
        c.warn("machine.type", f"use {_go_quote(mtype)} instead of {_go_quote(raw_type)} for machine type")

    ca = machine.get("ca")
    issuing = isinstance(ca, Mapping)
    accepted = _list(machine.get("acceptedCAs"))
    if not issuing and not accepted:
        c.err("machine.ca", "issuing CA or some accepted CAs are required (.machine.ca, machine.acceptedCAs)")
    cluster = _map(doc.get("cluster"))
    if controlplane:
        _validate_cni(_map(_get(cluster, "network", "cni")), c)
        if not issuing:
            c.err("machine.ca", "issuing CA is required (.machine.ca)")
        elif not _set(_map(ca).get("key")):
            c.err("machine.ca.key", "issuing CA key is required for controlplane nodes (.machine.ca.key)")
    elif mtype == "worker":
        for device in _list(_get(machine, "network", "interfaces")):
            device = _map(device)
            vips = [device.get("vip")] + [_map(v).get("vip") for v in _list(device.get("vlans"))]
            for vip in vips:
                if vip is not None:
                    c.err("machine.network.interfaces", "virtual (shared) IP is not allowed on non-controlplane nodes")
        if issuing:
            if _set(_map(ca).get("key")):
                c.err(
                    "machine.ca.key", "issuing Talos API CA key is not allowed on non-controlplane nodes (.machine.ca)"
                )
            if not _set(_map(ca).get("crt")) and not accepted:
                c.err(
                    "machine.ca.crt",
                    "trusted CA certificates are required on non-controlplane nodes "
                    "(.machine.ca.crt, .machine.acceptedCAs)",
                )
        if _set(_get(cluster, "ca", "key")):
            c.err(
                "cluster.ca.key", "issuing Kubernetes API CA key is not allowed on non-controlplane nodes (.cluster.ca)"
            )
    else:
        c.err("machine.type", f"unknown machine type {_go_quote(raw_type)}")

    network = machine.get("network")
    if isinstance(network, Mapping):
        _validate_legacy_devices(_list(network.get("interfaces")), c)
        kubespan = _map(network.get("kubespan"))
        if kubespan.get("enabled") is True:
            mtu = kubespan.get("mtu")
            if isinstance(mtu, int) and mtu < _KUBESPAN_MIN_MTU:
                c.err("machine.network.kubespan.mtu", f"kubespan link MTU must be at least {_KUBESPAN_MIN_MTU}")

    for i, disk in enumerate(_list(machine.get("disks"))):
        if disk is None:
            c.err(f"machine.disks[{i}]", f"machine.disks[{i}] is null")
            continue
        partitions = _list(_map(disk).get("partitions"))
        for j, part in enumerate(partitions):
            if not _set(_map(part).get("size")) and j != len(partitions) - 1:
                c.err(
                    f"machine.disks[{i}].partitions[{j}]",
                    f"partition for disk {_go_quote(_str(_map(disk).get('device')))} is set to occupy full disk, "
                    "but it's not the last partition in the list",
                )

    kubelet = machine.get("kubelet")
    if isinstance(kubelet, Mapping):
        for cidr in (_str(x).removeprefix("!") for x in _list(_get(kubelet, "nodeIP", "validSubnets"))):
            if not _subnet_or_address(cidr):
                c.err(
                    "machine.kubelet.nodeIP.validSubnets",
                    f"kubelet nodeIP subnet is not valid: {_go_quote(cidr)}",
                )
        extra = _map(kubelet.get("extraConfig"))
        for key in _PROTECTED_KUBELET_FIELDS:
            if key in extra:
                c.err(
                    f"machine.kubelet.extraConfig.{key}",
                    f"kubelet configuration field {_go_quote(key)} can't be overridden",
                )

    for label in ("EPHEMERAL", "STATE"):
        enc = _get(machine, "systemDiskEncryption", label.lower())
        if not isinstance(enc, Mapping):
            continue
        keys = _list(enc.get("keys"))
        where = f"machine.systemDiskEncryption.{label.lower()}.keys"
        if not keys:
            c.err(where, f"partition {_go_quote(label)}: no encryption keys provided")
        slots: set[int] = set()
        for enc_key in map(_map, keys):
            slot = _int(enc_key.get("slot"))
            if slot in slots:
                c.err(where, f"partition {_go_quote(label)}: encryption key slot {slot} is already in use")
            slots.add(slot)
            if not any(k in enc_key for k in ("nodeID", "static", "kms", "tpm")):
                c.err(
                    where,
                    f"partition {_go_quote(label)}: encryption key at slot {slot} doesn't have the configuration "
                    "parameters",
                )

    kubespan = _map(_get(machine, "network", "kubespan"))
    if kubespan.get("enabled") is True:
        if _get(cluster, "discovery", "enabled") is not True:
            c.err(
                "cluster.discovery.enabled",
                ".cluster.discovery should be enabled when .machine.network.kubespan is enabled",
            )
        if not _set(cluster.get("id")):
            c.err("cluster.id", ".cluster.id should be set when .machine.network.kubespan is enabled")
        if not _set(cluster.get("secret")):
            c.err("cluster.secret", ".cluster.secret should be set when .machine.network.kubespan is enabled")
        for cidr in (_str(x).removeprefix("!") for x in _list(_get(kubespan, "filters", "endpoints"))):
            if not _subnet_or_address(cidr):
                c.err(
                    "machine.network.kubespan.filters.endpoints",
                    f"KubeSpan endpoint filter is not valid: {_go_quote(cidr)}",
                )
        for cidr in map(_str, _list(_get(kubespan, "filters", "excludeAdvertisedNetworks"))):
            if _parse_prefix(cidr) is None:
                c.err(
                    "machine.network.kubespan.filters.excludeAdvertisedNetworks",
                    f"KubeSpan exclude advertised networks filter is not valid: {_go_quote(cidr)}",
                )

    logging = machine.get("logging")
    if isinstance(logging, Mapping):
        for dest in _list(logging.get("destinations")):
            dest = _map(dest)
            endpoint = _str(dest.get("endpoint"))
            if not endpoint:
                c.err("machine.logging.destinations", "empty logging endpoint")
            else:
                u = urllib.parse.urlsplit(endpoint)
                if not u.netloc:
                    c.err("machine.logging.destinations", "empty logging endpoint's host")
                if u.scheme not in ("tcp", "udp"):
                    c.err("machine.logging.destinations", f"unexpected logging endpoint scheme {_go_quote(u.scheme)}")
            if _str(dest.get("format")) != "json_lines":
                c.err("machine.logging.destinations", f"unknown logging format {_go_quote(_str(dest.get('format')))}")

    if isinstance(install, Mapping):
        seen: set[str] = set()
        for ext in _list(install.get("extensions")):
            image = _str(_map(ext).get("image"))
            if image in seen:
                c.err("machine.install.extensions", f"duplicate system extension {_go_quote(image)}")
            seen.add(image)
        if seen:
            c.warn(
                "machine.install.extensions",
                ".machine.install.extensions is deprecated, please see "
                "https://www.talos.dev/latest/talos-guides/install/boot-assets/",
            )

    _validate_labels(_map(machine.get("nodeLabels")), c)
    _validate_annotations(_map(machine.get("nodeAnnotations")), c)
    _validate_taints(_map(machine.get("nodeTaints")), c)

    api_access = _map(_get(machine, "features", "kubernetesTalosAPIAccess"))
    if api_access.get("enabled") is True:
        if not controlplane:
            c.err(
                "machine.features.kubernetesTalosAPIAccess",
                "feature Kubernetes Talos API Access can only be enabled on control plane machines",
            )
        for role in _list(api_access.get("allowedRoles")):
            if _str(role) not in _TALOS_ROLES:
                c.err(
                    "machine.features.kubernetesTalosAPIAccess.allowedRoles",
                    f"invalid role {_go_quote(_str(role))} in allowed roles for Kubernetes Talos API Access",
                )
    sort = _get(machine, "features", "nodeAddressSortAlgorithm")
    if _set(sort) and _str(sort) not in _ADDRESS_SORT:
        c.err(
            "machine.features.nodeAddressSortAlgorithm",
            f"invalid node address sort algorithm: {_str(sort)} does not belong to AddressSortAlgorithm values",
        )
    if doc.get("persist") is False:
        c.err("persist", ".persist should be enabled")
    registries = _map(machine.get("registries"))
    for section in ("config", "mirrors"):
        for key, value in _map(registries.get(section)).items():
            if value is None:
                c.err(f"machine.registries.{section}", f"registries.{section}[{_go_quote(str(key))}] is null")

    if strict:
        promoted = [f for f in c.findings if f.warning]
        c.findings = [f for f in c.findings if not f.warning]
        for f in promoted:
            c.err(f.field, f"warning: {f.message}")


def _validate_cluster(cluster: Any, c: _Doc, *, controlplane: bool) -> None:
    """ClusterConfig.Validate."""
    if not isinstance(cluster, Mapping):
        c.err("cluster", "cluster instructions are required")
        return
    endpoint = _get(cluster, "controlPlane", "endpoint")
    if not _set(endpoint):
        c.err("cluster.controlPlane.endpoint", "cluster controlplane endpoint is required")
        return
    problem = _endpoint_uri_error(_str(endpoint))
    if problem:
        c.err("cluster.controlPlane.endpoint", f"invalid controlplane endpoint: {problem}")
    domain = _get(cluster, "network", "dnsDomain")
    if _set(domain) and not _is_valid_dns_name(_str(domain)):
        c.err("cluster.network.dnsDomain", f"{_go_quote(_str(domain))} is not a valid DNS name")
    ecp = cluster.get("externalCloudProvider")
    if isinstance(ecp, Mapping):
        manifests = _list(ecp.get("manifests"))
        if ecp.get("enabled") is not True and manifests:
            c.err("cluster.externalCloudProvider", "external cloud provider is disabled, but manifests are provided")
        else:
            for url in manifests:
                problem = _endpoint_uri_error(_str(url))
                if problem:
                    c.err(
                        "cluster.externalCloudProvider.manifests",
                        f"invalid external cloud provider manifest url {_go_quote(_str(url))}: {problem}",
                    )
    etcd = cluster.get("etcd")
    if isinstance(etcd, Mapping):
        if controlplane:
            if not isinstance(etcd.get("ca"), Mapping):
                c.err("cluster.etcd.ca", "key/cert combination should not be empty")
            if _set(etcd.get("subnet")) and _list(etcd.get("advertisedSubnets")):
                c.err("cluster.etcd.subnet", "etcd subnet can't be set when advertised subnets are set")
            advertised = _list(etcd.get("advertisedSubnets")) or ([etcd["subnet"]] if _set(etcd.get("subnet")) else [])
            for cidr in (_str(x).removeprefix("!") for x in advertised):
                if not _subnet_or_address(cidr):
                    c.err(
                        "cluster.etcd.advertisedSubnets",
                        f"etcd advertised subnet is not valid: {_go_quote(cidr)}",
                    )
            for cidr in (_str(x).removeprefix("!") for x in _list(etcd.get("listenSubnets"))):
                if not _subnet_or_address(cidr):
                    c.err("cluster.etcd.listenSubnets", f"etcd listen subnet is not valid: {_go_quote(cidr)}")
        else:
            c.err("cluster.etcd", "etcd config is only allowed on control plane machines")
    if not controlplane and _set(_get(cluster, "ca", "key")):
        c.err("cluster.ca.key", "cluster CA key is not allowed on non-controlplane nodes (.cluster.ca)")
    names: set[str] = set()
    for manifest in _list(cluster.get("inlineManifests")):
        name = _str(_map(manifest).get("name"))
        if not name.strip():
            c.err("cluster.inlineManifests", "inline manifest name can't be empty")
        if name in names:
            c.err("cluster.inlineManifests", f"inline manifest name {_go_quote(name)} is duplicate")
        names.add(name)
    discovery = _map(cluster.get("discovery"))
    if discovery.get("enabled") is True:
        service = _map(_get(discovery, "registries", "service"))
        if service.get("disabled") is not True:
            endpoint = _str(service.get("endpoint")) or "https://discovery.talos.dev/"
            u = urllib.parse.urlsplit(endpoint)
            if not u.scheme and not endpoint.startswith("/"):
                c.err(
                    "cluster.discovery.registries.service.endpoint",
                    f"cluster discovery service registry endpoint is invalid: parse {_go_quote(endpoint)}: "
                    "invalid URI for request",
                )
            elif u.path not in ("", "/"):
                c.err("cluster.discovery.registries.service.endpoint", "cluster discovery service path should be empty")
            if not _set(cluster.get("id")):
                c.err("cluster.id", "cluster discovery service requires .cluster.id")
            if not _set(cluster.get("secret")):
                c.err("cluster.secret", "cluster discovery service requires .cluster.secret")
    api = cluster.get("apiServer")
    if isinstance(api, Mapping):
        _validate_apiserver(api, c)
    for key, what in (("controllerManager", "controller-manager"), ("scheduler", "scheduler")):
        section = cluster.get(key)
        if isinstance(section, Mapping):
            problem = _resources_error(section.get("resources"))
            if problem:
                c.err(f"cluster.{key}.resources", f"{what} resource validation failed: {problem}")


def _resources_error(resources: Any) -> str | None:
    """ResourcesConfig.Validate: only cpu and memory."""
    for part in ("requests", "limits"):
        for key in _map(_map(resources).get(part)):
            if key not in ("cpu", "memory"):
                return f"unsupported pod resource {_go_quote(str(key))}"
    return None


def _validate_apiserver(api: Mapping[str, Any], c: _Doc) -> None:
    """APIServerConfig.Validate: returns its first error only."""
    authz = _list(api.get("authorizationConfig"))
    if authz:
        for key in _map(api.get("extraArgs")):
            if key == "authorization-mode":
                c.err(
                    "cluster.apiServer.extraArgs",
                    "authorization-mode cannot be used in conjunction with AuthorizationConfig, use eitherr "
                    "AuthorizationConfig or authorization-mode",
                )
                return
            if str(key).startswith("authorization-webhook-"):
                c.err(
                    "cluster.apiServer.extraArgs",
                    "authorization-webhook-* flags cannot be used in conjunction with AuthorizationConfig, use "
                    "either AuthorizationConfig or authorization-webhook-* flags",
                )
                return
    for item in authz:
        item = _map(item)
        if not _set(item.get("type")):
            c.err(
                "cluster.apiServer.authorizationConfig",
                "apiserver authorization config validation failed: authorizer type must be set",
            )
            return
        if not _set(item.get("name")):
            c.err(
                "cluster.apiServer.authorizationConfig",
                "apiserver authorization config validation failed: authorizer name must be set",
            )
            return
    problem = _resources_error(api.get("resources"))
    if problem:
        c.err("cluster.apiServer.resources", f"apiserver resource validation failed: {problem}")


def _validate_cni(cni: Mapping[str, Any], c: _Doc) -> None:
    """ValidateCNI."""
    name = _str(cni.get("name")) or "flannel"
    urls = _list(cni.get("urls"))
    flannel_args = _list(_get(cni, "flannel", "extraArgs"))
    field = "cluster.network.cni"
    if name == "flannel":
        if urls:
            c.err(f"{field}.urls", f'"urls" field should be empty for {_go_quote(name)} CNI')
    elif name == "none":
        if urls:
            c.err(f"{field}.urls", f'"urls" field should be empty for {_go_quote(name)} CNI')
        if flannel_args:
            c.err(f"{field}.flannel", f'"flanneldExtraArgs" field should be empty for {_go_quote(name)} CNI')
    elif name == "custom":
        if not urls:
            c.warn(f"{field}.urls", f'"urls" field should not be empty for {_go_quote(name)} CNI')
        if flannel_args:
            c.err(f"{field}.flannel", f'"flanneldExtraArgs" field should be empty for {_go_quote(name)} CNI')
        for url in urls:
            problem = _endpoint_uri_error(_str(url))
            if problem:
                c.err(f"{field}.urls", problem)
    else:
        c.err(f"{field}.name", 'cni name should be one of ["flannel", "custom", "none"]')


_BOND_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb")


def _validate_legacy_devices(devices: list[Any], c: _Doc) -> None:
    """The deprecated machine.network.interfaces: interface/selector, bonds, VLANs, addressing, routes."""
    field = "machine.network.interfaces"
    secondary: dict[str, str] = {}
    for device in map(_map, devices):
        name = _str(device.get("interface"))
        bond, bridge = device.get("bond"), device.get("bridge")
        if isinstance(bond, Mapping) and isinstance(bridge, Mapping):
            c.err(
                field,
                f"interface has both bridge and bond sections set {_go_quote(name)}: "
                "config sections are mutually exclusive",
            )
        members: list[Any] = []
        if isinstance(bond, Mapping):
            members = _list(bond.get("interfaces"))
            if members and _list(bond.get("deviceSelectors")):
                c.err(
                    field,
                    f"interface {_go_quote(name)} has both interfaces and selectors set: "
                    "config sections are mutually exclusive",
                )
        if isinstance(bridge, Mapping):
            members = _list(bridge.get("interfaces"))
        for member in map(_str, members):
            other = secondary.get(member)
            if other is not None and other != name:
                c.err(
                    field,
                    f"interface {_go_quote(member)} is declared as part of two separate links: "
                    f"{_go_quote(other)} and {_go_quote(name)}",
                )
            secondary[member] = name
    for device in map(_map, devices):
        if device.get("ignore") is True:
            continue
        name = _str(device.get("interface"))
        selector = device.get("deviceSelector")
        if not name and selector is None:
            c.err(
                field,
                "[networking.os.device.interface], [networking.os.device.deviceSelector]: "
                "required either config section to be set",
            )
        elif name and selector is not None:
            c.err(
                field,
                "[networking.os.device.interface], [networking.os.device.deviceSelector]: "
                "config sections are mutually exclusive",
            )
        if selector is not None and not _map(selector):
            c.err(field, "[networking.os.device.deviceSelector]: config section should contain at least one field")
        bond = device.get("bond")
        if isinstance(bond, Mapping):
            _check_legacy_bond(bond, c)
        for vlan in map(_map, _list(device.get("vlans"))):
            vid = _str(vlan.get("vlanId"))
            if _list(vlan.get("addresses")) and _set(vlan.get("cidr")):
                c.err(field, f"[networking.os.device.vlan] {name}.{vid}: vlan can't have both .cidr and .addresses set")
            if _set(vlan.get("cidr")):
                problem = _ip_or_cidr_error(_str(vlan.get("cidr")))
                if problem:
                    c.err(field, f"[networking.os.device.vlan.CIDR] {name}.{vid}: {problem}")
            for address in _list(vlan.get("addresses")):
                problem = _ip_or_cidr_error(_str(address))
                if problem:
                    c.err(field, f"[networking.os.device.vlan.addresses] {name}.{vid}: {problem}")
        # CheckDeviceAddressing
        addresses = _list(device.get("addresses"))
        cidr = _str(device.get("cidr"))
        if name in secondary and (device.get("dhcp") is True or cidr or addresses or device.get("vip") is not None):
            c.err(
                field,
                f"[networking.os.device] {_go_quote(name)}: "
                "bonded/bridged interface shouldn't have any addressing methods configured",
            )
        if addresses and cidr:
            c.err(
                field, f"[networking.os.device] {_go_quote(name)}: interface can't have both .cidr and .addresses set"
            )
        if cidr:
            problem = _ip_or_cidr_error(cidr)
            if problem:
                c.err(field, f"[networking.os.device.CIDR] {_go_quote(name)}: {problem}")
            c.warn(
                field,
                f"{_go_quote(name)}: machine.network.interface.cidr is deprecated, "
                "please use machine.network.interface.addresses",
            )
        for address in addresses:
            problem = _ip_or_cidr_error(_str(address))
            if problem:
                c.err(field, f"[networking.os.device.addresses] {_go_quote(name)}: {problem}")
        vip = device.get("vip")
        if isinstance(vip, Mapping) and _parse_addr(_str(vip.get("ip"))) is None:
            c.err(field, f"[networking.os.device.vip] failed to parse {_go_quote(_str(vip.get('ip')))} as IP address")
        # CheckDeviceRoutes
        for idx, route in enumerate(map(_map, _list(device.get("routes")))):
            net, gw, src = _str(route.get("network")), _str(route.get("gateway")), _str(route.get("source"))
            where = f"networking.os.device.route[{idx}]"
            if net and _parse_prefix(net) is None:
                c.err(field, f"[{where}.network] {_go_quote(net)}: invalid network address")
            if gw and _parse_addr(gw) is None:
                c.err(field, f"[{where}.gateway] {_go_quote(gw)}: invalid network address")
            if not gw and not net:
                c.err(field, f"[{where}]: either network or gateway should be set")
            if src and _parse_addr(src) is None:
                c.err(field, f"[{where}.source] {_go_quote(src)}: invalid network address")


def _check_legacy_bond(bond: Mapping[str, Any], c: _Doc) -> None:
    """checkBond: mode name and the options that only some modes take."""
    field = "machine.network.interfaces.bond"
    mode = _str(bond.get("mode"))
    if mode and mode not in _BOND_MODES:
        c.err(field, f"invalid bond type {mode}")
    miimon, up, down = (_int(bond.get(k)) for k in ("miimon", "updelay", "downdelay"))
    if miimon == 0:
        if up:
            c.err(field, "bond.upDelay can't be set if miiMon is zero")
        if down:
            c.err(field, "bond.downDelay can't be set if miiMon is zero")
    else:
        if up % miimon:
            c.err(field, "bond.upDelay should be a multiple of miiMon")
        if down % miimon:
            c.err(field, "bond.downDelay should be a multiple of miiMon")
    if _list(bond.get("arpIPTarget")):
        c.err(field, "bond.arpIPTarget is not supported")
    if _set(bond.get("lacpRate")) and mode != "802.3ad":
        c.err(field, "bond.lacpRate is only available in 802.3ad mode")
    if _set(bond.get("adActorSystem")):
        c.err(field, "bond.adActorSystem is not supported")
    if isinstance(bond.get("adActorSysPrio"), int) and bond["adActorSysPrio"] > 0 and mode != "802.3ad":
        c.err(field, "bond.adActorSysPrio is only available in 802.3ad mode")
    if isinstance(bond.get("adUserPortKey"), int) and bond["adUserPortKey"] > 0 and mode != "802.3ad":
        c.err(field, "bond.adUserPortKey is only available in 802.3ad mode")


# --- labels (pkg/machinery/labels/validate.go) ---------------------------------------------------------------

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QNAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_RESERVED_ANNOTATIONS = ("talos.dev/owned-annotations", "talos.dev/owned-labels", "talos.dev/owned-taints")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _qualified_name_error(value: str) -> str | None:
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return f"prefix cannot be empty: {_go_quote(value)}"
        if len(prefix) > 253:
            return (
                f"prefix {_go_quote(prefix)} is invalid: domain name length exceeds limit of 253: {_go_quote(prefix)}"
            )
        if not _DNS1123.match(prefix):
            return f"prefix {_go_quote(prefix)} is invalid: domain doesn't match required format: {_go_quote(prefix)}"
    else:
        return f"invalid format: too many slashes: {_go_quote(value)}"
    if not name:
        return f"name cannot be empty: {_go_quote(value)}"
    if len(name) > 63:
        return f"name is too long: {_go_quote(value)} (limit is 63)"
    if not _QNAME.match(name):
        return f"name {_go_quote(name)} is invalid"
    return None


def _label_value_error(value: str) -> str | None:
    if len(value) > 63:
        return f"label value length exceeds limit of 63: {_go_quote(value)}"
    if not _LABEL_VALUE.match(value):
        return f"label value {_go_quote(value)} is invalid"
    return None


def _validate_labels(labels: Mapping[str, Any], c: _Doc) -> None:
    group = "invalid machine node labels"
    for key in sorted(map(str, labels)):
        for problem in (_qualified_name_error(key), _label_value_error(_str(labels[key]))):
            if problem:
                c.err(f"machine.nodeLabels.{key}", problem, group=group)


def _validate_annotations(annotations: Mapping[str, Any], c: _Doc) -> None:
    group = "invalid machine node annotations"
    size = 0
    for key in sorted(map(str, annotations)):
        problem = _qualified_name_error(key)
        if problem:
            c.err(f"machine.nodeAnnotations.{key}", problem, group=group)
        if key in _RESERVED_ANNOTATIONS:
            c.err(f"machine.nodeAnnotations.{key}", f"annotation {_go_quote(key)} is reserved", group=group)
        size += len(key) + len(_str(annotations[key]))
    if size > 256 * 1024:
        c.err("machine.nodeAnnotations", f"total annotation size exceeds limit of {256 * 1024} bytes", group=group)


def _validate_taints(taints: Mapping[str, Any], c: _Doc) -> None:
    group = "invalid machine node taints"
    for key in sorted(map(str, taints)):
        where = f"machine.nodeTaints.{key}"
        problem = _qualified_name_error(key)
        if problem:
            c.err(where, problem, group=group)
            continue
        value, found, effect = _str(taints[key]).partition(":")
        if not found:
            effect = value
        if effect not in _TAINT_EFFECTS:
            c.err(where, f"invalid taint effect: {_go_quote(effect)}", group=group)
            continue
        if found:
            problem = _label_value_error(value)
            if problem:
                c.err(where, problem, group=group)


# --- network documents (pkg/machinery/config/types/network/*.go) ---------------------------------------------


def _common_link(doc: Mapping[str, Any], c: _Doc) -> None:
    """CommonLinkConfig.Validate (link.go): addresses and routes."""
    for i, addr in enumerate(_list(doc.get("addresses"))):
        text = _str(_map(addr).get("address"))
        prefix = _parse_prefix(text) if text else None
        if not text:
            c.err(f"addresses[{i}].address", f"address {i} must be specified")
        elif prefix is None:
            c.err(f"addresses[{i}].address", f"address {i} must be a valid IP prefix")
        elif prefix.ip.is_unspecified:
            c.err(f"addresses[{i}].address", f"address {i} must be a valid IP address")
    for i, route in enumerate(_list(doc.get("routes"))):
        route = _map(route)
        dest = _str(route.get("destination"))
        if dest:
            prefix = _parse_prefix(dest)
            if prefix is None or prefix.ip.is_unspecified:
                c.err(f"routes[{i}].destination", f"route {i} destination must be a valid IP prefix")
        for key in ("gateway", "source"):
            text = _str(route.get(key))
            if text:
                addr = _parse_addr(text)
                if addr is None or addr.is_unspecified:
                    c.err(f"routes[{i}].{key}", f"route {i} {key} must be a valid IP address")


def _name_specified(doc: Mapping[str, Any], c: _Doc) -> None:
    if not _str(doc.get("name")):
        c.err("name", "name must be specified")


def _v_hostname(doc: Mapping[str, Any], c: _Doc) -> None:
    auto = doc.get("auto")
    hostname = _str(doc.get("hostname"))
    if auto is not None and not isinstance(auto, str):
        c.err("auto", f"{_str(auto)} does not belong to AutoHostnameKind values")
        return
    if auto is None and not hostname:
        c.err("", "either 'auto' or 'hostname' must be set")
    kind = auto if auto is not None else "off"  # the zero AutoHostnameKind is off
    if kind != "off" and hostname:
        c.err("auto", "'auto' and 'hostname' cannot be set at the same time")
    if kind not in ("off", "stable"):
        c.err("auto", f"invalid value for 'auto': {auto}")
    if hostname:
        if len(hostname) > 253:
            c.err("hostname", f"fqdn is too long: {len(hostname)}")
        short = hostname.partition(".")[0]
        if not short or len(short) > 63:
            c.err("hostname", f"invalid hostname {_go_quote(short)}")


def _v_link_alias(doc: Mapping[str, Any], c: _Doc) -> None:
    _name_specified(doc, c)
    match = _str(_get(doc, "selector", "match"))
    if match:
        problem = _cel_error(match, _CEL_LINK_VARS)
        if problem:
            c.err("selector.match", f"link selector is invalid: {problem}")
    else:
        c.err("selector.match", "link selector is required")


def _v_link(doc: Mapping[str, Any], c: _Doc) -> None:
    _name_specified(doc, c)
    _common_link(doc, c)


def _v_bond(doc: Mapping[str, Any], c: _Doc) -> None:
    _name_specified(doc, c)
    if not _list(doc.get("links")):
        c.err("links", "at least one link must be specified")
    mode = doc.get("bondMode")
    if mode is None:
        c.err("bondMode", "bond mode must be specified")
    elif _str(mode) not in _BOND_MODES:
        c.err("bondMode", f"invalid bond mode {_go_quote(_str(mode))}")  # assumption: decoder wording
    elif mode == "802.3ad":
        for key in ("miimon", "updelay", "downdelay"):
            if doc.get(key) is None:
                c.warn(key, f"{key} was not specified for 802.3ad bond")
    _common_link(doc, c)


def _v_vlan(doc: Mapping[str, Any], c: _Doc) -> None:
    _name_specified(doc, c)
    vid = doc.get("vlanID")
    if not isinstance(vid, int) or isinstance(vid, bool) or not 1 <= vid <= 4094:
        c.err("vlanID", "vlanID must be specified and between 1 and 4094")
    if not _str(doc.get("parent")):
        c.err("parent", "parent must be specified")
    mode = doc.get("vlanMode")
    if mode is not None and _str(mode) not in ("802.1q", "802.1ad"):
        c.err("vlanMode", "vlanMode must be either '802.1q' or '802.1ad'")
    _common_link(doc, c)


def _netip_parse_error(text: str) -> str:
    """netip.ParseAddr's error for the common cases."""
    if not text:
        return 'ParseAddr(""): unable to parse IP'
    return f"ParseAddr({_go_quote(text)}): unable to parse IP"


def _v_layer2_vip(doc: Mapping[str, Any], c: _Doc) -> None:
    name = _str(doc.get("name"))
    if not name:
        c.err("name", "name must be specified")
    elif _parse_addr(name) is None:
        c.err("name", f"name must be a valid IP address: {_netip_parse_error(name)}")
    if not _str(doc.get("link")):
        c.err("link", "link must be specified")


def _v_dhcp4(doc: Mapping[str, Any], c: _Doc) -> None:
    _name_specified(doc, c)
    duid = _set(doc.get("duidRaw"))
    ident = _str(doc.get("clientIdentifier"))
    if duid and ident != "duid":
        c.err("duidRaw", "duidRaw can only be set if clientIdentifier is 'duid'")
    if ident == "duid" and not duid:
        c.err("duidRaw", "duidRaw must be set if clientIdentifier is 'duid'")


def _v_time_sync(doc: Mapping[str, Any], c: _Doc) -> None:
    timeout = _str(doc.get("bootTimeout"))
    if timeout.startswith("-") and timeout.strip("-0smhu.µn") != "":
        c.err("bootTimeout", "bootTimeout cannot be negative")
    if doc.get("ntp") is not None and doc.get("ptp") is not None:
        c.err("", "only one of ntp or ptp configuration can be specified")


def _v_static_host(doc: Mapping[str, Any], c: _Doc) -> None:
    name = _str(doc.get("name"))
    if not name:
        c.err("name", "name is required")
    if _parse_addr(name) is None:
        c.err("name", "name must be a valid IP address")
    if not _list(doc.get("hostnames")):
        c.err("hostnames", "at least one hostname is required")


def _v_ethernet(doc: Mapping[str, Any], c: _Doc) -> None:
    if not _str(doc.get("name")):
        c.err("name", "name is required")


def _port_range(value: Any) -> tuple[int, int] | None:
    """network PortRange: `80` or `8000-9000`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    lo, sep, hi = _str(value).partition("-")
    try:
        return (int(lo), int(hi)) if sep else (int(lo), int(lo))
    except ValueError:
        return None


def _v_rule(doc: Mapping[str, Any], c: _Doc) -> None:
    """RuleConfigV1Alpha1.Validate: stops at the first error."""
    if not _str(doc.get("name")):
        c.err("name", "name is required")
        return
    ports = _list(_get(doc, "portSelector", "ports"))
    if not ports:
        c.err("portSelector.ports", "portSelector.ports is required")
        return
    ranges = [r for r in map(_port_range, ports) if r is not None]
    ranges.sort(key=lambda r: r[0])

    def show(r: tuple[int, int]) -> str:
        return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"

    for i, r in enumerate(ranges):
        if r[0] > r[1]:
            c.err("portSelector.ports", f"invalid port range: {show(r)}")
            return
        if i > 0 and r[0] <= ranges[i - 1][1]:
            c.err("portSelector.ports", f"invalid port range: {show(r)}, overlaps with {show(ranges[i - 1])}")
            return
    for i, rule in enumerate(map(_map, _list(doc.get("ingress")))):
        subnet = _str(rule.get("subnet"))
        if not subnet or _parse_prefix(subnet) is None:
            c.err(f"ingress[{i}].subnet", f"invalid subnet: {subnet or 'invalid Prefix'}")
            return
        except_ = _str(rule.get("except"))
        if except_ and _parse_prefix(except_) is None:
            c.err(f"ingress[{i}].except", f"invalid except: {except_}")
            return


# --- block documents (pkg/machinery/config/types/block/*.go) ------------------------------------------------

_FILESYSTEMS = ("none", "xfs", "vfat", "ext4", "iso9660", "swap")
_MAX_USER_VOLUME_NAME = 34
_USER_VOLUME_NAME = re.compile(r"^[A-Za-z0-9-]*$")
_SYSTEM_VOLUMES = ("STATE", "EPHEMERAL", "IMAGECACHE")


def _provisioning(doc: Mapping[str, Any], c: _Doc, *, required: bool, size_supported: bool) -> None:
    """ProvisioningSpec.Validate (volume_config.go)."""
    prov = _map(doc.get("provisioning"))
    match = _str(_get(prov, "diskSelector", "match"))
    if match:
        problem = _cel_error(match, _CEL_DISK_VARS)
        if problem:
            c.err("provisioning.diskSelector.match", f"disk selector is invalid: {problem}")
    elif required:
        c.err("provisioning.diskSelector.match", "disk selector is required")
    min_raw, max_raw = _str(prov.get("minSize")), _str(prov.get("maxSize"))
    min_size = max_size = None
    max_relative = False
    if min_raw:
        try:
            min_size = parse_bytes(min_raw)
        except ValueError as exc:
            c.err("provisioning.minSize", str(exc))
    if max_raw:
        try:
            if "%" in max_raw:
                _percentage(max_raw)
                max_relative = True
            else:
                max_size = parse_bytes(max_raw)
        except ValueError as exc:
            c.err("provisioning.maxSize", str(exc))
    if size_supported:
        if min_raw and max_raw and not max_relative:
            if min_size is not None and max_size is not None and min_size > max_size:
                c.err("provisioning.minSize", "min size is greater than max size")
        elif required and not min_raw and not max_raw:
            c.err("provisioning", "min size or max size is required")
    elif min_raw or max_raw or prov.get("grow") is not None:
        c.err("provisioning", "min size, max size and grow are not supported")


def _filesystem(doc: Mapping[str, Any], c: _Doc) -> None:
    """FilesystemSpec.Validate (user_volume_config.go)."""
    fs = _map(doc.get("filesystem"))
    ftype = _str(fs.get("type")) or "none"
    if ftype not in ("none", "xfs", "ext4"):
        c.err("filesystem.type", f"unsupported filesystem type: {ftype}")
        return
    if fs.get("projectQuotaSupport") is True and ftype != "xfs":
        c.err("filesystem.projectQuotaSupport", "project quota support is only available for xfs filesystem")


def _encryption(doc: Mapping[str, Any], c: _Doc) -> None:
    """EncryptionSpec.Validate (encryption.go)."""
    enc = doc.get("encryption")
    if not _set(enc):
        return
    enc = _map(enc)
    provider = _str(enc.get("provider")) or "none"
    if provider != "luks2":
        c.err("encryption.provider", f"unsupported encryption provider: {provider}")
    keys = _list(enc.get("keys"))
    if not keys:
        c.err("encryption.keys", "encryption keys are required")
    slots: set[int] = set()
    for i, key in enumerate(map(_map, keys)):
        slot = _int(key.get("slot"))
        if slot in slots:
            c.err(f"encryption.keys[{i}].slot", f"duplicate key slot {slot}")
        slots.add(slot)
        if not any(key.get(k) is not None for k in ("static", "nodeID", "kms", "tpm")):
            c.err(f"encryption.keys[{i}]", f"at least one encryption key type must be specified for slot {slot}")
        for pcr in _list(_get(key, "tpm", "options", "pcrs")):
            if isinstance(pcr, int) and not 0 <= pcr <= 23:
                c.err(f"encryption.keys[{i}].tpm.options.pcrs", f"TPM PCR {pcr} is out of range (0-23)")


def _v_user_volume(doc: Mapping[str, Any], c: _Doc) -> None:
    name = _str(doc.get("name"))
    if not name:
        c.err("name", "name is required")
    if not 1 <= len(name) <= _MAX_USER_VOLUME_NAME:
        c.err("name", f"name must be between 1 and {_MAX_USER_VOLUME_NAME} characters long")
    if not _USER_VOLUME_NAME.match(name):
        c.err("name", "name can only contain lowercase and uppercase ASCII letters, digits, and hyphens")
    vtype = _str(doc.get("volumeType")) or "partition"
    if vtype == "directory":
        if _set(_map(doc.get("provisioning"))):
            c.err("provisioning", "provisioning spec is invalid for volumeType directory")
        if _set(doc.get("encryption")):
            c.err("encryption", "encryption spec is invalid for volumeType directory")
        if _set(doc.get("filesystem")):
            c.err("filesystem", "filesystem spec is invalid for volumeType directory")
    elif vtype in ("disk", "partition"):
        _provisioning(doc, c, required=True, size_supported=vtype == "partition")
        _filesystem(doc, c)
        _encryption(doc, c)
    else:
        c.err("volumeType", f"unsupported volume type {_go_quote(vtype)}")


def _v_volume(doc: Mapping[str, Any], c: _Doc) -> None:
    name = _str(doc.get("name"))
    if name not in _SYSTEM_VOLUMES:
        shown = " ".join(_go_quote(v) for v in _SYSTEM_VOLUMES)
        c.err("name", f"only [{shown}] volumes are supported")
        return
    if name == "STATE":
        if _set(doc.get("provisioning")):
            c.err("provisioning", f"provisioning config is not allowed for the {_go_quote(name)} volume")
        for key in map(_map, _list(_get(doc, "encryption", "keys"))):
            if key.get("lockToSTATE") is True:
                c.err("encryption.keys", f"state-locked key is not allowed for the {_go_quote(name)} volume")
    _provisioning(doc, c, required=False, size_supported=True)
    _encryption(doc, c)


# --- other kinds ---------------------------------------------------------------------------------------------


def _v_registry_mirror(doc: Mapping[str, Any], c: _Doc) -> None:
    """cri/registry_mirror.go."""
    _name_specified(doc, c)
    for i, ep in enumerate(map(_map, _list(doc.get("endpoints")))):
        url = _str(ep.get("url"))
        if not url:
            c.err(f"endpoints[{i}].url", f"endpoints[{i}].url must be specified")
            continue
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            c.err(f"endpoints[{i}].url", f"endpoints[{i}].url has unsupported scheme: {_go_quote(scheme)}")


def _v_extension_service(doc: Mapping[str, Any], c: _Doc) -> None:
    """runtime/extensions/service_config.go: stops at the first error."""
    name = _str(doc.get("name"))
    if not name:
        c.err("name", "name is required")
        return
    files = _list(doc.get("configFiles"))
    if not files and not _list(doc.get("environment")):
        c.err("configFiles", f"no config files found for extension {_go_quote(name)}")
        return
    for i, file in enumerate(map(_map, files)):
        if not _str(file.get("content")):
            c.err(f"configFiles[{i}].content", f"extension content is required for extension {_go_quote(name)}")
            return
        if not _str(file.get("mountPath")):
            c.err(f"configFiles[{i}].mountPath", f"extension mount path is required for extension {_go_quote(name)}")
            return


_VALIDATORS: dict[str, Callable[[Mapping[str, Any], _Doc], None]] = {
    "HostnameConfig": _v_hostname,
    "LinkAliasConfig": _v_link_alias,
    "LinkConfig": _v_link,
    "BondConfig": _v_bond,
    "VLANConfig": _v_vlan,
    "Layer2VIPConfig": _v_layer2_vip,
    "DHCPv4Config": _v_dhcp4,
    "TimeSyncConfig": _v_time_sync,
    "StaticHostConfig": _v_static_host,
    "EthernetConfig": _v_ethernet,
    "NetworkRuleConfig": _v_rule,
    "UserVolumeConfig": _v_user_volume,
    "VolumeConfig": _v_volume,
    "RegistryMirrorConfig": _v_registry_mirror,
    "ExtensionServiceConfig": _v_extension_service,
}


# --- cross-document rules (V1Alpha1ConflictValidate) ---------------------------------------------------------


def _conflict(kind: str, doc: Mapping[str, Any], main: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field in the v1alpha1 document, Talos' message) when `doc` conflicts with the legacy fields."""
    network = _map(_get(main, "machine", "network"))
    if kind == "HostnameConfig":
        if _set(network.get("hostname")):
            return "machine.network.hostname", "static hostname is already set in v1alpha1 config"
        if _get(main, "machine", "features", "stableHostname") is True:
            return "machine.features.stableHostname", "stable hostname is already set in v1alpha1 config"
    elif kind == "ResolverConfig":
        if network.get("searchDomains") is not None:
            return "machine.network.searchDomains", ".machine.network.searchDomains is already set in v1alpha1 config"
        if network.get("nameservers") is not None:
            return "machine.network.nameservers", ".machine.network.nameservers is already set in v1alpha1 config"
        if network.get("disableSearchDomain") is True:
            return (
                "machine.network.disableSearchDomain",
                ".machine.network.disableSearchDomain is already set in v1alpha1 config",
            )
    elif kind == "TimeSyncConfig":
        legacy = _get(main, "machine", "time")
        if isinstance(legacy, Mapping):
            if legacy.get("disabled") is True:
                return (
                    "machine.time.disabled",
                    "time sync cannot be disabled in both v1alpha1 and new-style configuration",
                )
            if _list(legacy.get("servers")):
                return (
                    "machine.time.servers",
                    "time servers cannot be specified in both v1alpha1 and new-style configuration",
                )
            if _set(legacy.get("bootTimeout")) and _str(legacy.get("bootTimeout")) not in ("0", "0s"):
                return (
                    "machine.time.bootTimeout",
                    "boot timeout cannot be specified in both v1alpha1 and new-style configuration",
                )
    elif kind == "VolumeConfig":
        name = _str(doc.get("name"))
        encrypted = name in ("STATE", "EPHEMERAL") and _set(doc.get("encryption"))
        if encrypted and isinstance(_get(main, "machine", "systemDiskEncryption", name.lower()), Mapping):
            return (
                f"machine.systemDiskEncryption.{name.lower()}",
                f"system disk encryption for {_go_quote(name)} is configured in both v1alpha1.Config and VolumeConfig",
            )
    return None


# --- the entry point -----------------------------------------------------------------------------------------


def validate_documents(
    docs: Sequence[Mapping[str, Any]], *, mode: Mode = "metal", strict: bool = True
) -> list[RuleFinding]:
    """Every finding Talos' validation makes on one node's documents, in Talos' order.

    `mode` is talosctl's `--mode` (metal requires install instructions; container requires host DNS); `strict`
    is `--strict` (the v1alpha1 document's warnings become errors). A node's ApplyConfiguration is
    `strict=False`. Load findings (duplicate or conflicting documents) come first; Talos stops at the first
    of them, this function reports them all.
    """
    findings: list[RuleFinding] = []
    main_index: int | None = None
    seen: set[str] = set()
    conflicting: dict[str, str] = {}
    for i, doc in enumerate(docs):
        if not isinstance(doc, Mapping):
            continue
        if "kind" not in doc:
            if main_index is not None:
                findings.append(RuleFinding("v1alpha1", "", "duplicate v1alpha1.Config", phase="load", index=i))
            else:
                main_index = i
            continue
        kind = str(doc["kind"])
        doc_id = f"{kind}/{_str(doc.get('name')) if kind in _NAMED_KINDS else ''}"
        label = _doc_id(doc)
        if doc_id in seen:
            findings.append(RuleFinding(label, "", f"duplicate document: {doc_id}", phase="load", index=i))
            continue
        seen.add(doc_id)
        clash = doc_id in conflicting
        if clash:
            message = f"conflicting documents: {conflicting[doc_id]} and {doc_id}"
            findings.append(RuleFinding(label, "name", message, phase="load", index=i))
        for other in _CONFLICTS.get(kind, ()):
            other_id = f"{other}/{_str(doc.get('name'))}"
            if other_id in seen and not clash:
                message = f"conflicting documents: {other_id} and {doc_id}"
                findings.append(RuleFinding(label, "name", message, phase="load", index=i))
            conflicting[other_id] = doc_id

    main = docs[main_index] if main_index is not None else None
    if main is not None:
        collector = _Doc("v1alpha1", main_index or 0, "v1alpha1")
        _validate_v1alpha1(main, collector, mode, strict)
        findings += collector.findings
    for i, doc in enumerate(docs):
        if not isinstance(doc, Mapping) or "kind" not in doc:
            continue
        validator = _VALIDATORS.get(str(doc["kind"]))
        if validator is not None:
            collector = _Doc(_doc_id(doc), i, "document")
            validator(doc, collector)
            findings += collector.findings
    if main is not None:
        for i, doc in enumerate(docs):
            if not isinstance(doc, Mapping) or "kind" not in doc:
                continue
            hit = _conflict(str(doc["kind"]), doc, main)
            if hit is not None:
                findings.append(RuleFinding(_doc_id(doc), f"v1alpha1 {hit[0]}", hit[1], phase="conflict", index=i))
    return findings


def talos_error(findings: Sequence[RuleFinding]) -> str | None:
    """The error text Talos returns for these findings (None: valid), as ApplyConfiguration and talosctl print it.

    A load finding is returned alone (container.New stops there). Otherwise: the v1alpha1 errors as
    `v1alpha1.Config: <multierror>`, each document's errors as `Kind/name: <errors joined by newlines>`, then the
    conflict errors, all in one multierror.
    """
    errs = errors_of(findings)
    if not errs:
        return None
    load = [f for f in errs if f.phase == "load"]
    if load:
        return load[0].message
    outer: list[str] = []
    main: list[str] = []
    groups: dict[str, list[str]] = {}
    for f in errs:
        if f.phase != "v1alpha1":
            continue
        if f.group:
            if f.group not in groups:
                groups[f.group] = []
                main.append(f.group)  # placeholder, replaced below
            groups[f.group].append(f.message)
        else:
            main.append(f.message)
    main = [f"{m}: {_multierror(groups[m])}" if m in groups else m for m in main]
    if main:
        outer.append(f"v1alpha1.Config: {_multierror(main)}")
    per_doc: dict[tuple[int, str], list[str]] = {}
    for f in errs:
        if f.phase == "document":
            per_doc.setdefault((f.index, f.document), []).append(f.message)
    outer += [f"{doc}: " + "\n".join(msgs) for (_, doc), msgs in per_doc.items()]
    outer += [f.message for f in errs if f.phase == "conflict"]
    return _multierror(outer)
