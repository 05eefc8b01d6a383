"""`sim`: create simulated clusters, inject faults, inspect and tune the simulator."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from .inventory import InventoryError, add_cluster, read_inventory, wipe, with_hardware
from .network import HARDWARE_FIELDS
from .schematic import register, schematic_id
from .state import SETTINGS_DEFAULTS, Store
from .util import JSON

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

FAULT_KINDS = {
    "node-never-returns": "the node's next reboot/upgrade/install never finishes (--node)",
    "upgrade-not-booted": "talosctl upgrade of --node is acknowledged and staged but the node never reboots into it",
    "etcd-unhealthy": "the etcd member of --node (or the whole cluster with --cluster) is unhealthy",
    "etcd-snapshot-corrupt": "talosctl etcd snapshot from --node writes a file with one byte flipped (bad media)",
    "apply-rejected": "apply-config to --node is rejected with --message",
    "talos-api-unreachable": "the Talos API of --node times out",
    "k8s-api-unreachable": "the Kubernetes API (of --cluster, or served by --node) times out",
    "hang": "invocations of --tool whose argv matches --match sleep --seconds (default 3600) before doing anything",
    "latency": "invocations of --tool matching --match are delayed by --seconds",
    "fail": "invocations of --tool matching --match fail with --message and --exit",
    "git-unreachable": "GitRepositories (whose URL matches --match) cannot be cloned",
    "image-invalid": "talosctl upgrade with an image matching --match fails to pull",
    "pod-stuck-terminating": "pods whose ns/name matches --match never finish terminating",
    "helm-fails": "helm install/upgrade of a release matching --match fails with --message",
    "chart-unavailable": "a chart reference matching --match cannot be fetched",
}


def _coerce(value: str) -> Any:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def known_faults() -> dict[str, str]:
    """The simulator's own fault kinds plus those declared by controller modules."""
    from .controllers import fault_kinds

    return {**FAULT_KINDS, **fault_kinds()}


def add_fault(store: Store, kind: str, **opts: Any) -> JSON:
    known = known_faults()
    if kind not in known:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(known))}")
    fault: JSON = {"kind": kind, **{k: v for k, v in opts.items() if v is not None}}
    with store.tx(tick=False) as w:
        w.faults.append(fault)
    return fault


def clear_faults(store: Store, kind: str | None = None) -> None:
    with store.tx(tick=False) as w:
        w.data["faults"] = [f for f in w.faults if kind and f["kind"] != kind]
        for n in w.nodes.values():
            r = n.get("reboot")
            if r and r.get("never_return") and (kind in (None, "node-never-returns")):
                w.release(n)


def _hardware_args(path: Path | None, links: list[str]) -> dict[str, list[JSON]]:
    """`--hardware FILE` and `--link NODE:FIELD=VALUE,...` as {node: [NIC, ...]} (later --link entries add NICs)."""
    out: dict[str, list[JSON]] = {}
    if path is not None:
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise ValueError(f"{path}: expected a mapping of node -> list of NICs")
        out.update({str(k): [dict(x) for x in v] for k, v in data.items()})
    for item in links:
        node, sep, fields = item.partition(":")
        if not sep or not node:
            raise ValueError(f"--link {item!r}: expected NODE:FIELD=VALUE,...")
        nic: JSON = {}
        # a MAC has colons but no commas or '=': split fields on commas, each on its first '='
        for part in filter(None, fields.split(",")):
            key, eq, value = part.partition("=")
            if not eq:
                raise ValueError(f"--link {item!r}: {part!r} is not FIELD=VALUE")
            nic[key] = _coerce(value) if key == "linkState" else value
        out.setdefault(node, []).append(nic)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="sim", description="Control the talosctl/kubectl/helm/flux simulator ($K8S_OPS_SIM_DIR)."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create", help="create cluster(s) from an inventory file, every node in maintenance mode")
    c.add_argument("--inventory", required=True, type=Path)
    c.add_argument("--cluster", help="only this cluster of a multi-cluster inventory")
    c.add_argument(
        "--hardware",
        type=Path,
        help="YAML {node (hostname or address): [NIC, ...]}: these NICs instead of those the inventory's "
        "interfaces imply (NIC fields: " + ", ".join(HARDWARE_FIELDS) + ")",
    )
    c.add_argument(
        "--link",
        action="append",
        default=[],
        metavar="NODE:FIELD=VALUE,...",
        help="one NIC of NODE, e.g. 10.5.0.11:name=eth0,hardwareAddr=52:54:00:aa:bb:01,driver=e1000e "
        "(repeat for more NICs; replaces that node's NICs like --hardware)",
    )
    faults = known_faults()
    f = sub.add_parser("fault", help="inject a fault: " + "; ".join(f"{k}: {v}" for k, v in faults.items()))
    f.add_argument("kind", choices=sorted(faults))
    f.add_argument("--node")
    f.add_argument("--cluster")
    f.add_argument("--tool", choices=["talosctl", "kubectl", "helm", "flux"])
    f.add_argument("--match", help="regex matched against the joined argv / URL / pod ns/name")
    f.add_argument("--message")
    f.add_argument("--seconds", type=float)
    f.add_argument("--exit", type=int)
    f.add_argument("--count", type=int, help="fire this many times, then disappear")
    cf = sub.add_parser("clear-faults", help="remove faults (all, or one kind); stuck reboots then finish")
    cf.add_argument("kind", nargs="?")
    st = sub.add_parser("state", help="print the state (JSON)")
    st.add_argument("--summary", action="store_true")
    w = sub.add_parser("wipe", help="every node back to maintenance mode, etcd and cluster state gone (DR drills)")
    w.add_argument("--cluster")
    s = sub.add_parser("set", help="tune: " + ", ".join(sorted(SETTINGS_DEFAULTS)))
    s.add_argument("key", choices=sorted(SETTINGS_DEFAULTS))
    s.add_argument("value")
    ss = sub.add_parser(
        "set-schematic",
        help="which official extensions the images of a schematic ID carry (unknown IDs carry none); "
        "or, with --inventory, the ID computed from an inventory's schematic",
    )
    ss.add_argument("id", nargs="?", help="the 64-hex schematic ID")
    ss.add_argument("extensions", nargs="*", help="official names, e.g. siderolabs/iscsi-tools")
    ss.add_argument("--inventory", type=Path, help="register the schematic of this cluster.yaml instead")
    ss.add_argument("--cluster", help="only this cluster (default: every cluster)")
    po = sub.add_parser("power-on", help="power on a node that a reset shut down")
    po.add_argument("node")
    sub.add_parser("settle", help="let time pass until no node is rebooting (stuck nodes excepted)")
    adv = sub.add_parser("advance", help="let SECONDS of simulated time pass for every node and the clock")
    adv.add_argument("seconds", type=float)
    sub.add_parser("calls", help="print calls.log")
    args = ap.parse_args(argv)
    store = Store()
    try:
        if args.cmd == "create":
            specs = read_inventory(args.inventory)
            if args.cluster:
                specs = [x for x in specs if x["name"] == args.cluster]
            specs = with_hardware(specs, _hardware_args(args.hardware, args.link))
            with store.tx(tick=False) as world:
                for spec in specs:
                    add_cluster(world, spec)
                    print(
                        f"created cluster {spec['name']}: endpoint {spec['endpoint']}, "
                        + ", ".join(f"{n['hostname']} {n['address']} ({n['role']})" for n in spec["nodes"])
                    )
        elif args.cmd == "fault":
            fault = add_fault(
                store,
                args.kind,
                node=args.node,
                cluster=args.cluster,
                tool=args.tool,
                match=args.match,
                message=args.message,
                seconds=args.seconds,
                exit=args.exit,
                count=args.count,
            )
            print(json.dumps(fault))
        elif args.cmd == "clear-faults":
            clear_faults(store, args.kind)
        elif args.cmd == "state":
            with store.tx() as world:
                if args.summary:
                    for n in world.nodes.values():
                        print(
                            f"{n['cluster']:<8} {n['hostname']:<12} {n['address']:<15} {world.stage(n):<12} {world.phase(n):<8} "  # noqa: E501
                            f"{n['talos_version']:<9} etcd={'y' if n.get('etcd_data') else 'n'}"
                        )
                else:
                    print(json.dumps(world.data, indent=1))
        elif args.cmd == "wipe":
            with store.tx(tick=False) as world:
                wipe(world, args.cluster)
        elif args.cmd == "set":
            with store.tx(tick=False) as world:
                world.set_setting(args.key, _coerce(args.value))
        elif args.cmd == "set-schematic":
            pairs: list[tuple[str, list[str]]] = []
            if args.inventory is not None:
                for spec in read_inventory(args.inventory):
                    sch = spec["schematic"]
                    sid = schematic_id(sch["extensions"], sch["extra_kernel_args"])
                    if sid is None:
                        raise ValueError(f"{args.inventory}: cannot compute this schematic's ID; pass ID EXT...")
                    pairs.append((sid, sch["extensions"]))
            elif args.id and re.fullmatch(r"[0-9a-f]{64}", args.id):
                pairs.append((args.id, args.extensions))
            else:
                raise ValueError("set-schematic needs a 64-hex schematic ID (or --inventory)")
            with store.tx(tick=False) as world:
                for cl in world.clusters.values():
                    if args.cluster in (None, cl["name"]):
                        for sid, exts in pairs:
                            register(cl, sid, exts)
                            print(f"{cl['name']}: schematic {sid}: {', '.join(exts) or 'no extensions'}")
        elif args.cmd == "power-on":
            with store.tx() as world:
                node = world.node(args.node)
                if node is None:
                    raise ValueError(f"no node {args.node}")
                n = node
                n["off"] = False
                world.start_reboot(n, "boot")
        elif args.cmd == "settle":
            store.settle()
        elif args.cmd == "advance":
            store.advance(args.seconds)
        elif args.cmd == "calls":
            p = store.root / "calls.log"
            sys.stdout.write(p.read_text() if p.exists() else "")
    except (InventoryError, ValueError, KeyError, OSError, TimeoutError) as e:
        print(f"sim: {e}", file=sys.stderr)
        return 1
    return 0
