"""The declarative cluster inventory: `clusters/<name>/cluster.yaml` as frozen pydantic models.

Loading never writes anything. Every problem in a cluster file is reported at once as a
`k8s_ops.core.errors.Problem` (file, field path such as `nodes[3].address`, message, YAML line).

YAML keys are camelCase (`talosVersion`, `installDisk`, `nodeCIDR`); Python attributes are snake_case
(`talos_version`, `install_disk`, `node_cidr`). Models accept either spelling.

Layout of a cluster directory::

    clusters/<name>/cluster.yaml            this inventory
    clusters/<name>/patches/*.yaml          config patches (jinja2 allowed), referenced by file name
    clusters/<name>/talos/secrets.sops.yaml the Talos secrets bundle

Patch merge order (strategic merge, later wins; see `Cluster.patch_files`): cluster-wide `patches`,
then the role group's (`controlplane.patches` / `worker.patches`), then the node's own `patches` —
the most specific patch has the last word. Labels/annotations: group first, node values override.
Taints: group taints then node taints; a node taint with the same key and effect replaces the group's.

Networking (`Node.interfaces`, resolved by `Cluster.node_interfaces`):

* No `interfaces`: the renderer emits no link configuration and Talos keeps its default, DHCP on the
  physical links. `address` must then be a DHCP reservation. Static addressing needs an interface.
* With `interfaces`: the FIRST interface is the primary one (it also carries the API VIP on
  controlplanes, see `Cluster.primary_link`). Unless it sets `addresses`/`routes` (or
  `dhcp: true`), it gets the node address with the nodeCIDR prefix (e.g. 10.25.11.11/24) and a
  default route via `network.gateway`. Other interfaces and VLANs get no addresses or routes unless
  given. Validation requires the node address on exactly one link (unless DHCP is used).
* An interface is a bond (`bond.members`: device selectors or link names), a link selected by
  `deviceSelector` (renderer emits a LinkAliasConfig named `name`), or a plain link `name`.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    IPvAnyAddress,
    IPvAnyInterface,
    IPvAnyNetwork,
    PrivateAttr,
    Tag,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from k8s_ops.core import paths
from k8s_ops.core.errors import Problem, ProblemsError

__all__ = [
    "CLUSTER_FILE",
    "GENERATED_VARS",
    "Bond",
    "Cluster",
    "DeviceSelector",
    "DiskSelector",
    "GatewayAPI",
    "GitOps",
    "HealthCheck",
    "Interface",
    "Network",
    "Node",
    "NodeGroup",
    "OnePassword",
    "Role",
    "Route",
    "Schematic",
    "Sops",
    "Taint",
    "Upgrade",
    "UserVolume",
    "Vlan",
    "cluster_vars",
    "load_all",
    "load_cluster",
    "resolve_interfaces",
]

CLUSTER_FILE = "cluster.yaml"
PATCHES_DIR = "patches"
GENERATED_VARS: tuple[str, ...] = (
    "CLUSTER_NAME",
    "CLUSTER_ID",
    "CLUSTER_DOMAIN",
    "CLUSTER_CIDR",
    "CLUSTER_POD_CIDR",
    "CLUSTER_SVC_CIDR",
    "CLUSTER_API_ENDPOINT",
)
API_PORT = 6443
SUPPORTED_TALOS_MINOR = "v1.12"

Role = Literal["controlplane", "worker"]
# pydantic's IPvAny* give one clear error instead of one per union member; at runtime the values are
# the ipaddress types below.
IPAddress = IPvAnyAddress
IPNetwork = IPvAnyNetwork
IPInterface = IPvAnyInterface
AnyIPInterface = IPv4Interface | IPv6Interface

_CLUSTER_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+$")
_VAR_NAME_RE = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")
_VOLUME_NAME_RE = re.compile(r"^[A-Za-z0-9-]{1,34}$")
_LINK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$")  # Linux IFNAMSIZ: 15 characters
_TAINT_RE = re.compile(r"^(?P<key>[^=:\s]+)(=(?P<value>[^:\s]*))?:(?P<effect>[A-Za-z]+)$")


# --------------------------------------------------------------------------- field validators


def _check_cluster_name(v: str) -> str:
    if not _CLUSTER_NAME_RE.match(v):
        raise ValueError(
            f"{v!r} is not a valid cluster name: at most 32 characters, lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (Cilium cluster.name rule)"
        )
    return v


def _check_hostname(v: str) -> str:
    if not _DNS_LABEL_RE.match(v):
        raise ValueError(
            f"{v!r} is not a valid hostname: a DNS label of at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return v


def _check_version(v: str) -> str:
    if not _VERSION_RE.match(v):
        raise ValueError(f"{v!r} is not a version like v1.2.3")
    return v


def _check_talos_version(v: str) -> str:
    _check_version(v)
    if not v.startswith(SUPPORTED_TALOS_MINOR + "."):
        raise ValueError(f"{v!r} is not supported: the renderer targets Talos {SUPPORTED_TALOS_MINOR}.x")
    return v


def _check_domain(v: str) -> str:
    labels = v.split(".")
    if len(v) > 253 or not all(_DNS_LABEL_RE.match(label) for label in labels):
        raise ValueError(f"{v!r} is not a valid DNS domain")
    return v


def _check_device_path(v: str) -> str:
    if not v.startswith("/dev/") or len(v) <= len("/dev/"):
        raise ValueError(f"{v!r} is not a device path (expected e.g. /dev/nvme0n1) or a disk selector")
    return v


def _check_volume_name(v: str) -> str:
    if not _VOLUME_NAME_RE.match(v):
        raise ValueError(f"{v!r} is not a valid volume name: 1-34 letters, digits and '-'")
    return v


def _check_link_name(v: str) -> str:
    if not _LINK_NAME_RE.match(v):
        raise ValueError(f"{v!r} is not a valid link name: 1-15 letters, digits, '.', '_', '-'")
    return v


def _check_relative_file(v: str) -> str:
    p = Path(v)
    if not v or p.is_absolute() or ".." in p.parts:
        raise ValueError(f"{v!r} must be a file name relative to the directory (no '..', not absolute)")
    return v


def _var_value(v: Any) -> Any:
    # cluster-vars is a ConfigMap: values are strings. Integers are unambiguous; booleans and floats are
    # not (YAML `on` is True, `1.10` is 1.1), so those must be quoted.
    if isinstance(v, bool | float):
        raise ValueError(f"{v!r} is ambiguous in YAML; quote the value")
    if isinstance(v, int):
        return str(v)
    return v


def _size_text(v: Any) -> Any:
    # a bare YAML integer is a byte count, as Talos' decoder reads it
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


ClusterName = Annotated[str, AfterValidator(_check_cluster_name)]
Hostname = Annotated[str, AfterValidator(_check_hostname)]
Version = Annotated[str, AfterValidator(_check_version)]
TalosVersion = Annotated[str, AfterValidator(_check_talos_version)]
Domain = Annotated[str, AfterValidator(_check_domain)]
DevicePath = Annotated[str, AfterValidator(_check_device_path)]
VolumeName = Annotated[str, AfterValidator(_check_volume_name)]
LinkName = Annotated[str, AfterValidator(_check_link_name)]
RelativeFile = Annotated[str, AfterValidator(_check_relative_file)]
VarValue = Annotated[str, BeforeValidator(_var_value)]
SizeText = Annotated[str, BeforeValidator(_size_text)]
# strict: YAML `true` or "1500" is a mistake, not an integer
Mtu = Annotated[int, Field(ge=576, le=65535, strict=True)]


def _str_or_mapping(str_tag: str, other_tag: str) -> Any:
    # A discriminator: strings go to one member, everything else to the other, so a bad value yields
    # one error for the member the user meant rather than one per union member.
    return lambda v: str_tag if isinstance(v, str) else other_tag


_M = typing.TypeVar("_M", bound="_Model")


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        strict=False,
    )


# --------------------------------------------------------------------------- small parts


class DiskSelector(_Model):
    """Talos `install.diskSelector`: every set field must match (globs allowed, e.g. `Samsung SSD 870*`)."""

    size: str | int | None = None
    name: str | None = None
    model: str | None = None
    serial: str | None = None
    modalias: str | None = None
    uuid: str | None = None
    wwid: str | None = None
    type: Literal["ssd", "hdd", "nvme", "sd"] | None = None
    bus_path: str | None = None

    def to_talos(self) -> dict[str, Any]:
        """The `install.diskSelector` mapping (camelCase keys, unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True)


def _check_glob(v: str) -> str:
    # the value is embedded in a CEL string literal
    if not v or '"' in v or "\\" in v:
        raise ValueError(f"{v!r} must be a non-empty glob without quotes or backslashes")
    return v


Glob = Annotated[str, AfterValidator(_check_glob)]


class DeviceSelector(_Model):
    """Selects a physical link (bond member or aliased link). Every set field must match; globs allowed."""

    hardware_addr: Glob | None = None
    permanent_addr: Glob | None = None
    bus_path: Glob | None = None
    pci_id: Glob | None = Field(default=None, alias="pciID")
    driver: Glob | None = None
    physical: bool | None = None

    def is_empty(self) -> bool:
        return not any(v is not None for v in self.model_dump().values())


class Route(_Model):
    """A static route; `network` defaults to the IPv4 default route."""

    network: IPNetwork = IPv4Network("0.0.0.0/0")
    gateway: IPAddress | None = None
    metric: int | None = Field(default=None, ge=0)


class Bond(_Model):
    """A bond: `members` are device selectors (one per port) or plain link names.

    Each selector member becomes a LinkAliasConfig `<bond>-m<i>`, and on Talos v1.12 a LinkAliasConfig selector
    must match EXACTLY one link: otherwise Talos logs a warning and skips the alias, and the bond loses that
    member (multi-match aliases only arrive in v1.13). So, for v1.12, a selector member must be pinned to one
    port by an exact per-port field (checked by `_check_bond_member`):

    * `hardwareAddr` / `permanentAddr`: an exact MAC such as `f8:f2:1e:20:57:a0`, never a glob (`*`, `?`,
      `[`) — a vendor-prefix glob matches every port of a dual-port NIC, so the bond gets no member at all;
    * or an exact `busPath` (e.g. `0000:01:00.0`; not for NICs that expose several ports on one PCI function,
      such as ConnectX-3/mlx4 — use the MAC there).

    `driver`, `pciID` and `physical` are the same for every port of a NIC: they may narrow a selector but never
    pin one. List one member per port: `[{hardwareAddr: "f8:f2:1e:20:57:a0", driver: i40e},
    {hardwareAddr: "f8:f2:1e:20:57:a1", driver: i40e}]`. The same MAC may not be selected twice on a node.
    """

    mode: Literal[
        "balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"
    ] = "802.3ad"
    lacp_rate: Literal["slow", "fast"] | None = None
    xmit_hash_policy: Literal["layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4"] | None = None
    miimon: int | None = Field(default=None, ge=0)
    updelay: int | None = Field(default=None, ge=0)
    downdelay: int | None = Field(default=None, ge=0)
    members: tuple[
        Annotated[
            Annotated[DeviceSelector, Tag("selector")] | Annotated[LinkName, Tag("link")],
            Discriminator(_str_or_mapping("link", "selector")),
        ],
        ...,
    ] = Field(min_length=1)


class Vlan(_Model):
    """An 802.1Q VLAN on top of its parent interface; the link is named `<parent>.<id>`."""

    id: int = Field(ge=1, le=4094, strict=True)
    mtu: Mtu | None = None
    dhcp: bool = False
    addresses: tuple[IPInterface, ...] = ()
    routes: tuple[Route, ...] = ()


class Interface(_Model):
    """One link of a node: a bond, a selected physical link (aliased as `name`), or a plain link name.

    `addresses`/`routes` left unset (None) take defaults, see the module docstring and
    `Cluster.node_interfaces` (which returns interfaces with both filled in).
    """

    name: LinkName
    device_selector: DeviceSelector | None = None
    bond: Bond | None = None
    mtu: Mtu | None = None
    dhcp: bool = False
    addresses: tuple[IPInterface, ...] | None = None
    routes: tuple[Route, ...] | None = None
    vlans: tuple[Vlan, ...] = ()

    @property
    def kind(self) -> Literal["bond", "alias", "link"]:
        """bond (BondConfig), alias (LinkAliasConfig + LinkConfig) or link (LinkConfig on `name`)."""
        if self.bond is not None:
            return "bond"
        return "alias" if self.device_selector is not None else "link"

    def vlan_name(self, vlan: Vlan) -> str:
        """The VLAN link name, `<parent>.<id>` (Talos VLANConfig convention)."""
        return f"{self.name}.{vlan.id}"


class Taint(_Model):
    """A node taint; YAML accepts `key=value:Effect`, `key:Effect` or `{key, value, effect}`."""

    key: str = Field(min_length=1)
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


def _parse_taint(v: Any) -> Any:
    if isinstance(v, str):
        m = _TAINT_RE.match(v)
        if not m:
            raise ValueError(f"{v!r} is not a taint like key=value:NoSchedule or key:NoSchedule")
        return {"key": m["key"], "value": m["value"] or "", "effect": m["effect"]}
    return v


TaintSpec = Annotated[Taint, BeforeValidator(_parse_taint)]


class UserVolume(_Model):
    """A Talos UserVolumeConfig: `match` is the CEL disk selector (e.g. `disk.model == "X"`).

    Talos refuses a partition volume without `minSize` or `maxSize` (checked by `_check_volume_size`): `minSize`
    is absolute (`100GiB`), `maxSize` absolute or relative (`80%`), `grow: true` grows the partition to fill the
    disk.
    """

    name: VolumeName
    match: str = Field(min_length=1)
    min_size: SizeText | None = None
    max_size: SizeText | None = None
    grow: bool | None = None
    filesystem: Literal["xfs", "ext4"] = "xfs"


class Schematic(_Model):
    """Image Factory schematic: official system extensions and kernel args (`customization.*`).

    Both lists are hashed by the factory as given (no sort, no de-duplication), so order matters and a
    duplicate entry is rejected: it would silently produce another schematic ID than the list without it.
    """

    extensions: tuple[str, ...] = ()
    extra_kernel_args: tuple[str, ...] = ()


class Network(_Model):
    """Cluster-wide networking: the node subnet, its gateway and DNS, and the Kubernetes CIDRs."""

    node_cidr: IPNetwork = Field(alias="nodeCIDR")
    gateway: IPAddress
    nameservers: tuple[IPAddress, ...] = Field(min_length=1)
    timeservers: tuple[str, ...] = ()
    pod_cidr: IPNetwork = Field(alias="podCIDR")
    service_cidr: IPNetwork = Field(alias="serviceCIDR")
    mtu: Mtu = 1500  # MTU of interfaces that set none (VLANs inherit their parent's)


class GitOps(_Model):
    """Where Flux syncs from."""

    repository: str = Field(min_length=1)
    branch: str = Field(min_length=1)
    path: str = Field(min_length=1)


class GatewayAPI(_Model):
    """Gateway API choices for the bootstrap (`gatewayAPI:`).

    `channel`: the CRD channel to install (`standard` or `experimental`); unset = k8s_ops/bootstrap/charts.yaml's, which
    matches the GitOps repository's Envoy Gateway. `cilium`: also run Cilium's own Gateway API controller
    (Helm `gatewayAPI.enabled`); off by default because it adds a second GatewayClass next to Envoy Gateway's.
    """

    channel: Literal["standard", "experimental"] | None = None
    cilium: bool = False


class OnePassword(_Model):
    """The 1Password vault for this cluster's artefacts.

    The sync (`k8s_ops.onepassword`) names the items itself: `kubeconfig-<cluster>`, `talosconfig-<cluster>`,
    `sops-age-key-<cluster>` and `talos-secrets-<cluster>`; there is no item setting.
    """

    vault: str = Field(min_length=1)


class Sops(_Model):
    """SOPS settings; `ageKeyFile` is relative to the cluster directory."""

    age_key_file: RelativeFile | None = None


class HealthCheck(_Model):
    """A resource the rolling upgrade waits on between nodes: `expr` is CEL over `object`."""

    api_version: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    namespace: str | None = None
    name: str = Field(min_length=1)
    expr: str = Field(min_length=1)
    description: str | None = None


class Upgrade(_Model):
    """Rolling upgrade settings."""

    health_checks: tuple[HealthCheck, ...] = ()
    max_unavailable: int = Field(default=1, ge=1, strict=True)


class NodeGroup(_Model):
    """Settings shared by every node of one role (`controlplane:` / `worker:`)."""

    patches: tuple[RelativeFile, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    taints: tuple[TaintSpec, ...] = ()


class Node(_Model):
    """One machine. `installDisk` is a device path or a disk selector."""

    hostname: Hostname
    address: IPAddress
    role: Role
    install_disk: Annotated[
        Annotated[DiskSelector, Tag("selector")] | Annotated[DevicePath, Tag("path")],
        Discriminator(_str_or_mapping("path", "selector")),
    ]
    interfaces: tuple[Interface, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    taints: tuple[TaintSpec, ...] = ()
    volumes: tuple[UserVolume, ...] = ()
    patches: tuple[RelativeFile, ...] = ()

    @property
    def is_controlplane(self) -> bool:
        return self.role == "controlplane"


# --------------------------------------------------------------------------- the cluster


class Cluster(_Model):
    """One cluster's inventory. `path` is the cluster directory (set by the loader, not from YAML)."""

    name: ClusterName
    id: int = Field(ge=1, le=255, strict=True)  # Cilium cluster id
    domain: Domain
    talos_version: TalosVersion
    kubernetes_version: Version
    endpoint: IPAddress
    network: Network
    schematic: Schematic = Schematic()
    gitops: GitOps
    gateway_api: GatewayAPI = Field(default_factory=GatewayAPI, alias="gatewayAPI")
    onepassword: OnePassword
    sops: Sops | None = None
    upgrade: Upgrade | None = None
    vars: dict[str, VarValue] = Field(default_factory=dict)
    allow_even_control_planes: bool = False
    allow_scheduling_on_control_planes: bool = False
    patches: tuple[RelativeFile, ...] = ()
    controlplane: NodeGroup = NodeGroup()
    worker: NodeGroup = NodeGroup()
    nodes: tuple[Node, ...] = Field(min_length=1)

    _path: Path | None = PrivateAttr(default=None)

    # ---- locations

    @property
    def path(self) -> Path:
        """The cluster directory (`<clusters_dir>/<name>` unless loaded from elsewhere)."""
        return self._path if self._path is not None else paths.clusters_dir() / self.name

    @property
    def file(self) -> Path:
        return self.path / CLUSTER_FILE

    @property
    def patches_dir(self) -> Path:
        return self.path / PATCHES_DIR

    @property
    def secrets_file(self) -> Path:
        """The SOPS-encrypted Talos secrets bundle, `<cluster dir>/talos/secrets.sops.yaml`."""
        return self.path / "talos" / "secrets.sops.yaml"

    @property
    def age_key_file(self) -> Path | None:
        """`sops.ageKeyFile` resolved against the cluster directory, if set."""
        if self.sops is None or self.sops.age_key_file is None:
            return None
        return self.path / self.sops.age_key_file

    # ---- derived values

    @property
    def api_url(self) -> str:
        host = f"[{self.endpoint}]" if isinstance(self.endpoint, IPv6Address) else str(self.endpoint)
        return f"https://{host}:{API_PORT}"

    @property
    def controlplanes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "controlplane")

    @property
    def workers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "worker")

    def node(self, name_or_address: str) -> Node:
        """The node with this hostname or address; ProblemsError listing the known nodes otherwise."""
        for n in self.nodes:
            if name_or_address in (n.hostname, str(n.address)):
                return n
        known = ", ".join(f"{n.hostname} ({n.address})" for n in self.nodes)
        raise ProblemsError(
            [Problem(str(self.file), "nodes", f"unknown node {name_or_address!r}; known nodes: {known}")]
        )

    def group(self, role: Role) -> NodeGroup:
        return self.controlplane if role == "controlplane" else self.worker

    def node_patches(self, node: Node) -> tuple[str, ...]:
        """Patch file names for `node` in merge order: cluster-wide, role group, node (later wins)."""
        return (*self.patches, *self.group(node.role).patches, *node.patches)

    def patch_files(self, node: Node) -> tuple[Path, ...]:
        """`node_patches` as paths under `<cluster dir>/patches/`."""
        return tuple(self.patches_dir / p for p in self.node_patches(node))

    def node_labels(self, node: Node) -> dict[str, str]:
        """Group labels, overridden by the node's."""
        return {**self.group(node.role).labels, **node.labels}

    def node_annotations(self, node: Node) -> dict[str, str]:
        return {**self.group(node.role).annotations, **node.annotations}

    def node_taints(self, node: Node) -> tuple[Taint, ...]:
        """Group taints then node taints; a node taint replaces a group taint with the same key+effect."""
        own = {(t.key, t.effect) for t in node.taints}
        return (*(t for t in self.group(node.role).taints if (t.key, t.effect) not in own), *node.taints)

    def node_prefix_address(self, node: Node) -> AnyIPInterface:
        """The node address with the nodeCIDR prefix, e.g. 10.25.11.11/24."""
        return ipaddress.ip_interface(f"{node.address}/{self.network.node_cidr.prefixlen}")

    def default_route(self) -> Route:
        return Route(network=IPv4Network("0.0.0.0/0"), gateway=self.network.gateway)

    def node_interfaces(self, node: Node) -> tuple[Interface, ...]:
        """The node's interfaces with `addresses`, `routes` and `mtu` filled in (never None).

        The first interface gets the node address (nodeCIDR prefix) and a default route via the gateway
        unless it sets them itself or uses DHCP; the others get none. Empty when the node has no
        `interfaces` (Talos default networking, DHCP).
        """
        return resolve_interfaces(node, self.network)

    def primary_link(self, node: Node) -> str | None:
        """The link carrying the node address and, on controlplanes, the API VIP (None: Talos defaults)."""
        return node.interfaces[0].name if node.interfaces else None


def resolve_interfaces(node: Node, network: Network) -> tuple[Interface, ...]:
    """`Cluster.node_interfaces` without a Cluster (the loader checks nodes of invalid clusters too)."""
    out: list[Interface] = []
    for i, itf in enumerate(node.interfaces):
        primary = i == 0 and not itf.dhcp
        addresses = itf.addresses
        if addresses is None:
            prefixed = ipaddress.ip_interface(f"{node.address}/{network.node_cidr.prefixlen}")
            addresses = (prefixed,) if primary else ()
        routes = itf.routes
        if routes is None:
            default = Route(network=IPv4Network("0.0.0.0/0"), gateway=network.gateway)
            routes = (default,) if primary and itf.addresses is None else ()
        mtu = itf.mtu if itf.mtu is not None else network.mtu
        out.append(itf.model_copy(update={"addresses": addresses, "routes": routes, "mtu": mtu}))
    return tuple(out)


def cluster_vars(cluster: Cluster) -> dict[str, str]:
    """The `flux-system/cluster-vars` ConfigMap data: the generated CLUSTER_* keys, then `vars`."""
    generated = {
        "CLUSTER_NAME": cluster.name,
        "CLUSTER_ID": str(cluster.id),
        "CLUSTER_DOMAIN": cluster.domain,
        "CLUSTER_CIDR": str(cluster.network.node_cidr),
        "CLUSTER_POD_CIDR": str(cluster.network.pod_cidr),
        "CLUSTER_SVC_CIDR": str(cluster.network.service_cidr),
        "CLUSTER_API_ENDPOINT": cluster.api_url,
    }
    return {**generated, **{k: v for k, v in cluster.vars.items() if k not in generated}}


# --------------------------------------------------------------------------- loading

Path_ = tuple[Any, ...]  # str keys, int indexes; a YAML key can also be a bool/int/None


@dataclass
class _Source:
    """A parsed YAML file plus the line of every mapping key and sequence item (1-based)."""

    file: Path
    data: Any
    lines: dict[Path_, int]

    def line(self, path: Path_) -> int | None:
        # the nearest ancestor that exists in the file: a missing key is reported at its parent
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def problem(self, path: Path_, message: str) -> Problem:
        return Problem(str(self.file), _field(path), message, self.line(path))

    def get(self, *path: str | int) -> Any:
        """The raw value at `path`, or None when absent or the shape differs."""
        cur = self.data
        for p in path:
            cur = _step(cur, p)
            if cur is _ABSENT:
                return None
        return cur


_ABSENT = object()


def _step(cur: Any, part: str | int) -> Any:
    """`cur[part]` if `cur` is a list/dict holding it, else `_ABSENT`."""
    if isinstance(cur, list):
        return cur[part] if isinstance(part, int) and 0 <= part < len(cur) else _ABSENT
    if isinstance(cur, dict):
        return cur.get(part, _ABSENT)
    return _ABSENT


def _field(path: Sequence[Any]) -> str:
    """`('nodes', 3, 'address')` -> `nodes[3].address`; keys with dots are bracketed."""
    out = ""
    for p in path:
        if not isinstance(p, str | int) or isinstance(p, bool):
            p = str(p)  # a YAML key that is not a string (`on:` is True): show it as read
        if isinstance(p, int):
            out += f"[{p}]"
        elif "." in p or "/" in p or " " in p:
            out += f'["{p}"]'
        else:
            out += ("." if out else "") + p
    return out


def _read_yaml(file: Path, problems: list[Problem]) -> _Source | None:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(str(file), "", "file not found"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(file), "", f"cannot read file: {exc}"))
        return None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        problems.append(Problem(str(file), "", f"YAML syntax error: {what}", line))
        return None
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises MarkedYAMLError for syntax
        problems.append(Problem(str(file), "", f"YAML error: {exc}"))
        return None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    src = _Source(file, data, lines)
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _index(node, (), src, problems)
    return src


def _index(node: yaml.Node, path: Path_, src: _Source, problems: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            # the key as constructed (`on:` is True), so the path matches the data pydantic saw
            k = key.value if key.tag == "tag:yaml.org,2002:str" else yaml.safe_load(key.value)
            p = (*path, k)
            if p in src.lines:
                # PyYAML silently keeps the last duplicate; a silently dropped setting is a trap
                first = src.lines[p]
                problems.append(
                    Problem(
                        str(src.file),
                        _field(p),
                        f"duplicate key (first defined on line {first})",
                        key.start_mark.line + 1,
                    )
                )
                continue
            src.lines[p] = key.start_mark.line + 1
            _index(value, p, src, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            src.lines[(*path, i)] = item.start_mark.line + 1
            _index(item, (*path, i), src, problems)


# ---- pydantic errors -> Problems


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that the key at `loc[-1]` belongs to (for 'did you mean' suggestions)."""
    model: type[BaseModel] | None = Cluster
    for part in loc[:-1]:
        if model is None:
            return None
        if isinstance(part, int) or part not in _aliases(model):
            continue  # sequence index or union tag: stay on the current model
        model = _first_model(_aliases(model)[part])
    return model


def _aliases(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or n): f.annotation for n, f in model.model_fields.items()}


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):  # unions, tuple[...], dict[...], Annotated[...]
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: Mapping[str, Any], loc: Sequence[str | int]) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(loc)
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(key, list(_aliases(model)), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(_aliases(model))}"
        return f"unknown key {key!r}{hint}"
    if kind == "literal_error":
        what = "role" if loc and loc[-1] == "role" else "value"
        return f"unknown {what} {_short(value)}; expected {ctx.get('expected')}"
    if kind == "ip_any_address":
        return f"{_short(value)} is not a valid IP address"
    if kind == "ip_any_network":
        return f"{_short(value)} is not a valid network in CIDR notation with host bits zero (e.g. 10.42.0.0/16)"
    if kind == "ip_any_interface":
        return f"{_short(value)} is not a valid address with prefix (e.g. 10.25.11.11/24)"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in {"model_type", "dict_type"}:
        return f"expected a mapping, got {_short(value)}"
    if kind in {"tuple_type", "list_type"}:
        return f"expected a list, got {_short(value)}"
    msg = str(err["msg"])
    return f"{msg} (got {_short(value)})" if not isinstance(value, dict | list) else msg


def _data_loc(src: _Source, loc: Sequence[str | int], kind: str) -> Path_:
    """Drop the parts of a pydantic `loc` that are not in the data (union tags, validator names)."""
    out: list[str | int] = []
    cur = src.data
    for i, part in enumerate(loc):
        child = _step(cur, part)
        if child is not _ABSENT:
            cur = child
        elif not (kind == "missing" and i == len(loc) - 1):
            continue  # not in the data: a union tag or validator name; a missing key itself is kept
        out.append(part)
    return tuple(out)


def _key_at(mapping: Any, key: Any) -> Any:
    """The key of `mapping` equal to `key` as stored (pydantic reports `True` as 1)."""
    if isinstance(mapping, dict):
        for k in mapping:
            if k == key:
                return k
    return key


def _validation_problems(src: _Source, exc: ValidationError) -> list[Problem]:
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if len(loc) >= 2 and loc[0] == "vars" and not isinstance(_key_at(src.get("vars"), loc[1]), str):
            continue  # a non-string variable name: reported once, by the variable-name check
        if loc and loc[-1] == "[key]":
            if loc[0] == "vars":
                continue  # variable names get their own, clearer check
            path = _data_loc(src, loc[:-1], err["type"])
            out.append(src.problem(path, f"key {_short(loc[-2])} must be a string (quote it)"))
            continue
        path = _data_loc(src, err["loc"], err["type"])
        out.append(src.problem(path, _message(err, path)))
    return out


# ---- checks pydantic cannot express per field (cross-field, cross-file)


def _ip(value: Any) -> IPv4Address | IPv6Address | None:
    try:
        return ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _net(value: Any) -> IPv4Network | IPv6Network | None:
    try:
        return ipaddress.ip_network(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _items(value: Any) -> Iterator[tuple[int, Any]]:
    return enumerate(value) if isinstance(value, list) else iter(())


def _check_semantics(src: _Source, dir_name: str, siblings: Sequence[_Sibling]) -> list[Problem]:
    out: list[Problem] = []
    P = src.problem

    name = src.get("name")
    if isinstance(name, str) and name != dir_name:
        out.append(P(("name",), f"{name!r} must equal the cluster directory name {dir_name!r}"))

    # cluster ids and pod CIDRs must be unique across the clusters that mesh together
    cid = src.get("id")
    pod = _net(src.get("network", "podCIDR"))
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

    node_cidr = _net(src.get("network", "nodeCIDR"))
    endpoint = _ip(src.get("endpoint"))
    gateway = _ip(src.get("network", "gateway"))

    # the three cluster CIDRs must be disjoint
    nets = [(k, _net(src.get("network", k))) for k in ("nodeCIDR", "podCIDR", "serviceCIDR")]
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
    for i, n in _items(src.get("nodes")):
        if not isinstance(n, dict):
            continue
        host = n.get("hostname")
        if isinstance(host, str):
            if host in hostnames:
                out.append(P(("nodes", i, "hostname"), f"duplicate hostname {host!r} (also nodes[{hostnames[host]}])"))
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
                        f"API VIP {endpoint} equals the address of node {host!r} (the VIP must be a free address)",
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
                    P(("vars", key), f"variable name {key!r} is not a string (YAML reads on/yes/no/1 so); quote it")
                )
            elif not _VAR_NAME_RE.match(key):
                out.append(
                    P(
                        ("vars", key),
                        f"{key!r} is not a valid variable name (letters, digits and '_', not starting with a digit)",
                    )
                )
            elif key in GENERATED_VARS:
                out.append(P(("vars", key), f"{key} is generated from the inventory and cannot be set in vars"))

    # patch files must exist under patches/
    patch_lists: list[Path_] = [("patches",), ("controlplane", "patches"), ("worker", "patches")]
    patch_lists += [("nodes", i, "patches") for i, _ in _items(src.get("nodes"))]
    patches_dir = src.file.parent / PATCHES_DIR
    for where in patch_lists:
        for j, ref in _items(src.get(*where)):
            bad_ref = not isinstance(ref, str) or not ref or Path(ref).is_absolute() or ".." in Path(ref).parts
            if not bad_ref and not (patches_dir / ref).is_file():
                out.append(P((*where, j), f"patch file not found: {patches_dir / ref}"))

    # the Image Factory hashes these lists as given: a duplicate changes the schematic ID
    for key, what in (("extensions", "extension"), ("extraKernelArgs", "kernel argument")):
        seen: dict[Any, int] = {}
        for j, value in _items(src.get("schematic", key)):
            if not isinstance(value, str):
                continue
            if value in seen:
                out.append(
                    P(
                        ("schematic", key, j),
                        f"duplicate {what} {value!r} (also {key}[{seen[value]}]): the Image Factory hashes the list "
                        "as given, so the duplicate yields a different schematic ID (and installer image) than "
                        "intended; remove it",
                    )
                )
            else:
                seen[value] = j

    for j, check in _items(src.get("upgrade", "healthChecks")):
        if isinstance(check, dict) and isinstance(check.get("expr"), str):
            msg = _cel_error(check["expr"])
            if msg:
                out.append(P(("upgrade", "healthChecks", j, "expr"), msg))
    return out


def _check_interfaces(src: _Source, i: int, node: dict[str, Any], *, unique_aliases: bool) -> list[Problem]:
    out: list[Problem] = []
    names: dict[str, int] = {}
    macs: dict[str, Path_] = {}  # exact bond-member MAC -> where it was first selected, across the node
    for j, itf in _items(node.get("interfaces")):
        if not isinstance(itf, dict):
            continue
        base: Path_ = ("nodes", i, "interfaces", j)
        name = itf.get("name")
        if isinstance(name, str):
            if name in names:
                out.append(
                    src.problem((*base, "name"), f"duplicate interface {name!r} (also interfaces[{names[name]}])")
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
        for k, member in _items((itf.get("bond") or {}).get("members") if isinstance(itf.get("bond"), dict) else None):
            if member == {}:
                out.append(src.problem((*base, "bond", "members", k), "empty selector: set hardwareAddr, driver, ..."))
            elif isinstance(member, dict):
                where = (*base, "bond", "members", k)
                out += _check_bond_member(src, where, member, macs, unique_aliases=unique_aliases)
        ids: dict[Any, int] = {}
        for k, vlan in _items(itf.get("vlans")):
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
    src: _Source, where: Path_, member: dict[str, Any], macs: dict[str, Path_], *, unique_aliases: bool
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
                        f"{value!r} is a glob, but on Talos v1.12 a bond member's selector must match exactly one "
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
                    (*where, key), f"{value!r} is not a MAC address like f8:f2:1e:20:57:a0: it would match no link"
                )
            )
            continue
        pinned = True
        mac = value.lower()
        if mac in macs:
            out.append(
                src.problem(
                    (*where, key),
                    f"MAC {mac} is already a bond member at {_field(macs[mac])}: each port can be selected once",
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


def _check_volumes(src: _Source, i: int, node: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    seen: dict[str, int] = {}
    for j, vol in _items(node.get("volumes")):
        if not isinstance(vol, dict):
            continue
        name = vol.get("name")
        if isinstance(name, str):
            if name in seen:
                out.append(
                    src.problem(
                        ("nodes", i, "volumes", j, "name"), f"duplicate volume {name!r} (also volumes[{seen[name]}])"
                    )
                )
            seen[name] = j
        if isinstance(vol.get("match"), str):
            msg = _cel_error(vol["match"])
            if msg:
                out.append(src.problem(("nodes", i, "volumes", j, "match"), msg))
        out += _check_volume_size(src, ("nodes", i, "volumes", j), vol)
    return out


def _check_volume_size(src: _Source, where: Path_, vol: dict[str, Any]) -> list[Problem]:
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
            out.append(src.problem((*where, key), f"{raw!r} is not a size like 100GiB"))
            continue
        if key == "maxSize" and text.endswith("%"):
            try:
                pct = float(text[:-1])
            except ValueError:
                pct = -1.0
            if not 0 < pct <= 100:
                out.append(src.problem((*where, key), f"{text!r} is not a percentage between 0 and 100, e.g. 80%"))
            continue
        try:
            sizes[key] = parse_bytes(text)
        except ValueError as exc:
            hint = " (relative sizes like 80% are for maxSize only)" if text.endswith("%") else ""
            out.append(src.problem((*where, key), f"{text!r} is not a size like 100GiB: {exc}{hint}"))
    low, high = sizes["minSize"], sizes["maxSize"]
    if low is not None and high is not None and low > high:
        out.append(src.problem((*where, "minSize"), f"minSize {raw_min} is greater than maxSize {raw_max}"))
    return out


def _cel_error(expr: str) -> str | None:
    """A CEL syntax error message, or None. celpy is imported lazily: only inventories with CEL pay."""
    import celpy.celparser

    try:
        _cel_env().compile(expr)
    except celpy.celparser.CELParseError as exc:
        detail = " ".join(str(exc).split())
        return f"not a valid CEL expression: {detail}"
    return None


_CEL_ENV: list[Any] = []


def _cel_env() -> Any:
    if not _CEL_ENV:
        import celpy

        _CEL_ENV.append(celpy.Environment())
    return _CEL_ENV[0]


def _lenient(model: type[_M], raw: Any) -> _M | None:
    """`raw` as `model` ignoring unknown top-level keys (already reported), or None if still invalid."""
    if not isinstance(raw, dict):
        return None
    known = _aliases(model).keys() | model.model_fields.keys()
    try:
        return model.model_validate({k: v for k, v in raw.items() if k in known})
    except ValidationError:
        return None


def _check_links(src: _Source) -> list[Problem]:
    """Node address on exactly one link; VLAN MTU within the parent's.

    Runs on every node that validates on its own (with a valid `network`), so these problems are reported
    together with unrelated ones elsewhere in the file.
    """
    out: list[Problem] = []
    network = _lenient(Network, src.get("network"))
    if network is None:
        return out  # reported by the full validation
    for i, raw in _items(src.get("nodes")):
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


# ---- siblings (cheap: only id and pod CIDR are read)


@dataclass(frozen=True)
class _Sibling:
    name: str
    file: Path
    id: int | None
    pod_cidr: IPv4Network | IPv6Network | None


def _cluster_dirs(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and (p / CLUSTER_FILE).is_file())
    except OSError:
        return []


def _siblings(root: Path, exclude: str) -> list[_Sibling]:
    out = []
    for d in _cluster_dirs(root):
        if d.name == exclude:
            continue
        try:
            data = yaml.safe_load((d / CLUSTER_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # that cluster's own load reports it
        if not isinstance(data, dict):
            continue
        cid = data.get("id")
        net = data.get("network")
        pod = _net(net.get("podCIDR")) if isinstance(net, dict) else None
        out.append(_Sibling(d.name, d / CLUSTER_FILE, cid if isinstance(cid, int) else None, pod))
    return out


def _load(name: str, root: Path) -> tuple[Cluster | None, list[Problem]]:
    problems: list[Problem] = []
    cdir = root / name
    if not name or "/" in name or name in {".", ".."}:
        return None, [Problem(str(root), "", f"{name!r} is not a cluster name")]
    if not cdir.is_dir():
        known = ", ".join(d.name for d in _cluster_dirs(root)) or "none"
        return None, [Problem(str(cdir), "", f"cluster directory not found (known clusters in {root}: {known})")]
    src = _read_yaml(cdir / CLUSTER_FILE, problems)
    if src is None:
        return None, problems
    if not isinstance(src.data, dict):
        problems.append(src.problem((), f"expected a mapping of cluster settings, got {_short(src.data)}"))
        return None, problems
    cluster: Cluster | None = None
    try:
        cluster = Cluster.model_validate(src.data)
    except ValidationError as exc:
        problems += _validation_problems(src, exc)
    problems += _check_semantics(src, name, _siblings(root, name))
    problems += _check_links(src)
    if cluster is not None:
        cluster._path = cdir
    # one problem per place and message, in file order
    unique = list(dict.fromkeys(problems))
    unique.sort(key=lambda p: (p.file, p.line or 0))
    return (cluster if not unique else None), unique


def load_cluster(name: str, *, clusters_dir: Path | None = None) -> Cluster:
    """Load and validate `<clusters_dir>/<name>/cluster.yaml`; ProblemsError with every problem found.

    `clusters_dir` defaults to `k8s_ops.core.paths.clusters_dir()` (`K8S_OPS_CLUSTERS_DIR` or `clusters/`).
    Sibling clusters are read cheaply to check that cluster ids and pod CIDRs are unique.
    """
    root = clusters_dir if clusters_dir is not None else paths.clusters_dir()
    cluster, problems = _load(name, root)
    if problems or cluster is None:
        file = root / name / CLUSTER_FILE
        raise ProblemsError(problems, hint=f"fix {file} and run again" if file.is_file() else None)
    return cluster


def load_all(clusters_dir: Path | None = None) -> dict[str, Cluster]:
    """Load every cluster directory (one holding a cluster.yaml); ProblemsError with all problems of all."""
    root = clusters_dir if clusters_dir is not None else paths.clusters_dir()
    if not root.is_dir():
        raise ProblemsError([Problem(str(root), "", "clusters directory not found")])
    clusters: dict[str, Cluster] = {}
    problems: list[Problem] = []
    for d in _cluster_dirs(root):
        cluster, found = _load(d.name, root)
        problems += found
        if cluster is not None:
            clusters[d.name] = cluster
    if problems:
        raise ProblemsError(problems)
    return clusters
