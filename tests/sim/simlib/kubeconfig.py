"""kubeconfig loading (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`) and dialling the simulated API server."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import urlparse

from . import etcd as etcdmod
from . import network
from .runtime import Ctx, Fail
from .state import World
from .util import JSON, Record, safe_load


class Target(Record):
    def __init__(
        self, server: str, host: str, port: int, ca: str | None, namespace: str, context: str, path: Path | None
    ) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.ca = ca
        self.namespace = namespace
        self.context = context
        self.path = path


class Unreachable(Exception):
    """`why`: refused | no-route | timeout | x509 | dns."""

    def __init__(self, host: str, port: int, why: str) -> None:
        super().__init__(why)
        self.host = host
        self.port = port
        self.why = why

    def dial(self) -> str:
        return {
            "refused": f"dial tcp {self.host}:{self.port}: connect: connection refused",
            "no-route": f"dial tcp {self.host}:{self.port}: connect: no route to host",
            "timeout": f"dial tcp {self.host}:{self.port}: i/o timeout",
            "dns": f"dial tcp: lookup {self.host}: no such host",
            "x509": "tls: failed to verify certificate: x509: certificate signed by unknown authority",
        }[self.why]

    def kubectl(self) -> str:
        if self.why == "refused":
            return f"The connection to the server {self.host}:{self.port} was refused - did you specify the right host or port?"  # noqa: E501
        return f"Unable to connect to the server: {self.dial()}"


def _load(path: Path) -> JSON:
    try:
        data = safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def load(ctx: Ctx, kubeconfig: str | None, context: str | None, *, tool: str = "kubectl") -> Target:
    paths: list[Path]
    if kubeconfig:
        paths = [Path(kubeconfig).expanduser()]
        if not paths[0].exists():
            raise Fail(
                f"error: stat {kubeconfig}: no such file or directory"
                if tool == "kubectl"
                else f"Error: stat {kubeconfig}: no such file or directory"
            )
    elif ctx.env.get("KUBECONFIG"):
        paths = [Path(p).expanduser() for p in ctx.env["KUBECONFIG"].split(":") if p]
    else:
        paths = [ctx.home() / ".kube" / "config"]
    merged: JSON = {"clusters": [], "users": [], "contexts": [], "current-context": ""}
    src: Path | None = None
    for p in paths:
        d = _load(p)
        if d and src is None:
            src = p
        for sec in ("clusters", "users", "contexts"):
            have = {e["name"] for e in merged[sec]}
            merged[sec] += [e for e in d.get(sec) or [] if e.get("name") not in have]
        if not merged["current-context"] and d.get("current-context"):
            merged["current-context"] = d["current-context"]
    name = context or merged["current-context"]
    if not name:
        return Target("http://localhost:8080", "localhost", 8080, None, "default", "", src)
    ctxs = {c["name"]: c.get("context", {}) for c in merged["contexts"]}
    if name not in ctxs:
        raise Fail(
            f'error: context "{name}" does not exist'
            if tool == "kubectl"
            else f'Error: context "{name}" does not exist'
        )
    c = ctxs[name]
    clusters = {e["name"]: e.get("cluster", {}) for e in merged["clusters"]}
    cl = clusters.get(c.get("cluster", ""), {})
    server = cl.get("server") or "http://localhost:8080"
    u = urlparse(server)
    return Target(
        server,
        u.hostname or "localhost",
        u.port or (443 if u.scheme == "https" else 80),
        cl.get("certificate-authority-data"),
        c.get("namespace") or "default",
        name,
        src,
    )


def _same_ca(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return True
    if a.strip() == b.strip():
        return True
    try:
        return base64.b64decode(a) == base64.b64decode(b)
    except Exception:
        return False


def dial(world: World, t: Target) -> JSON:
    """The simulated cluster behind the kubeconfig's server, or Unreachable."""
    c = world.cluster_by_vip(t.host)
    serving: JSON | None = None
    if c is not None:
        if t.port != 6443:
            raise Unreachable(t.host, t.port, "refused")
        serving = etcdmod.vip_holder(world, c)
        if serving is None:
            raise Unreachable(t.host, t.port, "no-route")
    else:
        n = world.node(t.host)
        if n is None:
            raise Unreachable(
                t.host, t.port, "no-route" if t.host[:1].isdigit() else ("refused" if t.host == "localhost" else "dns")
            )
        c = world.clusters[n["cluster"]]
        ph = world.phase(n)
        if ph in ("off", "down") or not network.evaluate(n).answers_on(n["address"]):
            raise Unreachable(t.host, t.port, "no-route")  # network.py: its address on no usable link
        if t.port != 6443 or not etcdmod.apiserver_up_on(world, n):
            raise Unreachable(t.host, t.port, "refused")
        serving = n
    # the node-scoped lookup names the cluster too: a fault for one cluster must not reach the others
    if world.fault("k8s-api-unreachable", cluster=c["name"]) or world.fault(
        "k8s-api-unreachable", node=serving["address"], cluster=c["name"]
    ):
        raise Unreachable(t.host, t.port, "timeout")
    if not etcdmod.api_available(world, c):
        raise Unreachable(t.host, t.port, "refused")
    if not _same_ca(t.ca, (serving.get("config") or {}).get("k8s_ca_crt")):
        raise Unreachable(t.host, t.port, "x509")
    return c
