"""A simulated node's network: the links its hardware has, and what Talos v1.12 builds on them from the
machine config's network documents (LinkAliasConfig, LinkConfig, BondConfig, BridgeConfig, VLANConfig,
DummyLinkConfig, DHCPv4/6Config, Layer2VIPConfig).

Why this exists: a node must answer on its address, and a controlplane hold the API VIP, only when the
config's links really exist on the node — a config naming a NIC the machine does not have leaves it
unreachable, as on real hardware. Every rule cites the upstream file it comes from (siderolabs/talos
v1.12.11); the rows of tests/sim/fidelity/network.md pin them with tests.

Hardware (`node["links"]`, one dict per physical NIC, field names as in LinkStatus): `name`, `hardwareAddr`,
`permanentAddr`, `busPath`, `driver`, `pciID`, `linkState` (cable plugged), `altNames`. `sim create` derives
it from the inventory's `interfaces` (every selector gets a NIC that matches it) or gives one virtio NIC.

The network is a pure function of (hardware, active config): evaluated on demand, so it follows the config
that is in effect whenever it changes (apply, reboot, try-mode rollback), as Talos' controllers do.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from .util import JSON, Record, memoized, short_hash

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

# nethelpers.LinkType (siderolabs/talos v1.12.11 pkg/machinery/nethelpers/linktype.go)
LINK_ETHER = 1
LINK_LOOPBACK = 772
# nethelpers.OperationalState = rtnetlink's IF_OPER_* (pkg/machinery/nethelpers/operstate.go)
OPER_STATES = {"unknown": 0, "notPresent": 1, "down": 2, "lowerLayerDown": 3, "testing": 4, "dormant": 5, "up": 6}
# IFF_* bits in the order nethelpers.LinkFlags prints them (pkg/machinery/nethelpers/linkflag.go)
_FLAG_ORDER = ("UP", "BROADCAST", "LOOPBACK", "RUNNING", "MASTER", "SLAVE", "MULTICAST", "LOWER_UP")

HARDWARE_FIELDS = ("name", "hardwareAddr", "permanentAddr", "busPath", "driver", "pciID", "linkState", "altNames")
# PCI_ID (as /sys/class/net/*/device/uevent spells it) and lspci names for drivers the simulator knows;
# assumption: ids from the public pci.ids database, only used to fill `get links`.
_DRIVERS: dict[str, tuple[str, str, str]] = {
    "virtio_net": ("1AF4:1000", "Red Hat, Inc.", "Virtio network device"),
    "e1000e": ("8086:10D3", "Intel Corporation", "82574L Gigabit Network Connection"),
    "igb": ("8086:1533", "Intel Corporation", "I210 Gigabit Network Connection"),
    "ixgbe": ("8086:10FB", "Intel Corporation", "82599ES 10-Gigabit SFI/SFP+ Network Connection"),
    "i40e": ("8086:1572", "Intel Corporation", "Ethernet Controller X710 for 10GbE SFP+"),
    "mlx5_core": ("15B3:1017", "Mellanox Technologies", "MT27800 Family [ConnectX-5]"),
}
_LINK_DOCS = ("LinkConfig", "BondConfig", "BridgeConfig", "VLANConfig", "DummyLinkConfig", "WireguardConfig")
_DHCP_DOCS = ("DHCPv4Config", "DHCPv6Config")
_MAC_RE = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"  # re.compile'd on first use (cached by re)


class HardwareError(ValueError):
    """A hardware description the simulator cannot build (unknown field, bad MAC, duplicate name)."""


class SelectorError(ValueError):
    """A `selector.match` expression that cannot be evaluated."""


# ---- go-glob ------------------------------------------------------------------------------------------
def glob(pattern: str, subject: str) -> bool:
    """`glob(pattern, string)` of Talos' CEL link environment: github.com/ryanuber/go-glob v1.0.0 (see
    siderolabs/talos v1.12.11 pkg/machinery/cel/celenv/celenv.go). Only `*` is special — `?` and `[` are
    literal, unlike fnmatch — and, like go-glob, a subject used up before the last part still matches."""
    if pattern == "":
        return subject == ""
    parts = pattern.split("*")
    if len(parts) == 1:
        return subject == pattern
    last = len(parts) - 1
    for i, part in enumerate(parts):
        if i == 0:
            if not pattern.startswith("*") and not subject.startswith(part):
                return False
        elif i == last:
            if subject:
                return pattern.endswith("*") or subject.endswith(part)
        elif part not in subject:
            return False
        subject = subject[subject.find(part) + len(part) :] if part in subject else ""
    return True


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", "")) if mac else b""


def _mac_text(raw: bytes) -> str:
    """Go's net.HardwareAddr.String(): lowercase, colon-separated."""
    return ":".join(f"{b:02x}" for b in raw)


# ---- a small CEL evaluator for link selectors -----------------------------------------------------------
_TOKEN = (  # compiled on first use (re caches it): each simulated call is a fresh interpreter
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<num>\d+u?)|(?P<op>&&|\|\||==|!=|<=|>=|[<>!().,\[\]])'
    r"|(?P<id>[A-Za-z_][A-Za-z0-9_]*))"
)


def _tokens(expr: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = re.compile(_TOKEN).match(expr, pos)
        if not m:
            raise SelectorError(f"unsupported syntax at {expr[pos:]!r}")
        pos = m.end()
        if m["str"] is not None:
            raw = m["str"]
            if raw[0] == "'":
                raw = '"' + raw[1:-1].replace("\\'", "'").replace('"', '\\"') + '"'
            out.append(("lit", json.loads(raw)))
        elif m["num"] is not None:
            out.append(("lit", int(m["num"].rstrip("u"))))
        elif m["op"] is not None:
            out.append(("op", m["op"]))
        elif m["id"] in ("true", "false"):
            out.append(("lit", m["id"] == "true"))
        elif m["id"] == "in":
            out.append(("op", "in"))
        else:
            out.append(("id", m["id"]))
    return out


class _Parser:
    """Recursive descent over the subset the toolkit renders: `||`, `&&`, `!`, comparisons, `in`, calls of
    `glob`/`mac`, `link.<field>`, literals and lists. Anything else goes to cel-python (`evaluate_selector`)."""

    def __init__(self, expr: str, env: Mapping[str, Any], funcs: Mapping[str, Callable[..., Any]]) -> None:
        self.toks = _tokens(expr)
        self.i = 0
        self.env = env
        self.funcs = funcs

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, op: str | None = None) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None or (op is not None and tok != ("op", op)):
            raise SelectorError(f"expected {op or 'a term'} at token {self.i}")
        self.i += 1
        return tok

    def run(self) -> Any:
        value = self.or_()
        if self.peek() is not None:
            raise SelectorError(f"unexpected {self.peek()}")
        return value

    def or_(self) -> Any:
        left = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.and_()
            left = bool(left) or bool(right)
        return left

    def and_(self) -> Any:
        left = self.cmp()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.cmp()
            left = bool(left) and bool(right)
        return left

    def cmp(self) -> Any:
        left = self.unary()
        tok = self.peek()
        if tok is not None and tok[0] == "op" and tok[1] in ("==", "!=", "<", ">", "<=", ">=", "in"):
            self.take()
            right = self.unary()
            op = tok[1]
            if op == "in":
                return left in right
            if op == "==":
                return bool(left == right)
            if op == "!=":
                return bool(left != right)
            ops: dict[str, Callable[[Any, Any], bool]] = {
                "<": lambda a, b: a < b,
                ">": lambda a, b: a > b,
                "<=": lambda a, b: a <= b,
                ">=": lambda a, b: a >= b,
            }
            return ops[op](left, right)
        return left

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return not self.unary()
        return self.primary()

    def primary(self) -> Any:
        kind, val = self.take()
        if kind == "lit":
            return val
        if (kind, val) == ("op", "("):
            inner = self.or_()
            self.take(")")
            return inner
        if (kind, val) == ("op", "["):
            items = []
            while self.peek() != ("op", "]"):
                items.append(self.or_())
                if self.peek() == ("op", ","):
                    self.take()
            self.take("]")
            return items
        if kind != "id":
            raise SelectorError(f"unexpected {val!r}")
        if self.peek() == ("op", "("):
            self.take()
            args = []
            while self.peek() != ("op", ")"):
                args.append(self.or_())
                if self.peek() == ("op", ","):
                    self.take()
            self.take(")")
            if val not in self.funcs:
                raise SelectorError(f"undeclared reference to '{val}'")
            return self.funcs[val](*args)
        if val not in self.env:
            raise SelectorError(f"undeclared reference to '{val}'")
        obj = self.env[val]
        while self.peek() == ("op", "."):
            self.take()
            kind, attr = self.take()
            if kind != "id" or not isinstance(obj, Mapping) or attr not in obj:
                raise SelectorError(f"no such key: {attr}")
            obj = obj[attr]
        return obj


def _cel_mac(raw: Any) -> str:
    if not isinstance(raw, bytes):
        raise SelectorError("found no matching overload for 'mac'")
    return _mac_text(raw)


def _cel_glob(pattern: Any, subject: Any) -> bool:
    if not isinstance(pattern, str) or not isinstance(subject, str):
        raise SelectorError("found no matching overload for 'glob'")
    return glob(pattern, subject)


def evaluate_selector(expr: str, link: Mapping[str, Any]) -> bool:
    """A LinkAliasConfig `selector.match` against one link (the LinkStatus spec by its protobuf field names,
    `link.permanent_addr` as bytes) — Talos' LinkLocator environment: `glob`, `mac`
    (siderolabs/talos v1.12.11 pkg/machinery/cel/celenv/celenv.go, api/resource/definitions/network/network.proto).

    The forms the toolkit renders are evaluated here; other CEL goes to cel-python (slow to import, so only
    then)."""
    try:
        return bool(_Parser(expr, {"link": link}, {"glob": _cel_glob, "mac": _cel_mac}).run())
    except SelectorError:
        return _celpy(expr, link)


def _celpy(expr: str, link: Mapping[str, Any]) -> bool:
    import celpy
    from celpy import celtypes

    def conv(v: Any) -> Any:
        if isinstance(v, bool):
            return celtypes.BoolType(v)
        if isinstance(v, int):
            return celtypes.IntType(v)
        if isinstance(v, bytes):
            return celtypes.BytesType(v)
        if isinstance(v, list):
            return celtypes.ListType([conv(x) for x in v])
        if isinstance(v, Mapping):
            return celtypes.MapType({celtypes.StringType(k): conv(x) for k, x in v.items()})
        return celtypes.StringType(str(v))

    env = celpy.Environment()
    try:
        prog = env.program(
            env.compile(expr),
            functions={
                "glob": lambda p, s: celtypes.BoolType(glob(str(p), str(s))),
                "mac": lambda b: celtypes.StringType(_mac_text(bytes(b))),
            },
        )
        result = prog.evaluate({"link": conv(dict(link))})
    except Exception as exc:  # celpy's parse and evaluation errors have no common base class
        raise SelectorError(f"error evaluating link selector {expr!r}: {exc}") from exc
    if isinstance(result, Exception):
        raise SelectorError(f"error evaluating link selector {expr!r}: {result}")
    return bool(result)


# ---- hardware -------------------------------------------------------------------------------------------
def derived_mac(seed: str, k: int) -> str:
    """A stable QEMU-style MAC (52:54:00:…) for NIC `k` of the node `seed` names."""
    h = short_hash(seed, str(k), n=6)
    return f"52:54:00:{h[0:2]}:{h[2:4]}:{h[4:6]}"


def _bus_path(k: int) -> str:
    return f"0000:{k:02x}:00.0"


def _name_from_bus(bus: str) -> str | None:
    """systemd's predictable name for a PCI NIC, enp<bus>s<slot>[f<function>] (the names Talos shows)."""
    m = re.fullmatch(r"[0-9a-f]{4}:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])", bus.lower())
    if not m:
        return None
    fn = int(m[3])
    return f"enp{int(m[1], 16)}s{int(m[2], 16)}" + (f"f{fn}" if fn else "")


def _fill(pattern: str, fallback: str) -> str:
    """A value matching a selector glob: the fallback when it matches, else the pattern with `*` filled."""
    if glob(pattern, fallback):
        return fallback
    if "*" in pattern and re.match(_MAC_RE, fallback):  # a MAC glob such as 52:54:00:*: keep the derived tail
        head = [o for o in pattern.split("*")[0].split(":") if len(o) == 2]
        cand = ":".join(head + fallback.split(":")[len(head) :])
        if glob(pattern, cand):
            return cand
    return pattern.replace("*", "")


def nic(spec: Mapping[str, Any], k: int, seed: str) -> JSON:
    """One physical NIC with every field filled: `spec` (the HARDWARE_FIELDS, any subset) over the
    defaults of NIC number `k` of a virtio machine (busPath 0000:0k:00.0, name from busPath, derived MAC)."""
    unknown = sorted(set(spec) - set(HARDWARE_FIELDS))
    if unknown:
        raise HardwareError(f"unknown link field(s) {', '.join(unknown)}; known: {', '.join(HARDWARE_FIELDS)}")
    mac_default = derived_mac(seed, k)
    perm = _fill(str(spec.get("permanentAddr") or spec.get("hardwareAddr") or mac_default).lower(), mac_default)
    mac = _fill(str(spec.get("hardwareAddr") or perm).lower(), perm)  # differs only if the spec says so
    for value in (mac, perm):
        if not re.match(_MAC_RE, value):
            raise HardwareError(f"link {spec.get('name') or k}: {value!r} is not a MAC address like 52:54:00:12:34:56")
    bus = _fill(str(spec.get("busPath") or _bus_path(k)), _bus_path(k))
    driver = _fill(str(spec.get("driver") or "virtio_net"), "virtio_net")
    pci = str(spec.get("pciID") or _DRIVERS.get(driver, ("",))[0])
    name = str(spec.get("name") or _name_from_bus(bus) or f"eth{k - 1}")
    return {
        "name": name,
        "hardwareAddr": mac,
        "permanentAddr": perm,
        "busPath": bus,
        "driver": driver,
        "pciID": pci.replace("*", ""),
        "linkState": bool(spec.get("linkState", True)),
        "altNames": [str(a) for a in spec.get("altNames") or []],
    }


def hardware(specs: Sequence[Mapping[str, Any]], seed: str) -> list[JSON]:
    """Explicit NICs (`Sim.create(hardware=…)`, `sim create --hardware`): defaults filled, names unique."""
    out = [nic(s, k, seed) for k, s in enumerate(specs, start=1)]
    names = [n["name"] for n in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise HardwareError(f"duplicate link name(s) {', '.join(dupes)}")
    return out


def default_hardware(seed: str) -> list[JSON]:
    """A node whose inventory says nothing about its links: one virtio NIC, enp1s0."""
    return hardware([{}], seed)


def hardware_from_interfaces(interfaces: Iterable[Mapping[str, Any]], seed: str) -> list[JSON]:
    """NICs that match an inventory's `interfaces` (clusters/*/cluster.yaml): one per bond member (a
    deviceSelector or a plain link name), one per `deviceSelector` interface, one per plain named link.
    Logical names (bonds, VLANs) are not hardware. Selectors never name `physical`: every NIC is."""
    specs: list[JSON] = []
    for itf in interfaces:
        bond = itf.get("bond")
        if isinstance(bond, Mapping):
            for m in bond.get("members") or []:
                specs.append({"name": m} if isinstance(m, str) else _selector_spec(m))
        elif isinstance(itf.get("deviceSelector"), Mapping):
            specs.append(_selector_spec(itf["deviceSelector"]))
        elif itf.get("name"):
            specs.append({"name": str(itf["name"])})
    return hardware(specs or [{}], seed)


def _selector_spec(sel: Mapping[str, Any]) -> JSON:
    return {k: sel[k] for k in ("hardwareAddr", "permanentAddr", "busPath", "driver", "pciID") if sel.get(k)}


# ---- evaluation -----------------------------------------------------------------------------------------
class Link(Record):
    """One LinkStatus: a physical NIC or a link Talos created from the config."""

    def __init__(
        self,
        name: str,
        index: int,
        kind: str = "",  # "" (physical or loopback), bond, bridge, vlan, dummy
        type: int = LINK_ETHER,  # LinkStatus' field name
        hw: str = "",
        perm: str = "",
        bus_path: str = "",
        driver: str = "",
        pci_id: str = "",
        carrier: bool = True,
        up: bool = False,  # administratively up (Talos set it up)
        mtu: int = 1500,
        alias: str = "",
        alt_names: list[str] | None = None,
        master: str = "",
        parent: str = "",
        vlan_id: int = 0,
        bond: JSON | None = None,
        addresses: list[str] | None = None,
        dhcp: bool = False,
        oper: str = "down",
    ) -> None:
        self.name = name
        self.index = index
        self.kind = kind
        self.type = type
        self.hw = hw
        self.perm = perm
        self.bus_path = bus_path
        self.driver = driver
        self.pci_id = pci_id
        self.carrier = carrier
        self.up = up
        self.mtu = mtu
        self.alias = alias
        self.alt_names: list[str] = [] if alt_names is None else alt_names
        self.master = master
        self.parent = parent
        self.vlan_id = vlan_id
        self.bond: JSON = {} if bond is None else bond
        self.addresses: list[str] = [] if addresses is None else addresses
        self.dhcp = dhcp
        self.oper = oper

    @property
    def physical(self) -> bool:
        """LinkStatusSpec.Physical(): type ether and no kind (pkg/machinery/resources/network/link_status.go)."""
        return self.type == LINK_ETHER and self.kind == ""

    @property
    def usable(self) -> bool:
        """What the operator controller calls up: operational state up or unknown
        (internal/app/machined/pkg/controllers/network/operator_spec.go)."""
        return self.oper in ("up", "unknown")

    def cel(self) -> JSON:
        """The link as the LinkLocator CEL environment sees it (protobuf field names)."""
        return {
            "index": self.index,
            "type": self.type,
            "link_index": 0,
            "hardware_addr": _mac_bytes(self.hw),
            "permanent_addr": _mac_bytes(self.perm),
            "broadcast_addr": _mac_bytes("ff:ff:ff:ff:ff:ff"),
            "mtu": self.mtu,
            "operational_state": OPER_STATES[self.oper],
            "kind": self.kind,
            "slave_kind": "bond" if self.master else "",
            "bus_path": self.bus_path,
            "pciid": self.pci_id,
            "driver": self.driver,
            "link_state": self.carrier and self.up,
            "alias": self.alias,
            "alt_names": list(self.alt_names),
        }


class Net(Record):
    """The node's links after Talos has applied its config, and what that makes reachable."""

    def __init__(
        self,
        links: list[Link],
        node_address: str,
        dhcp_link: str | None,  # the link whose DHCP lease carries the node address (assumption: a reservation)
        vips: dict[str, str],  # VIP -> link, only those the node can hold
        legacy: bool = False,
        notes: list[str] | None = None,
    ) -> None:
        self.links = links
        self.node_address = node_address
        self.dhcp_link = dhcp_link
        self.vips = vips
        self.legacy = legacy
        self.notes: list[str] = [] if notes is None else notes

    def link(self, name: str) -> Link | None:
        return next((x for x in self.links if x.name == name), None)

    def answers_on(self, host: str) -> bool:
        """Whether something on this node's usable links owns `host` (static address or DHCP lease)."""
        if self.legacy:
            return host == self.node_address
        if host == self.node_address and self.dhcp_link is not None:
            return True
        return any(
            x.usable and x.type != LINK_LOOPBACK and any(_ip(a) == host for a in x.addresses) for x in self.links
        )

    def can_hold_vip(self, vip: str) -> bool:
        return vip in self.vips


def _ip(cidr: str) -> str:
    try:
        return str(ipaddress.ip_interface(cidr).ip)
    except ValueError:
        return ""


def _parse_docs(text: str) -> list[JSON]:
    import yaml  # on use: importing PyYAML costs a simulated call ~8 ms, and most need none

    # the C loader when PyYAML has it: every call that dials a node needs its config's documents
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return [d for d in yaml.load_all(text, Loader=loader) if isinstance(d, dict)]
    except yaml.YAMLError:
        return []


def evaluate(node: Mapping[str, Any]) -> Net:
    """The network of a simulated node: its hardware (`node["links"]`) under its active config."""
    cfg = node.get("config") or {}
    hw = node.get("links") or []
    return _evaluate(cfg.get("yaml") if cfg else None, json.dumps(hw, sort_keys=True), str(node["address"]))


@functools.lru_cache(maxsize=128)
def _evaluate(text: str | None, hw_json: str, address: str) -> Net:
    # memoized across calls (util.memoized): a multi-node call evaluates every node's network (33 on the
    # benchmark's cluster), and parsing and building them anew cost it ~20 ms
    rec = memoized("network", json.dumps([text, hw_json, address]), _evaluate_record)
    links = [Link(**x) for x in rec.pop("links")]
    return Net(links=links, **rec)


def _evaluate_record(key: str) -> JSON:
    """The network as plain data (what the memo stores): Net's fields, each Link as its attributes."""
    text, hw_json, address = json.loads(key)
    hw: list[JSON] = [h for h in json.loads(hw_json) if h.get("name") != "lo" and h.get("type", "ether") == "ether"]
    docs = _parse_docs(text) if text is not None else []
    net = _Builder(hw, docs, address, configured=text is not None).run()
    return {**vars(net), "links": [dict(vars(x)) for x in net.links]}


class _Builder:
    def __init__(self, hw: list[JSON], docs: list[JSON], address: str, *, configured: bool) -> None:
        self.hw = hw
        self.address = address
        self.configured = configured
        self.by_kind: dict[str, list[JSON]] = {}
        for d in docs:
            if d.get("kind"):
                self.by_kind.setdefault(str(d["kind"]), []).append(d)
        main = next((d for d in docs if "kind" not in d), {})
        machine: JSON = main["machine"] if isinstance(main.get("machine"), dict) else {}
        net: JSON = machine["network"] if isinstance(machine.get("network"), dict) else {}
        self.legacy_ifaces = [i for i in (net.get("interfaces") or []) if isinstance(i, dict)]
        self.notes: list[str] = []

    def docs(self, *kinds: str) -> list[JSON]:
        return [d for k in kinds for d in self.by_kind.get(k, [])]

    def run(self) -> Net:
        # Aliases are re-evaluated whenever links change (LinkAliasConfigController watches LinkStatus), and
        # enslaving rewrites a bond member's hardware address: iterate to a fixed point.
        aliases: dict[str, str] = {}
        previous: dict[str, str] = {}
        for _ in range(6):
            links = self.build(aliases)
            found = self.match_aliases(links)
            if found == aliases:
                break
            previous, aliases = aliases, found
        else:
            # flapping (assumption): only the aliases both of the last two rounds agree on stay
            aliases = {k: v for k, v in aliases.items() if previous.get(k) == v}
            self.notes.append("link aliases do not settle (selectors on addresses enslaving rewrites)")
        self.notes = []
        links = self.build(aliases)
        self.match_aliases(links)  # the notes of the final round
        return self.finish(links)

    def physical(self, aliases: Mapping[str, str]) -> dict[str, Link]:
        out: dict[str, Link] = {
            "lo": Link("lo", 1, type=LINK_LOOPBACK, hw="00:00:00:00:00:00", up=True, mtu=65536),
        }
        for i, h in enumerate(self.hw, start=2):
            out[h["name"]] = Link(
                name=h["name"],
                index=i,
                hw=h.get("hardwareAddr") or h.get("mac", ""),
                perm=h.get("permanentAddr") or h.get("hardwareAddr") or h.get("mac", ""),
                bus_path=h.get("busPath", ""),
                driver=h.get("driver", ""),
                pci_id=h.get("pciID", ""),
                carrier=bool(h.get("linkState", True)),
                alias=aliases.get(h["name"], ""),
                alt_names=list(h.get("altNames") or []),
            )
        return out

    def match_aliases(self, links: dict[str, Link]) -> dict[str, str]:
        """siderolabs/talos v1.12.11 internal/app/machined/pkg/controllers/network/link_alias_config.go: only
        physical links are candidates; a selector matching none is skipped, one matching several is skipped
        with a warning, and a link that already got an alias from an earlier document keeps it."""
        out: dict[str, str] = {}
        candidates = [x for x in links.values() if x.physical]
        for doc in self.docs("LinkAliasConfig"):
            name = str(doc.get("name", ""))
            expr = str((doc.get("selector") or {}).get("match", ""))
            try:
                matched = [x.name for x in candidates if evaluate_selector(expr, x.cel())]
            except SelectorError as exc:
                self.notes.append(f"LinkAliasConfig {name}: {exc}")
                return {}  # the controller returns the error: no alias is written at all
            if not matched:
                self.notes.append(f"LinkAliasConfig {name}: selector matched no link")
                continue
            if len(matched) > 1:
                self.notes.append(
                    f"LinkAliasConfig {name}: link selector matched multiple links, skipping ({', '.join(matched)})"
                )
                continue
            if matched[0] in out:
                self.notes.append(f"LinkAliasConfig {name}: link {matched[0]} already has alias {out[matched[0]]}")
                continue
            out[matched[0]] = name
        return out

    def build(self, aliases: Mapping[str, str]) -> dict[str, Link]:
        links = self.physical(aliases)
        if not self.configured or self.legacy_ifaces:
            for x in links.values():
                if x.physical:
                    x.up = x.dhcp = True  # maintenance mode / legacy config: default DHCP on every NIC
            self.settle(links)
            return links
        lookup = {x.alias: x.name for x in links.values() if x.alias}
        lookup.update({a: x.name for x in links.values() for a in x.alt_names})
        lookup.update({n: n for n in links})

        def resolve(name: Any) -> str:
            """network.LinkResolver: a name, alias or altname -> the link (else the name as given)."""
            return lookup.get(str(name), str(name))

        next_index = len(links) + 1

        def create(name: str, **kw: Any) -> Link:
            nonlocal next_index
            links[name] = Link(name=name, index=next_index, **kw)
            lookup[name] = name
            next_index += 1
            return links[name]

        configured: set[str] = set()
        for kind, doc in [(k, d) for k in ("BondConfig", "BridgeConfig") for d in self.docs(k)]:
            name = resolve(doc.get("name"))
            mode = str(doc.get("bondMode", "balance-rr"))
            master = create(
                name,
                kind="bond" if kind == "BondConfig" else "bridge",
                up=bool(doc.get("up", True)),
                bond={
                    "mode": mode,
                    "xmitHashPolicy": str(doc.get("xmitHashPolicy", "layer2")),
                    "lacpRate": str(doc.get("lacpRate", "slow")),
                    "miimon": int(doc.get("miimon", 0) or 0),
                    "updelay": int(doc.get("updelay", 0) or 0),
                    "downdelay": int(doc.get("downdelay", 0) or 0),
                }
                if kind == "BondConfig"
                else {},
            )
            members = []
            for raw in doc.get("links") or []:
                m = links.get(resolve(raw))
                configured.add(resolve(raw))
                if m is None or not m.physical or m.master:
                    self.notes.append(f"{kind} {name}: link {raw} does not exist, not enslaved")
                    continue
                m.master, m.up = name, True
                members.append(m)
            # Linux: a bond takes the first enslaved port's address and gives it to every port
            # (fail_over_mac=none, the default); assumption for bridges: the first port's address.
            mac = str(doc.get("hardwareAddr") or (members[0].perm if members else derived_mac(name, 0)))
            master.hw = mac
            if kind == "BondConfig":
                for m in members:
                    m.hw = mac
        for doc in self.docs("DummyLinkConfig"):
            create(resolve(doc.get("name")), kind="dummy", up=bool(doc.get("up", True)), hw=derived_mac("dummy", 0))
        for doc in self.docs("VLANConfig"):
            name, parent = str(doc.get("name")), resolve(doc.get("parent"))
            p = links.get(parent)
            if p is None:  # link_spec.go: "parent doesn't exist yet, skip it"
                self.notes.append(f"VLANConfig {name}: parent link {doc.get('parent')} does not exist")
                continue
            create(name, kind="vlan", parent=parent, vlan_id=int(doc.get("vlanID", 0) or 0), hw=p.hw)
            links[name].up = bool(doc.get("up", True))
        for doc in self.docs("LinkConfig"):
            name = resolve(doc.get("name"))
            configured.add(name)
            target = links.get(name)
            if target is None:  # a LinkSpec for a physical link that does not exist: nothing to act on
                self.notes.append(f"LinkConfig {doc.get('name')}: link does not exist")
                continue
            target.up = bool(doc.get("up", True))
        for doc in self.docs(*_LINK_DOCS):
            owner = links.get(resolve(doc.get("name")))
            if doc.get("mtu") and owner is not None:
                owner.mtu = int(doc["mtu"])
            for a in doc.get("addresses") or []:
                addr = str(a.get("address", "")) if isinstance(a, dict) else str(a)
                if owner is None:  # address_spec.go: "link doesn't exist (yet), skip it"
                    self.notes.append(f"address {addr}: link {doc.get('name')} does not exist")
                else:
                    owner.addresses.append(addr)
        for doc in self.docs(*_DHCP_DOCS):
            leased = links.get(resolve(doc.get("name")))
            if leased is not None:
                leased.up = leased.dhcp = True
        if not self.docs(*_LINK_DOCS, *_DHCP_DOCS):
            # container.go RunDefaultDHCPOperators: no link or DHCP document -> DHCP on every physical link
            # not configured otherwise (link_config.go, operator_config.go)
            for x in links.values():
                if x.physical and x.name not in configured:
                    x.up = x.dhcp = True
        self.settle(links)
        return links

    @staticmethod
    def settle(links: dict[str, Link]) -> None:
        """Operational states, lower layers first (physical, then bonds/bridges, then VLANs on them)."""
        for x in sorted(links.values(), key=lambda x: {"": 0, "dummy": 0, "bond": 1, "bridge": 1}.get(x.kind, 2)):
            if x.type == LINK_LOOPBACK or x.kind == "dummy":
                x.oper = "unknown" if x.up else "down"
            elif x.physical:
                x.oper = "up" if x.up and x.carrier else "down"
            elif x.kind in ("bond", "bridge"):
                ports = [m for m in links.values() if m.master == x.name]
                x.oper = "up" if x.up and any(m.oper == "up" for m in ports) else "down"
            elif x.kind == "vlan":
                p = links.get(x.parent)
                x.oper = ("up" if x.up else "down") if p is not None and p.usable else "lowerLayerDown"

    def finish(self, links: dict[str, Link]) -> Net:
        ordered = sorted(links.values(), key=lambda x: x.index)
        dhcp = next((x.name for x in ordered if x.dhcp and x.usable), None)
        vips: dict[str, str] = {}
        if self.legacy_ifaces:
            for itf in self.legacy_ifaces:
                for holder in [itf, *[v for v in itf.get("vlans") or [] if isinstance(v, dict)]]:
                    ip = (holder.get("vip") or {}).get("ip") if isinstance(holder.get("vip"), dict) else None
                    if ip:
                        vips[str(ip)] = str(itf.get("interface", ""))
        for doc in self.docs("Layer2VIPConfig"):
            vip, want = str(doc.get("name", "")), str(doc.get("link", ""))
            target = next((x for x in ordered if want in (x.name, x.alias, *x.alt_names)), None)
            if target is None or not target.usable:  # operator_spec.go: no link, or link down -> no operator
                self.notes.append(f"Layer2VIPConfig {vip}: link {want} {'is down' if target else 'does not exist'}")
                continue
            if not (target.name == dhcp or any(_in_subnet(vip, a) for a in target.addresses)):
                self.notes.append(f"Layer2VIPConfig {vip}: link {target.name} has no address in the VIP's subnet")
                continue
            vips[vip] = target.name
        return Net(
            links=ordered,
            node_address=self.address,
            dhcp_link=dhcp,
            vips=vips,
            legacy=bool(self.legacy_ifaces),
            notes=list(self.notes),
        )


def _in_subnet(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_interface(cidr).network
    except ValueError:
        return False


# ---- LinkStatus resources -------------------------------------------------------------------------------
def link_statuses(node: Mapping[str, Any]) -> list[JSON]:
    """`talosctl get links` specs: the LinkStatus fields in the order Talos encodes them
    (siderolabs/talos v1.12.11 pkg/machinery/resources/network/link_status.go; enum names from
    pkg/machinery/nethelpers), omitempty fields left out when empty."""
    net = evaluate(node)
    by_name = {x.name: x for x in net.links}
    out: list[JSON] = []
    for x in net.links:
        flags = set()
        if x.up:
            flags.add("UP")
        if x.type == LINK_LOOPBACK:
            flags |= {"LOOPBACK"}
        else:
            flags |= {"BROADCAST", "MULTICAST"}
        if x.usable:
            flags |= {"RUNNING", "LOWER_UP"}
        if x.master:
            flags.add("SLAVE")
        if x.kind == "bond":
            flags.add("MASTER")
        vendor = _DRIVERS.get(x.driver) if x.physical else None
        spec: JSON = {}
        if x.alias:
            spec["alias"] = x.alias
        if x.alt_names:
            spec["altNames"] = list(x.alt_names)
        spec.update(
            index=x.index,
            type="loopback" if x.type == LINK_LOOPBACK else "ether",
            linkIndex=by_name[x.parent].index if x.parent in by_name else 0,
            flags=",".join(f for f in _FLAG_ORDER if f in flags),
            hardwareAddr=x.hw,
            permanentAddr=x.perm if x.physical else "",
            broadcastAddr="00:00:00:00:00:00" if x.type == LINK_LOOPBACK else "ff:ff:ff:ff:ff:ff",
            mtu=x.mtu,
            queueDisc="fq_codel" if x.physical else "noqueue",
        )
        if x.master in by_name:
            spec["masterIndex"] = by_name[x.master].index
        spec.update(
            operationalState=x.oper,
            kind=x.kind,
            slaveKind="bond" if x.master and by_name.get(x.master, x).kind == "bond" else "bridge" if x.master else "",
        )
        if x.bus_path:
            spec["busPath"] = x.bus_path
        if x.pci_id:
            spec["pciID"] = x.pci_id
        if x.driver:
            spec["driver"] = x.driver
        if vendor is not None:
            vid, pid = (f"0x{p.lower()}" for p in x.pci_id.split(":")) if ":" in x.pci_id else ("", "")
            spec.update(productID=pid, vendorID=vid, product=vendor[2], vendor=vendor[1])
        spec.update(
            linkState=x.physical and x.carrier and x.up,
            port="Other",
            duplex="Unknown",
        )
        if x.kind == "vlan":
            spec["vlan"] = {"vlanID": x.vlan_id, "vlanProtocol": "802.1q"}
        if x.kind == "bond":
            spec["bondMaster"] = dict(x.bond)
        out.append({"id": x.name, "spec": spec})
    return out
