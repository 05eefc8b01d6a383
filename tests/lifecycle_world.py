"""A small stateful stand-in for talosctl + kubectl behind a FakeRunner, for lifecycle unit tests.

Only what the lifecycle code reads and does: versions, installed extensions, machine status, boot ids, etcd
status/members, upgrade/reboot/reset/apply, kubectl get nodes / objects. End-to-end behaviour is tested against
tests/sim.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from k8s_ops.core.command import Command, Result
from k8s_ops.core.testing import FakeRunner
from k8s_ops.talos.inventory import Cluster
from k8s_ops.talos.schematic import extension_name


@dataclass
class NodeState:
    hostname: str
    address: str
    controlplane: bool
    version: str = "v1.12.0"
    boot: str = field(default_factory=lambda: str(uuid.uuid4()))
    stage: str = "running"
    ready: bool = True
    kube_ready: bool = True
    kubelet: str = "v1.35.0"
    etcd_error: str = ""
    maintenance: bool = False
    reachable: bool = True
    never_returns: bool = False
    extensions: list[str] = field(default_factory=list)  # manifest names, as `get extensions` reports them
    schematic: str | None = None  # the factory's `schematic` marker (version = schematic ID), when set


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


class World:
    """Nodes keyed by address; `log` records every mutating call as (verb, hostname).

    Every node starts with the cluster schematic's extensions; an upgrade installs `installer_extensions`
    (None: the schematic's).
    """

    def __init__(self, cluster: Cluster, *, version: str = "v1.12.0") -> None:
        self.cluster = cluster
        self.schematic = [extension_name(e) for e in cluster.schematic.extensions]
        self.nodes = {
            str(n.address): NodeState(
                n.hostname, str(n.address), n.is_controlplane, version=version, extensions=list(self.schematic)
            )
            for n in cluster.nodes
        }
        self.installer_extensions: list[str] | None = None
        self.objects: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        self.log: list[tuple[str, str]] = []
        self.apply_reject: set[str] = set()
        self.apply_change = "reboot"  # what an apply dry-run on a configured node reports
        self.apiserver = "v1.35.0"
        self.lock = threading.Lock()
        self.runner = FakeRunner(handler=self.handle)

    def by_host(self, hostname: str) -> NodeState:
        return next(n for n in self.nodes.values() if n.hostname == hostname)

    # ------------------------------------------------------------------ dispatch

    def handle(self, command: Command) -> Result:
        argv = command.display_argv()
        with self.lock:
            if argv[0] == "talosctl":
                return self.talosctl(argv)
            if argv[0] == "kubectl":
                return self.kubectl(argv)
        raise AssertionError(f"unexpected command {argv}")

    def _targets(self, argv: list[str]) -> list[NodeState]:
        return [self.nodes[a] for a in (_flag(argv, "-n") or "").split(",") if a]

    def _answers(self, n: NodeState) -> bool:
        return n.reachable and not n.maintenance and n.stage not in ("rebooting", "upgrading", "down")

    def talosctl(self, argv: list[str]) -> Result:
        words = []
        for a in argv[1:]:
            if a.startswith("-"):
                break
            words.append(a)
        nodes = self._targets(argv)
        insecure = "--insecure" in argv
        verb = words[0]
        if verb == "get" and words[1] == "machinestatus":
            out: list[dict[str, Any]] = []
            errs: list[str] = []
            for n in nodes:
                if insecure:
                    if n.maintenance and n.reachable:
                        out.append({"node": "", "spec": {"stage": "maintenance", "status": {"ready": False}}})
                    else:
                        errs.append(f"{n.address}: tls: certificate required")
                elif self._answers(n):
                    out.append({"node": n.address, "spec": {"stage": n.stage, "status": {"ready": n.ready}}})
                else:
                    errs.append(f"{n.address}: connection refused")
            return Result(1 if errs else 0, "\n".join(json.dumps(o) for o in out), "\n".join(errs))
        if insecure:  # the maintenance API: only unconfigured nodes answer it
            live = [n for n in nodes if n.maintenance and n.reachable]
        else:
            live = [n for n in nodes if self._answers(n)]
        dead = [n for n in nodes if n not in live]
        err = "\n".join(f"error {n.address}: rpc error: code = Unavailable" for n in dead)
        if verb == "get" and words[1] == "extensions":
            docs = [
                {
                    "node": n.address,
                    "metadata": {"namespace": "runtime", "type": "ExtensionStatuses.runtime.talos.dev", "id": str(i)},
                    "spec": {"image": f"{i:03d}-{e}.sqsh", "metadata": {"name": e, "version": "v1.0.0"}},
                }
                for n in live
                for i, e in enumerate(n.extensions)
            ]
            docs += [
                {"node": n.address, "spec": {"image": "", "metadata": {"name": "schematic", "version": n.schematic}}}
                for n in live
                if n.schematic
            ]
            return Result(1 if dead else 0, "\n".join(json.dumps(d) for d in docs), err)
        if verb == "version":
            text = "Client:\n\tTag:         v1.12.11\n"
            for n in live:
                text += f"Server:\n\tNODE:        {n.address}\n\tTag:         {n.version}\n"
            return Result(1 if dead else 0, text, err)
        if dead and verb not in ("reset",):
            return Result(1, "", err)
        n = nodes[0]
        if verb == "read":
            return Result(0, n.boot + "\n")
        if verb == "etcd" and words[1] == "alarm":
            return Result(0, "")  # no alarm: talosctl prints nothing at all
        if verb == "service":
            return Result(0, "NODE   SERVICE   STATE   HEALTH   LAST CHANGE   LAST EVENT\n")
        if verb == "etcd" and words[1] == "status":
            rows = ["NODE        MEMBER      DB SIZE   LEARNER   ERRORS"]
            rows += [f"{x.address}   m-{x.hostname}   17 MB     false     {x.etcd_error}" for x in live]
            return Result(0, "\n".join(rows) + "\n")
        if verb == "etcd" and words[1] == "members":
            rows = ["NODE        ID          HOSTNAME    PEER URLS                CLIENT URLS   LEARNER"]
            rows += [
                f"{n.address}   m-{c.hostname}   {c.hostname}   https://{c.address}:2380   https://x:2379   false"
                for c in self.nodes.values()
                if c.controlplane
            ]
            return Result(0, "\n".join(rows) + "\n")
        if verb == "etcd" and words[1] == "snapshot":
            self.log.append(("snapshot", n.hostname))
            db = b"\0" * 4096  # etcd's shape: whole pages, then the SHA-256 of them (k8s_ops/backups/snapshot.py)
            with open(words[2], "wb") as fh:
                fh.write(db + hashlib.sha256(db).digest())
            return Result(0, f"etcd snapshot saved to {words[2]!r}\n")
        if verb == "upgrade":
            self.log.append(("upgrade", n.hostname))
            if n.never_returns:
                n.stage, n.reachable = "upgrading", False
                return Result(1, "", "error: timeout waiting for the node to come back")
            n.version = (_flag(argv, "--image") or "").rsplit(":", 1)[1]
            n.extensions = list(self.schematic if self.installer_extensions is None else self.installer_extensions)
            n.boot = str(uuid.uuid4())
            return Result(0, "upgraded\n")
        if verb == "reboot":
            self.log.append(("reboot", n.hostname))
            n.boot = str(uuid.uuid4())
            return Result(0)
        if verb == "reset":
            self.log.append(("reset", n.hostname))
            assert _flag(argv, "-e") == n.address, "reset must target the node itself"
            n.maintenance = True
            return Result(0)
        if verb == "apply-config":
            if n.hostname in self.apply_reject:
                return Result(1, "", "error applying new configuration: 1 error occurred: bad field")
            if "--dry-run" in argv:
                if n.maintenance:
                    # talosctl prints apply results on stderr (helpers/mode.go PrintApplyResults)
                    return Result(0, "", "Node is running in maintenance mode and does not have a config yet.\n")
                summary = {
                    "none": "Applied configuration without a reboot (skipped in dry-run).\n\nNo changes.",
                    "live": "Applied configuration without a reboot (skipped in dry-run).\n--- a\n+++ b",
                    "reboot": "Applied configuration with a reboot (skipped in dry-run).\n--- a\n+++ b",
                }[self.apply_change]
                return Result(0, "", f"Dry run summary:\n{summary}\n")
            self.log.append(("apply", n.hostname))
            if n.maintenance:
                n.maintenance = False
            elif self.apply_change == "reboot" or _flag(argv, "--mode") == "reboot":
                n.boot = str(uuid.uuid4())
            return Result(0, "Applied configuration\n")
        if verb == "upgrade-k8s":
            self.log.append(("upgrade-k8s-dry" if "--dry-run" in argv else "upgrade-k8s", n.hostname))
            if "--dry-run" not in argv:
                to = "v" + (_flag(argv, "--to") or "")
                self.apiserver = to
                for x in self.nodes.values():
                    x.kubelet = to
            return Result(0)
        if verb == "kubeconfig":
            self.log.append(("kubeconfig", n.hostname))
            path = words[1]
            with open(path, "w") as fh:
                fh.write(f"apiVersion: v1\ncontexts:\n- name: {_flag(argv, '--force-context-name')}\n")
            return Result(0)
        if verb == "health":
            return Result(0, "healthy\n")
        raise AssertionError(f"unexpected talosctl call {argv}")

    def kubectl(self, argv: list[str]) -> Result:
        args = argv[5:]  # kubectl --kubeconfig P --context C ...
        if args[:2] == ["get", "nodes"]:
            items = [
                {
                    "metadata": {"name": n.hostname},
                    "status": {
                        "conditions": [
                            {"type": "Ready", "status": "True" if n.kube_ready and n.reachable else "False"}
                        ],
                        "nodeInfo": {"kubeletVersion": n.kubelet},
                    },
                }
                for n in self.nodes.values()
                if not n.maintenance
            ]
            return Result(0, json.dumps({"kind": "List", "items": items}))
        drains = ("pods", "poddisruptionbudgets.v1.policy", "volumeattachments.v1.storage.k8s.io")
        if args[0] == "get" and args[1] in drains:
            return Result(0, json.dumps({"kind": "List", "items": []}))  # nothing to drain, no volume attached
        if args[0] == "get":
            ns = _flag(args, "--namespace")
            obj = self.objects.get((args[1], args[2], ns))
            if obj is None:
                return Result(1, "", f'Error from server (NotFound): {args[1]} "{args[2]}" not found')
            return Result(0, json.dumps(obj))
        if args[0] == "version":
            return Result(0, json.dumps({"serverVersion": {"gitVersion": self.apiserver}}))
        if args[:2] == ["config", "set-cluster"]:
            self.log.append(("set-cluster", _flag(args, "--server") or ""))
            return Result(0)
        if "/readyz" in args:
            return Result(1, "", "Unable to connect to the server: dial tcp 10.5.0.10:6443: connect: no route to host")
        raise AssertionError(f"unexpected kubectl call {argv}")

    def upgrades(self) -> list[str]:
        return [h for verb, h in self.log if verb == "upgrade"]
