"""`kubectl` v1.35 against the simulated clusters: get/apply/create/delete/annotate/label/patch/scale/wait/
rollout/cordon/drain/config/version/api-resources and `get --raw`."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

from . import jsonpath, remote
from .cliparse import Flag, Parsed, ParseError, parse
from .kube import ApiError, KindInfo, Kube, MappingError, condition, match_fields, match_labels
from .kubeconfig import Target, Unreachable, dial, load
from .runtime import Ctx, Fail
from .state import World
from .util import JSON, age, dig, dump_yaml, json_indented, rfc3339, table

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

KUSTOMIZE = "v5.7.1"

G = [
    Flag("kubeconfig", None, "string"),
    Flag("context", None, "string"),
    Flag("namespace", "n", "string"),
    Flag("request-timeout", None, "string"),
    Flag("v", "v", "string"),
    Flag("help", "h"),
    Flag("insecure-skip-tls-verify"),
    Flag("server", "s", "string"),
    Flag("cluster", None, "string"),
    Flag("user", None, "string"),
]
OUT = [Flag("output", "o", "string"), Flag("show-managed-fields"), Flag("template", None, "string")]
SEL = [Flag("selector", "l", "string"), Flag("field-selector", None, "string"), Flag("all-namespaces", "A")]
FILES = [Flag("filename", "f", "stringArray"), Flag("recursive", "R"), Flag("kustomize", "k", "string")]

SPECS: dict[str, list[Flag]] = {
    "get": OUT
    + SEL
    + FILES
    + [
        Flag("raw", None, "string"),
        Flag("watch", "w"),
        Flag("no-headers"),
        Flag("show-labels"),
        Flag("ignore-not-found"),
        Flag("sort-by", None, "string"),
        Flag("chunk-size", None, "int"),
        Flag("subresource", None, "string"),
    ],
    "apply": OUT
    + FILES
    + SEL[:1]
    + [
        Flag("server-side"),
        Flag("force-conflicts"),
        Flag("field-manager", None, "string"),
        Flag("dry-run", None, "optstring"),
        Flag("validate", None, "optstring"),
        Flag("prune"),
        Flag("force"),
        Flag("wait"),
        Flag("overwrite", None, "bool", True),
    ],
    "create": OUT
    + FILES
    + [
        Flag("dry-run", None, "optstring"),
        Flag("from-file", None, "stringArray"),
        Flag("from-literal", None, "stringArray"),
        Flag("from-env-file", None, "stringArray"),
        Flag("type", None, "string"),
        Flag("save-config"),
        Flag("validate", None, "optstring"),
        Flag("field-manager", None, "string"),
    ],
    "replace": OUT
    + FILES
    + [
        Flag("force"),
        Flag("save-config"),
        Flag("validate", None, "optstring"),
        Flag("field-manager", None, "string"),
        Flag("dry-run", None, "optstring"),
    ],
    "delete": OUT
    + SEL
    + FILES
    + [
        Flag("all"),
        Flag("ignore-not-found"),
        Flag("wait", None, "bool", True),
        Flag("timeout", None, "duration", 0.0),
        Flag("force"),
        Flag("grace-period", None, "int"),
        Flag("cascade", None, "optstring"),
        Flag("now"),
    ],
    "annotate": OUT
    + SEL
    + FILES
    + [
        Flag("overwrite"),
        Flag("all"),
        Flag("dry-run", None, "optstring"),
        Flag("field-manager", None, "string"),
        Flag("resource-version", None, "string"),
    ],
    "patch": OUT
    + FILES
    + [
        Flag("type", None, "string", "strategic"),
        Flag("patch", "p", "string"),
        Flag("patch-file", None, "string"),
        Flag("dry-run", None, "optstring"),
        Flag("field-manager", None, "string"),
        Flag("subresource", None, "string"),
    ],
    "scale": OUT
    + SEL
    + FILES
    + [
        Flag("replicas", None, "int"),
        Flag("all"),
        Flag("timeout", None, "duration", 0.0),
        Flag("current-replicas", None, "int"),
    ],
    "wait": OUT + SEL + FILES + [Flag("for", None, "string"), Flag("timeout", None, "duration", 30.0), Flag("all")],
    "rollout": OUT
    + SEL
    + FILES
    + [Flag("timeout", None, "duration", 0.0), Flag("watch", "w", "bool", True), Flag("revision", None, "int")],
    "cordon": [*SEL, Flag("dry-run", None, "optstring")],
    "drain": [*SEL, Flag("ignore-daemonsets"), Flag("delete-emptydir-data"), Flag("force"), Flag("timeout", None, "duration", 0.0), Flag("grace-period", None, "int"), Flag("disable-eviction"), Flag("dry-run", None, "optstring")],  # noqa: E501
    "config": [*OUT, Flag("minify"), Flag("raw"), Flag("flatten"), Flag("server", None, "string"), Flag("certificate-authority", None, "string"), Flag("embed-certs"), Flag("current"), Flag("user", None, "string"), Flag("cluster", None, "string"), Flag("insecure-skip-tls-verify"), Flag("no-headers")],  # noqa: E501
    "version": [*OUT, Flag("client"), Flag("short")],
    "api-resources": [*OUT, Flag("api-group", None, "string"), Flag("namespaced", None, "bool", True), Flag("verbs", None, "strings"), Flag("no-headers"), Flag("cached")],  # noqa: E501
    "cluster-info": [],
    "logs": [Flag("container", "c", "string"), Flag("follow", "f"), Flag("tail", None, "int"), Flag("previous", "p")],
    "debug": [Flag("image", None, "string"), Flag("profile", None, "string", "general"), Flag("quiet", "q"), Flag("attach"), Flag("stdin", "i"), Flag("tty", "t"), Flag("container", "c", "string")],  # noqa: E501
    "exec": [Flag("container", "c", "string"), Flag("stdin", "i"), Flag("tty", "t"), Flag("quiet", "q")],
    "diff": [*FILES, Flag("server-side"), Flag("field-manager", None, "string"), Flag("force-conflicts")],
}
SPECS["label"] = SPECS["annotate"]
SPECS["uncordon"] = SPECS["cordon"]


def _spec(cmd: str) -> dict[str, Flag]:
    items = list(G) + SPECS.get(cmd, [])
    out: dict[str, Flag] = {}
    for f in items:
        out.setdefault(f.name, f)
    return out


def main(ctx: Ctx) -> int:
    argv = ctx.argv
    cmd = next((a for a in argv if not a.startswith("-")), None)
    # skip values of global flags given before the command (kubectl -n x get ...)
    i = 0
    gflags = {f"--{f.name}" for f in G if f.takes_value} | {f"-{f.short}" for f in G if f.short and f.takes_value}
    while i < len(argv):
        if argv[i] in gflags:
            i += 2
            continue
        if argv[i].startswith("-"):
            i += 1
            continue
        cmd = argv[i]
        break
    if cmd is None:
        ctx.out("kubectl controls the Kubernetes cluster manager.\n")
        return 0
    rest = argv[:i] + argv[i + 1 :]
    handler = HANDLERS.get(cmd)
    if handler is None:
        raise Fail(f'error: unknown command "{cmd}" for "kubectl"')
    try:
        p = parse(rest, _spec(cmd))
    except ParseError as e:
        raise Fail(f"error: {e.message}\nSee 'kubectl {cmd} --help' for usage.") from e
    try:
        return int(handler(ctx, p))
    except ApiError as e:  # a write refused by the API server where the command has no wording of its own
        raise Fail(f"{e.prefix}: {e.message}") from e


# ---- connection ----------------------------------------------------------------------------------------
def target(ctx: Ctx, p: Parsed) -> Target:
    t = load(ctx, p["kubeconfig"], p["context"])
    if p["server"]:
        from urllib.parse import urlparse

        u = urlparse(p["server"])
        t = Target(p["server"], u.hostname or "", u.port or 443, None, t.namespace, t.context, t.path)
    return t


def connect(world: World, t: Target) -> Kube:
    try:
        c = dial(world, t)
    except Unreachable as e:
        raise Fail(e.kubectl()) from e
    return Kube(c, world.now, client=True)


def ns_of(p: Parsed, t: Target) -> str:
    return str(p["namespace"] or t.namespace or "default")


# ---- documents -----------------------------------------------------------------------------------------
def read_docs(ctx: Ctx, files: list[str], recursive: bool) -> list[tuple[str, JSON]]:
    out: list[tuple[str, JSON]] = []
    for f in files:
        if f in ("-", "/dev/stdin"):
            sources = [("STDIN", ctx.read_stdin().decode())]
        elif remote.is_url(f):  # `-f https://…`: served by the simlib/remote registry (no network)
            sources = [(f, remote.fetch(f))]
        else:
            path = Path(f).expanduser()
            if not path.is_absolute():
                path = ctx.cwd / path
            if path.is_dir():
                pattern = "**/*" if recursive else "*"
                sources = [
                    (str(x), x.read_text())
                    for x in sorted(path.glob(pattern))
                    if x.suffix in (".yaml", ".yml", ".json")
                ]
            elif path.exists():
                sources = [(f, path.read_text())]
            else:
                raise Fail(f'error: the path "{f}" does not exist')
        for src, text in sources:
            import yaml  # on use: importing PyYAML costs a simulated call ~8 ms, and most need none

            try:
                docs = list(yaml.safe_load_all(text))
            except yaml.YAMLError as e:
                raise Fail(
                    f"error: error parsing {src}: error converting YAML to JSON: {str(e).splitlines()[0]}"
                ) from e
            for d in docs:
                if d is None:
                    continue
                if not isinstance(d, dict):
                    raise Fail(f'error: error validating "{src}": error validating data: invalid object')
                if d.get("kind", "").endswith("List") and isinstance(d.get("items"), list):
                    out.extend((src, x) for x in d["items"])
                else:
                    out.append((src, d))
    return out


def normalise(obj: JSON, src: str) -> JSON:
    missing = [f for f in ("apiVersion", "kind") if not obj.get(f)]
    if missing:
        raise Fail(
            f'error: error validating "{src}": error validating data: [{", ".join(f"{m} not set" for m in missing)}]; '
            "if you choose to ignore these errors, turn validation off with --validate=false"
        )
    o = copy.deepcopy(obj)
    if o["kind"] == "Secret" and o.get("apiVersion") == "v1":
        data = dict(o.get("data") or {})
        for k, v in (o.pop("stringData", None) or {}).items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        for k, v in data.items():
            try:
                base64.b64decode(str(v), validate=True)
            except Exception as e:
                raise ApiError(
                    f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 0 (key {k})'  # noqa: E501
                ) from e
        if data:
            o["data"] = data
        o.setdefault("type", "Opaque")
    return o


# ---- get -----------------------------------------------------------------------------------------------
def parse_targets(kube: Kube, args: list[str]) -> list[tuple[KindInfo, list[str]]]:
    """`pods a b`, `deploy/x svc/y`, `deploy,ds` -> [(kind, names)]."""
    if not args:
        raise Fail(
            'error: You must specify the type of resource to get. Use "kubectl api-resources" for a complete list of supported resources.'  # noqa: E501
        )
    out: list[tuple[KindInfo, list[str]]] = []
    if "/" in args[0]:
        for a in args:
            if "/" not in a:
                raise Fail(
                    "error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form"  # noqa: E501
                )
            t, name = a.split("/", 1)
            k = kube.resolve(t)
            if k is None:
                raise Fail(f'error: the server doesn\'t have a resource type "{t}"')
            out.append((k, [name]))
        return out
    for t in args[0].split(","):
        k = kube.resolve(t)
        if k is None:
            raise Fail(f'error: the server doesn\'t have a resource type "{t}"')
        out.append((k, list(args[1:])))
    return out


def _status_conditions_ready(o: JSON) -> tuple[str, str]:
    c = condition(o, "Ready") or {}
    return c.get("status", "Unknown"), c.get("message", "")


def columns(kube: Kube, k: KindInfo, o: JSON, now: float) -> tuple[list[str], list[str]]:
    st = o.get("status") or {}
    a = age(_ts(o), now)
    if k.kind == "Node":
        rdy = _status_conditions_ready(o)[0]
        status = {"True": "Ready", "False": "NotReady"}.get(rdy, "NotReady")
        if dig(o, "spec", "unschedulable"):
            status += ",SchedulingDisabled"
        roles = (
            ",".join(
                sorted(
                    lbl.split("/", 1)[1]
                    for lbl in (o["metadata"].get("labels") or {})
                    if lbl.startswith("node-role.kubernetes.io/")
                )
            )
            or "<none>"
        )
        return ["STATUS", "ROLES", "AGE", "VERSION"], [status, roles, a, dig(st, "nodeInfo", "kubeletVersion") or ""]
    if k.kind == "Namespace":
        return ["STATUS", "AGE"], ["Terminating" if o["metadata"].get("deletionTimestamp") else "Active", a]
    if k.kind == "Pod":
        cs = st.get("containerStatuses") or []
        ready = sum(1 for c in cs if c.get("ready"))
        phase = (
            "Terminating" if o["metadata"].get("deletionTimestamp") else st.get("reason") or st.get("phase", "Pending")
        )
        return ["READY", "STATUS", "RESTARTS", "AGE"], [
            f"{ready}/{max(len(cs), 1)}",
            phase,
            str(sum(c.get("restartCount", 0) for c in cs)),
            a,
        ]
    if k.kind == "Secret":
        return ["TYPE", "DATA", "AGE"], [o.get("type", "Opaque"), str(len(o.get("data") or {})), a]
    if k.kind == "ConfigMap":
        return ["DATA", "AGE"], [str(len(o.get("data") or {})), a]
    if k.kind == "Deployment":
        r = dig(o, "spec", "replicas", default=1)
        return ["READY", "UP-TO-DATE", "AVAILABLE", "AGE"], [
            f"{st.get('readyReplicas', 0)}/{r}",
            str(st.get("updatedReplicas", 0)),
            str(st.get("availableReplicas", 0)),
            a,
        ]
    if k.kind == "DaemonSet":
        return (
            ["DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
            [
                str(st.get(x, 0))
                for x in (
                    "desiredNumberScheduled",
                    "currentNumberScheduled",
                    "numberReady",
                    "updatedNumberScheduled",
                    "numberAvailable",
                )
            ]
            + ["<none>", a],
        )
    if k.kind == "StatefulSet":
        return ["READY", "AGE"], [f"{st.get('readyReplicas', 0)}/{dig(o, 'spec', 'replicas', default=1)}", a]
    if k.kind == "CustomResourceDefinition":
        return ["CREATED AT"], [o["metadata"].get("creationTimestamp", "")]
    crd = next(
        (
            c
            for c in kube.all_of_kind("CustomResourceDefinition")
            if dig(c, "spec", "names", "kind") == k.kind and dig(c, "spec", "group") == k.group
        ),
        None,
    )
    if crd is not None:
        ver = next((v for v in dig(crd, "spec", "versions", default=[]) if v.get("name") == k.version), None) or {}
        cols = ver.get("additionalPrinterColumns") or []
        if cols:
            hdr, row = [], []
            for c in cols:
                hdr.append(str(c["name"]).upper())
                if c.get("jsonPath") == ".metadata.creationTimestamp" or c.get("type") == "date":
                    row.append(a)
                else:
                    row.append(jsonpath.render(o, "{" + c["jsonPath"] + "}"))
            return hdr, row
    return ["AGE"], [a]


def _ts(o: JSON) -> float:
    t = o["metadata"].get("creationTimestamp")
    if not t:
        return time.time()
    return time.mktime(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


def render(ctx: Ctx, kube: Kube, items: list[tuple[KindInfo, JSON]], p: Parsed, single: bool, all_ns: bool) -> None:
    out = p["output"] or ""
    objs = [o for _, o in items]
    if out in ("json", "yaml") or out.startswith("jsonpath"):
        doc: Any = (
            objs[0]
            if single and len(objs) == 1
            else {"apiVersion": "v1", "items": objs, "kind": "List", "metadata": {"resourceVersion": ""}}
        )
        if out == "json":
            ctx.out(json_indented(doc) + "\n")
        elif out == "yaml":
            ctx.out(dump_yaml(doc))
        else:
            tpl = out.split("=", 1)[1] if "=" in out else ""
            tpl = tpl.strip("'")
            try:
                ctx.out(jsonpath.render(doc, tpl))
            except jsonpath.JSONPathError as e:
                raise Fail(f"error: error executing jsonpath {tpl!r}: {e}") from e
        return
    if out == "name":
        for k, o in items:
            ctx.out(f"{k.ref}/{o['metadata']['name']}\n")
        return
    if out not in ("", "wide"):
        raise Fail(
            f'error: unable to match a printer suitable for the output format "{out}", allowed formats are: json,jsonpath,jsonpath-as-json,jsonpath-file,name,yaml'  # noqa: E501
        )
    groups: dict[str, list[tuple[KindInfo, JSON]]] = {}
    for k, o in items:
        groups.setdefault(k.ref, []).append((k, o))
    first = True
    for ref, members in groups.items():
        rows = []
        hdr: list[str] = []
        for k, o in members:
            hdr, row = columns(kube, k, o, kube.now)
            name = o["metadata"]["name"] if len(groups) == 1 else f"{k.ref}/{o['metadata']['name']}"
            rows.append(([o["metadata"].get("namespace", "")] if all_ns and k.namespaced else []) + [name, *row])
        head = (["NAMESPACE"] if all_ns and members[0][0].namespaced else []) + ["NAME", *hdr]
        if not first:
            ctx.out("\n")
        first = False
        ctx.out(table(rows if p["no-headers"] else [head, *rows]))
        _ = ref


def cmd_get(ctx: Ctx, p: Parsed) -> int:
    t = target(ctx, p)
    if p["raw"]:
        with ctx.store.tx() as world:
            connect(world, t)
            return raw(ctx, world, p["raw"])
    with ctx.store.tx() as world:
        kube = connect(world, t)
        ns = ns_of(p, t)
        rc = 0
        items: list[tuple[KindInfo, JSON]] = []
        single = False
        if p["filename"]:
            for src, d in read_docs(ctx, p["filename"], bool(p["recursive"])):
                k = _mapping(kube, d, src)
                o = kube.get(k, d["metadata"].get("namespace") or ns, d["metadata"]["name"])
                if o is None:
                    ctx.err(f'Error from server (NotFound): {k.resource} "{d["metadata"]["name"]}" not found\n')
                    rc = 1
                else:
                    items.append((k, o))
        else:
            targets = parse_targets(kube, p.args)
            for k, names in targets:
                if names:
                    single = len(targets) == 1 and len(names) == 1
                    for nm in names:
                        o = kube.get(k, ns, nm)
                        if o is None:
                            if not p["ignore-not-found"]:
                                ctx.err(f'Error from server (NotFound): {k.resource} "{nm}" not found\n')
                                rc = 1
                        else:
                            items.append((k, o))
                else:
                    for o in kube.list_objects(k, None if p["all-namespaces"] else ns):
                        if p["selector"] and not match_labels(o["metadata"].get("labels") or {}, p["selector"]):
                            continue
                        if p["field-selector"] and not match_fields(o, p["field-selector"]):
                            continue
                        items.append((k, o))
        if not items and not single and rc == 0:
            if (p["output"] or "") in ("json", "yaml") or (p["output"] or "").startswith("jsonpath"):
                render(ctx, kube, [], p, False, bool(p["all-namespaces"]))
            elif not p["ignore-not-found"]:
                namespaced = all(k.namespaced for k, _ in parse_targets(kube, p.args)) if p.args else True
                ctx.err(
                    "No resources found\n"
                    if p["all-namespaces"] or not namespaced
                    else f"No resources found in {ns} namespace.\n"
                )
            return rc
        if items:
            render(ctx, kube, items, p, single, bool(p["all-namespaces"]))
        return rc


def raw(ctx: Ctx, world: World, path: str) -> int:
    base = path.split("?", 1)[0]
    if base in ("/readyz", "/livez", "/healthz"):
        if "verbose" in path:
            ctx.out("[+]ping ok\n[+]log ok\n[+]etcd ok\n" + f"{base[1:]} check passed\n")
        else:
            ctx.out("ok")
        return 0
    if base == "/version":
        v = str(world.setting("kubernetes_version"))
        ctx.out(
            json.dumps({"major": "1", "minor": v.split(".")[1], "gitVersion": v, "platform": "linux/amd64"}, indent=2)
            + "\n"
        )
        return 0
    raise Fail("Error from server (NotFound): the server could not find the requested resource")


def _mapping(kube: Kube, d: JSON, src: str) -> KindInfo:
    try:
        return kube.for_object(d.get("apiVersion", ""), d.get("kind", ""))
    except MappingError as e:
        m = d.get("metadata") or {}
        raise Fail(
            f'error: resource mapping not found for name: "{m.get("name", "")}" namespace: "{m.get("namespace", "")}" '
            f'from "{src}": {e}\nensure CRDs are installed first'
        ) from e


# ---- apply / create ------------------------------------------------------------------------------------
def cmd_apply(ctx: Ctx, p: Parsed) -> int:
    if not p["filename"]:
        if p["kustomize"]:
            raise Fail("error: kubectl apply -k is not simulated (render with kustomize and pipe into -f -)")
        raise Fail("error: must specify one of -f and -k")
    docs = read_docs(ctx, p["filename"], bool(p["recursive"]))
    t = target(ctx, p)
    ssa = bool(p["server-side"])
    dry = p["dry-run"] or "none"
    if dry == "unchanged":
        raise Fail("error: --dry-run is deprecated and can be replaced with --dry-run=client.")
    manager = p["field-manager"] or ("kubectl" if ssa else "kubectl-client-side-apply")
    rc = 0
    with ctx.store.tx() as world:
        kube = connect(world, t)
        default_ns = ns_of(p, t)
        for src, d in docs:
            try:
                k = kube.for_object(d.get("apiVersion", ""), d.get("kind", ""))
            except MappingError as e:
                m = d.get("metadata") or {}
                ctx.err(
                    f'error: resource mapping not found for name: "{m.get("name", "")}" namespace: "{m.get("namespace", "")}" '  # noqa: E501
                    f'from "{src}": {e}\nensure CRDs are installed first\n'
                )
                rc = 1
                continue
            try:
                obj = normalise(d, src)
            except ApiError as e:
                ctx.err(f'Error from server (BadRequest): error when creating "{src}": {e.message}\n')
                rc = 1
                continue
            meta = obj.setdefault("metadata", {})
            if k.namespaced:
                if p["namespace"] and meta.get("namespace") and meta["namespace"] != p["namespace"]:
                    raise Fail(
                        f'error: the namespace from the provided object "{meta["namespace"]}" does not match the namespace "{p["namespace"]}". You must pass \'--namespace={meta["namespace"]}\' to perform this operation.'  # noqa: E501
                    )
                meta.setdefault("namespace", default_ns)
            if not ssa:
                ann = meta.setdefault("annotations", {})
                ann["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(d, separators=(",", ":")) + "\n"
            if dry in ("client", "server"):
                exists = kube.get(k, meta.get("namespace"), meta["name"]) is not None
                verb = "serverside-applied" if ssa else ("configured" if exists else "created")
                ctx.out(f"{k.ref}/{meta['name']} {verb} ({'server dry run' if dry == 'server' else 'dry run'})\n")
                continue
            try:
                res = kube.put(obj, manager=manager, ssa=ssa, force=bool(p["force-conflicts"]))
            except ApiError as e:
                if e.reason == "Conflict":
                    ctx.err(
                        f"error: {e.message}\nPlease review the fields above--they currently have other managers. Here\n"  # noqa: E501
                        "are the ways you can resolve this warning:\n* If you intend to manage all of these fields, please re-run the apply\n"  # noqa: E501
                        "  command with the `--force-conflicts` flag.\n"
                    )
                elif ssa:
                    ctx.err(f"{e.prefix}: {e.message}\n")
                else:
                    ctx.err(f'{e.prefix}: error when creating "{src}": {e.message}\n')
                rc = 1
                continue
            verb = "serverside-applied" if ssa else res
            if p["output"] == "name":
                ctx.out(f"{k.ref}/{meta['name']}\n")
            else:
                ctx.out(f"{k.ref}/{meta['name']} {verb}\n")
    return rc


def _kv_sources(ctx: Ctx, p: Parsed) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    for spec in p["from-file"]:
        key, _, path = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
        try:
            data[key] = ctx.read_file(path)
        except OSError as e:
            raise Fail(f"error: error reading {path}: no such file or directory") from e
    for spec in p["from-literal"]:
        if "=" not in spec:
            raise Fail(f"error: invalid literal source {spec}, expected key=value")
        k, v = spec.split("=", 1)
        data[k] = v.encode()
    for path in p["from-env-file"]:
        for line in ctx.read_file(path).decode().splitlines():
            if line.strip() and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                data[k.strip()] = v.encode()
    return data


def cmd_create(ctx: Ctx, p: Parsed) -> int:
    if p["filename"]:
        return _create_files(ctx, p)
    if not p.args:
        raise Fail("error: must specify one of -f and -k")
    what = p.args[0]
    t = target(ctx, p)
    ns = ns_of(p, t)
    obj: JSON
    if what in ("namespace", "ns"):
        if len(p.args) < 2:
            raise Fail("error: exactly one NAME is required, got 0")
        obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": p.args[1]}, "spec": {}, "status": {}}
    elif what == "secret":
        if len(p.args) < 3 or p.args[1] not in ("generic", "tls", "docker-registry"):
            raise Fail("error: exactly one NAME is required, got 0")
        data = _kv_sources(ctx, p)
        obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": p.args[2], "namespace": ns},
            "type": p["type"] or "Opaque",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
    elif what in ("configmap", "cm"):
        if len(p.args) < 2:
            raise Fail("error: exactly one NAME is required, got 0")
        data = _kv_sources(ctx, p)
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": p.args[1], "namespace": ns},
            "data": {k: v.decode() for k, v in data.items()},
        }
    else:
        raise Fail(f'error: unknown command "{what}" for "kubectl create"')
    dry = p["dry-run"] or "none"
    if dry == "client":
        shown = copy.deepcopy(obj)
        shown["metadata"]["creationTimestamp"] = None
        ctx.out(json_indented(shown) + "\n" if p["output"] == "json" else dump_yaml(shown))
        return 0
    with ctx.store.tx() as world:
        kube = connect(world, t)
        k = kube.for_object(obj["apiVersion"], obj["kind"])
        if kube.get(k, obj["metadata"].get("namespace"), obj["metadata"]["name"]) is not None:
            raise Fail(f'Error from server (AlreadyExists): {k.resource} "{obj["metadata"]["name"]}" already exists')
        if dry == "server":
            ctx.out(f"{k.ref}/{obj['metadata']['name']} created (server dry run)\n")
            return 0
        obj.pop("status", None)
        try:
            kube.put(obj, manager="kubectl-create")
        except ApiError as e:
            raise Fail(f"{e.prefix}: {e.message}") from e
        ctx.out(f"{k.ref}/{obj['metadata']['name']} created\n")
    return 0


def _create_files(ctx: Ctx, p: Parsed) -> int:
    docs = read_docs(ctx, p["filename"], bool(p["recursive"]))
    t = target(ctx, p)
    rc = 0
    with ctx.store.tx() as world:
        kube = connect(world, t)
        for src, d in docs:
            k = _mapping(kube, d, src)
            obj = normalise(d, src)
            if k.namespaced:
                obj["metadata"].setdefault("namespace", ns_of(p, t))
            if kube.get(k, obj["metadata"].get("namespace"), obj["metadata"]["name"]) is not None:
                ctx.err(
                    f'Error from server (AlreadyExists): error when creating "{src}": {k.resource} "{obj["metadata"]["name"]}" already exists\n'  # noqa: E501
                )
                rc = 1
                continue
            try:
                kube.put(obj, manager="kubectl-create")
            except ApiError as e:
                ctx.err(f'{e.prefix}: error when creating "{src}": {e.message}\n')
                rc = 1
                continue
            _written(ctx, p, k, kube.get(k, obj["metadata"].get("namespace"), obj["metadata"]["name"]), "created")
    return rc


def _written(ctx: Ctx, p: Parsed, k: KindInfo, obj: JSON | None, verb: str) -> None:
    """What `create -f` / `replace -f` print: the object as the server stored it with `-o json`, else `<ref>/<name> <verb>`."""  # noqa: E501
    assert obj is not None
    if p["output"] == "json":
        ctx.out(json_indented(obj) + "\n")
    elif p["output"] == "name":
        ctx.out(f"{k.ref}/{obj['metadata']['name']}\n")
    else:
        ctx.out(f"{k.ref}/{obj['metadata']['name']} {verb}\n")


def cmd_replace(ctx: Ctx, p: Parsed) -> int:
    """`kubectl replace -f`: a PUT of the whole object. The API server checks `metadata.resourceVersion` when the
    object carries one (a stale one is 409 Conflict: optimistic concurrency); kinds whose strategy refuses
    unconditional updates (Lease) reject an object without one as Invalid; a missing object is NotFound."""
    if not p["filename"]:
        raise Fail("error: must specify --filename to replace")
    docs = read_docs(ctx, p["filename"], bool(p["recursive"]))
    t = target(ctx, p)
    rc = 0
    with ctx.store.tx() as world:
        kube = connect(world, t)
        for src, d in docs:
            k = _mapping(kube, d, src)
            obj = normalise(d, src)
            meta = obj["metadata"]
            if k.namespaced:
                meta.setdefault("namespace", ns_of(p, t))
            name = meta["name"]
            live = kube.get(k, meta.get("namespace"), name)
            rv = str(meta.get("resourceVersion") or "")
            if live is None:
                ctx.err(
                    f'Error from server (NotFound): error when replacing "{src}": {k.resource} "{name}" not found\n'
                )
                rc = 1
                continue
            if not rv and k.kind in _NO_UNCONDITIONAL_UPDATE:
                ctx.err(
                    f'Error from server (Invalid): error when replacing "{src}": {k.resource} "{name}" is invalid: '
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update\n"
                )
                rc = 1
                continue
            if rv and rv != str(live["metadata"].get("resourceVersion")):
                ctx.err(
                    f'Error from server (Conflict): error when replacing "{src}": Operation cannot be fulfilled on '
                    f'{k.resource} "{name}": the object has been modified; please apply your changes to the latest '
                    "version and try again\n"
                )
                rc = 1
                continue
            try:
                kube.put(obj, manager=p["field-manager"] or "kubectl-replace")
            except ApiError as e:
                ctx.err(f'{e.prefix}: error when replacing "{src}": {e.message}\n')
                rc = 1
                continue
            _written(ctx, p, k, kube.get(k, meta.get("namespace"), name), "replaced")
    return rc


# kinds whose registry strategy has AllowUnconditionalUpdate() == false (an update must carry a resourceVersion)
_NO_UNCONDITIONAL_UPDATE = frozenset({"Lease"})


# ---- selection helper for delete/annotate/label/patch/scale/wait ---------------------------------------
def select(
    ctx: Ctx, kube: Kube, p: Parsed, ns: str, args: list[str], *, allow_empty_names: bool = True
) -> list[tuple[KindInfo, str, JSON | None]]:
    out: list[tuple[KindInfo, str, JSON | None]] = []
    if p["filename"]:
        for src, d in read_docs(ctx, p["filename"], bool(p["recursive"])):
            k = _mapping(kube, d, src)
            nm = d["metadata"]["name"]
            o_ns = d["metadata"].get("namespace") or ns
            out.append((k, nm, kube.get(k, o_ns, nm)))
        return out
    for k, names in parse_targets(kube, args):
        if names:
            out.extend((k, nm, kube.get(k, ns, nm)) for nm in names)
        elif p.get("all") or p.get("selector") or p.get("field-selector") or allow_empty_names:
            if not (p.get("all") or p.get("selector") or p.get("field-selector")):
                raise Fail("error: resource(s) were provided, but no name was specified")
            for o in kube.list_objects(k, None if p.get("all-namespaces") else ns):
                if p.get("selector") and not match_labels(o["metadata"].get("labels") or {}, p["selector"]):
                    continue
                if p.get("field-selector") and not match_fields(o, p["field-selector"]):
                    continue
                out.append((k, o["metadata"]["name"], o))
    return out


def cmd_delete(ctx: Ctx, p: Parsed) -> int:
    t = target(ctx, p)
    rc = 0
    pending: list[tuple[KindInfo, str, str]] = []
    with ctx.store.tx() as world:
        kube = connect(world, t)
        ns = ns_of(p, t)
        sel = select(ctx, kube, p, ns, p.args)
        if not sel and not p["ignore-not-found"]:
            ctx.err("No resources found\n")
        for k, nm, o in sel:
            if o is None:
                if not p["ignore-not-found"]:
                    ctx.err(f'Error from server (NotFound): {k.resource} "{nm}" not found\n')
                    rc = 1
                continue
            o_ns = o["metadata"].get("namespace", "")
            stuck = (
                k.kind == "Pod"
                and world.fault("pod-stuck-terminating", cluster=kube.cluster["name"], text=f"{o_ns}/{nm}") is not None
            )
            kube.delete(k, o_ns or None, nm, stuck=stuck)
            ctx.out(f'{k.ref} "{nm}" deleted\n')
            pending.append((k, o_ns, nm))
    if p["wait"] and pending:
        timeout = float(p["timeout"] or 0)
        waiter = ctx.waiter(timeout or None)
        while True:
            with ctx.store.tx() as world:
                kube = connect(world, t)
                pending = [(k, n2, nm) for k, n2, nm in pending if kube.get(k, n2 or None, nm) is not None]
            if not pending:
                break
            if waiter.expired():
                raise Fail(f"error: timed out waiting for the condition on {pending[0][0].plural}/{pending[0][2]}")
            waiter.sleep()
    return rc


def _meta_edit(ctx: Ctx, p: Parsed, field: str, verb: str) -> int:
    args = list(p.args)
    pairs = [a for a in args if "=" in a or (a.endswith("-") and "/" not in a and len(args) > 1 and a != args[0])]
    res_args = [a for a in args if a not in pairs]
    if not pairs:
        raise Fail(f"error: at least one {field[:-1]} update is required")
    t = target(ctx, p)
    with ctx.store.tx() as world:
        kube = connect(world, t)
        ns = ns_of(p, t)
        sel = select(ctx, kube, p, ns, res_args)
        for k, nm, o in sel:
            if o is None:
                raise Fail(f'Error from server (NotFound): {k.resource} "{nm}" not found')
            cur = dict(o["metadata"].get(field) or {})
            for pair in pairs:
                if "=" in pair:
                    key, val = pair.split("=", 1)
                    if key in cur and cur[key] != val and not p["overwrite"]:
                        raise Fail(
                            f"error: --overwrite is false but found the following declared {field[:-1]}(s): '{key}' already has a value ({cur[key]})"  # noqa: E501
                        )
                    cur[key] = val
                else:
                    cur.pop(pair[:-1], None)
            new = copy.deepcopy(o)
            new["metadata"][field] = cur
            kube.put(new, manager=f"kubectl-{verb}")
            ctx.out(f"{k.ref}/{nm} {verb}ed\n" if verb == "annotat" else f"{k.ref}/{nm} labeled\n")
    return 0


def cmd_annotate(ctx: Ctx, p: Parsed) -> int:
    return _meta_edit(ctx, p, "annotations", "annotat")


def cmd_label(ctx: Ctx, p: Parsed) -> int:
    return _meta_edit(ctx, p, "labels", "label")


def _json_patch(doc: Any, ops: list[JSON]) -> Any:
    out = copy.deepcopy(doc)
    for op in ops:
        parts = [x.replace("~1", "/").replace("~0", "~") for x in str(op["path"]).lstrip("/").split("/")]
        parent: Any = out
        for x in parts[:-1]:
            parent = parent[int(x)] if isinstance(parent, list) else parent.setdefault(x, {})
        last = parts[-1]
        kind = op["op"]
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise Fail(f"error: unable to replace path {op['path']}: missing value")
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif last in parent:
                del parent[last]
            else:
                raise Fail(f"error: unable to remove nonexistent key: {last}")
        elif kind == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op.get("value"):
                raise Fail("error: testing value failed")
    return out


def merge_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def cmd_patch(ctx: Ctx, p: Parsed) -> int:
    body = (
        p["patch"] if p["patch"] is not None else (ctx.read_file(p["patch-file"]).decode() if p["patch-file"] else None)
    )
    if body is None:
        raise Fail("error: must specify --patch or --patch-file containing the contents of the patch")
    import yaml  # on use: importing PyYAML costs a simulated call ~8 ms, and most need none

    try:
        patch = yaml.safe_load(body)
    except yaml.YAMLError as e:
        raise Fail(f'error: unable to parse "{body}": {e}') from e
    t = target(ctx, p)
    with ctx.store.tx() as world:
        kube = connect(world, t)
        ns = ns_of(p, t)
        for k, nm, o in select(ctx, kube, p, ns, p.args, allow_empty_names=False):
            if o is None:
                raise Fail(f'Error from server (NotFound): {k.resource} "{nm}" not found')
            if p["type"] == "json":
                if not isinstance(patch, list):
                    raise Fail("error: unable to parse the json patch")
                new = _json_patch(o, patch)
            else:
                new = merge_patch(o, patch)
            if p["subresource"] == "status":
                changed = kube.set_status(o, new.get("status") or {})
            else:
                changed = kube.put(new, manager=p["field-manager"] or "kubectl-patch") != "unchanged"
            ctx.out(f"{k.ref}/{nm} patched{'' if changed else ' (no change)'}\n")
    return 0


def cmd_scale(ctx: Ctx, p: Parsed) -> int:
    if p["replicas"] is None:
        raise Fail('error: required flag(s) "replicas" not set')
    t = target(ctx, p)
    with ctx.store.tx() as world:
        kube = connect(world, t)
        for k, nm, o in select(ctx, kube, p, ns_of(p, t), p.args):
            if o is None:
                raise Fail(f'Error from server (NotFound): {k.resource} "{nm}" not found')
            new = copy.deepcopy(o)
            new.setdefault("spec", {})["replicas"] = int(p["replicas"])
            kube.put(new, manager="kubectl-scale")
            ctx.out(f"{k.ref}/{nm} scaled\n")
    return 0


# ---- wait ----------------------------------------------------------------------------------------------
def _wait_pred(spec: str) -> tuple[str, Callable[[JSON | None], bool]]:
    if spec == "delete":
        return "delete", lambda o: o is None
    if spec == "create":
        return "create", lambda o: o is not None
    if spec.startswith("condition="):
        body = spec[len("condition=") :]
        ctype, _, want = body.partition("=")
        want = want or "True"

        def cond(o: JSON | None) -> bool:
            if o is None:
                return False
            for c in dig(o, "status", "conditions") or []:
                if str(c.get("type", "")).lower() == ctype.lower():
                    return str(c.get("status")).lower() == want.lower()
            return False

        return "condition", cond
    if spec.startswith("jsonpath="):
        body = spec[len("jsonpath=") :]
        expr, _, want = body.rpartition("=") if "}=" in body or body.count("=") else (body, "", "")
        if not expr:
            expr, want = body, ""
        expr = expr.strip("'\"")
        tpl = expr if expr.startswith("{") else "{" + expr + "}"

        def jp(o: JSON | None) -> bool:
            if o is None:
                return False
            got = jsonpath.render(o, tpl)
            return got == want if want else got != ""

        return "jsonpath", jp
    raise Fail(f'error: unrecognized condition: "{spec}"')


def cmd_wait(ctx: Ctx, p: Parsed) -> int:
    if not p["for"]:
        raise Fail("error: --for must be set")
    kind, pred = _wait_pred(p["for"])
    t = target(ctx, p)
    timeout = float(p["timeout"])
    with ctx.store.read() as w:
        timeout = w.scaled(timeout)
    waiter = ctx.waiter(timeout)
    named: list[tuple[KindInfo, str]] | None = None
    while True:
        with ctx.store.tx() as world:
            kube = connect(world, t)
            ns = ns_of(p, t)
            if named is None or kind != "delete":
                sel: list[tuple[KindInfo, str, JSON | None]] = []
                for k, names in parse_targets(kube, p.args) if not p["filename"] else []:
                    if names:
                        sel.extend((k, nm, kube.get(k, ns, nm)) for nm in names)
                    else:
                        for o in kube.list_objects(k, None if p["all-namespaces"] else ns):
                            if p["selector"] and not match_labels(o["metadata"].get("labels") or {}, p["selector"]):
                                continue
                            if p["field-selector"] and not match_fields(o, p["field-selector"]):
                                continue
                            sel.append((k, o["metadata"]["name"], o))
                if p["filename"]:
                    sel = select(ctx, kube, p, ns, [])
                if named is None:
                    named = [(k, nm) for k, nm, _ in sel]
                if kind == "delete":
                    named = [(k, nm) for k, nm, _ in sel]
            objs = [(k, nm, kube.get(k, ns, nm)) for k, nm in named]
            if not named:
                if kind == "delete":
                    return 0
                if waiter.expired():
                    raise Fail("error: no matching resources found")
            else:
                missing = [(k, nm) for k, nm, o in objs if o is None and kind not in ("delete", "create")]
                if missing and kind != "create":
                    k, nm = missing[0]
                    raise Fail(f'Error from server (NotFound): {k.resource} "{nm}" not found')
                if all(pred(o) for _, _, o in objs):
                    for k, nm, _ in objs:
                        ctx.out(f"{k.ref}/{nm} condition met\n" if kind != "delete" else f"{k.ref}/{nm} deleted\n")
                    return 0
                if waiter.expired():
                    bad = next((k, nm) for k, nm, o in objs if not pred(o))
                    raise Fail(f"error: timed out waiting for the condition on {bad[0].plural}/{bad[1]}")
        waiter.sleep()


# ---- rollout / cordon / drain --------------------------------------------------------------------------
def _rollout_state(k: KindInfo, o: JSON) -> tuple[bool, str]:
    st = o.get("status") or {}
    nm = o["metadata"]["name"]
    if k.kind == "Deployment":
        want = dig(o, "spec", "replicas", default=1)
        have = int(st.get("availableReplicas", 0))
        if have >= want and st.get("observedGeneration", 0) >= o["metadata"].get("generation", 1):
            return True, f'deployment "{nm}" successfully rolled out'
        return (
            False,
            f'Waiting for deployment "{nm}" rollout to finish: {have} of {want} updated replicas are available...',
        )
    if k.kind == "DaemonSet":
        want = int(st.get("desiredNumberScheduled", 0))
        have = int(st.get("numberAvailable", 0))
        if want > 0 and have >= want:
            return True, f'daemon set "{nm}" successfully rolled out'
        return False, f'Waiting for daemon set "{nm}" rollout to finish: {have} of {want} updated pods are available...'
    if k.kind == "StatefulSet":
        want = dig(o, "spec", "replicas", default=1)
        have = int(st.get("readyReplicas", 0))
        if have >= want:
            return True, f"statefulset rolling update complete {have} pods at revision {nm}-1..."
        return False, f"Waiting for {want - have} pods to be ready..."
    raise Fail(f"error: no status viewer has been implemented for {k.kind}")


def cmd_rollout(ctx: Ctx, p: Parsed) -> int:
    if not p.args:
        raise Fail("error: Required resource not specified.")
    sub, args = p.args[0], p.args[1:]
    t = target(ctx, p)
    if sub == "restart":
        with ctx.store.tx() as world:
            kube = connect(world, t)
            for k, nm, o in select(ctx, kube, p, ns_of(p, t), args):
                if o is None:
                    raise Fail(f'Error from server (NotFound): {k.resource} "{nm}" not found')
                new = copy.deepcopy(o)
                new.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {}).setdefault(
                    "annotations", {}
                )["kubectl.kubernetes.io/restartedAt"] = rfc3339(world.now)
                kube.put(new, manager="kubectl-rollout")
                ctx.out(f"{k.ref}/{nm} restarted\n")
        return 0
    if sub != "status":
        raise Fail(f'error: unknown command "{sub}" for "kubectl rollout"')
    timeout = float(p["timeout"] or 0)
    with ctx.store.read() as w:
        timeout = w.scaled(timeout)
    waiter = ctx.waiter(timeout or None)
    last = ""
    while True:
        with ctx.store.tx() as world:
            kube = connect(world, t)
            sel = select(ctx, kube, p, ns_of(p, t), args)
            k, nm, o = sel[0]
            if o is None:
                raise Fail(f'Error from server (NotFound): {k.resource} "{nm}" not found')
            done, msg = _rollout_state(k, o)
        if done:
            ctx.out(msg + "\n")
            return 0
        if msg != last:
            ctx.out(msg + "\n")
            last = msg
        if not p["watch"]:
            return 0
        if waiter.expired():
            raise Fail("error: timed out waiting for the condition")
        waiter.sleep()


def _cordon(ctx: Ctx, p: Parsed, value: bool, verb: str) -> int:
    t = target(ctx, p)
    with ctx.store.tx() as world:
        kube = connect(world, t)
        k = kube.resolve("nodes")
        assert k is not None
        names = p.args or [
            o["metadata"]["name"]
            for o in kube.list_objects(k)
            if p["selector"] and match_labels(o["metadata"].get("labels") or {}, p["selector"])
        ]
        for nm in names:
            o = kube.get(k, None, nm)
            if o is None:
                raise Fail(f'Error from server (NotFound): nodes "{nm}" not found')
            if bool(dig(o, "spec", "unschedulable")) == value:
                ctx.out(f"node/{nm} already {verb}\n")
                continue
            new = copy.deepcopy(o)
            new.setdefault("spec", {})["unschedulable"] = value
            if not value:
                new["spec"].pop("unschedulable", None)
            kube.put(new, manager="kubectl-cordon")
            ctx.out(f"node/{nm} {verb}\n")
    return 0


def cmd_cordon(ctx: Ctx, p: Parsed) -> int:
    return _cordon(ctx, p, True, "cordoned")


def cmd_uncordon(ctx: Ctx, p: Parsed) -> int:
    return _cordon(ctx, p, False, "uncordoned")


def cmd_drain(ctx: Ctx, p: Parsed) -> int:
    _cordon(ctx, p, True, "cordoned")
    t = target(ctx, p)
    with ctx.store.tx() as world:
        kube = connect(world, t)
        pk = kube.resolve("pods")
        assert pk is not None
        for nm in p.args:
            for o in kube.list_objects(pk):
                if dig(o, "spec", "nodeName") != nm:
                    continue
                owners = o["metadata"].get("ownerReferences") or []
                if any(r.get("kind") == "DaemonSet" for r in owners):
                    if not p["ignore-daemonsets"]:
                        raise Fail(
                            f'error: unable to drain node "{nm}" due to error: cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {o["metadata"]["namespace"]}/{o["metadata"]["name"]}'  # noqa: E501
                        )
                    continue
                ctx.out(f"evicting pod {o['metadata']['namespace']}/{o['metadata']['name']}\n")
                kube.delete(pk, o["metadata"]["namespace"], o["metadata"]["name"])
                ctx.out(f"pod/{o['metadata']['name']} evicted\n")
            ctx.out(f"node/{nm} drained\n")
    return 0


# ---- config / version / api-resources ------------------------------------------------------------------
def _kc_path(ctx: Ctx, p: Parsed) -> Path:
    if p["kubeconfig"]:
        return Path(p["kubeconfig"]).expanduser()
    if ctx.env.get("KUBECONFIG"):
        return Path(ctx.env["KUBECONFIG"].split(":")[0]).expanduser()
    return ctx.home() / ".kube" / "config"


def cmd_config(ctx: Ctx, p: Parsed) -> int:
    if not p.args:
        raise Fail("error: Required subcommand not specified.")
    sub, args = p.args[0], p.args[1:]
    path = _kc_path(ctx, p)
    import yaml  # on use: importing PyYAML costs a simulated call ~8 ms, and most need none

    data: JSON = (yaml.safe_load(path.read_text()) if path.exists() else None) or {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": "",
    }

    def save() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(data))
        path.chmod(0o600)

    if sub == "current-context":
        if not data.get("current-context"):
            raise Fail("error: current-context is not set")
        ctx.out(data["current-context"] + "\n")
    elif sub == "use-context":
        if not args or args[0] not in {c["name"] for c in data.get("contexts") or []}:
            raise Fail(f'error: no context exists with the name: "{args[0] if args else ""}"')
        data["current-context"] = args[0]
        save()
        ctx.out(f'Switched to context "{args[0]}".\n')
    elif sub == "get-contexts":
        names = [c["name"] for c in data.get("contexts") or []]
        if p["output"] == "name":
            ctx.out("".join(n + "\n" for n in names))
        else:
            rows = [["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]]
            for c in data.get("contexts") or []:
                cc = c.get("context", {})
                rows.append(
                    [
                        "*" if c["name"] == data.get("current-context") else "",
                        c["name"],
                        cc.get("cluster", ""),
                        cc.get("user", ""),
                        cc.get("namespace", ""),
                    ]
                )
            ctx.out(table(rows))
    elif sub == "set-cluster":
        if not args:
            raise Fail("error: you must specify a non-empty cluster name")
        entry = next((c for c in data.setdefault("clusters", []) if c["name"] == args[0]), None)
        if entry is None:
            entry = {"name": args[0], "cluster": {}}
            data["clusters"].append(entry)
        if p["server"]:
            entry["cluster"]["server"] = p["server"]
        save()
        ctx.out(f'Cluster "{args[0]}" set.\n')
    elif sub == "set-context":
        name = args[0] if args else data.get("current-context")
        entry = next((c for c in data.setdefault("contexts", []) if c["name"] == name), None)
        if entry is None:
            entry = {"name": name, "context": {}}
            data["contexts"].append(entry)
        if p["namespace"]:
            entry["context"]["namespace"] = p["namespace"]
        if p["cluster"]:
            entry["context"]["cluster"] = p["cluster"]
        if p["user"]:
            entry["context"]["user"] = p["user"]
        save()
        ctx.out(f'Context "{name}" modified.\n')
    elif sub == "view":
        view = copy.deepcopy(data)
        if p["minify"]:
            cur = view.get("current-context")
            cc = next((c for c in view.get("contexts") or [] if c["name"] == cur), None)
            if cc is None:
                raise Fail("error: current-context must exist in order to minify")
            view["contexts"] = [cc]
            view["clusters"] = [c for c in view.get("clusters") or [] if c["name"] == cc["context"].get("cluster")]
            view["users"] = [u for u in view.get("users") or [] if u["name"] == cc["context"].get("user")]
        if not p["raw"]:
            for u in view.get("users") or []:
                for key in list(u.get("user", {})):
                    if key.endswith("-data") or key == "token":
                        u["user"][key] = "DATA+OMITTED" if key.endswith("-data") else "REDACTED"
            for c in view.get("clusters") or []:
                if "certificate-authority-data" in c.get("cluster", {}):
                    c["cluster"]["certificate-authority-data"] = "DATA+OMITTED"
        out = p["output"] or "yaml"
        if out == "json":
            ctx.out(json_indented(view) + "\n")
        elif out.startswith("jsonpath="):
            ctx.out(jsonpath.render(view, out.split("=", 1)[1].strip("'")))
        else:
            ctx.out(dump_yaml(view))
    else:
        raise Fail(f'error: unknown command "{sub}" for "kubectl config"')
    return 0


def cmd_version(ctx: Ctx, p: Parsed) -> int:
    with ctx.store.read() as w:
        cv = str(w.setting("kubectl_version"))
    parts = cv.lstrip("v").split(".")
    info: JSON = {
        "clientVersion": {
            "major": parts[0],
            "minor": parts[1],
            "gitVersion": cv,
            "gitCommit": "sim",
            "gitTreeState": "clean",
            "buildDate": "2025-12-17T12:00:00Z",
            "goVersion": "go1.25.5",
            "compiler": "gc",
            "platform": "linux/amd64",
        },
        "kustomizeVersion": KUSTOMIZE,
    }
    if not p["client"]:
        t = target(ctx, p)
        with ctx.store.tx() as world:
            try:
                c = dial(world, t)
                sv = str(c.get("k8s_version") or world.setting("kubernetes_version"))
                sp = sv.lstrip("v").split(".")
                info["serverVersion"] = {"major": sp[0], "minor": sp[1], "gitVersion": sv, "platform": "linux/amd64"}
            except Unreachable as e:
                if p["output"] not in ("json", "yaml"):
                    ctx.out(f"Client Version: {cv}\nKustomize Version: {KUSTOMIZE}\n")
                raise Fail(e.kubectl()) from e
    if p["output"] == "json":
        ctx.out(json.dumps(info, indent=2) + "\n")
    elif p["output"] == "yaml":
        ctx.out(dump_yaml(info))
    else:
        ctx.out(f"Client Version: {cv}\nKustomize Version: {KUSTOMIZE}\n")
        if "serverVersion" in info:
            ctx.out(f"Server Version: {info['serverVersion']['gitVersion']}\n")
    return 0


def cmd_api_resources(ctx: Ctx, p: Parsed) -> int:
    t = target(ctx, p)
    with ctx.store.tx() as world:
        kube = connect(world, t)
        kinds = [k for k in kube.kinds() if p["api-group"] is None or k.group == p["api-group"]]
        if "namespaced" in p.given:
            kinds = [k for k in kinds if k.namespaced == bool(p["namespaced"])]
        if p["output"] == "name":
            ctx.out("".join(f"{k.resource}\n" for k in kinds))
        else:
            rows = [["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]]
            rows += [
                [
                    k.plural,
                    ",".join(s for s in k.short if s != k.singular),
                    k.api_version,
                    str(k.namespaced).lower(),
                    k.kind,
                ]
                for k in kinds
            ]
            ctx.out(table(rows))
    return 0


def cmd_cluster_info(ctx: Ctx, p: Parsed) -> int:
    t = target(ctx, p)
    with ctx.store.tx() as world:
        connect(world, t)
    ctx.out(f"Kubernetes control plane is running at {t.server}\n")
    return 0


def cmd_logs(ctx: Ctx, p: Parsed) -> int:
    t = target(ctx, p)
    with ctx.store.tx() as world:
        kube = connect(world, t)
        name = p.args[0].split("/", 1)[-1] if p.args else ""
        pk = kube.resolve("pods")
        assert pk is not None
        if p.args and p.args[0].startswith(("job/", "jobs/")):
            # kubectl logs job/NAME: the logs of one pod of the Job (the one the simulated Job controller ran)
            jk = kube.resolve("jobs")
            assert jk is not None
            if kube.get(jk, ns_of(p, t), name) is None:
                raise Fail(f'error: error from server (NotFound): jobs.batch "{name}" not found')
            pods = [
                o for o in kube.list_objects(pk, ns_of(p, t))
                if (o["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") == name
            ]
            if not pods:
                raise Fail(f"error: timed out waiting for the condition (no pod of job {name})")
            log = (pods[0]["metadata"].get("annotations") or {}).get("sim.k8s-ops.dev/log")
            ctx.out((log if log is not None else f"simulated log of {pods[0]['metadata']['name']}") + "\n")
            return 0
        if kube.get(pk, ns_of(p, t), name) is None:
            raise Fail(f'error: error from server (NotFound): pods "{name}" not found in namespace "{ns_of(p, t)}"')
        ctx.out(f"simulated log of {name}\n")
    return 0


def _podexec() -> Any:
    """`kubectl debug node/…` and `kubectl exec` live in podexec.py (imported on use: most calls never need it)."""
    from . import podexec

    return podexec


def _kdiff() -> Any:
    """`kubectl diff` lives in kdiff.py (imported on use)."""
    from . import kdiff

    return kdiff


HANDLERS: dict[str, Callable[[Ctx, Parsed], int]] = {
    "get": cmd_get,
    "apply": cmd_apply,
    "create": cmd_create,
    "replace": cmd_replace,
    "delete": cmd_delete,
    "annotate": cmd_annotate,
    "label": cmd_label,
    "patch": cmd_patch,
    "scale": cmd_scale,
    "wait": cmd_wait,
    "rollout": cmd_rollout,
    "cordon": cmd_cordon,
    "uncordon": cmd_uncordon,
    "drain": cmd_drain,
    "config": cmd_config,
    "version": cmd_version,
    "api-resources": cmd_api_resources,
    "cluster-info": cmd_cluster_info,
    "logs": cmd_logs,
    "debug": lambda ctx, p: _podexec().cmd_debug(ctx, p),
    "exec": lambda ctx, p: _podexec().cmd_exec(ctx, p),
    "diff": lambda ctx, p: _kdiff().cmd_diff(ctx, p),
}
