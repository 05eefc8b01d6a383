"""The inventory as frozen pydantic models, with the values derived from them (see the package docstring)."""

from __future__ import annotations

import ipaddress
import re
import typing
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface
from pathlib import Path
from typing import Annotated, Any, Literal

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
    StrictBool,
    Tag,
    model_validator,
)
from pydantic.alias_generators import to_camel

from k8s_ops.core import paths
from k8s_ops.core.errors import Problem, ProblemsError

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
    # not (`true` becomes "True", `1.10` becomes "1.1"), so those must be quoted.
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
    physical: StrictBool | None = None

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
    dhcp: StrictBool = False
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
    dhcp: StrictBool = False
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
    grow: StrictBool | None = None
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


def _check_soak(v: str) -> str:
    # the Go duration parser gitops.lint uses for Flux intervals (imported here: no import cycle at load time)
    from k8s_ops.core.units import parse_go_duration

    if parse_go_duration(v) is None:
        raise ValueError(f"{v!r} is not a duration like 24h, 90m or 1h30m")
    return v


class Promote(_Model):
    """`gitops.promote`: how long a commit must have been applied and Ready on the cluster promoted from before
    `gitops.promote` fast-forwards the next cluster's branch to it (`soak`, a Go duration)."""

    soak: Annotated[str, AfterValidator(_check_soak)] = "24h"


class GitOps(_Model):
    """Where Flux syncs from."""

    repository: str = Field(min_length=1)
    branch: str = Field(min_length=1)
    path: str = Field(min_length=1)
    promote: Promote = Field(default_factory=Promote)


class GatewayAPI(_Model):
    """Gateway API choices for the bootstrap (`gatewayAPI:`).

    `channel`: the CRD channel to install (`standard` or `experimental`); unset = k8s_ops/bootstrap/charts.yaml's, which
    matches the GitOps repository's Envoy Gateway. `cilium`: also run Cilium's own Gateway API controller
    (Helm `gatewayAPI.enabled`); off by default because it adds a second GatewayClass next to Envoy Gateway's.
    """

    channel: Literal["standard", "experimental"] | None = None
    cilium: StrictBool = False


_KUBE_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_SECRET_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


def _check_kube_name(v: str) -> str:
    if not _KUBE_NAME_RE.match(v) or ".." in v:
        raise ValueError(f"{v[:64]!r} is not a Kubernetes object name (lowercase letters, digits, '-' and '.')")
    return v


def _check_secret_key(v: str) -> str:
    if not _SECRET_KEY_RE.match(v) or v in (".", ".."):
        raise ValueError(f"{v[:64]!r} is not a Secret data key (letters, digits, '-', '_' and '.')")
    return v


KubeName = Annotated[str, AfterValidator(_check_kube_name)]
SecretKey = Annotated[str, AfterValidator(_check_secret_key)]


class ItemField(_Model):
    """One field of a 1Password item in `onepassword.vault`, read with the SDK (never on argv or disk)."""

    item: str = Field(min_length=1)
    field: str = Field(min_length=1)


class SecretRef(_Model):
    """Where a value lands in the cluster: Secret `name`, data key `key` (namespace from the enclosing section)."""

    name: KubeName
    key: SecretKey


class OnePasswordConnect(_Model):
    """`onepassword.connect`: the 1Password Connect server's credentials file and access token, created as Secrets
    by the bootstrap's secrets stage so External Secrets sync as soon as Flux installs the operator.

    Defaults are the upstream ones (tests/sim/FIDELITY.md): the connect chart's `connect.credentialsName`/
    `credentialsKey` (`op-credentials` / `1password-credentials.json`; the value stored is the file base64-encoded,
    as the chart's own template stores it) and `operator.token.name`/`key` (`onepassword-token` / `token`), which
    the ClusterSecretStore's `connectTokenSecretRef` points at. `credentials` may hold the JSON file or its base64.
    """

    credentials: ItemField
    token: ItemField
    namespace: KubeName = "external-secrets"
    credentials_secret: SecretRef = SecretRef(name="op-credentials", key="1password-credentials.json")
    token_secret: SecretRef = SecretRef(name="onepassword-token", key="token")


class BootstrapSecret(_Model):
    """`bootstrap.secrets[]`: one extra Secret created at bootstrap, before Flux reconciles. Exactly one source:
    `onepassword` (data key -> item field, in `onepassword.vault`) or `sops` (a SOPS-encrypted flat YAML mapping in
    the cluster directory; every key a data key, `*_unencrypted` keys ignored)."""

    name: KubeName
    namespace: KubeName
    onepassword: dict[SecretKey, ItemField] | None = None
    sops: RelativeFile | None = None

    @model_validator(mode="after")
    def _one_source(self) -> BootstrapSecret:
        if (self.onepassword is None) == (self.sops is None):
            raise ValueError("give exactly one of `onepassword` (key: {item, field}) and `sops` (a file)")
        if self.onepassword is not None and not self.onepassword:
            raise ValueError("`onepassword` needs at least one key")
        return self


class BootstrapSection(_Model):
    """`bootstrap:` extras for the bootstrap and the rebuild."""

    secrets: tuple[BootstrapSecret, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> BootstrapSection:
        seen: set[tuple[str, str]] = set()
        for s in self.secrets:
            if (s.namespace, s.name) in seen:
                raise ValueError(f"Secret {s.namespace}/{s.name} is listed twice")
            seen.add((s.namespace, s.name))
        return self


class OnePassword(_Model):
    """The 1Password vault for this cluster's artefacts.

    The sync (`k8s_ops.onepassword`) names the items itself: `kubeconfig-<cluster>`, `talosconfig-<cluster>`,
    `sops-age-key-<cluster>` and `talos-secrets-<cluster>`; there is no item setting.
    """

    vault: str = Field(min_length=1)
    connect: OnePasswordConnect | None = None


_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def _check_endpoint(v: str) -> str:
    if not re.match(r"^https?://[^/\s?#]+/?$", v):
        raise ValueError(
            "must be an http(s) URL of the S3 API without a path, e.g. https://<account>.r2.cloudflarestorage.com"
        )
    return v.rstrip("/")


def _check_bucket(v: str) -> str:
    if not _BUCKET_RE.match(v) or ".." in v:
        raise ValueError("must be an S3 bucket name: 3-63 lowercase letters, digits, '.' and '-'")
    return v


def _check_prefix(v: str) -> str:
    if v and (not _PREFIX_RE.match(v) or ".." in v.split("/")):
        raise ValueError("must be key segments separated by '/', without a leading or trailing '/' or '..'")
    return v


class BackupOnePassword(_Model):
    """The 1Password item (in `onepassword.vault`) holding the object store's access key pair; read with the SDK."""

    item: str = Field(min_length=1)
    access_key_id_field: str = Field(default="access-key-id", min_length=1)
    secret_access_key_field: str = Field(default="secret-access-key", min_length=1)


class BackupCredentials(_Model):
    """Where the S3 credentials come from: a 1Password item, else `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`."""

    onepassword: BackupOnePassword | None = None


class Retention(_Model):
    """Which snapshots a prune keeps: the newest `keepLast`, plus the newest of each UTC day of the last
    `keepDailyDays` days. The newest verified snapshot is always kept."""

    keep_last: int = Field(default=7, ge=1, strict=True)
    keep_daily_days: int = Field(default=30, ge=0, strict=True)


class EtcdBackupTarget(_Model):
    """An S3-compatible bucket for off-box etcd snapshots (`<prefix>/<cluster>/<timestamp>.db`)."""

    endpoint: Annotated[str, AfterValidator(_check_endpoint)]
    bucket: Annotated[str, AfterValidator(_check_bucket)]
    prefix: Annotated[str, AfterValidator(_check_prefix)] = "etcd"
    region: str = Field(default="auto", min_length=1)
    credentials: BackupCredentials = BackupCredentials()
    retention: Retention = Retention()


class Backups(_Model):
    """Off-box backups (`backups:`); only etcd snapshots so far."""

    etcd: EtcdBackupTarget | None = None


class Sops(_Model):
    """SOPS settings; `ageKeyFile` is relative to the cluster directory."""

    age_key_file: RelativeFile | None = None


class HealthCheck(_Model):
    """One gate the rolling upgrade holds on before and after each node. Exactly one of three shapes:

    * objects: `kind` (+ `apiVersion`, optional `namespace`) and either `name` (one object) or
      `labelSelector`/`fieldSelector` (or neither: every object of the kind); `expr` is CEL evaluated on each
      object — `match: all` (default) every one must pass, `any` one suffices; zero matches fails unless
      `allowEmpty: true`;
    * `command`: an argv run on the operator machine (no shell), success = exit 0;
    * `job`: a Kubernetes Job manifest (a file in the cluster directory) run to completion, logs shown on failure.

    `timeout`: seconds this check may hold the rollout (default: the gate hold, `--gate-timeout`).
    """

    api_version: str | None = Field(default=None, min_length=1)
    kind: str | None = Field(default=None, min_length=1)
    namespace: str | None = None
    name: str | None = Field(default=None, min_length=1)
    label_selector: str | None = Field(default=None, min_length=1)
    field_selector: str | None = Field(default=None, min_length=1)
    expr: str | None = Field(default=None, min_length=1)
    match: Literal["all", "any"] = "all"
    allow_empty: StrictBool = False
    command: tuple[str, ...] | None = Field(default=None, min_length=1)
    job: RelativeFile | None = None
    timeout: float | None = Field(default=None, gt=0)
    description: str | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> HealthCheck:
        shapes = [s for s, v in (("kind", self.kind), ("command", self.command), ("job", self.job)) if v]
        if len(shapes) != 1:
            raise ValueError(
                "a health check is exactly one of: `kind` (+ apiVersion, expr), `command` (argv) or `job` "
                f"(manifest file); found {', '.join(shapes) or 'none'}"
            )
        if self.kind is not None:
            missing = [f for f, v in (("apiVersion", self.api_version), ("expr", self.expr)) if not v]
            if missing:
                raise ValueError(f"a `kind` health check needs {' and '.join(missing)}")
            if self.name is not None and (self.label_selector or self.field_selector):
                raise ValueError("`name` selects one object: drop labelSelector/fieldSelector, or drop name")
        elif self.expr is not None or self.label_selector or self.field_selector or self.name:
            raise ValueError("expr, name and selectors belong to `kind` health checks only")
        return self


class HookAction(_Model):
    """One hook action: `command` (argv on the operator machine, no shell), `kubectl` (argv for kubectl against
    the cluster's own kubeconfig and context) or `job` (a Job manifest in the cluster directory, run to
    completion). `always`: a post-hook that also runs when the rollout fails (e.g. `ceph osd unset noout`)."""

    command: tuple[str, ...] | None = Field(default=None, min_length=1)
    kubectl: tuple[str, ...] | None = Field(default=None, min_length=1)
    job: RelativeFile | None = None
    timeout: float = Field(default=300.0, gt=0)
    always: StrictBool = False
    description: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> HookAction:
        kinds = [k for k, v in (("command", self.command), ("kubectl", self.kubectl), ("job", self.job)) if v]
        if len(kinds) != 1:
            raise ValueError(f"a hook is exactly one of command, kubectl or job; found {', '.join(kinds) or 'none'}")
        if self.always and self.job is not None:
            raise ValueError("`always` hooks run in the recovery, which runs commands: use command or kubectl")
        return self


class UpgradeHooks(_Model):
    """Hooks around the rollout; node hooks see NODE, NODE_ADDRESS and ROLE in their environment."""

    pre_cluster: tuple[HookAction, ...] = ()
    pre_node: tuple[HookAction, ...] = ()
    post_node: tuple[HookAction, ...] = ()
    post_cluster: tuple[HookAction, ...] = ()


class AlertmanagerService(_Model):
    """Alertmanager as a Service reached through the Kubernetes API service proxy, with the kubeconfig's
    credentials: `/api/v1/namespaces/<namespace>/services/<scheme>:<name>:<port>/proxy/`."""

    name: str = Field(min_length=1)
    namespace: str = Field(default="monitoring", min_length=1)
    port: str = Field(default="9093", min_length=1)  # a port number or the Service's port name
    scheme: Literal["http", "https"] = "http"


class Alertmanager(_Model):
    """An Alertmanager silence per node while it reboots: `url` (Alertmanager's base URL, e.g. through
    `kubectl proxy`) or `service` (through the Kubernetes API service proxy); matchers get the node's name in
    `{node}`."""

    url: str | None = Field(default=None, min_length=1)
    service: AlertmanagerService | None = None
    matchers: dict[str, str] = Field(default_factory=lambda: {"instance": "{node}"})
    created_by: str = "k8s-ops"

    @model_validator(mode="after")
    def _one_address(self) -> Alertmanager:
        if (self.url is None) == (self.service is None):
            raise ValueError("give exactly one of `url` (Alertmanager's base URL) and `service` ({namespace, name})")
        return self


class UpgradeWindow(_Model):
    """A maintenance window: rollouts start (and take the next node) only inside it."""

    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(min_length=1)
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(pattern=r"^([01]\d|2[0-4]):[0-5]\d$")
    timezone: str = "UTC"


class Upgrade(_Model):
    """Rolling upgrade settings."""

    health_checks: tuple[HealthCheck, ...] = ()
    max_unavailable: int = Field(default=1, ge=1, strict=True)
    hooks: UpgradeHooks = UpgradeHooks()
    pause: tuple[Literal["flux", "volsync", "keda"], ...] = ()
    alertmanager: Alertmanager | None = None
    window: UpgradeWindow | None = None


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
    # a canary: this node's Talos version when it differs from the cluster's (the rollout upgrades it first)
    talos_version: TalosVersion | None = None

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
    backups: Backups | None = None
    bootstrap: BootstrapSection | None = None
    vars: dict[str, VarValue] = Field(default_factory=dict)
    allow_even_control_planes: StrictBool = False
    allow_scheduling_on_control_planes: StrictBool = False
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
        return paths.bundle_file(self.path)

    @property
    def age_key_file(self) -> Path | None:
        """`sops.ageKeyFile` resolved against the cluster directory, if set."""
        if self.sops is None or self.sops.age_key_file is None:
            return None
        return self.path / self.sops.age_key_file

    # ---- derived values

    @property
    def api_url(self) -> str:
        from k8s_ops.tools.kubectl import server_url

        return server_url(str(self.endpoint), API_PORT)

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
