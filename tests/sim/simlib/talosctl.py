"""`talosctl` v1.12 as the simulated nodes answer it: maintenance mode (`--insecure` only), authenticated
calls that need a talosconfig whose CA matches the node, apply modes, reboots with boot ids, bootstrap,
etcd, health, kubeconfig, upgrade, upgrade-k8s, reset."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from pathlib import Path

from . import etcd as etcdmod
from . import jsonpath, machine, machineconfig, network
from . import schematic as schematicmod
from .cliparse import Flag, Parsed, ParseError, find_command, parse
from .kube import Kube, condition
from .runtime import Ctx, Fail
from .state import World
from .talos_flags import ALIASES, TALOSCTL_FLAGS
from .util import (
    JSON,
    Record,
    dig,
    dump_yaml,
    format_duration,
    image_tag,
    json_indented,
    new_uuid,
    rfc3339,
    safe_load,
    table,
    yaml_error,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

SHA = "2e80771b"
GO = "go1.25.5"
SNAPSHOT_MAGIC = b"SIMETCD1"
NOT_SIMULATED = {
    "cgroups",
    "cluster",
    "completion",
    "config",
    "conformance",
    "containers",
    "copy",
    "dashboard",
    "dmesg",
    "edit",
    "events",
    "gen",
    "image",
    "inject",
    "inspect",
    "list",
    "logs",
    "machineconfig",
    "memory",
    "meta",
    "mounts",
    "netstat",
    "patch",
    "pcap",
    "processes",
    "restart",
    "rollback",
    "rotate-ca",
    "stats",
    "support",
    "time",
    "usage",
    "wipe",
    "etcd",
}


def rpc(code: str, desc: str) -> str:
    return f"rpc error: code = {code} desc = {desc}"


def dial_err(host: str, why: str) -> str:
    return rpc(
        "Unavailable", f'connection error: desc = "transport: Error while dialing: dial tcp {host}:50000: {why}"'
    )


X509 = rpc(
    "Unavailable",
    'connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: '
    'x509: certificate signed by unknown authority"',
)
CERT_REQUIRED = rpc(
    "Unavailable", 'connection error: desc = "error reading server preface: remote error: tls: certificate required"'
)


class NodeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Client(Record):
    def __init__(self, ca: str | None, endpoints: list[str], nodes: list[str], insecure: bool = False) -> None:
        self.ca = ca
        self.endpoints = endpoints
        self.nodes = nodes
        self.insecure = insecure


def _ca_matches(ca: str | None, crt: str | None) -> bool:
    if not ca or not crt:
        return False
    if ca.strip() == crt.strip():
        return True
    try:
        return base64.b64decode(ca).decode().strip() == crt.strip()
    except Exception:
        return False


def usage(cmd: tuple[str, ...]) -> str:
    return (
        f'Usage:\n  talosctl {" ".join(cmd)} [flags]\n\nUse "talosctl {" ".join(cmd)} --help" for more information.\n'
    )


# ---- connections ---------------------------------------------------------------------------------------
def dial(world: World, host: str) -> JSON:
    """The node answering on host:50000, or NodeError with the gRPC dial error."""
    c = world.cluster_by_vip(host)
    if c is not None:
        holder = etcdmod.vip_holder(world, c)
        if holder is None:
            raise NodeError(dial_err(host, "connect: no route to host"))
        return holder
    n = world.node(host)
    if n is None:
        if re.fullmatch(r"[\d.]+|[0-9a-fA-F:]+", host):
            raise NodeError(dial_err(host, "connect: no route to host"))
        raise NodeError(
            rpc(
                "Unavailable",
                f'connection error: desc = "transport: Error while dialing: dial tcp: lookup {host}: no such host"',
            )
        )
    if world.fault("talos-api-unreachable", node=n["address"], cluster=n["cluster"]):
        raise NodeError(dial_err(host, "i/o timeout"))
    ph = world.phase(n)
    if ph == "off":
        raise NodeError(dial_err(host, "connect: no route to host"))
    if ph == "down":
        raise NodeError(dial_err(host, "connect: connection refused"))
    if not network.evaluate(n).answers_on(n["address"]):
        # its config put the address on no usable link (simlib/network.py): nobody answers ARP for it
        raise NodeError(dial_err(host, "connect: no route to host"))
    return n


def load_talosconfig(ctx: Ctx, p: Parsed) -> tuple[JSON, str]:
    path = p["talosconfig"] or ctx.env.get("TALOSCONFIG") or str(ctx.home() / ".talos" / "config")
    explicit = bool(p["talosconfig"] or ctx.env.get("TALOSCONFIG"))
    try:
        data = safe_load(Path(path).expanduser().read_text()) or {}
    except FileNotFoundError as e:
        if explicit:
            raise Fail(f"open {path}: no such file or directory") from e
        data = {}
    except Exception as e:
        if not isinstance(e, yaml_error()):
            raise
        raise Fail(f"error loading talosconfig: {e}") from e
    name = p["context"] or data.get("context") or ""
    contexts = data.get("contexts") or {}
    if not isinstance(data, dict) or not isinstance(contexts, dict):
        raise Fail(f"error loading talosconfig {path}: contexts is not a map (is this a kubeconfig?)")
    if name and name not in contexts:
        raise Fail(f"context \"{name}\" is not defined in 'talosconfig'")
    return (contexts.get(name) or {}), name


def client(ctx: Ctx, p: Parsed, *, insecure: bool = False) -> Client:
    if insecure:
        nodes = list(p["nodes"] or [])
        if not nodes:
            raise Fail(
                "nodes are not set for the command: please use `--nodes` flag or configuration file to set the nodes to run the command against"  # noqa: E501
            )
        return Client(None, nodes[:1], nodes[:1], True)
    tc, _ = load_talosconfig(ctx, p)
    endpoints = list(p["endpoints"] or tc.get("endpoints") or [])
    nodes = list(p["nodes"] or tc.get("nodes") or [])
    if not endpoints:
        raise Fail("failed to determine endpoints")
    return Client(tc.get("ca"), endpoints, nodes or endpoints[:1])


def connect(world: World, cl: Client, target: str) -> JSON:
    """Authenticate with an endpoint and reach `target` through it (apid proxying)."""
    if cl.insecure:
        n = dial(world, target)
        if world.configured(n):
            raise NodeError(CERT_REQUIRED)
        return n
    last: NodeError | None = None
    ep_node = None
    ep_used = ""
    for ep in cl.endpoints:
        try:
            ep_node = dial(world, ep)
            ep_used = ep
            break
        except NodeError as e:
            last = e
    if ep_node is None:
        assert last is not None
        raise last
    if not world.configured(ep_node) or not _ca_matches(cl.ca, ep_node["config"].get("ca_crt")):
        raise NodeError(X509)
    if target in (ep_used, ep_node["address"]):
        return ep_node
    n = dial(world, target)
    if not world.configured(n) or not _ca_matches(cl.ca, n["config"].get("ca_crt")):
        raise NodeError(X509)
    return n


def each_node(ctx: Ctx, world: World, cl: Client, what: str, fn: Any, *, multi_prefix: bool = True) -> int:
    """Run fn(node, addr) for every target; print per-node errors like talosctl; return the exit code."""
    rc = 0
    errs = []
    for addr in cl.nodes:
        try:
            n = connect(world, cl, addr)
            fn(n, addr)
        except NodeError as e:
            errs.append((addr, e.message))
    if errs:
        rc = 1
        if len(cl.nodes) == 1:
            ctx.err(f"{what}: {errs[0][1]}\n" if what else f"{errs[0][1]}\n")
        else:
            body = "\n".join(f"\t* {a}: {m}" for a, m in errs)
            ctx.err(f"{what}: {len(errs)} error{'s' if len(errs) > 1 else ''} occurred:\n{body}\n")
    return rc


# ---- entry ---------------------------------------------------------------------------------------------
def main(ctx: Ctx) -> int:
    all_flags: dict[str, Flag] = {}
    for spec in TALOSCTL_FLAGS.values():
        all_flags.update(spec)
    commands = list(TALOSCTL_FLAGS) + list(ALIASES)
    cmd, rest = find_command(ctx.argv, commands, all_flags)
    cmd = ALIASES.get(cmd, cmd)
    if not cmd:
        positional = [a for a in ctx.argv if not a.startswith("-")]
        if not positional:
            ctx.out("A CLI for out-of-band management of Kubernetes nodes created by Talos\n\n" + usage(()))
            return 0
        if positional[0] in NOT_SIMULATED:
            raise Fail(f"talosctl simulator: `talosctl {' '.join(positional[:2])}` is not simulated", 2)
        raise Fail(f'unknown command "{positional[0]}" for "talosctl"\nRun \'talosctl --help\' for usage.')
    try:
        p = parse(rest, TALOSCTL_FLAGS[cmd])
    except ParseError as e:
        raise Fail(f"{e.message}\n\n{usage(cmd)}") from e
    if p["help"]:
        ctx.out(usage(cmd))
        return 0
    handler = HANDLERS[cmd]
    return int(handler(ctx, p))


# ---- apply-config --------------------------------------------------------------------------------------
MODES = ("auto", "no-reboot", "reboot", "staged", "try")


def cmd_apply(ctx: Ctx, p: Parsed) -> int:
    if p.args:
        raise Fail(f"unknown positional argument {p.args[0]}\n\n{usage(('apply-config',))}")
    mode = p["mode"]
    if mode not in MODES:
        raise Fail(
            f'invalid argument "{mode}" for "-m, --mode" flag: possible options are: {", ".join(MODES)}\n\n{usage(("apply-config",))}'  # noqa: E501
        )
    if not p["file"]:
        raise Fail("no filename supplied for configuration")
    try:
        raw = ctx.read_file(p["file"])
    except OSError as e:
        raise Fail(
            f'failed to read configuration from "{p["file"]}": open {p["file"]}: {e.strerror.lower() if e.strerror else e}'  # noqa: E501
        ) from e
    if not raw:
        raise Fail("no configuration data read")
    text = raw.decode()
    if p["config-patch"]:
        try:
            text = machineconfig.apply_patches(text, p["config-patch"], lambda f: ctx.read_file(f).decode())
        except machineconfig.ConfigError as e:
            raise Fail(e.message) from e
        except OSError as e:
            raise Fail(str(e)) from e
    cl = client(ctx, p, insecure=bool(p["insecure"]))
    with ctx.store.tx() as world:
        return each_node(
            ctx,
            world,
            cl,
            "error applying new configuration",
            lambda n, addr: _apply_one(ctx, world, n, text, p, cl.insecure),
        )


def _apply_one(ctx: Ctx, world: World, n: JSON, text: str, p: Parsed, insecure: bool) -> None:
    mode, dry = p["mode"], bool(p["dry-run"])
    maintenance = not world.configured(n)
    if maintenance and not insecure:
        raise NodeError(X509)
    if maintenance:
        if mode not in ("auto", "reboot", "try"):
            raise NodeError(
                rpc("Unimplemented", f"apply configuration --mode='{mode}' is not supported in maintenance mode")
            )
        try:
            docs = machineconfig.parse_docs(text)
            errs = machineconfig.validate(docs, require_v1alpha1=True)
        except machineconfig.ConfigError as e:
            raise NodeError(rpc("Unknown", f"failed to parse config: {e.message}")) from e
        if errs:
            raise NodeError(rpc("InvalidArgument", "configuration validation failed: " + _multi(errs)))
        rules = machineconfig.talos_rules_error(docs, strict=False)
        if rules:  # maintenance/server.go: "configuration validation failed: %s"
            raise NodeError(rpc("InvalidArgument", "configuration validation failed: " + rules))
        _reject_fault(world, n, text)
        if dry:
            # helpers/mode.go PrintApplyResults: the mode details go to stderr, stdout stays empty
            ctx.err("Dry run summary:\nNode is running in maintenance mode and does not have a config yet.\n")
            return
        cfg = machineconfig.summarise(text)
        image = cfg["install_image"] or f"ghcr.io/siderolabs/installer:{n['talos_version']}"
        world.start_reboot(
            n,
            "install",
            {
                "config": cfg,
                "image": image,
                "talos_version": image_tag(image) or n["talos_version"],
                "schematic": _schematic(image),
            },
        )
        return
    try:
        docs = machineconfig.parse_docs(text)
    except machineconfig.ConfigError as e:
        raise NodeError(rpc("InvalidArgument", e.message)) from e
    if machineconfig.v1alpha1(docs) is None:
        raise NodeError(
            rpc(
                "InvalidArgument",
                "the applied machine configuration doesn't contain v1alpha1 config, did you mean to patch the machine config instead?",  # noqa: E501
            )
        )
    try:
        errs = machineconfig.validate(docs, require_v1alpha1=True)
    except machineconfig.ConfigError as e:
        raise NodeError(rpc("InvalidArgument", e.message)) from e
    if errs:
        raise NodeError(rpc("InvalidArgument", _multi(errs)))
    rules = machineconfig.talos_rules_error(docs, strict=False)
    if rules:  # v1alpha1_server.go ApplyConfiguration: status.Error(codes.InvalidArgument, err.Error())
        raise NodeError(rpc("InvalidArgument", rules))
    _reject_fault(world, n, text)
    old = n["config"]["yaml"]
    reboot_field = machineconfig.needs_reboot(old, text)
    details = "Applied configuration with a reboot"
    effective = mode
    if mode in ("no-reboot", "try"):
        if reboot_field:
            raise NodeError(
                rpc(
                    "InvalidArgument",
                    f"this config change can't be applied in immediate mode\ndiff: {reboot_field} changed",
                )
            )
        details = "Applied configuration without a reboot"
    elif mode == "staged":
        details = "Staged configuration to be applied after the next reboot"
    elif mode == "auto":
        effective = "reboot" if reboot_field else "no-reboot"
        details = "Applied configuration with a reboot" if reboot_field else "Applied configuration without a reboot"
    if dry:
        d = machineconfig.diff(old, text) or "No changes."
        ctx.err(f"Dry run summary:\n{details} (skipped in dry-run).\nConfig diff:\n\n{d}\n")
        return
    cfg = machineconfig.summarise(text)
    if effective != "try":
        n["try"] = None
    if effective == "try":
        timeout = world.scaled(float(p["timeout"]))
        details += f"\nThe config is applied in 'try' mode and will be automatically reverted back in {format_duration(float(p['timeout']))}"  # noqa: E501
        n["try"] = {"deadline": world.clock + timeout, "previous": n["config"]}  # on the logical clock (state.py)
        n["config"] = cfg
    elif effective == "no-reboot":
        n["config"] = cfg
    elif effective == "staged":
        n["staged_config"] = cfg
    elif effective == "reboot":
        n["staged_config"] = cfg
        world.start_reboot(n, "reboot")
    if reboot_field and mode == "auto":
        details += f": {reboot_field} changed"
    ctx.err(details + "\n")


def _multi(errs: list[str]) -> str:
    return f"{len(errs)} error{'s' if len(errs) > 1 else ''} occurred:\n" + "".join(f"\t* {e}\n" for e in errs)


def _reject_fault(world: World, n: JSON, text: str) -> None:
    f = world.fault("apply-rejected", node=n["address"], cluster=n["cluster"], consume=True)
    if f:
        raise NodeError(rpc("InvalidArgument", f.get("message") or "configuration validation failed"))


def _schematic(image: str) -> str | None:
    m = re.match(r"^factory\.talos\.dev/[\w-]*installer[\w-]*/([0-9a-f]{64}):", image)
    return m.group(1) if m else None


# ---- get / read / version / service -------------------------------------------------------------------
RESOURCES = {
    "machinestatus": ("MachineStatuses.runtime.talos.dev", "MachineStatus", "runtime", True),
    "machinestatuses": ("MachineStatuses.runtime.talos.dev", "MachineStatus", "runtime", True),
    "machineconfig": ("MachineConfigs.config.talos.dev", "MachineConfig", "config", False),
    "machineconfigs": ("MachineConfigs.config.talos.dev", "MachineConfig", "config", False),
    "mc": ("MachineConfigs.config.talos.dev", "MachineConfig", "config", False),
    "disks": ("Disks.block.talos.dev", "Disk", "runtime", True),
    "disk": ("Disks.block.talos.dev", "Disk", "runtime", True),
    "links": ("LinkStatuses.net.talos.dev", "LinkStatus", "network", True),
    "link": ("LinkStatuses.net.talos.dev", "LinkStatus", "network", True),
    "linkstatus": ("LinkStatuses.net.talos.dev", "LinkStatus", "network", True),
    "members": ("Members.cluster.talos.dev", "Member", "cluster", False),
    "member": ("Members.cluster.talos.dev", "Member", "cluster", False),
    "services": ("Services.v1alpha1.talos.dev", "Service", "runtime", False),
    "service": ("Services.v1alpha1.talos.dev", "Service", "runtime", False),
    "version": ("Versions.runtime.talos.dev", "Version", "runtime", True),
    "versions": ("Versions.runtime.talos.dev", "Version", "runtime", True),
    "nodename": ("Nodenames.kubernetes.talos.dev", "Nodename", "controlplane", False),
    "extensions": ("ExtensionStatuses.runtime.talos.dev", "ExtensionStatus", "runtime", False),
    "extensionstatus": ("ExtensionStatuses.runtime.talos.dev", "ExtensionStatus", "runtime", False),
    "extensionstatuses": ("ExtensionStatuses.runtime.talos.dev", "ExtensionStatus", "runtime", False),
}


def _resources(world: World, n: JSON, rtype: str) -> list[tuple[JSON, list[str], list[str]]]:
    """(resource, table header extras, table row extras) for one node."""
    meta_type, _, ns, _ = RESOURCES[rtype]
    ver = int(n.get("rv", 1))

    def res(rid: str, spec: Any) -> JSON:
        return {
            "metadata": {
                "namespace": ns,
                "type": meta_type,
                "id": rid,
                "version": ver,
                "owner": "",
                "phase": "running",
                "created": rfc3339(n.get("created", 0)),
                "updated": rfc3339(world.now),
            },
            "spec": spec,
        }

    if meta_type.startswith("MachineStatuses"):
        stage = world.stage(n)
        unmet = machine.unmet_conditions(world, n, stage)
        ready = not unmet
        r = res("machine", {"stage": stage, "status": {"ready": ready, "unmetConditions": unmet}})
        return [(r, ["STAGE", "READY"], [stage, str(ready).lower()])]
    if meta_type.startswith("MachineConfigs"):
        out: list[tuple[JSON, list[str], list[str]]] = [(res("v1alpha1", n["config"]["yaml"]), [], [])]
        if n.get("staged_config"):
            out.append((res("staged", n["staged_config"]["yaml"]), [], []))
        return out
    if meta_type.startswith("Disks"):
        rows = []
        for d in n.get("disks", []):
            spec = {
                "size": d["size"],
                "pretty_size": d["pretty"],
                "readonly": False,
                "transport": d.get("transport", "sata"),
                "rotational": False,
                "model": d.get("model", ""),
                "serial": d.get("serial", ""),
                "wwid": d.get("wwid", ""),
                "dev_path": f"/dev/{d['id']}",
            }
            rows.append(
                (
                    res(d["id"], spec),
                    ["SIZE", "READ ONLY", "TRANSPORT", "ROTATIONAL", "WWID", "MODEL", "SERIAL"],
                    [d["pretty"], "false", spec["transport"], "false", spec["wwid"], spec["model"], spec["serial"]],
                )
            )
        return rows
    if meta_type.startswith("LinkStatuses"):
        # the node's NICs and the links its active config built on them (simlib/network.py); table columns
        # are LinkStatus' print columns (pkg/machinery/resources/network/link_status.go)
        return [
            (
                res(link["id"], spec),
                ["ALIAS", "TYPE", "KIND", "HW ADDR", "OPER STATE", "LINK STATE"],
                [
                    spec.get("alias", ""),
                    spec["type"],
                    spec["kind"],
                    spec["hardwareAddr"],
                    spec["operationalState"],
                    str(spec["linkState"]).lower(),
                ],
            )
            for link in network.link_statuses(n)
            for spec in [link["spec"]]
        ]
    if meta_type.startswith("Versions"):
        return [(res("version", {"version": n["talos_version"]}), ["VERSION"], [n["talos_version"]])]
    if meta_type.startswith("ExtensionStatuses"):
        # ID = layer index; table columns NAME and VERSION (the resource's print columns).
        c = world.clusters[n["cluster"]]
        return [
            (res(str(i), spec), ["NAME", "VERSION"], [spec["metadata"]["name"], spec["metadata"]["version"]])
            for i, spec in enumerate(schematicmod.extension_statuses(c, n))
        ]
    if meta_type.startswith("Nodenames"):
        return [(res("nodename", {"nodename": world.node_name(n)}), ["NODENAME"], [world.node_name(n)])]
    if meta_type.startswith("Members"):
        rows = []
        c = world.clusters[n["cluster"]]
        for m in world.cluster_nodes(c):
            if m.get("config") and world.phase(m) in ("up", "booting", "pre"):
                spec = {
                    "nodeId": m["address"],
                    "addresses": [m["address"]],
                    "hostname": world.node_name(m),
                    "machineType": m["config"]["type"],
                    "operatingSystem": f"Talos ({m['talos_version']})",
                }
                rows.append(
                    (
                        res(world.node_name(m), spec),
                        ["HOSTNAME", "MACHINE TYPE", "OS", "ADDRESSES"],
                        [spec["hostname"], spec["machineType"], spec["operatingSystem"], f'["{m["address"]}"]'],
                    )
                )
        return rows
    if meta_type.startswith("Services"):
        return [
            (
                res(s, {"running": st == "Running", "healthy": h == "OK"}),
                ["RUNNING", "HEALTHY"],
                [str(st == "Running").lower(), str(h == "OK").lower()],
            )
            for s, st, h in machine.services(world, n)
        ]
    return []


def cmd_get(ctx: Ctx, p: Parsed) -> int:
    if not p.args:
        raise Fail(f"accepts between 1 and 2 arg(s), received 0\n\n{usage(('get',))}")
    rtype = p.args[0].lower()
    rid = p.args[1] if len(p.args) > 1 else None
    if rtype not in RESOURCES:
        raise Fail(f'resource type "{p.args[0]}" is not registered')
    out_mode = p["output"] or "table"
    cl = client(ctx, p, insecure=bool(p["insecure"]))
    chunks: list[tuple[str, JSON, list[str], list[str]]] = []

    def one(n: JSON, addr: str) -> None:
        maintenance = not world.configured(n)
        if maintenance and not cl.insecure:
            raise NodeError(X509)
        if cl.insecure and not RESOURCES[rtype][3]:
            raise NodeError(rpc("PermissionDenied", "not authorized"))
        for r, hdr, row in _resources(world, n, rtype):
            if rid is None or r["metadata"]["id"] == rid:
                chunks.append((addr, r, hdr, row))
        if rid is not None and not any(c[1]["metadata"]["id"] == rid for c in chunks):
            raise NodeError(rpc("NotFound", f'resource "{RESOURCES[rtype][0]}" "{rid}" not found'))

    with ctx.store.tx() as world:
        rc = each_node(ctx, world, cl, "", one)
    if out_mode == "json":
        for node, r, _, _ in chunks:
            ctx.out(json_indented({"node": node, **r}) + "\n")
    elif out_mode == "yaml":
        for i, (node, r, _, _) in enumerate(chunks):
            ctx.out(("---\n" if i else "") + dump_yaml({"node": node, **r}))
    elif out_mode.startswith("jsonpath="):
        for node, r, _, _ in chunks:
            ctx.out(jsonpath.render({"node": node, **r}, out_mode[len("jsonpath=") :]) + "\n")
    elif out_mode == "table":
        if chunks:
            hdr = ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", *chunks[0][2]]
            rows = [hdr] + [
                [
                    node,
                    r["metadata"]["namespace"],
                    RESOURCES[rtype][1],
                    r["metadata"]["id"],
                    str(r["metadata"]["version"]),
                    *row,
                ]
                for node, r, _, row in chunks
            ]
            ctx.out(table(rows))
    else:
        raise Fail(f'output format "{out_mode}" is not supported')
    return rc


def cmd_read(ctx: Ctx, p: Parsed) -> int:
    if len(p.args) != 1:
        raise Fail(f"accepts 1 arg(s), received {len(p.args)}\n\n{usage(('read',))}")
    path = p.args[0]
    cl = client(ctx, p)
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            if path == "/proc/sys/kernel/random/boot_id":
                ctx.out(n["boot_id"] + "\n")
            elif path in ("/system/state/config.yaml",):
                ctx.out(n["config"]["yaml"])
            elif path == "/etc/os-release":
                ctx.out(f'NAME="Talos"\nID=talos\nVERSION_ID={n["talos_version"]}\n')
            else:
                raise NodeError(rpc("Unknown", f"open {path}: no such file or directory"))

        return each_node(ctx, world, cl, "error reading file", one)


def _long_version(tag: str) -> str:
    return (
        f"\tTag:         {tag}\n\tSHA:         {SHA}\n\tBuilt:       \n\tGo version:  {GO}\n"
        f"\tOS/Arch:     linux/amd64\n"
    )


def cmd_version(ctx: Ctx, p: Parsed) -> int:
    with ctx.store.read() as w:
        tag = str(w.setting("talosctl_version"))
    ctx.out("Client:\n")
    ctx.out(f"Talos {tag}\n" if p["short"] else _long_version(tag))
    if p["client"]:
        return 0
    ctx.out("Server:\n")
    cl = client(ctx, p, insecure=bool(p["insecure"]))
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            if not world.configured(n) and not cl.insecure:
                raise NodeError(X509)
            ctx.out(f"\tNODE:        {addr}\n" + _long_version(n["talos_version"]) + "\tEnabled:     RBAC\n")

        rc = 0
        for addr in cl.nodes:
            try:
                one(connect(world, cl, addr), addr)
            except NodeError as e:
                ctx.err(f"error getting version from node {addr}: {e.message}\n")
                rc = 1
        return rc


def cmd_service(ctx: Ctx, p: Parsed) -> int:
    cl = client(ctx, p)
    sid = p.args[0] if p.args else None
    action = p.args[1] if len(p.args) > 1 else "status"
    with ctx.store.tx() as world:
        rows: list[list[str]] = []

        def one(n: JSON, addr: str) -> None:
            svcs = machine.services(world, n)
            if sid is None:
                rows.extend(
                    [addr, s, st, h, "1m ago", "Health check successful" if h == "OK" else "Waiting"]
                    for s, st, h in svcs
                )
                return
            match = [s for s in svcs if s[0] == sid]
            if not match:
                raise NodeError(rpc("Unknown", f'service "{sid}" not found'))
            if action != "status":
                ctx.out(f'NODE     {addr}\nRESPONSE Service "{sid}" {action}ed\n')
                return
            _, st, h = match[0]
            ctx.out(
                f"NODE     {addr}\nID       {sid}\nSTATE    {st}\nHEALTH   {h}\nEVENTS   [{st}]: Health check successful (1m ago)\n"  # noqa: E501
            )

        rc = each_node(ctx, world, cl, "", one)
        if rows:
            ctx.out(table([["NODE", "SERVICE", "STATE", "HEALTH", "LAST CHANGE", "LAST EVENT"], *rows]))
        return rc


# ---- bootstrap / etcd ----------------------------------------------------------------------------------
def cmd_bootstrap(ctx: Ctx, p: Parsed) -> int:
    if p.args:
        raise Fail(f'unknown command "{p.args[0]}" for "talosctl bootstrap"')
    cl = client(ctx, p)
    snapshot: JSON | None = None
    if p["recover-from"]:
        try:
            raw = ctx.read_file(p["recover-from"])
        except OSError as e:
            raise Fail(f"open {p['recover-from']}: no such file or directory") from e
        snapshot = read_snapshot(raw)
        if snapshot is None:
            raise Fail(f"snapshot file {p['recover-from']} is not a valid etcd snapshot: invalid database")
        # Talos' etcd service restores with SkipHashCheck = --recover-skip-hash-check; a mismatch fails the
        # restore (etcd never starts). The simulator refuses the bootstrap instead, with etcd's words.
        hash_error = None if p["recover-skip-hash-check"] else snapshot_hash_error(raw)
        if hash_error:
            raise Fail(f"error recovering from the snapshot: {hash_error}")
        ctx.out(
            f'recovering from snapshot "{p["recover-from"]}": hash {snapshot["hash"]}, revision {snapshot["revision"]}, '  # noqa: E501
            f"total keys {len(snapshot['objects'])}, total size {snapshot['size']}\n"
        )
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            c = world.clusters[n["cluster"]]
            e = etcdmod.etcd(c)
            # Talos accepts a bootstrap once CRI is up — while a fresh controlplane is still `booting` with etcd
            # waiting to join (v1alpha1_server.go Bootstrap, IsBootstrapAllowed).
            if not world.configured(n) or world.phase(n) != "up":
                raise NodeError(rpc("FailedPrecondition", "bootstrap is not available yet"))
            if not world.is_cp(n):
                raise NodeError(rpc("FailedPrecondition", "bootstrap can only be performed on a control plane node"))
            if n.get("etcd_data"):
                raise NodeError(rpc("AlreadyExists", "etcd data directory is not empty"))
            if e["bootstrapped"]:
                # a second bootstrap on a node that has not joined yet: a separate one-member etcd (split brain)
                e.setdefault("split_brain", []).append(n["address"])
                n["etcd_data"] = True
                return
            e["bootstrapped"] = True
            e["bootstrapped_at"] = world.now
            e["members"] = {}
            etcdmod.add_member(world, c, n)
            c["k8s"] = {"objects": {}, "rv": 1, "owners": {}}
            c["runtime"] = {}
            c["k8s_version"] = n["config"].get("apiserver_version") or world.setting("kubernetes_version")
            kube = Kube(c, world.now)
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, manager="kube-apiserver")
            if snapshot is not None:
                restore_snapshot(kube, snapshot)

        return each_node(ctx, world, cl, "error executing bootstrap", one)


def make_snapshot(world: World, c: JSON) -> bytes:
    """A snapshot as etcd streams it: a database of whole 512-byte sectors (bbolt pages are multiples of it), then
    the SHA-256 of those bytes (etcd server/etcdserver/api/v3rpc/maintenance.go Snapshot; etcdutl v3_snapshot.go
    hasChecksum: `size % 512 == 32`). The database here is MAGIC, an 8-byte length, gzip'd JSON, zero padding."""
    k = c.get("k8s", {})
    payload = json.dumps(
        {
            "cluster": c["name"],
            "revision": k.get("rv", 1),
            "objects": k.get("objects", {}),
            "owners": k.get("owners", {}),
            "taken": world.now,
        }
    ).encode()
    import gzip
    import hashlib  # local: each simulated call is a fresh interpreter, and few need it

    body = gzip.compress(payload, mtime=0)
    db = SNAPSHOT_MAGIC + len(body).to_bytes(8, "big") + body
    db += b"\0" * (-len(db) % 512)
    return db + hashlib.sha256(db).digest()


def snapshot_hash_error(raw: bytes) -> str | None:
    """What etcd's restore says about the integrity trailer (etcdutl/snapshot/v3_snapshot.go copyAndVerifyDB), or
    None when it matches."""
    if len(raw) % 512 != 32:
        return "snapshot missing hash but --skip-hash-check=false"
    import hashlib  # local: each simulated call is a fresh interpreter, and few need it

    db, sha = raw[:-32], raw[-32:]
    got = hashlib.sha256(db).digest()
    if got != sha:
        return f"expected sha256 {list(sha)}, got {list(got)}"
    return None


def read_snapshot(raw: bytes) -> JSON | None:
    """The database inside a snapshot (trailer or not), or None when it is not one (bbolt's open/check fails)."""
    db = raw[:-32] if len(raw) % 512 == 32 else raw
    if not db.startswith(SNAPSHOT_MAGIC) or len(db) < len(SNAPSHOT_MAGIC) + 8:
        return None
    start = len(SNAPSHOT_MAGIC) + 8
    length = int.from_bytes(db[len(SNAPSHOT_MAGIC) : start], "big")
    import gzip
    import hashlib  # local: each simulated call is a fresh interpreter, and few need it

    try:
        data: JSON = json.loads(gzip.decompress(db[start : start + length]))
    except Exception:
        return None
    # etcd's snapshot status hash is a CRC-32 (Castagnoli) over the buckets; any stable 32-bit digest stands in.
    data["hash"] = hashlib.sha256(db).hexdigest()[:8]
    data["size"] = len(db)
    return data


def restore_snapshot(kube: Kube, snap: JSON) -> None:
    kube.data["objects"] = snap["objects"]
    kube.data["owners"] = snap.get("owners", {})
    kube.data["rv"] = int(snap.get("revision", 1)) + 1


def _etcd_member_node(world: World, n: JSON, api: str) -> JSON:
    if not world.is_cp(n):
        raise NodeError(rpc("Unimplemented", f"{api} is only available on control plane nodes"))
    c = world.clusters[n["cluster"]]
    if not n.get("etcd_data") or not etcdmod.etcd(c)["bootstrapped"]:
        raise NodeError(rpc("FailedPrecondition", "etcd is not running on this node"))
    if not etcdmod.member_healthy(world, c, n["address"]) or etcdmod.cluster_fault(world, c):
        raise NodeError(rpc("DeadlineExceeded", "context deadline exceeded"))
    return c


def cmd_etcd_members(ctx: Ctx, p: Parsed) -> int:
    cl = client(ctx, p)
    rows: list[list[str]] = [["NODE", "ID", "HOSTNAME", "PEER URLS", "CLIENT URLS", "LEARNER"]]
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            c = _etcd_member_node(world, n, "etcd members")
            members = etcdmod.etcd(c)["members"]
            if n["address"] in etcdmod.etcd(c).get("split_brain", []):
                members = {
                    n["address"]: {
                        "id": "split" + n["address"].replace(".", ""),
                        "hostname": world.node_name(n),
                        "address": n["address"],
                        "learner": False,
                    }
                }
            for m in members.values():
                rows.append(
                    [
                        addr,
                        m["id"],
                        m["hostname"],
                        f"https://{m['address']}:2380",
                        f"https://{m['address']}:2379",
                        str(m.get("learner", False)).lower(),
                    ]
                )

        rc = each_node(ctx, world, cl, "error getting members", one)
    if len(rows) > 1:
        ctx.out(table(rows))
    return rc


def cmd_etcd_status(ctx: Ctx, p: Parsed) -> int:
    """Columns, units and order of siderolabs/talos v1.12.11 cmd/talosctl/cmd/talos/etcd.go etcdStatusCmd: sizes
    with go-humanize `Bytes`, IN USE as `<size> (<in use / DB size * 100, 2 decimals>%)`, member IDs `%016x`."""
    cl = client(ctx, p)
    rows: list[list[str]] = [
        [
            "NODE",
            "MEMBER",
            "DB SIZE",
            "IN USE",
            "LEADER",
            "RAFT INDEX",
            "RAFT TERM",
            "RAFT APPLIED INDEX",
            "LEARNER",
            "PROTOCOL",
            "STORAGE",
            "ERRORS",
        ]
    ]
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            c = _etcd_member_node(world, n, "etcd status")
            e = etcdmod.etcd(c)
            me = e["members"].get(n["address"], {"id": "0000000000000000"})
            size = etcdmod.db_size(c, me) if "address" in me else 0
            used = etcdmod.in_use_bytes(c, me) if "address" in me else 0
            ratio = used / size * 100.0 if size > 0 else 0.0
            rv = c.get("k8s", {}).get("rv", 1)
            index = str(rv + 2 * len(e["members"]) + 3)  # raft entries: member adds, then one per write
            # etcd's Status appends every alarm of the cluster (the alarm store is shared) to each member's errors,
            # as the protobuf text of AlarmMember (server/etcdserver/api/v3rpc/maintenance.go Status)
            etcdmod.raise_space_alarms(c)
            errors = ", ".join(f"memberID:{int(a['member'], 16)} alarm:{a['alarm']}" for a in etcdmod.alarms(c))
            rows.append(
                [
                    addr,
                    me["id"],
                    etcdmod.humanize_bytes(size),
                    f"{etcdmod.humanize_bytes(used)} ({ratio:.2f}%)",
                    etcdmod.leader_id(world, c),
                    index,
                    "2",
                    index,
                    str(bool(me.get("learner", False))).lower(),
                    etcdmod.ETCD_VERSION,
                    etcdmod.STORAGE_VERSION,
                    errors,
                ]
            )

        rc = each_node(ctx, world, cl, "error getting status", one)
    if len(rows) > 1:
        ctx.out(table(rows))
    return rc


def _alarm_rows(ctx: Ctx, cl: Client, what: str, api: str, *, disarm: bool) -> int:
    rows: list[list[str]] = []
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            c = _etcd_member_node(world, n, api)
            etcdmod.raise_space_alarms(c)
            listed = list(etcdmod.alarms(c))
            rows.extend([addr, a["member"], a["alarm"]] for a in listed)
            if disarm:
                etcdmod.etcd(c)["alarms"] = []

        rc = each_node(ctx, world, cl, what, one)
    if rows:
        ctx.out(table([["NODE", "MEMBER", "ALARM"], *rows]))
    return rc


def cmd_etcd_alarm_list(ctx: Ctx, p: Parsed) -> int:
    """etcd.go etcdAlarmListCmd/displayAlarms: NODE MEMBER ALARM, the header only with the first alarm, nothing
    when there is none. etcd's AlarmList answers for the whole cluster, whichever member is asked."""
    if p.args:
        raise Fail(f'unknown command "{p.args[0]}" for "talosctl etcd alarm list"')
    return _alarm_rows(ctx, client(ctx, p), "error getting alarms", "etcd alarm list", disarm=False)


def cmd_etcd_alarm_disarm(ctx: Ctx, p: Parsed) -> int:
    """etcdAlarmDisarmCmd: clientv3 AlarmDisarm with an empty member disarms every listed alarm and prints them.
    A member still over its quota raises NOSPACE again (the simulator: at the next call)."""
    if p.args:
        raise Fail(f'unknown command "{p.args[0]}" for "talosctl etcd alarm disarm"')
    return _alarm_rows(ctx, client(ctx, p), "error disarming alarms", "etcd alarm list", disarm=True)


def cmd_etcd_snapshot(ctx: Ctx, p: Parsed) -> int:
    if len(p.args) != 1:
        raise Fail(f"accepts 1 arg(s), received {len(p.args)}\n\n{usage(('etcd', 'snapshot'))}")
    dest = Path(p.args[0])
    cl = client(ctx, p)
    if len(cl.nodes) != 1:
        raise Fail('command "etcd snapshot" is not supported with multiple nodes')
    with ctx.store.tx() as world:
        data: list[bytes] = []

        def one(n: JSON, addr: str) -> None:
            c = _etcd_member_node(world, n, "etcd snapshot")
            raw = make_snapshot(world, c)
            if world.fault("etcd-snapshot-corrupt", node=n["address"]) is not None:
                # a byte flipped between etcd and the disk: talosctl's own check (size % 512 == 32) still passes
                raw = raw[:40] + bytes([raw[40] ^ 0x01]) + raw[41:]
            data.append(raw)

        rc = each_node(ctx, world, cl, "error reading snapshot", one)
    if rc:
        return rc
    raw = data[0]
    if len(raw) % 512 != 32:  # etcd.go etcdSnapshotCmd: the check talosctl makes before renaming the .part file
        raise Fail(f"sha256 checksum not found (size {len(raw)})")
    if not dest.is_absolute():
        dest = ctx.cwd / dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(raw)
    os.replace(part, dest)
    snap = read_snapshot(raw) or {}
    ctx.out(
        f'etcd snapshot saved to "{p.args[0]}" ({len(raw)} bytes)\n'
        f"snapshot info: hash {snap.get('hash')}, revision {snap.get('revision')}, total keys {len(snap.get('objects', {}))}, "  # noqa: E501
        f"total size {snap.get('size')}\n"
    )
    return 0


def cmd_etcd_leave(ctx: Ctx, p: Parsed) -> int:
    cl = client(ctx, p)
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            c = _etcd_member_node(world, n, "etcd leave")
            etcdmod.etcd(c)["members"].pop(n["address"], None)
            n["etcd_data"] = False
            n["etcd_left"] = True

        return each_node(ctx, world, cl, "error executing leave", one)


def cmd_etcd_remove_member(ctx: Ctx, p: Parsed) -> int:
    if len(p.args) != 1:
        raise Fail(f"accepts 1 arg(s), received {len(p.args)}\n\n{usage(('etcd', 'remove-member'))}")
    mid = p.args[0]
    cl = client(ctx, p)
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            c = _etcd_member_node(world, n, "etcd remove-member")
            members = etcdmod.etcd(c)["members"]
            for a, m in list(members.items()):
                if m["id"] == mid or m["hostname"] == mid:
                    if a == n["address"]:
                        raise NodeError(
                            rpc("Unknown", "cannot remove the member of the node itself, use `talosctl etcd leave`")
                        )
                    del members[a]
                    return
            raise NodeError(rpc("Unknown", "etcdserver: member not found"))

        return each_node(ctx, world, cl, "error removing member", one)


def cmd_etcd_defrag(ctx: Ctx, p: Parsed) -> int:
    """etcdDefragCmd: one node only (helpers.FailIfMultiNodes), then the member's file shrinks to its pages in use."""
    cl = client(ctx, p)
    if len(cl.nodes) > 1:
        raise Fail('command "etcd defrag" is not supported with multiple nodes')
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            c = _etcd_member_node(world, n, "etcd defragment")
            etcdmod.defragment(c, n["address"])

        return each_node(ctx, world, cl, "", one)


# ---- kubeconfig ----------------------------------------------------------------------------------------
def cmd_kubeconfig(ctx: Ctx, p: Parsed) -> int:
    if len(p.args) > 1:
        raise Fail(f"accepts at most 1 arg(s), received {len(p.args)}\n\n{usage(('kubeconfig',))}")
    cl = client(ctx, p)
    cl.nodes = cl.nodes[:1]
    got: list[JSON] = []
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            if not world.is_cp(n):
                raise NodeError(rpc("Unimplemented", "kubeconfig is only available on control plane nodes"))
            got.append(kubeconfig_for(world, n))

        rc = each_node(ctx, world, cl, "error copying", one)
    if rc:
        return rc
    kc = got[0]
    # kubeconfig.go: --force-context-name is a merge option; a new file or stdout gets the raw `admin@<cluster>`
    cname = p["force-context-name"] or kc["current-context"]
    path_arg = p.args[0] if p.args else None
    if path_arg == "-" and not p["merge"]:
        ctx.out(dump_yaml(kc))
        return 0
    if path_arg is None:
        target = ctx.home() / ".kube" / "config" if p["merge"] else ctx.cwd / "kubeconfig"
    else:
        target = Path(path_arg).expanduser()
        if not target.is_absolute():
            target = ctx.cwd / target
        if target.is_dir():
            target = target / "kubeconfig"
    if p["merge"] and target.exists():  # "merge doesn't make sense if target path doesn't exist"
        import yaml  # on use: importing PyYAML costs a simulated call ~8 ms, and most need none

        existing = yaml.safe_load(target.read_text()) or {}
        if cname != kc["current-context"]:
            _rename_context(kc, kc["current-context"], cname)
        merged = _merge_kubeconfig(ctx, existing, kc, cname, bool(p["force"]))
        _write_0600(target, dump_yaml(merged))
        return 0
    if target.exists() and not p["force"] and not p["merge"]:
        raise Fail(f"kubeconfig file already exists, use --force to overwrite: {target}")
    _write_0600(target, dump_yaml(kc))
    return 0


def _write_0600(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _rename_context(kc: JSON, old: str, new: str) -> None:
    for c in kc["contexts"]:
        if c["name"] == old:
            c["name"] = new
    if kc.get("current-context") == old:
        kc["current-context"] = new


def _merge_kubeconfig(ctx: Ctx, existing: JSON, kc: JSON, cname: str, force: bool) -> JSON:
    out = dict(existing)
    for section in ("clusters", "users", "contexts"):
        out.setdefault(section, [])
        out[section] = list(out[section] or [])
    names = {c["name"] for c in out["contexts"]}
    if cname in names and not force:
        i = 1
        while f"{cname}-{i}" in names:
            i += 1
        new = f"{cname}-{i}"
        ctx.err(f'renamed kubeconfig context "{cname}" -> "{new}"\n')
        _rename_context(kc, cname, new)
        cname = new
    for section in ("clusters", "users", "contexts"):
        incoming = {e["name"]: e for e in kc[section]}
        out[section] = [e for e in out[section] if e["name"] not in incoming] + list(incoming.values())
    out["current-context"] = cname
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", "Config")
    return out


def kubeconfig_for(world: World, n: JSON) -> JSON:
    cfg = n["config"]
    cluster_name = cfg.get("cluster_name") or n["cluster"]
    server = cfg.get("endpoint") or f"https://{n['address']}:6443"
    ca = cfg.get("k8s_ca_crt") or base64.b64encode(f"sim-k8s-ca-{cluster_name}".encode()).decode()
    user = f"admin@{cluster_name}"
    cert = base64.b64encode(f"sim-admin-cert-{new_uuid()}".encode()).decode()
    key = base64.b64encode(b"sim-admin-key").decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": user, "user": {"client-certificate-data": cert, "client-key-data": key}}],
        "contexts": [{"name": user, "context": {"cluster": cluster_name, "namespace": "default", "user": user}}],
        "current-context": user,
        "preferences": {},
    }


# ---- lifecycle: upgrade / reboot / reset ---------------------------------------------------------------
IMAGE_RE = (  # compiled on first use (re caches it): each simulated call is a fresh interpreter
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+:[\w][\w.-]{0,127}(?:@sha256:[0-9a-f]{64})?$"
)


def _wait_back(ctx: Ctx, cl: Client, targets: dict[str, str], timeout: float, *, until: str = "running") -> int:
    """Track nodes like talosctl's action tracker: boot id changed, then stage running (or maintenance) + ready."""
    ctx.err(f"watching nodes: [{' '.join(targets)}]\n")
    waiter = ctx.waiter(timeout)
    pending = dict(targets)
    while pending:
        back_at: list[float] = []  # wall clock: when a pending node's reboot ends (the tracker's event comes then)
        with ctx.store.tx() as world:
            for addr, old_boot in list(pending.items()):
                n = world.node(addr) or world.nodes.get(addr)
                if n is None:
                    continue
                if until == "off":
                    if n.get("off"):
                        ctx.err(f"    * {addr}: events check condition met\n")
                        del pending[addr]
                    continue
                stage = world.stage(n)
                if world.wall and n.get("reboot"):
                    back_at.append(world.reboot_ends(n))
                # action.MachineReadyEventFn: stage running *and* ready (maintenance reports ready, no checks)
                if (
                    n.get("boot_id") != old_boot
                    and world.phase(n) == "up"
                    and stage == until
                    and not machine.unmet_conditions(world, n, stage)
                ):
                    ctx.err(f"    * {addr}: post check passed\n")
                    del pending[addr]
        if not pending:
            break
        if waiter.expired():
            for addr in pending:
                ctx.err(f"    * {addr}: {rpc('DeadlineExceeded', 'context deadline exceeded')}\n")
            raise Fail(
                f"{len(pending)} error(s) occurred:\n"
                + "".join(f"\t{a}: timeout waiting for the node to come back\n" for a in pending)
            )
        waiter.sleep(until=min(back_at) if back_at else None)
    return 0


def cmd_upgrade(ctx: Ctx, p: Parsed) -> int:
    image = p["image"]
    mode = p["reboot-mode"]
    if mode not in ("default", "powercycle"):
        raise Fail(f'invalid reboot mode: "{mode}"\n\n{usage(("upgrade",))}')
    if p["insecure"] and p["wait"]:
        raise Fail("cannot use --wait with --insecure (maintenance mode): pass --wait=false")
    cl = client(ctx, p, insecure=bool(p["insecure"]))
    started: dict[str, str] = {}
    acks: list[list[str]] = []
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            maintenance = not world.configured(n)
            if maintenance and not cl.insecure:
                raise NodeError(X509)
            if maintenance and (p["stage"] or p["force"]):
                raise NodeError(
                    rpc(
                        "Unimplemented",
                        "upgrade --preserve, --stage, and --force are not supported in maintenance mode",
                    )
                )
            if maintenance and not n.get("installed_image"):
                raise NodeError(rpc("FailedPrecondition", "Talos is not installed"))
            if not re.match(IMAGE_RE, image) or world.fault("image-invalid", node=addr, text=image, consume=True):
                raise NodeError(
                    rpc(
                        "Unknown",
                        f'error validating installer image "{image}": failed to pull image: {image}: not found',
                    )
                )
            if world.is_cp(n) and not p["force"]:
                c = world.clusters[n["cluster"]]
                e = etcdmod.etcd(c)
                for a, m in e["members"].items():
                    if not etcdmod.member_healthy(world, c, a) or etcdmod.cluster_fault(world, c):
                        raise NodeError(
                            rpc(
                                "Unknown",
                                f"error validating etcd for upgrade: etcd member {m['id']} is not healthy; all members must be healthy to perform an upgrade",  # noqa: E501
                            )
                        )
            started[addr] = n["boot_id"]
            if world.fault("upgrade-not-booted", node=addr, cluster=n["cluster"], consume=True) is not None:
                # the request is acknowledged and the image staged in META, but the reboot that would boot it
                # fails ("reboot for staged upgrade failed" is only logged): the node keeps its boot and version
                n["staged_upgrade"] = image
            else:
                world.start_reboot(
                    n, "upgrade", {"image": image, "talos_version": image_tag(image), "schematic": _schematic(image)}
                )
            acks.append(
                [addr, "Upgrade request received", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(world.now))]
            )

        rc = each_node(ctx, world, cl, "error performing upgrade", one)
    if rc or not started:
        return rc or 1
    if not p["wait"]:
        ctx.out(table([["NODE", "ACK", "STARTED"], *acks]))
        return 0
    with ctx.store.read() as w:
        timeout = w.scaled(float(p["timeout"]))
    return _wait_back(ctx, cl, started, timeout)


def cmd_reboot(ctx: Ctx, p: Parsed) -> int:
    if p["mode"] not in ("default", "powercycle", "force"):
        raise Fail(f'invalid reboot mode: "{p["mode"]}"')
    cl = client(ctx, p)
    started: dict[str, str] = {}
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            started[addr] = n["boot_id"]
            world.start_reboot(n, "reboot")

        rc = each_node(ctx, world, cl, "error executing reboot", one)
    if rc or not p["wait"]:
        return rc
    with ctx.store.read() as w:
        timeout = w.scaled(float(p["timeout"]))
    return _wait_back(ctx, cl, started, timeout)


def cmd_shutdown(ctx: Ctx, p: Parsed) -> int:
    """The Shutdown sequence (v1alpha1_sequencer.go Shutdown): cordon and drain unless --force, stop everything,
    power off. The node stays off until powered on (`Sim.power_on`)."""
    cl = client(ctx, p)
    started: dict[str, str] = {}
    acks: list[list[str]] = []
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            started[addr] = n["boot_id"]
            world.start_reboot(n, "shutdown", {"power_off": True})
            acks.append([addr, "Shutdown request received"])

        rc = each_node(ctx, world, cl, "error executing shutdown", one)
    if rc or not started:
        return rc or 1
    if not p["wait"]:
        ctx.out(table([["NODE", "ACK"], *acks]))
        return 0
    with ctx.store.read() as w:
        timeout = w.scaled(float(p["timeout"]))
    return _wait_back(ctx, cl, started, timeout, until="off")


def cmd_reset(ctx: Ctx, p: Parsed) -> int:
    if p["wipe-mode"] not in ("all", "system-disk", "user-disks"):
        raise Fail(
            f'invalid argument "{p["wipe-mode"]}" for "--wipe-mode" flag: possible options are: all, system-disk, user-disks'  # noqa: E501
        )
    if p["insecure"] and p["wait"]:
        raise Fail("--insecure and --wait cannot be used together (pass --wait=false)")
    labels = [x.upper() for x in p["system-labels-to-wipe"]]
    cl = client(ctx, p, insecure=bool(p["insecure"]))
    started: dict[str, str] = {}
    with ctx.store.tx() as world:

        def one(n: JSON, addr: str) -> None:
            maintenance = not world.configured(n)
            if maintenance and not cl.insecure:
                raise NodeError(X509)
            if maintenance and labels:
                raise NodeError(
                    rpc("Unknown", "system partitions to wipe params is not supported in the maintenance mode")
                )
            c = world.clusters[n["cluster"]]
            wipe_state = not labels or "STATE" in labels
            wipe_eph = not labels or "EPHEMERAL" in labels
            if p["wipe-mode"] == "user-disks":
                wipe_state = wipe_eph = False
            if p["graceful"] and not maintenance:
                if world.is_cp(n) and n.get("etcd_data"):
                    e = etcdmod.etcd(c)
                    if not etcdmod.quorum(world, c):
                        raise NodeError(rpc("Unknown", "failed to leave etcd: etcdserver: unhealthy cluster"))
                    if len(e["members"]) == 1 and n["address"] in e["members"]:
                        raise NodeError(
                            rpc(
                                "Unknown",
                                "failed to leave etcd: etcdserver: re-configuration failed due to not enough started members",  # noqa: E501
                            )
                        )
                    e["members"].pop(n["address"], None)
                    n["etcd_data"] = False
                if etcdmod.etcd(c)["bootstrapped"]:
                    kube = Kube(c, world.now)
                    node_obj = kube.find("Node", None, world.node_name(n))
                    if node_obj:
                        node_obj.setdefault("spec", {})["unschedulable"] = True
            started[addr] = n["boot_id"]
            world.start_reboot(
                n, "reset", {"reset": wipe_state, "wipe_ephemeral": wipe_eph, "power_off": not p["reboot"]}
            )

        rc = each_node(ctx, world, cl, "error executing reset", one)
    if rc or not p["wait"]:
        return rc
    with ctx.store.read() as w:
        timeout = w.scaled(float(p["timeout"]))
    return _wait_back(ctx, cl, started, timeout, until="maintenance" if p["reboot"] else "off")


# ---- upgrade-k8s ---------------------------------------------------------------------------------------
def _ver(v: str) -> tuple[int, int, int]:
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)$", v.strip())
    if not m:
        raise Fail(f'error parsing version "{v}": Invalid Semantic Version')
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def cmd_upgrade_k8s(ctx: Ctx, p: Parsed) -> int:
    to = _ver(p["to"])
    to_s = ".".join(map(str, to))
    cl = client(ctx, p)
    cl.nodes = cl.nodes[:1]
    with ctx.store.tx() as world:
        found: list[JSON] = []

        def one(n: JSON, addr: str) -> None:
            if not world.is_cp(n):
                raise NodeError("node is not a control plane node")
            found.append(n)

        rc = each_node(ctx, world, cl, "error", one)
        if rc:
            return rc
        c = world.clusters[found[0]["cluster"]]
        if not etcdmod.api_available(world, c):
            raise Fail(
                f'error creating kubernetes client: Get "https://{found[0]["address"]}:6443/version": dial tcp {found[0]["address"]}:6443: connect: connection refused'  # noqa: E501
            )
        frm_s = (p["from"] or str(c.get("k8s_version") or world.setting("kubernetes_version"))).lstrip("v")
        frm = _ver(frm_s)
        if p["from"] is None:
            ctx.out(f"automatically detected the lowest Kubernetes version {frm_s}\n")
        if to[:2] < frm[:2] or to[0] != frm[0] or to[1] - frm[1] > 1:
            raise Fail(f'unsupported upgrade path {frm[0]}.{frm[1]}->{to[0]}.{to[1]} (from "{frm_s}" to "{to_s}")')
        nodes = [n for n in world.cluster_nodes(c) if world.configured(n)]
        cps = [n["address"] for n in nodes if world.is_cp(n)]
        wks = [n["address"] for n in nodes if not world.is_cp(n)]
        ctx.out(f"discovered controlplane nodes {json.dumps(cps)}\ndiscovered worker nodes {json.dumps(wks)}\n")
        down = [n["address"] for n in nodes if world.phase(n) != "up"]
        if down and not p["dry-run"]:
            raise Fail(
                f"error updating kubelet: node {down[0]} is not reachable: {dial_err(down[0], 'connect: connection refused')}"  # noqa: E501
            )
        for comp in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            ctx.out(f'updating "{comp}" to version "{to_s}"\n')
            for a in cps:
                ctx.out(f' > "{a}": starting update\n')
                if p["dry-run"]:
                    ctx.out(" > skipped in dry-run\n")
        ctx.out(f'updating kubelet to version "{to_s}"\n')
        for n in nodes:
            ctx.out(f' > "{n["address"]}": starting update\n')
            if p["dry-run"]:
                ctx.out(" > skipped in dry-run\n")
                continue
            _patch_versions(n, to_s, p)
            ctx.out(
                f' > "{n["address"]}": machine configuration patched\n > "{n["address"]}": waiting for kubelet restart\n'  # noqa: E501
                f' > "{n["address"]}": kubelet is restarted\n > "{n["address"]}": waiting for node update\n'
                f' > "{n["address"]}": node is updated\n'
            )
        if not p["dry-run"]:
            c["k8s_version"] = f"v{to_s}"
    return 0


def _patch_versions(n: JSON, to: str, p: Parsed) -> None:
    docs = machineconfig.parse_docs(n["config"]["yaml"])
    main = machineconfig.v1alpha1(docs) or {}
    if p["upgrade-kubelet"]:
        main.setdefault("machine", {}).setdefault("kubelet", {})["image"] = f"{p['kubelet-image']}:v{to}"
    if n["config"]["type"] in ("controlplane", "init"):
        cl = main.setdefault("cluster", {})
        for key, flag in (
            ("apiServer", "apiserver-image"),
            ("controllerManager", "controller-manager-image"),
            ("scheduler", "scheduler-image"),
            ("proxy", "proxy-image"),
        ):
            cl.setdefault(key, {})["image"] = f"{p[flag]}:v{to}"
    text = "---\n".join(dump_yaml(d) for d in docs)
    n["config"] = machineconfig.summarise(text)


# ---- health --------------------------------------------------------------------------------------------
def cmd_health(ctx: Ctx, p: Parsed) -> int:
    cl = client(ctx, p)
    with ctx.store.tx() as world:
        if p["server"]:
            cl.nodes = cl.nodes[:1]
            got: list[JSON] = []
            rc = each_node(ctx, world, cl, "error", lambda n, a: got.append(n))
            if rc:
                return rc
            cname = got[0]["cluster"]
        else:
            ep = cl.endpoints[0]
            nn = world.node(ep)
            cc = world.cluster_by_vip(ep)
            if nn is None and cc is None:
                raise Fail(dial_err(ep, "connect: no route to host"))
            cname = nn["cluster"] if nn else cc["name"]  # type: ignore[index]
        timeout = world.scaled(float(p["wait-timeout"]))
        c = world.clusters[cname]
        cps = list(p["control-plane-nodes"]) or [n["address"] for n in world.cluster_nodes(c) if world.is_cp(n)]
        wks = list(p["worker-nodes"]) or [
            n["address"] for n in world.cluster_nodes(c) if world.configured(n) and not world.is_cp(n)
        ]
    ctx.err(f"discovered nodes: [{' '.join(json.dumps(x) for x in cps + wks)}]\n")
    waiter = ctx.waiter(timeout)
    for title, check in HEALTH_CHECKS:
        ctx.err(f"waiting for {title}: ...\n")
        last = None
        while True:
            with ctx.store.tx() as world:
                for a in cps + wks:
                    world.node(a)  # health asks every node: each poll is a contact (state.World.contact)
                res = check(world, world.clusters[cname], cps, wks)
            if res is None or res == "SKIP":
                ctx.err(f"waiting for {title}: {'OK' if res is None else 'SKIP'}\n")
                break
            if res != last:
                ctx.err(f"waiting for {title}: {res}\n")
                last = res
            if waiter.expired():
                if p["server"]:
                    raise Fail("healthcheck error: " + rpc("DeadlineExceeded", "context deadline exceeded"))
                raise Fail("healthcheck error: context deadline exceeded")
            waiter.sleep()
    return 0


def _h_etcd(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    e = etcdmod.etcd(c)
    bad = []
    for a in cps:
        n = world.nodes.get(a)
        if n is None or world.phase(n) not in ("up", "booting"):
            bad.append(f"{a}: {dial_err(a, 'connect: connection refused')}")
        elif not e["bootstrapped"] or not n.get("etcd_data"):
            bad.append(
                f'{a}: service "etcd" not in expected state "Running": current state [Preparing] Running pre state'
            )
        elif not etcdmod.member_healthy(world, c, a) or etcdmod.cluster_fault(world, c):
            bad.append(
                f'{a}: service "etcd" not in expected state "Running": current state [Running] Health check failed: context deadline exceeded'  # noqa: E501
            )
    return _hmulti(bad)


def _hmulti(bad: list[str]) -> str | None:
    if not bad:
        return None
    return f"{len(bad)} error{'s' if len(bad) > 1 else ''} occurred:\n" + "\n".join(f"\t* {b}" for b in bad)


def _h_consistent(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    sb = etcdmod.etcd(c).get("split_brain") or []
    if sb:
        return f"etcd members are not consistent across nodes: {sb[0]} has a different member list"
    return None


def _h_members_cp(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    ips = sorted(etcdmod.etcd(c)["members"])
    if ips != sorted(cps):
        return f"etcd member ips {json.dumps(ips)} are not equal to control plane node ips {json.dumps(sorted(cps))}"
    return None


def _h_apid(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    bad = []
    for a in cps + wks:
        n = world.nodes.get(a)
        if n is None or world.phase(n) not in ("up", "booting", "pre"):
            bad.append(f"{a}: {dial_err(a, 'connect: connection refused')}")
    return _hmulti(bad)


def _h_ok(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    return None


def _h_kubelet(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    bad = [
        f'{a}: service "kubelet" not in expected state "Running": current state [Waiting]'
        for a in cps + wks
        if not (world.nodes.get(a) and world.phase(world.nodes[a]) == "up" and world.configured(world.nodes[a]))
    ]
    return _hmulti(bad)


def _h_boot(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    bad = [
        f"{a}: unexpected stage {world.stage(world.nodes[a])}"
        for a in cps + wks
        if a in world.nodes and world.stage(world.nodes[a]) != "running"
    ]
    return _hmulti(bad)


def _k8s_nodes(world: World, c: JSON) -> dict[str, JSON]:
    if not etcdmod.api_available(world, c):
        return {}
    return {o["metadata"]["name"]: o for o in Kube(c, world.now).all_of_kind("Node")}


def _names(world: World, addrs: list[str]) -> list[str]:
    return [world.node_name(world.nodes[a]) for a in addrs if a in world.nodes]


def _h_k8s_report(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    if not etcdmod.api_available(world, c):
        return (
            f'Get "https://{cps[0] if cps else c["endpoint"]}:6443/api/v1/nodes": dial tcp: connect: connection refused'
        )
    have = _k8s_nodes(world, c)
    want = _names(world, cps + wks)
    missing = [w for w in want if w not in have]
    if missing:
        return f"expected number of nodes to match: {len(want)} != {len(want) - len(missing)}"
    return None


def _h_cp_components(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    return None if etcdmod.api_available(world, c) else "kube-apiserver is not ready"


def _h_ready(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    have = _k8s_nodes(world, c)
    bad = [
        nm
        for nm in _names(world, cps + wks)
        if nm not in have or (condition(have[nm], "Ready") or {}).get("status") != "True"
    ]
    return f"some nodes are not ready: {json.dumps(bad)}" if bad else None


def _h_proxy(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    kube = Kube(c, world.now)
    ds = kube.find("DaemonSet", "kube-system", "kube-proxy")
    if ds is None:
        return "SKIP"
    return (
        None
        if dig(ds, "status", "numberReady") == dig(ds, "status", "desiredNumberScheduled")
        else "kube-proxy is not ready"
    )


def _h_coredns(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    kube = Kube(c, world.now)
    pods = [
        o
        for o in kube.all_of_kind("Pod")
        if o["metadata"].get("namespace") == "kube-system"
        and (o["metadata"].get("labels") or {}).get("k8s-app") == "kube-dns"
    ]
    if not pods or not any((condition(o, "Ready") or {}).get("status") == "True" for o in pods):
        return 'no ready pods found for namespace "kube-system" and label selector "k8s-app=kube-dns"'
    return None


def _h_schedulable(world: World, c: JSON, cps: list[str], wks: list[str]) -> str | None:
    bad = [nm for nm, o in _k8s_nodes(world, c).items() if dig(o, "spec", "unschedulable")]
    return f"some nodes are not schedulable: {json.dumps(bad)}" if bad else None


HEALTH_CHECKS = [
    ("etcd to be healthy", _h_etcd),
    ("etcd members to be consistent across nodes", _h_consistent),
    ("etcd members to be control plane nodes", _h_members_cp),
    ("apid to be ready", _h_apid),
    ("all nodes memory sizes", _h_ok),
    ("all nodes disk sizes", _h_ok),
    ("no diagnostics", _h_ok),
    ("kubelet to be healthy", _h_kubelet),
    ("all nodes to finish boot sequence", _h_boot),
    ("all k8s nodes to report", _h_k8s_report),
    ("all control plane static pods to be running", _h_cp_components),
    ("all control plane components to be ready", _h_cp_components),
    ("all k8s nodes to report ready", _h_ready),
    ("kube-proxy to report ready", _h_proxy),
    ("coredns to report ready", _h_coredns),
    ("all k8s nodes to report schedulable", _h_schedulable),
]


# ---- validate ------------------------------------------------------------------------------------------
def cmd_validate(ctx: Ctx, p: Parsed) -> int:
    if not p["mode"]:
        raise Fail('required flag(s) "mode" not set')
    if p["mode"] not in ("metal", "cloud", "container"):
        raise Fail(f"unknown mode for validate: {p['mode']}")
    if not p["config"]:
        raise Fail('required flag(s) "config" not set')
    try:
        text = ctx.read_file(p["config"]).decode()
    except OSError as e:
        raise Fail(f"open {p['config']}: no such file or directory") from e
    try:
        docs = machineconfig.parse_docs(text)
        errs = machineconfig.validate(docs, require_v1alpha1=True)
    except machineconfig.ConfigError as e:
        raise Fail(e.message) from e
    if errs:
        raise Fail(_multi(errs).rstrip("\n"))
    rules = machineconfig.talos_rules_error(docs, strict=bool(p["strict"]), mode=p["mode"])
    if rules:
        raise Fail(rules.rstrip("\n"))
    ctx.out(f"{p['config']} is valid for {p['mode']} mode\n")
    return 0


HANDLERS: dict[tuple[str, ...], Any] = {
    ("apply-config",): cmd_apply,
    ("bootstrap",): cmd_bootstrap,
    ("etcd", "alarm", "disarm"): cmd_etcd_alarm_disarm,
    ("etcd", "alarm", "list"): cmd_etcd_alarm_list,
    ("etcd", "defrag"): cmd_etcd_defrag,
    ("etcd", "leave"): cmd_etcd_leave,
    ("etcd", "members"): cmd_etcd_members,
    ("etcd", "remove-member"): cmd_etcd_remove_member,
    ("etcd", "snapshot"): cmd_etcd_snapshot,
    ("etcd", "status"): cmd_etcd_status,
    ("get",): cmd_get,
    ("health",): cmd_health,
    ("kubeconfig",): cmd_kubeconfig,
    ("read",): cmd_read,
    ("reboot",): cmd_reboot,
    ("reset",): cmd_reset,
    ("service",): cmd_service,
    ("shutdown",): cmd_shutdown,
    ("upgrade",): cmd_upgrade,
    ("upgrade-k8s",): cmd_upgrade_k8s,
    ("validate",): cmd_validate,
    ("version",): cmd_version,
}
