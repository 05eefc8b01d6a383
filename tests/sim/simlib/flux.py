"""`flux` v2.7 CLI against the simulated clusters: reconcile, suspend, resume, get, check, version."""

from __future__ import annotations

import copy
import time

from .cliparse import Flag, Parsed, ParseError, parse, split_command
from .kube import ApiError, Kube, condition
from .kubeconfig import Unreachable, dial, load
from .runtime import Ctx, Fail
from .util import JSON, dig, rfc3339, table

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

GLOBAL = [
    Flag("kubeconfig", None, "string"),
    Flag("context", None, "string"),
    Flag("namespace", "n", "string", "flux-system"),
    Flag("timeout", None, "duration", 300.0),
    Flag("verbose"),
    Flag("help", "h"),
    Flag("cache-dir", None, "string"),
    Flag("kube-api-burst", None, "int"),
    Flag("kube-api-qps", None, "float"),
    Flag("insecure-skip-tls-verify"),
]
EXTRA = {
    "reconcile": [Flag("with-source"), Flag("force"), Flag("reset")],
    "suspend": [Flag("all"), Flag("wait")],
    "resume": [Flag("all"), Flag("wait", None, "bool", True)],
    "get": [
        Flag("all-namespaces", "A"),
        Flag("no-header"),
        Flag("status-selector", None, "string"),
        Flag("watch", "w"),
    ],
    "check": [
        Flag("pre"),
        Flag("components", None, "strings"),
        Flag("components-extra", None, "strings"),
        Flag("poll-interval", None, "duration"),
    ],
    "version": [Flag("client"), Flag("output", "o", "string")],
}
KINDS = {
    "kustomization": ("Kustomization", "kustomize.toolkit.fluxcd.io"),
    "kustomizations": ("Kustomization", "kustomize.toolkit.fluxcd.io"),
    "ks": ("Kustomization", "kustomize.toolkit.fluxcd.io"),
    "helmrelease": ("HelmRelease", "helm.toolkit.fluxcd.io"),
    "helmreleases": ("HelmRelease", "helm.toolkit.fluxcd.io"),
    "hr": ("HelmRelease", "helm.toolkit.fluxcd.io"),
}
SOURCES = {
    "git": "GitRepository",
    "oci": "OCIRepository",
    "helm": "HelmRepository",
    "bucket": "Bucket",
    "chart": "HelmChart",
}
PLURAL = {
    "Kustomization": "kustomizations",
    "HelmRelease": "helmreleases",
    "GitRepository": "gitrepositories",
    "OCIRepository": "ocirepositories",
    "HelmRepository": "helmrepositories",
    "Bucket": "buckets",
    "HelmChart": "helmcharts",
}


def main(ctx: Ctx) -> int:
    cmd, rest = split_command(ctx.argv, {f.name: f for f in GLOBAL})
    if cmd is None:
        ctx.out("Command line utility for assembling Kubernetes CD pipelines the GitOps way.\n")
        return 0
    if cmd not in EXTRA:
        raise Fail(f'✗ unknown command "{cmd}" for "flux"')
    spec: dict[str, Flag] = {}
    for f in GLOBAL + EXTRA[cmd]:
        spec.setdefault(f.name, f)
    try:
        p = parse(rest, spec)
    except ParseError as e:
        raise Fail(f"✗ {e.message}") from e
    try:
        return int(HANDLERS[cmd](ctx, p))
    except ApiError as e:  # a write the API server refused (etcd NOSPACE): flux prints the error after ✗
        raise Fail(f"✗ {e.message}") from e


def _kube(ctx: Ctx, p: Parsed, world: Any) -> Kube:
    t = load(ctx, p["kubeconfig"], p["context"], tool="flux")
    try:
        c = dial(world, t)
    except Unreachable as e:
        raise Fail(f'✗ Get "{t.server}/api?timeout=32s": {e.dial()}') from e
    return Kube(c, world.now, client=True)


def _target(p: Parsed) -> tuple[str, str, str]:
    """(kind, group, name) from `ks NAME` / `hr NAME` / `source git NAME`."""
    args = p.args
    if not args:
        raise Fail("✗ a resource type is required")
    if args[0] == "source":
        if len(args) < 3 or args[1] not in SOURCES:
            raise Fail("✗ source type and name are required")
        return SOURCES[args[1]], "source.toolkit.fluxcd.io", args[2]
    if args[0] not in KINDS:
        raise Fail(f'✗ unknown command "{args[0]}"')
    if len(args) < 2:
        raise Fail(f"✗ {KINDS[args[0]][0]} name is required")
    kind, group = KINDS[args[0]]
    return kind, group, args[1]


def _get(kube: Kube, kind: str, group: str, ns: str, name: str) -> JSON:
    if kube.find("CustomResourceDefinition", None, f"{PLURAL.get(kind, kind.lower() + 's')}.{group}") is None:
        raise Fail(f'✗ no matches for kind "{kind}" in version "{group}/v1"')
    o = kube.find(kind, ns, name, group=group)
    if o is None:
        raise Fail(f'✗ {PLURAL.get(kind, kind.lower())}.{group} "{name}" not found')
    return o


def _reconcile_one(ctx: Ctx, p: Parsed, kind: str, group: str, ns: str, name: str, timeout: float) -> JSON:
    stamp = rfc3339(time.time()) + f".{time.time_ns() % 1_000_000_000:09d}"
    with ctx.store.tx() as world:
        kube = _kube(ctx, p, world)
        o = _get(kube, kind, group, ns, name)
        if dig(o, "spec", "suspend"):
            raise Fail("✗ resource is suspended")
        ctx.err(f"► annotating {kind} {name} in {ns} namespace\n")
        new = copy.deepcopy(o)
        ann = new["metadata"].setdefault("annotations", {})
        ann["reconcile.fluxcd.io/requestedAt"] = stamp
        if p["force"] and kind == "HelmRelease":
            ann["reconcile.fluxcd.io/forceAt"] = stamp
        if p["reset"] and kind == "HelmRelease":
            ann["reconcile.fluxcd.io/resetAt"] = stamp
        kube.put(new, manager="flux-client-side-apply")
    ctx.err(f"✔ {kind} annotated\n◎ waiting for {kind} reconciliation\n")
    waiter = ctx.waiter(timeout)
    while True:
        with ctx.store.tx() as world:
            kube = _kube(ctx, p, world)
            o = _get(kube, kind, group, ns, name)
            handled = dig(o, "status", "lastHandledReconcileAt") == stamp
            ready = condition(o, "Ready")
        if handled and ready and ready.get("status") in ("True", "False"):
            if ready["status"] == "False":
                raise Fail(f"✗ {kind} reconciliation failed: {ready.get('message', '')}")
            return o
        if waiter.expired():
            raise Fail(
                f"✗ {kind} reconciliation failed: timeout waiting for: [{kind}/{ns}/{name} status: 'InProgress']"
            )
        waiter.sleep()


def cmd_reconcile(ctx: Ctx, p: Parsed) -> int:
    kind, group, name = _target(p)
    ns = p["namespace"]
    with ctx.store.tx(tick=False) as w:
        timeout = w.scaled(float(p["timeout"]))
    if p["with-source"] and kind in ("Kustomization", "HelmRelease"):
        with ctx.store.tx() as world:
            o = _get(_kube(ctx, p, world), kind, group, ns, name)
        if kind == "Kustomization":
            ref = dig(o, "spec", "sourceRef") or {}
            skind, sname, sns = ref.get("kind", "GitRepository"), ref.get("name", ""), ref.get("namespace") or ns
        else:
            ref = dig(o, "spec", "chartRef") or dig(o, "spec", "chart", "spec", "sourceRef") or {}
            skind, sname, sns = ref.get("kind", "HelmRepository"), ref.get("name", ""), ref.get("namespace") or ns
        src = _reconcile_one(ctx, p, skind, "source.toolkit.fluxcd.io", sns, sname, timeout)
        ctx.err(f"✔ fetched revision {dig(src, 'status', 'artifact', 'revision') or ''}\n")
    o = _reconcile_one(ctx, p, kind, group, ns, name, timeout)
    if kind == "Kustomization":
        ctx.err(f"✔ applied revision {dig(o, 'status', 'lastAppliedRevision') or ''}\n")
    elif kind == "HelmRelease":
        ctx.err(f"✔ applied revision {dig(o, 'status', 'lastAttemptedRevision') or ''}\n")
    else:
        ctx.err(f"✔ fetched revision {dig(o, 'status', 'artifact', 'revision') or ''}\n")
    return 0


def _set_suspend(ctx: Ctx, p: Parsed, value: bool) -> list[tuple[str, str, str]]:
    kind, group, name = _target(p) if not p["all"] else (*KINDS[p.args[0]], "")
    ns = p["namespace"]
    done = []
    with ctx.store.tx() as world:
        kube = _kube(ctx, p, world)
        targets = (
            [o for o in kube.all_of_kind(kind, group) if o["metadata"]["namespace"] == ns]
            if p["all"]
            else [_get(kube, kind, group, ns, name)]
        )
        for o in targets:
            nm = o["metadata"]["name"]
            ctx.err(f"► {'suspending' if value else 'resuming'} {kind.lower()} {nm} in {ns} namespace\n")
            new = copy.deepcopy(o)
            new.setdefault("spec", {})["suspend"] = value
            if not value:
                new["spec"].pop("suspend", None)
                new["metadata"].setdefault("annotations", {})["reconcile.fluxcd.io/requestedAt"] = rfc3339(time.time())
            kube.put(new, manager="flux-client-side-apply")
            ctx.err(f"✔ {kind.lower()} {'suspended' if value else 'resumed'}\n")
            done.append((kind, group, nm))
    return done


def cmd_suspend(ctx: Ctx, p: Parsed) -> int:
    _set_suspend(ctx, p, True)
    return 0


def cmd_resume(ctx: Ctx, p: Parsed) -> int:
    done = _set_suspend(ctx, p, False)
    if not p["wait"]:
        return 0
    with ctx.store.tx(tick=False) as w:
        timeout = w.scaled(float(p["timeout"]))
    waiter = ctx.waiter(timeout)
    for kind, group, nm in done:
        ctx.err(f"◎ waiting for {kind} reconciliation\n")
        while True:
            with ctx.store.tx() as world:
                o = _get(_kube(ctx, p, world), kind, group, p["namespace"], nm)
                ready = condition(o, "Ready") or {}
            if ready.get("status") == "True":
                ctx.err(f"✔ {kind} reconciliation completed\n")
                break
            if ready.get("status") == "False" and waiter.polls >= 2:  # still failing after two polls
                raise Fail(f"✗ {kind} reconciliation failed: {ready.get('message', '')}")
            if waiter.expired():
                raise Fail(f"✗ {kind} reconciliation failed: timeout")
            waiter.sleep()
    return 0


def cmd_get(ctx: Ctx, p: Parsed) -> int:
    if not p.args:
        raise Fail("✗ a resource type is required")
    if p.args[0] in ("source", "sources"):
        kind, group = SOURCES.get(p.args[1] if len(p.args) > 1 else "git", "GitRepository"), "source.toolkit.fluxcd.io"
        name = p.args[2] if len(p.args) > 2 else None
    elif p.args[0] in KINDS:
        kind, group = KINDS[p.args[0]]
        name = p.args[1] if len(p.args) > 1 else None
    else:
        raise Fail(f'✗ unknown command "{p.args[0]}"')
    with ctx.store.tx() as world:
        kube = _kube(ctx, p, world)
        objs = [
            o
            for o in kube.all_of_kind(kind, group)
            if p["all-namespaces"] or o["metadata"]["namespace"] == p["namespace"]
        ]
        if name:
            objs = [o for o in objs if o["metadata"]["name"] == name]
            if not objs:
                raise Fail(f'✗ {PLURAL.get(kind, kind.lower())}.{group} "{name}" not found')
    rows = []
    for o in sorted(objs, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"])):
        ready = condition(o, "Ready") or {}
        rev = (
            dig(o, "status", "lastAppliedRevision")
            or dig(o, "status", "artifact", "revision")
            or dig(o, "status", "lastAttemptedRevision")
            or ""
        )
        if p["status-selector"]:
            k, _, v = p["status-selector"].partition("=")
            if k.lower() == "ready" and ready.get("status", "Unknown").lower() != v.lower():
                continue
        row = [
            o["metadata"]["name"],
            rev,
            str(bool(dig(o, "spec", "suspend"))),
            ready.get("status", "Unknown"),
            ready.get("message", ""),
        ]
        rows.append(([o["metadata"]["namespace"]] if p["all-namespaces"] else []) + row)
    if not rows:
        ctx.err(f"✗ no {kind} objects found in {'any' if p['all-namespaces'] else p['namespace']} namespace\n")
        return 0
    hdr = (["NAMESPACE"] if p["all-namespaces"] else []) + ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    ctx.out(table(rows if p["no-header"] else [hdr, *rows], sep="\t"))
    return 0


def cmd_check(ctx: Ctx, p: Parsed) -> int:
    ctx.err("► checking prerequisites\n")
    with ctx.store.tx() as world:
        kube = _kube(ctx, p, world)
        kv = str(kube.cluster.get("k8s_version") or world.setting("kubernetes_version")).lstrip("v")
        ctx.err(f"✔ Kubernetes {kv} >=1.32.0-0\n")
        if p["pre"]:
            ctx.err("✔ prerequisites checks passed\n")
            return 0
        ctx.err("► checking version in cluster\n")
        comps = p["components"] or [
            "source-controller",
            "kustomize-controller",
            "helm-controller",
            "notification-controller",
        ]
        ctx.err("► checking controllers\n")
        bad = []
        for comp in comps:
            d = kube.find("Deployment", p["namespace"], comp, group="apps")
            if d is None or int(dig(d, "status", "availableReplicas", default=0) or 0) < 1:
                bad.append(comp)
                ctx.err(f"✗ {comp}: deployment not ready\n")
            else:
                ctx.err(f"✔ {comp}: deployment ready\n")
        ctx.err("► checking crds\n")
        for c in kube.all_of_kind("CustomResourceDefinition"):
            if (c["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") == "flux":
                ctx.err(f"✔ {c['metadata']['name']}\n")
    if bad:
        raise Fail("✗ check failed")
    ctx.err("✔ all checks passed\n")
    return 0


def cmd_version(ctx: Ctx, p: Parsed) -> int:
    with ctx.store.tx(tick=False) as w:
        v = str(w.setting("flux_version"))
    ctx.out(f"flux: {v}\n")
    if p["client"]:
        return 0
    with ctx.store.tx() as world:
        kube = _kube(ctx, p, world)
        fi = next(iter(kube.all_of_kind("FluxInstance")), None)
        if fi is None and kube.find("Deployment", p["namespace"], "source-controller", group="apps") is None:
            raise Fail(f"✗ no deployments found in {p['namespace']} namespace")
        ctx.out(f"distribution: flux-{v}\n")
        for comp in ("helm-controller", "kustomize-controller", "notification-controller", "source-controller"):
            if kube.find("Deployment", p["namespace"], comp, group="apps"):
                ctx.out(f"{comp}: {v.replace('v2.', 'v1.', 1)}\n")
    return 0


HANDLERS = {
    "reconcile": cmd_reconcile,
    "suspend": cmd_suspend,
    "resume": cmd_resume,
    "get": cmd_get,
    "check": cmd_check,
    "version": cmd_version,
}
