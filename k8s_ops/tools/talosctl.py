"""talosctl: argv builders and output parsers — the toolkit's only module that knows talosctl's CLI.

Every authenticated call names `--talosconfig <build/<c>/talosconfig>` and `-e <every controlplane address>`
explicitly (never the VIP: it only exists while etcd does), so neither `TALOSCONFIG` nor a stale
`~/.talos/config` can redirect an operation. Maintenance-mode calls use `--insecure` and `-n` as the
endpoint (talosctl ignores `-e` there). Every flag used here exists in talosctl v1.12 (checked against the CLI
reference by tests/test_talosctl.py). Deliberately never used: `upgrade -p/--preserve` (hidden; it only skips
the etcd upgrade mutex) and `upgrade -f/--force` (skips the etcd health check).

Argv layout: `talosctl <subcommand…> <positional…> <flags…>` — the subcommand words come first so a reader
(and the flag check) can tell which command a flag belongs to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from k8s_ops.core import paths
from k8s_ops.core.command import Command, Result, TempFile
from k8s_ops.core.errors import OutputError, Problem
from k8s_ops.core.facts import dig
from k8s_ops.core.units import go_duration

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Cluster

__all__ = [
    "ApplyMode",
    "ApplyPreview",
    "EtcdAlarm",
    "EtcdMember",
    "EtcdStatus",
    "Extension",
    "MachineStatus",
    "Talosctl",
    "TalosctlOutputError",
    "go_duration",
    "installed_schematic",
    "parse_apply_preview",
    "parse_boot_id",
    "parse_etcd_alarms",
    "parse_etcd_members",
    "parse_etcd_status",
    "parse_extensions",
    "parse_failing_services",
    "parse_human_bytes",
    "parse_json_stream",
    "parse_machinestatus",
    "parse_service_states",
    "parse_snapshot_info",
    "parse_table",
    "parse_validate",
    "parse_versions",
    "talos_endpoints",
    "validate_command",
]

ApplyMode = Literal["auto", "no-reboot", "reboot", "staged", "try"]
#: Modes the maintenance service accepts.
MAINTENANCE_MODES: tuple[ApplyMode, ...] = ("auto", "reboot", "try")
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
SYSTEM_LABELS = ("STATE", "EPHEMERAL")


class TalosctlOutputError(OutputError):
    """talosctl printed something the parser does not understand."""


def validate_command(config: TempFile, *, host: str, binary: str = "talosctl") -> Command:
    """`talosctl validate --config <the config as /dev/fd/N> --mode metal --strict`: offline, no talosconfig, no
    node."""
    return Command(
        argv=(binary, "validate", "--config", config, "--mode", "metal", "--strict"),
        description=f"talosctl validate {config.label} (metal, strict)",
        node=host,
    )


_VALIDATE_BULLET = re.compile(r"^\s*\*\s+(.*\S)\s*$")
_VALIDATE_WARNING = re.compile(r"^\s*WARNING:?\s*(.*\S)\s*$", re.I)


def parse_validate(result: Result, *, file: str) -> list[Problem]:
    """Problems from one `talosctl validate` run: `WARNING:` lines and, on failure, the error bullets.

    Success prints "<path> is valid for metal mode"; the temp path in messages is replaced by `file`.
    """

    def clean(msg: str) -> str:  # the runner hands the config as /dev/fd/<n> (core/runner.py); name the file
        return re.sub(r"/dev/fd/\d+", file, re.sub(r"\S*/" + re.escape(file), file, msg))

    problems: list[Problem] = []
    lines = (result.stderr + "\n" + result.stdout).splitlines()
    for line in lines:
        m = _VALIDATE_WARNING.match(line)
        if m:
            problems.append(Problem(file, "talosctl", f"warning: {clean(m.group(1))}"))
    if result.ok and "is valid for metal mode" in result.stdout:
        return problems
    bullets = [clean(m.group(1)) for line in lines if (m := _VALIDATE_BULLET.match(line))]
    if bullets:
        problems += [Problem(file, "talosctl", b) for b in bullets]
    elif not result.ok or not problems:
        detail = " / ".join(clean(x.strip()) for x in lines if x.strip() and not _VALIDATE_WARNING.match(x))
        problems.append(
            Problem(file, "talosctl", detail or f"talosctl validate failed (exit {result.returncode}) without output")
        )
    return problems


def talos_endpoints(cluster: Cluster) -> tuple[str, ...]:
    """The Talos API endpoints of a cluster: every controlplane address, never the VIP (it moves with etcd
    leadership and does not exist before etcd does). Used for `-e` and written into the talosconfig."""
    vip = str(cluster.endpoint)
    return tuple(str(n.address) for n in cluster.controlplanes if str(n.address) != vip)


@dataclass(frozen=True)
class Talosctl:
    """How to reach one cluster's Talos API: its talosconfig and its endpoints (controlplane addresses)."""

    talosconfig: Path
    endpoints: tuple[str, ...]
    binary: str = "talosctl"

    @classmethod
    def for_cluster(cls, cluster: Cluster) -> Talosctl:
        return cls(paths.talosconfig_path(cluster.name), talos_endpoints(cluster))

    # ------------------------------------------------------------------ plumbing

    def _auth(self, nodes: Sequence[str], *, endpoints: Sequence[str] | None = None) -> tuple[str, ...]:
        if not nodes:
            raise ValueError("a talosctl call needs at least one node")
        eps = tuple(endpoints) if endpoints is not None else self.endpoints
        return ("--talosconfig", str(self.talosconfig), "-e", ",".join(eps), "-n", ",".join(nodes))

    def _insecure(self, node: str) -> tuple[str, ...]:
        # The maintenance service has no client auth: -n is the endpoint and only one node is served
        # (talos#11773). --talosconfig is still explicit so a stray TALOSCONFIG is never read.
        return ("--talosconfig", str(self.talosconfig), "--insecure", "-n", node)

    def _cmd(
        self,
        words: Sequence[str | TempFile],
        flags: Sequence[str | TempFile],
        *,
        description: str,
        mutates: bool = False,
        node: str | None = None,
        timeout: float | None = None,
    ) -> Command:
        return Command(
            argv=(self.binary, *words, *flags),
            description=description,
            mutates=mutates,
            node=node,
            timeout=timeout,
        )

    # ------------------------------------------------------------------ reads

    def machinestatus(self, nodes: Sequence[str], *, insecure: bool = False, host: str | None = None) -> Command:
        """`get machinestatus -o json` for one or more nodes (insecure: the maintenance API, one node)."""
        if insecure:
            if len(nodes) != 1:
                raise ValueError("the maintenance API serves one node per call")
            flags = (*self._insecure(nodes[0]), "-o", "json")
        else:
            flags = (*self._auth(nodes), "-o", "json")
        what = "maintenance status" if insecure else "machine status"
        return self._cmd(
            ("get", "machinestatus"), flags, description=f"read {what} of {host or ', '.join(nodes)}", node=host
        )

    def boot_id(self, node: str, *, host: str | None = None) -> Command:
        """`read /proc/sys/kernel/random/boot_id`: changes on every boot (how talosctl's --wait tracks reboots)."""
        return self._cmd(
            ("read", BOOT_ID_PATH), self._auth([node]), description=f"read boot id of {host or node}", node=host
        )

    def version(self, nodes: Sequence[str], *, host: str | None = None) -> Command:
        """`version` of the nodes (client and server sections; the server `Tag:` is the running Talos)."""
        return self._cmd(
            ("version",), self._auth(nodes), description=f"read Talos version of {host or ', '.join(nodes)}", node=host
        )

    def extensions(self, nodes: Sequence[str], *, host: str | None = None) -> Command:
        """`get extensions -o json`: the system extensions installed on each node (`ExtensionStatuses`)."""
        return self._cmd(
            ("get", "extensions"),
            (*self._auth(nodes), "-o", "json"),
            description=f"read installed system extensions of {host or ', '.join(nodes)}",
            node=host,
        )

    def etcd_members(self, node: str) -> Command:
        """`etcd members` as seen from one controlplane."""
        return self._cmd(("etcd", "members"), self._auth([node]), description="list etcd members")

    def etcd_status(self, nodes: Sequence[str]) -> Command:
        """`etcd status` of each controlplane (one row per answering member)."""
        return self._cmd(("etcd", "status"), self._auth(nodes), description="read etcd member status")

    def etcd_alarms(self, node: str) -> Command:
        """`etcd alarm list` via one controlplane: etcd's alarms are cluster-wide (NOSPACE, CORRUPT)."""
        return self._cmd(("etcd", "alarm", "list"), self._auth([node]), description="list etcd alarms")

    def etcd_alarm_disarm(self, node: str) -> Command:
        """`etcd alarm disarm`: clears every member's alarms (etcd disarms each listed alarm); prints what it
        disarmed. etcd raises NOSPACE again at the next write while the database is still over its quota."""
        return self._cmd(
            ("etcd", "alarm", "disarm"), self._auth([node]), description="disarm etcd alarms", mutates=True
        )

    def etcd_defrag(self, node: str, *, host: str | None = None, timeout: float | None = None) -> Command:
        """`etcd defrag` of one member (talosctl refuses several nodes: defragment one member at a time)."""
        return self._cmd(
            ("etcd", "defrag"),
            self._auth([node]),
            description=f"defragment the etcd database of {host or node}",
            mutates=True,
            node=host,
            timeout=timeout,
        )

    def etcd_snapshot(self, node: str, path: Path, *, host: str | None = None) -> Command:
        """`etcd snapshot <path>`: stream a snapshot of the node's etcd to a local file."""
        return self._cmd(
            ("etcd", "snapshot", str(path)),
            self._auth([node]),
            description=f"snapshot etcd from {host or node} to {path}",
            mutates=True,  # writes a local file
            node=host,
        )

    def apply_preview(self, node: str, config: TempFile, *, mode: ApplyMode, insecure: bool, host: str) -> Command:
        """`apply-config --dry-run`: what applying would do (no change, live, reboot). Never mutates."""
        conn = self._insecure(node) if insecure else self._auth([node])
        return self._cmd(
            ("apply-config",),
            (*conn, "--file", config, "--mode", mode, "--dry-run"),
            description=f"preview applying the config to {host}",
            node=host,
        )

    # ------------------------------------------------------------------ actions

    def apply_config(
        self, node: str, config: TempFile, *, mode: ApplyMode, insecure: bool, host: str, timeout: float | None = None
    ) -> Command:
        """`apply-config --file <the config as /dev/fd/N, never a named file> --mode M` (`--insecure` only for a node
        in maintenance mode)."""
        conn = self._insecure(node) if insecure else self._auth([node])
        return self._cmd(
            ("apply-config",),
            (*conn, "--file", config, "--mode", mode),
            description=f"apply the machine config to {host} (mode {mode})",
            mutates=True,
            node=host,
            timeout=timeout,
        )

    def upgrade(
        self,
        node: str,
        image: str,
        *,
        timeout: float,
        host: str,
        reboot_mode: Literal["default", "powercycle"] | None = None,
        stage: bool = False,
        wait: bool = True,
    ) -> Command:
        """`upgrade --image <factory installer> --timeout T` (talosctl waits for the node; never --preserve).
        `stage`: the image is installed on the next boot, which Talos starts at once, without draining the node.
        `wait=False` (`--wait=false`): talosctl returns once the node acknowledged; the caller tracks the reboot."""
        flags = [*self._auth([node]), "--image", image]
        flags += ["--timeout", go_duration(timeout)] if wait else ["--wait=false"]
        if reboot_mode is not None:
            flags += ["--reboot-mode", reboot_mode]
        if stage:
            flags.append("--stage")
        return self._cmd(
            ("upgrade",),
            flags,
            description=f"upgrade Talos on {host} ({image})",
            mutates=True,
            node=host,
            timeout=timeout + 60,  # talosctl gives up first and says why
        )

    def reboot(
        self, node: str, *, timeout: float, host: str, mode: Literal["default", "powercycle"] = "default"
    ) -> Command:
        """`reboot --mode M --timeout T` (talosctl waits until the node is back)."""
        return self._cmd(
            ("reboot",),
            (*self._auth([node]), "--mode", mode, "--timeout", go_duration(timeout)),
            description=f"reboot {host}",
            mutates=True,
            node=host,
            timeout=timeout + 60,
        )

    def shutdown(self, node: str, *, host: str) -> Command:
        """`shutdown --wait=false`: Talos cordons and drains the node, stops everything and powers off; the caller
        waits for it to stop answering."""
        return self._cmd(
            ("shutdown",),
            (*self._auth([node], endpoints=[node]), "--wait=false"),
            description=f"shut down {host}",
            mutates=True,
            node=host,
        )

    def reset(
        self,
        node: str,
        *,
        graceful: bool,
        host: str,
        labels: Sequence[str] = SYSTEM_LABELS,
        timeout: float | None = None,
    ) -> Command:
        """`reset` targeting the node itself (`-e N -n N`): never proxied through a node that is already wiped.

        `--reboot` brings it back in maintenance mode; `--wait=false` because a wiped node no longer accepts
        this talosconfig, so talosctl's own tracking cannot follow it (the caller waits for maintenance mode).
        """
        flags = [*self._auth([node], endpoints=[node]), f"--graceful={'true' if graceful else 'false'}", "--reboot"]
        for label in labels:
            flags += ["--system-labels-to-wipe", label]
        flags.append("--wait=false")
        return self._cmd(
            ("reset",),
            flags,
            description=f"reset {host} (wipe {', '.join(labels)})",
            mutates=True,
            node=host,
            timeout=timeout,
        )

    def upgrade_k8s(self, node: str, to: str, *, dry_run: bool, timeout: float | None = None) -> Command:
        """`upgrade-k8s --to V [--dry-run]` run against one controlplane."""
        flags = [*self._auth([node]), "--to", to.removeprefix("v")]
        if dry_run:
            flags.append("--dry-run")
        return self._cmd(
            ("upgrade-k8s",),
            flags,
            description=("check" if dry_run else "run") + f" the Kubernetes upgrade to v{to.removeprefix('v')}",
            mutates=not dry_run,
            timeout=timeout,
        )

    def services(self, node: str, *, host: str | None = None) -> Command:
        """`service` (no id): every service of the node as a table NODE SERVICE STATE HEALTH LAST CHANGE LAST EVENT."""
        what = f"list the services of {host or node}"
        return self._cmd(("service",), self._auth([node]), description=what, node=host)

    def service_etcd(self, nodes: Sequence[str]) -> Command:
        """`service etcd` on controlplanes (a read): whether etcd runs, i.e. was bootstrapped or joined."""
        return self._cmd(("service", "etcd"), self._auth(nodes), description="read the etcd service state")

    def bootstrap(self, node: str, *, host: str, recover_from: Path | None = None) -> Command:
        """`bootstrap -e <cp> -n <cp> [--recover-from <snapshot>]`: once, on one controlplane addressed directly.

        The endpoint is the node itself, never the VIP: the VIP only comes up after etcd (cozystack#30).
        """
        flags: list[str] = [*self._auth([node], endpoints=[node])]
        if recover_from is not None:
            flags += ["--recover-from", str(recover_from)]
        what = f" from the snapshot {recover_from}" if recover_from else ""
        return self._cmd(("bootstrap",), flags, description=f"bootstrap etcd on {host}{what}", mutates=True, node=host)

    def kubeconfig(self, node: str, path: Path, *, context: str) -> Command:
        """`kubeconfig <path> --force --force-context-name <c>`: admin kubeconfig into its own file."""
        return self._cmd(
            ("kubeconfig", str(path)),
            (*self._auth([node]), "--force", "--force-context-name", context),
            description=f"fetch the admin kubeconfig to {path}",
            mutates=True,
        )

    def health(
        self, node: str, *, controlplanes: Sequence[str], workers: Sequence[str], wait_timeout: float
    ) -> Command:
        """`health` run server-side on one controlplane, with the inventory's node lists."""
        flags = [*self._auth([node]), "--control-plane-nodes", ",".join(controlplanes)]
        if workers:
            flags += ["--worker-nodes", ",".join(workers)]
        flags += ["--wait-timeout", go_duration(wait_timeout)]
        return self._cmd(("health",), flags, description="check cluster health", timeout=wait_timeout + 60)


# --------------------------------------------------------------------------- parsers


def parse_json_stream(text: str) -> list[dict[str, Any]]:
    """Concatenated JSON objects, as `talosctl get -o json` prints one per resource and node."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise TalosctlOutputError(f"talosctl printed invalid JSON: {exc}") from None
        if isinstance(obj, dict):
            out.append(obj)
        elif isinstance(obj, list):
            out.extend(o for o in obj if isinstance(o, dict))


@dataclass(frozen=True)
class MachineStatus:
    """`MachineStatuses.runtime.talos.dev/machine`: the boot stage and readiness of one node."""

    node: str
    stage: str
    ready: bool
    unmet: tuple[str, ...] = ()

    @property
    def running_ready(self) -> bool:
        return self.stage == "running" and self.ready

    def describe(self) -> str:
        text = f"stage {self.stage}, {'ready' if self.ready else 'not ready'}"
        return text + (f" (waiting on {', '.join(self.unmet)})" if self.unmet else "")


_SERVICE_FIELD = re.compile(r"^(NODE|STATE)\s+(\S+)\s*$")


def parse_service_states(text: str) -> dict[str, str]:
    """STATE per NODE from `talosctl service <id>` output (blocks of `NODE`, `ID`, `STATE`, … lines; `""` when
    talosctl printed no NODE line, as for a single node addressed directly)."""
    out: dict[str, str] = {}
    node = ""
    for line in text.splitlines():
        m = _SERVICE_FIELD.match(line.strip())
        if m is None:
            continue
        if m.group(1) == "NODE":
            node = m.group(2)
        else:
            out[node] = m.group(2)
    return out


def parse_machinestatus(text: str) -> dict[str, MachineStatus]:
    """Machine statuses by node address (`""` when talosctl printed no node, e.g. over --insecure)."""
    out: dict[str, MachineStatus] = {}
    for obj in parse_json_stream(text):
        unmet = tuple(
            str(c.get("name", "")) + (f": {c['reason']}" if c.get("reason") else "")
            for c in dig(obj, "spec", "status", "unmetConditions", default=[])
            if isinstance(c, dict)
        )
        node = str(obj.get("node") or "")
        stage = str(dig(obj, "spec", "stage", default="unknown"))
        out[node] = MachineStatus(node, stage, bool(dig(obj, "spec", "status", "ready")), unmet)
    return out


@dataclass(frozen=True)
class Extension:
    """`ExtensionStatuses.runtime.talos.dev`: one installed system extension (its manifest name and version)."""

    name: str
    version: str = ""


def installed_schematic(extensions: Sequence[Extension]) -> str | None:
    """The schematic ID a factory image reports as its `schematic` pseudo-extension (its version), if any."""
    return next((e.version for e in extensions if e.name == "schematic" and e.version), None)


def parse_extensions(text: str) -> dict[str, tuple[Extension, ...]]:
    """Installed extensions by node address from `get extensions -o json` (`""` when talosctl printed no node).

    Each resource is `{"node", "metadata": {"id"}, "spec": {"image", "metadata": {"name", "version", …}}}`
    (the spec is the extension layer; its ID is the layer index). A node without extensions prints nothing,
    so it is absent here.
    """
    out: dict[str, list[Extension]] = {}
    for obj in parse_json_stream(text):
        meta = dig(obj, "spec", "metadata", default={})
        name = str(meta.get("name") or "")
        if not name:
            raise TalosctlOutputError(f"an extension status without spec.metadata.name: {json.dumps(obj)[:200]}")
        out.setdefault(str(obj.get("node") or ""), []).append(Extension(name, str(meta.get("version") or "")))
    return {node: tuple(exts) for node, exts in out.items()}


def parse_boot_id(text: str) -> str:
    """The boot id (a UUID) from `talosctl read /proc/sys/kernel/random/boot_id`."""
    match = re.search(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", text)
    if not match:
        raise TalosctlOutputError(f"no boot id in talosctl output: {text.strip()[:80]!r}")
    return match.group(0).lower()


_NODE_LINE = re.compile(r"^\s*NODE:\s*(\S+)")
_TAG_LINE = re.compile(r"^\s*Tag:\s*(\S+)")


def parse_versions(text: str) -> dict[str, str]:
    """Server Talos tags by node from `talosctl version` (the `Client:` section is ignored).

    A server section without a `NODE:` line (single node, older output) is keyed `""`.
    """
    out: dict[str, str] = {}
    in_server = False
    node = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "Client:":
            in_server = False
            continue
        if stripped == "Server:":
            in_server = True
            node = ""
            continue
        if not in_server:
            continue
        if m := _NODE_LINE.match(line):
            node = m.group(1)
        elif m := _TAG_LINE.match(line):
            out[node] = m.group(1)
    return out


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of a talosctl tabwriter table, keyed by header name (`PEER URLS`, `DB SIZE`, …).

    tabwriter pads columns with at least two spaces while cells hold at most single spaces, so a run of two or
    more spaces separates cells; trailing empty cells (e.g. ERRORS) are filled with "".
    """
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = re.split(r"\s{2,}|\t+", lines[0].strip())
    rows: list[dict[str, str]] = []
    for line in lines[1:]:
        cells = re.split(r"\s{2,}|\t+", line.strip())
        if len(cells) > len(header):
            raise TalosctlOutputError(f"table row has more cells than the header {header}: {line!r}")
        cells += [""] * (len(header) - len(cells))
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


@dataclass(frozen=True)
class EtcdMember:
    """One row of `etcd members`."""

    id: str
    hostname: str
    peer_urls: tuple[str, ...]
    learner: bool


def parse_etcd_members(text: str) -> list[EtcdMember]:
    """`etcd members` (columns NODE ID HOSTNAME PEER URLS CLIENT URLS LEARNER)."""
    members: list[EtcdMember] = []
    for row in parse_table(text):
        if "ID" not in row or "HOSTNAME" not in row:
            raise TalosctlOutputError(f"unexpected etcd members table: {sorted(row)}")
        members.append(
            EtcdMember(
                id=row["ID"],
                hostname=row["HOSTNAME"],
                peer_urls=tuple(u for u in row.get("PEER URLS", "").split(",") if u),
                learner=row.get("LEARNER", "false").lower() == "true",
            )
        )
    return members


@dataclass(frozen=True)
class EtcdStatus:
    """One row of `etcd status`: the member answering on a node, its database and raft state, and its errors.

    talosctl prints sizes with go-humanize (SI units, at most 3 significant digits: `5.3 MB`), so `db_size` and
    `in_use` are approximate bytes; `in_use_ratio` comes from the printed percentage (in use / DB size, exact to
    0.01 %). None where talosctl printed nothing parseable.
    """

    node: str
    member: str
    learner: bool
    errors: str
    db_size: int | None = None
    in_use: int | None = None
    in_use_ratio: float | None = None
    leader: str = ""
    raft_index: int | None = None
    raft_term: int | None = None
    raft_applied_index: int | None = None
    protocol: str = ""
    storage: str = ""

    @property
    def healthy(self) -> bool:
        return not self.errors and not self.learner

    @property
    def is_leader(self) -> bool:
        return bool(self.member) and self.member == self.leader


_HUMAN_UNITS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15, "EB": 10**18}
_HUMAN_BYTES = re.compile(r"^(\d+(?:\.\d+)?) (B|kB|MB|GB|TB|PB|EB)$")
_IN_USE = re.compile(r"^(.*\S)\s+\((\d+(?:\.\d+)?)%\)$")


def parse_human_bytes(text: str) -> int | None:
    """Bytes from go-humanize's `Bytes` (`782 kB`, `5.3 MB`, `0 B`), or None."""
    m = _HUMAN_BYTES.match(text.strip())
    return round(float(m.group(1)) * _HUMAN_UNITS[m.group(2)]) if m else None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def parse_etcd_status(text: str) -> dict[str, EtcdStatus]:
    """`etcd status` rows by node (columns NODE MEMBER DB SIZE IN USE LEADER RAFT INDEX RAFT TERM RAFT APPLIED
    INDEX LEARNER PROTOCOL STORAGE ERRORS; IN USE is `<size> (<percent>%)`)."""
    out: dict[str, EtcdStatus] = {}
    for row in parse_table(text):
        if "MEMBER" not in row:
            raise TalosctlOutputError(f"unexpected etcd status table: {sorted(row)}")
        node = row.get("NODE", "")
        in_use_text, ratio = row.get("IN USE", ""), None
        if m := _IN_USE.match(in_use_text):
            in_use_text, ratio = m.group(1), float(m.group(2)) / 100.0
        out[node] = EtcdStatus(
            node=node,
            member=row["MEMBER"],
            learner=row.get("LEARNER", "false").lower() == "true",
            errors=row.get("ERRORS", ""),
            db_size=parse_human_bytes(row.get("DB SIZE", "")),
            in_use=parse_human_bytes(in_use_text),
            in_use_ratio=ratio,
            leader=row.get("LEADER", ""),
            raft_index=_int(row.get("RAFT INDEX")),
            raft_term=_int(row.get("RAFT TERM")),
            raft_applied_index=_int(row.get("RAFT APPLIED INDEX")),
            protocol=row.get("PROTOCOL", ""),
            storage=row.get("STORAGE", ""),
        )
    return out


_SNAPSHOT_INFO = re.compile(r"snapshot info: hash ([0-9a-f]+), revision (\d+), total keys (\d+), total size (\d+)")


def parse_snapshot_info(text: str) -> tuple[int, int] | None:
    """(revision, total keys) from the `snapshot info: hash …, revision R, total keys K, total size S` line
    `etcd snapshot` prints after saving (from etcd's snapshot status), or None."""
    m = _SNAPSHOT_INFO.search(text)
    return (int(m.group(2)), int(m.group(3))) if m else None


def parse_failing_services(text: str) -> list[str]:
    """From `talosctl service`: the services that are neither Running nor Finished, or whose health is `Fail`
    (HEALTH is `OK`, `Fail`, or `?` for a service without a health check — siderolabs/talos v1.12.11
    pkg/machinery/formatters/formatters.go HealthStatus), each as `id (STATE, health H: last event)`."""
    bad: list[str] = []
    for row in parse_table(text):
        if "SERVICE" not in row or "STATE" not in row:
            raise TalosctlOutputError(f"unexpected service table: {sorted(row)}")
        state, health = row["STATE"], row.get("HEALTH", "?")
        if state not in ("Running", "Finished") or health == "Fail":
            event = row.get("LAST EVENT", "")
            bad.append(f"{row['SERVICE']} ({state}, health {health}{': ' + event if event else ''})")
    return bad


@dataclass(frozen=True)
class EtcdAlarm:
    """One row of `etcd alarm list`: a member and its alarm (NOSPACE, CORRUPT)."""

    member: str
    alarm: str


def parse_etcd_alarms(text: str) -> list[EtcdAlarm]:
    """`etcd alarm list`: a table MEMBER ALARM (NODE first when talosctl knows the node); nothing at all when no
    member has an alarm (siderolabs/talos v1.12.11 cmd/talosctl/cmd/talos/etcd.go displayAlarms prints the header
    only with the first alarm). Alarm NONE is not an alarm."""
    alarms: list[EtcdAlarm] = []
    for row in parse_table(text):
        if "MEMBER" not in row or "ALARM" not in row:
            raise TalosctlOutputError(f"unexpected etcd alarm table: {sorted(row)}")
        if row["ALARM"] and row["ALARM"] != "NONE":
            alarms.append(EtcdAlarm(row["MEMBER"], row["ALARM"]))
    return alarms


@dataclass(frozen=True)
class ApplyPreview:
    """What `apply-config --dry-run` says applying would do."""

    change: Literal["none", "live", "reboot", "staged", "maintenance"]
    summary: str

    @property
    def reboots(self) -> bool:
        return self.change in ("reboot", "maintenance")


def parse_apply_preview(text: str) -> ApplyPreview:
    """Classify the mode details `apply-config --dry-run` prints on stderr ("Dry run summary:", then what applying
    would do, "(skipped in dry-run)", the config diff or "No changes.")."""
    # stderr also carries talosctl's `WARNING: …` lines (pkg/cli Warning): never the summary
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("WARNING:")]
    lowered = "\n".join(lines).lower()
    first = next((ln for ln in lines if "dry run" not in ln.lower()), "")
    if "maintenance mode" in lowered:
        return ApplyPreview("maintenance", "node is in maintenance mode: applying installs Talos and reboots")
    if "no changes" in lowered:
        return ApplyPreview("none", "the node already runs this config (dry-run: no changes)")
    if "staged configuration" in lowered:
        return ApplyPreview("staged", first)
    if "without a reboot" in lowered:
        return ApplyPreview("live", first)
    if "with a reboot" in lowered:
        return ApplyPreview("reboot", first)
    raise TalosctlOutputError(f"cannot tell what apply-config --dry-run would do: {text.strip()[:200]!r}")
