"""`helm` v3.19 against the simulated clusters: upgrade --install / install (values, --wait, --timeout,
--create-namespace, ownership checks), list, status, get values|manifest, template, uninstall, history,
repo add|update|list, version. Chart contents come from `charts/`."""

from __future__ import annotations

import copy
import json
import re
import time

import yaml

from . import helmstore
from .charts import Chart, lookup
from .cliparse import Flag, Parsed, ParseError, parse, split_command
from .kube import ApiError, Kube, MappingError
from .kubeconfig import Unreachable, dial, load
from .runtime import Ctx, Fail
from .util import JSON, deep_merge, dig, dump_yaml, format_duration

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

GLOBAL = [
    Flag("kubeconfig", None, "string"),
    Flag("kube-context", None, "string"),
    Flag("namespace", "n", "string"),
    Flag("debug"),
    Flag("help", "h"),
    Flag("burst-limit", None, "int"),
    Flag("qps", None, "float"),
    Flag("kube-apiserver", None, "string"),
    Flag("kube-token", None, "string"),
]
VALUES = [
    Flag("values", "f", "stringArray"),
    Flag("set", None, "stringArray"),
    Flag("set-string", None, "stringArray"),
    Flag("set-json", None, "stringArray"),
    Flag("set-file", None, "stringArray"),
]
INSTALL = [*VALUES, Flag("version", None, "string"), Flag("create-namespace"), Flag("wait"), Flag("wait-for-jobs"), Flag("timeout", None, "duration", 300.0), Flag("atomic"), Flag("rollback-on-failure"), Flag("dry-run", None, "optstring"), Flag("devel"), Flag("description", None, "string"), Flag("skip-crds"), Flag("repo", None, "string"), Flag("output", "o", "string"), Flag("reuse-values"), Flag("reset-values"), Flag("reset-then-reuse-values"), Flag("force"), Flag("force-conflicts"), Flag("cleanup-on-fail"), Flag("install", "i"), Flag("history-max", None, "int", 10), Flag("no-hooks"), Flag("take-ownership"), Flag("take-ownership"), Flag("labels", "l", "stringToString"), Flag("server-side", None, "optstring"), Flag("hide-notes"), Flag("render-subchart-notes"), Flag("disable-openapi-validation"), Flag("plain-http"), Flag("insecure-skip-tls-verify"), Flag("skip-schema-validation"), Flag("include-crds"), Flag("generate-name", "g"), Flag("verify")]  # noqa: E501
SPECS: dict[str, list[Flag]] = {
    "upgrade": INSTALL,
    "install": INSTALL,
    "template": [*INSTALL, Flag("show-only", "s", "stringArray"), Flag("api-versions", "a", "stringArray"), Flag("kube-version", None, "string"), Flag("output-dir", None, "string"), Flag("validate"), Flag("is-upgrade")],  # noqa: E501
    "list": [
        Flag("all-namespaces", "A"),
        Flag("output", "o", "string"),
        Flag("all", "a"),
        Flag("filter", None, "string"),
        Flag("short", "q"),
        Flag("deployed"),
        Flag("failed"),
        Flag("pending"),
        Flag("max", "m", "int"),
        Flag("no-headers"),
        Flag("selector", "l", "string"),
        Flag("uninstalled"),
        Flag("superseded"),
    ],
    "status": [Flag("output", "o", "string"), Flag("revision", None, "int"), Flag("show-desc"), Flag("show-resources")],
    "get": [
        Flag("output", "o", "string"),
        Flag("revision", None, "int"),
        Flag("all", "a"),
        Flag("template", None, "string"),
    ],
    "uninstall": [
        Flag("wait"),
        Flag("timeout", None, "duration", 300.0),
        Flag("keep-history"),
        Flag("dry-run"),
        Flag("ignore-not-found"),
        Flag("no-hooks"),
        Flag("cascade", None, "string"),
        Flag("description", None, "string"),
    ],
    "history": [Flag("output", "o", "string"), Flag("max", None, "int", 256)],
    "version": [Flag("short"), Flag("template", None, "string"), Flag("client", "c")],
    "repo": [
        Flag("force-update"),
        Flag("username", None, "string"),
        Flag("password", None, "string"),
        Flag("pass-credentials"),
        Flag("output", "o", "string"),
        Flag("fail-on-repo-update-fail"),
    ],
}
ALIASES = {"ls": "list", "un": "uninstall", "delete": "uninstall", "del": "uninstall", "hist": "history"}


def main(ctx: Ctx) -> int:
    cmd, rest = split_command(ctx.argv, {f.name: f for f in GLOBAL})
    if cmd is None:
        ctx.out("The Kubernetes package manager\n")
        return 0
    cmd = ALIASES.get(cmd, cmd)
    if cmd not in SPECS:
        raise Fail(f'Error: unknown command "{cmd}" for "helm"\nRun \'helm --help\' for usage.')
    spec: dict[str, Flag] = {}
    for f in GLOBAL + SPECS[cmd]:
        spec.setdefault(f.name, f)
    try:
        p = parse(rest, spec)
    except ParseError as e:
        raise Fail(f"Error: {e.message}") from e
    return int(HANDLERS[cmd](ctx, p))


# ---- values --------------------------------------------------------------------------------------------
def _typed(v: str) -> Any:
    if v in ("true", "false"):
        return v == "true"
    if v == "null":
        return None
    if re.fullmatch(r"-?\d+", v) and not (len(v) > 1 and v.lstrip("-").startswith("0")):
        return int(v)
    if v.startswith("{") and v.endswith("}"):
        return [_typed(x) for x in _split(v[1:-1])] if v[1:-1] else []
    return v


def _split(s: str) -> list[str]:
    out, buf, depth, esc = [], "", 0, False
    for ch in s:
        if esc:
            buf += ch
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == "{":
            depth += 1
            buf += ch
        elif ch == "}":
            depth -= 1
            buf += ch
        elif ch == "," and depth == 0:
            out.append(buf)
            buf = ""
        else:
            buf += ch
    if buf:
        out.append(buf)
    return out


def _set_path(values: JSON, path: str, value: Any) -> None:
    parts = re.findall(r"(?:\\\.|[^.\[\]])+|\[\d+\]", path)
    cur: Any = values
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt = parts[i + 1] if not last else None
        if part.startswith("["):
            idx = int(part[1:-1])
            while len(cur) <= idx:
                cur.append(None)
            if last:
                cur[idx] = value
            else:
                if cur[idx] is None:
                    cur[idx] = [] if nxt and nxt.startswith("[") else {}
                cur = cur[idx]
        else:
            key = part.replace("\\.", ".")
            if last:
                cur[key] = value
            else:
                if not isinstance(cur.get(key), (dict, list)):
                    cur[key] = [] if nxt and nxt.startswith("[") else {}
                cur = cur[key]


def user_values(ctx: Ctx, p: Parsed) -> JSON:
    vals: JSON = {}
    for f in p["values"]:
        try:
            raw = ctx.read_file(f).decode()
        except OSError as e:
            raise Fail(f"Error: open {f}: no such file or directory") from e
        try:
            doc = yaml.safe_load(raw) or {}
        except yaml.YAMLError as e:
            raise Fail(f"Error: failed to parse {f}: error converting YAML to JSON: {str(e).splitlines()[0]}") from e
        if not isinstance(doc, dict):
            raise Fail(f"Error: failed to parse {f}: error unmarshaling JSON: cannot unmarshal into map")
        vals = deep_merge(vals, doc)
    for s in p["set"]:
        for pair in _split(s):
            if "=" not in pair:
                raise Fail(f'Error: failed parsing --set data: key "{pair}" has no value')
            k, v = pair.split("=", 1)
            _set_path(vals, k, _typed(v))
    for s in p["set-string"]:
        for pair in _split(s):
            k, v = pair.split("=", 1)
            _set_path(vals, k, v)
    for s in p["set-json"]:
        k, v = s.split("=", 1)
        _set_path(vals, k, json.loads(v))
    return vals


# ---- install / upgrade ---------------------------------------------------------------------------------
def _resolve_chart(ctx: Ctx, world: Any, ref: str) -> Chart:
    if not (ref.startswith("oci://") or ref.startswith("/") or ref.startswith(".") or "/" in ref):
        raise Fail(f"Error: non-absolute URLs should be in form of repo_name/path_to_chart, got: {ref}")
    if not ref.startswith(("oci://", "/", ".", "http://", "https://")):
        repo = ref.split("/", 1)[0]
        if repo not in (world.data.get("helm_repos") or {}):
            raise Fail(f"Error: repo {repo} not found")
    if world.fault("chart-unavailable", text=ref):
        raise Fail(f'Error: failed to perform "FetchReference" on source: {ref}: not found')
    return lookup(ref)


def _render(chart: Chart, release: str, ns: str, values: JSON, version: str) -> list[JSON]:
    merged = deep_merge(chart.defaults, values)
    objs = chart.render(release, ns, merged, version)
    for o in objs:
        m = o.setdefault("metadata", {})
        m.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
        ann = m.setdefault("annotations", {})
        ann["meta.helm.sh/release-name"] = release
        ann["meta.helm.sh/release-namespace"] = ns
        if "namespace" not in m and o["kind"] not in (
            "CustomResourceDefinition",
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
        ):
            m["namespace"] = ns
    return objs


def _manifest(objs: list[JSON]) -> str:
    return "".join(f"---\n# Source: sim/templates/{o['kind'].lower()}.yaml\n{dump_yaml(o)}" for o in objs)


def _ready(kube: Kube, objs: list[JSON]) -> str | None:
    """The first object Helm's --wait is still waiting for (None: all ready)."""
    for o in objs:
        live = kube.find(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        if live is None:
            return f"{o['kind']}/{o['metadata']['name']}"
        st = live.get("status") or {}
        if (
            o["kind"] in ("Deployment", "StatefulSet")
            and int(st.get("readyReplicas", 0) or 0) < int(dig(live, "spec", "replicas", default=1))
        ) or (
            o["kind"] == "DaemonSet"
            and int(st.get("numberReady", 0) or 0) < int(st.get("desiredNumberScheduled", 0) or 0)
        ):
            return f"{o['kind']}/{o['metadata']['namespace']}/{o['metadata']['name']}"
    return None


def _banner(ctx: Ctx, rel: JSON) -> None:
    ctx.out(
        f"NAME: {rel['name']}\nLAST DEPLOYED: {rel['info']['last_deployed']}\nNAMESPACE: {rel['namespace']}\n"
        f"STATUS: {rel['info']['status']}\nREVISION: {rel['version']}\nTEST SUITE: None\n"
    )


def cmd_install(ctx: Ctx, p: Parsed) -> int:
    return _install(ctx, p, upgrade=False)


def cmd_upgrade(ctx: Ctx, p: Parsed) -> int:
    return _install(ctx, p, upgrade=True)


def _install(ctx: Ctx, p: Parsed, *, upgrade: bool) -> int:
    if len(p.args) != 2:
        raise Fail(
            f'Error: "helm {"upgrade" if upgrade else "install"}" requires 2 arguments\n\nUsage:  helm {"upgrade" if upgrade else "install"} [RELEASE] [CHART] [flags]'  # noqa: E501
        )
    name, ref = p.args
    verb = "UPGRADE" if upgrade else "INSTALLATION"
    values = user_values(ctx, p)
    t = load(ctx, p["kubeconfig"], p["kube-context"], tool="helm")
    ns = p["namespace"] or t.namespace or "default"
    dry = p["dry-run"] not in (None, "none", "false")
    with ctx.store.tx() as world:
        try:
            cluster = dial(world, t)
        except Unreachable as e:
            raise Fail(f'Error: Kubernetes cluster unreachable: Get "{t.server}/version": {e.dial()}') from e
        kube = Kube(cluster, world.now)
        chart = _resolve_chart(ctx, world, ref)
        version = str(p["version"] or chart.version)
        prev = helmstore.latest(kube, ns, name)
        if upgrade and prev is None and not p["install"]:
            raise Fail(f'Error: UPGRADE FAILED: "{name}" has no deployed releases')
        if not upgrade and prev is not None and prev["info"]["status"] != "uninstalled":
            raise Fail("Error: INSTALLATION FAILED: cannot re-use a name that is still in use")
        if prev is not None and upgrade:
            if p["reuse-values"]:
                values = deep_merge(prev["config"], values)
            verb = "UPGRADE"
        else:
            verb = "INSTALLATION"
        if not kube.namespace_exists(ns):
            if p["create-namespace"] and not dry:
                kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, manager="helm")
            elif not dry:
                raise Fail(f'Error: {verb} FAILED: create: failed to create: namespaces "{ns}" not found')
        objs = _render(chart, name, ns, values, version)
        f = world.fault("helm-fails", text=name, consume=True)
        if f:
            raise Fail(f"Error: {verb} FAILED: {f.get('message') or 'simulated failure'}")
        for o in objs:
            try:
                kube.for_object(o["apiVersion"], o["kind"])
            except MappingError as e:
                if o["kind"] in [x["spec"]["names"]["kind"] for x in objs if x["kind"] == "CustomResourceDefinition"]:
                    continue
                raise Fail(
                    f"Error: {verb} FAILED: unable to build kubernetes objects from release manifest: resource mapping not found for "  # noqa: E501
                    f'name: "{o["metadata"]["name"]}" namespace: "{o["metadata"].get("namespace", "")}" from "": {e}\n'
                    "ensure CRDs are installed first"
                ) from e
        if dry:
            ctx.out(
                f"NAME: {name}\nNAMESPACE: {ns}\nSTATUS: pending-{'upgrade' if prev else 'install'}\n\nMANIFEST:\n{_manifest(objs)}"  # noqa: E501
            )
            return 0
        # ownership: Helm refuses to adopt objects it does not own (unless --take-ownership)
        for o in objs:
            live = kube.find(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            if live is None:
                continue
            ann = live["metadata"].get("annotations") or {}
            lbl = live["metadata"].get("labels") or {}
            if (ann.get("meta.helm.sh/release-name"), ann.get("meta.helm.sh/release-namespace")) != (
                name,
                ns,
            ) and not p["take-ownership"]:
                errs = []
                if lbl.get("app.kubernetes.io/managed-by") != "Helm":
                    errs.append(
                        'label validation error: missing key "app.kubernetes.io/managed-by": must be set to "Helm"'
                    )
                if ann.get("meta.helm.sh/release-name") != name:
                    errs.append(
                        f'annotation validation error: missing key "meta.helm.sh/release-name": must be set to "{name}"'
                    )
                if ann.get("meta.helm.sh/release-namespace") != ns:
                    errs.append(
                        f'annotation validation error: missing key "meta.helm.sh/release-namespace": must be set to "{ns}"'  # noqa: E501
                    )
                where = f' in namespace "{o["metadata"]["namespace"]}"' if o["metadata"].get("namespace") else ""
                raise Fail(
                    f'Error: {verb} FAILED: Unable to continue with {"update" if prev else "install"}: {o["kind"]} "{o["metadata"]["name"]}"{where} '  # noqa: E501
                    f"exists and cannot be imported into the current release: invalid ownership metadata; {'; '.join(errs)}"  # noqa: E501
                )
        crds_first = sorted(objs, key=lambda o: 0 if o["kind"] == "CustomResourceDefinition" else 1)
        for o in crds_first:
            try:
                kube.put(copy.deepcopy(o), manager="helm", ssa=False)
            except ApiError as e:
                raise Fail(f"Error: {verb} FAILED: {e.message}") from e
            except MappingError as e:
                raise Fail(
                    f"Error: {verb} FAILED: unable to build kubernetes objects from release manifest: {e}"
                ) from e
        if prev is not None and prev["info"]["status"] != "uninstalled":
            new_keys = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs}
            for o in yaml.safe_load_all(prev["manifest"]):
                if o and (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) not in new_keys:
                    live = kube.find(o["kind"], o["metadata"].get("namespace") or None, o["metadata"]["name"])
                    if live is not None:
                        kube.delete_key(kube.key_of(live))
            for old in helmstore.releases(kube, ns, name):
                if old["info"]["status"] == "deployed":
                    old["info"]["status"] = "superseded"
                    helmstore.store(kube, old)
        now_txt = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(world.now))
        rel: JSON = {
            "name": name,
            "namespace": ns,
            "version": (prev["version"] + 1) if prev else 1,
            "chart": {
                "metadata": {"name": chart.name, "version": version, "appVersion": chart.app_version},
                "ref": ref,
            },
            "config": values,
            "manifest": _manifest(objs),
            "info": {
                "status": "pending-upgrade" if prev else "pending-install",
                "first_deployed": (prev or {}).get("info", {}).get("first_deployed", now_txt),
                "last_deployed": now_txt,
                "description": "Upgrade complete" if prev else "Install complete",
            },
        }
        helmstore.store(kube, rel)
        timeout = world.scaled(float(p["timeout"]))
    waiter = ctx.waiter(timeout)
    while True:
        with ctx.store.tx() as world:
            kube = Kube(world.clusters[cluster["name"]], world.now)
            waiting = _ready(kube, objs) if (p["wait"] or p["atomic"] or p["rollback-on-failure"]) else None
            if waiting is None or waiter.expired():
                rel["info"]["status"] = "deployed" if waiting is None else "failed"
                if waiting is not None:
                    rel["info"]["description"] = f'Release "{name}" failed: context deadline exceeded'
                helmstore.store(kube, rel)
                break
        waiter.sleep()
    if rel["info"]["status"] == "failed":
        raise Fail(f"Error: {verb} FAILED: context deadline exceeded")
    if upgrade and prev is None:
        ctx.out(f'Release "{name}" does not exist. Installing it now.\n')
    elif upgrade:
        ctx.out(f'Release "{name}" has been upgraded. Happy Helming!\n')
    if p["output"] == "json":
        ctx.out(json.dumps(_summary(rel)) + "\n")
    else:
        _banner(ctx, rel)
    return 0


def _summary(rel: JSON) -> JSON:
    return {
        "name": rel["name"],
        "namespace": rel["namespace"],
        "revision": str(rel["version"]),
        "updated": rel["info"]["last_deployed"],
        "status": rel["info"]["status"],
        "chart": f"{rel['chart']['metadata']['name']}-{rel['chart']['metadata']['version']}",
        "app_version": rel["chart"]["metadata"]["appVersion"],
    }


def _kube(ctx: Ctx, p: Parsed, world: Any) -> Kube:
    t = load(ctx, p["kubeconfig"], p["kube-context"], tool="helm")
    try:
        c = dial(world, t)
    except Unreachable as e:
        raise Fail(f'Error: Kubernetes cluster unreachable: Get "{t.server}/version": {e.dial()}') from e
    return Kube(c, world.now)


def _ns(ctx: Ctx, p: Parsed) -> str:
    return str(p["namespace"] or load(ctx, p["kubeconfig"], p["kube-context"], tool="helm").namespace or "default")


def cmd_list(ctx: Ctx, p: Parsed) -> int:
    with ctx.store.tx() as world:
        kube = _kube(ctx, p, world)
        rels = helmstore.latest_all(kube, None if p["all-namespaces"] else _ns(ctx, p))
    rels = [r for r in rels if r["info"]["status"] != "uninstalled"]
    if not p["all"]:
        rels = [r for r in rels if r["info"]["status"] in ("deployed", "failed")]
    if p["filter"]:
        rels = [r for r in rels if re.search(p["filter"], r["name"])]
    if p["output"] == "json":
        ctx.out(json.dumps([_summary(r) for r in rels]) + "\n")
    elif p["output"] == "yaml":
        ctx.out(dump_yaml([_summary(r) for r in rels]))
    elif p["short"]:
        ctx.out("".join(r["name"] + "\n" for r in rels))
    else:
        from .util import table

        rows = [["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION"]]
        rows += [
            [s["name"], s["namespace"], s["revision"], s["updated"], s["status"], s["chart"], s["app_version"]]
            for s in map(_summary, rels)
        ]
        ctx.out(table(rows, sep="\t"))
    return 0


def _release(ctx: Ctx, p: Parsed, world: Any) -> JSON:
    if not p.args:
        raise Fail("Error: release name is required")
    kube = _kube(ctx, p, world)
    rels = helmstore.releases(kube, _ns(ctx, p), p.args[-1])
    if p.get("revision"):
        rels = [r for r in rels if r["version"] == p["revision"]]
    if not rels:
        raise Fail("Error: release: not found")
    return rels[-1]


def cmd_status(ctx: Ctx, p: Parsed) -> int:
    with ctx.store.tx() as world:
        rel = _release(ctx, p, world)
    if p["output"] == "json":
        ctx.out(
            json.dumps(
                {
                    "name": rel["name"],
                    "namespace": rel["namespace"],
                    "version": rel["version"],
                    "info": rel["info"],
                    "chart": rel["chart"],
                    "config": rel["config"],
                }
            )
            + "\n"
        )
    else:
        _banner(ctx, rel)
    return 0


def cmd_get(ctx: Ctx, p: Parsed) -> int:
    if not p.args:
        raise Fail('Error: unknown command "" for "helm get"')
    what = p.args[0]
    with ctx.store.tx() as world:
        rel = _release(ctx, p, world)
    if what == "values":
        vals = rel["config"]
        if p["all"]:
            vals = deep_merge(lookup(rel["chart"].get("ref", rel["chart"]["metadata"]["name"])).defaults, vals)
        if p["output"] == "json":
            ctx.out(json.dumps(vals) + "\n")
        elif p["output"] == "yaml":
            ctx.out(dump_yaml(vals) if vals else "{}\n")
        else:
            ctx.out("USER-SUPPLIED VALUES:\n" + (dump_yaml(vals) if vals else "null\n"))
    elif what == "manifest":
        ctx.out(rel["manifest"])
    elif what == "all":
        _banner(ctx, rel)
        ctx.out("USER-SUPPLIED VALUES:\n" + dump_yaml(rel["config"]) + "\nMANIFEST:\n" + rel["manifest"])
    else:
        raise Fail(f'Error: unknown command "{what}" for "helm get"')
    return 0


def cmd_history(ctx: Ctx, p: Parsed) -> int:
    with ctx.store.tx() as world:
        kube = _kube(ctx, p, world)
        rels = helmstore.releases(kube, _ns(ctx, p), p.args[0] if p.args else "")
    if not rels:
        raise Fail("Error: release: not found")
    if p["output"] == "json":
        ctx.out(
            json.dumps(
                [
                    {
                        "revision": r["version"],
                        "updated": r["info"]["last_deployed"],
                        "status": r["info"]["status"],
                        "chart": f"{r['chart']['metadata']['name']}-{r['chart']['metadata']['version']}",
                        "app_version": r["chart"]["metadata"]["appVersion"],
                        "description": r["info"]["description"],
                    }
                    for r in rels
                ]
            )
            + "\n"
        )
    else:
        from .util import table

        rows = [["REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION", "DESCRIPTION"]]
        rows += [
            [
                str(r["version"]),
                r["info"]["last_deployed"],
                r["info"]["status"],
                f"{r['chart']['metadata']['name']}-{r['chart']['metadata']['version']}",
                r["chart"]["metadata"]["appVersion"],
                r["info"]["description"],
            ]
            for r in rels
        ]
        ctx.out(table(rows, sep="\t"))
    return 0


def cmd_template(ctx: Ctx, p: Parsed) -> int:
    args = p.args
    if len(args) == 1:
        name, ref = "release-name", args[0]
    elif len(args) == 2:
        name, ref = args
    else:
        raise Fail('Error: "helm template" requires at least 1 argument')
    values = user_values(ctx, p)
    with ctx.store.tx(tick=False) as world:
        chart = _resolve_chart(ctx, world, ref)
    ns = p["namespace"] or "default"
    objs = _render(chart, name, ns, values, (p["version"] or chart.version).lstrip("v"))
    if not p["include-crds"]:
        pass
    if p["show-only"]:
        objs = [o for o in objs if any(o["kind"].lower() in s for s in p["show-only"])]
    ctx.out(_manifest(objs))
    return 0


def cmd_uninstall(ctx: Ctx, p: Parsed) -> int:
    if not p.args:
        raise Fail('Error: "helm uninstall" requires at least 1 argument')
    with ctx.store.tx() as world:
        kube = _kube(ctx, p, world)
        ns = _ns(ctx, p)
        for name in p.args:
            rel = helmstore.latest(kube, ns, name)
            if rel is None:
                if p["ignore-not-found"]:
                    continue
                raise Fail(f"Error: uninstall: Release not loaded: {name}: release: not found")
            for o in yaml.safe_load_all(rel["manifest"]):
                if o is None or o["kind"] == "CustomResourceDefinition":
                    continue
                live = kube.find(o["kind"], o["metadata"].get("namespace") or None, o["metadata"]["name"])
                if live is not None:
                    kube.delete_key(kube.key_of(live))
            helmstore.delete_all(kube, ns, name)
            ctx.out(f'release "{name}" uninstalled\n')
    return 0


def cmd_version(ctx: Ctx, p: Parsed) -> int:
    with ctx.store.tx(tick=False) as w:
        v = str(w.setting("helm_version"))
    if p["short"]:
        ctx.out(f"{v}+g3d8990f\n")
    else:
        ctx.out(
            f'version.BuildInfo{{Version:"{v}", GitCommit:"3d8990f0836691f0229297773f3524598f46bda6", GitTreeState:"clean", GoVersion:"go1.24.7"}}\n'  # noqa: E501
        )
    return 0


def cmd_repo(ctx: Ctx, p: Parsed) -> int:
    if not p.args:
        raise Fail("Error: requires a subcommand")
    sub = p.args[0]
    with ctx.store.tx(tick=False) as world:
        repos = world.data.setdefault("helm_repos", {})
        if sub == "add":
            if len(p.args) != 3:
                raise Fail('Error: "helm repo add" requires 2 arguments')
            name, url = p.args[1], p.args[2]
            if name in repos and repos[name] != url and not p["force-update"]:
                raise Fail(f"Error: repository name ({name}) already exists, please specify a different name")
            repos[name] = url
            ctx.out(f'"{name}" has been added to your repositories\n')
        elif sub == "update":
            ctx.out("Hang tight while we grab the latest from your chart repositories...\n")
            for name in repos:
                ctx.out(f'...Successfully got an update from the "{name}" chart repository\n')
            ctx.out("Update Complete. ⎈Happy Helming!⎈\n")
        elif sub == "list":
            if not repos:
                raise Fail("Error: no repositories to show")
            if p["output"] == "json":
                ctx.out(json.dumps([{"name": k, "url": v} for k, v in repos.items()]) + "\n")
            else:
                ctx.out("NAME\tURL\n" + "".join(f"{k}\t{v}\n" for k, v in repos.items()))
        else:
            raise Fail(f'Error: unknown command "{sub}" for "helm repo"')
    return 0


HANDLERS = {
    "upgrade": cmd_upgrade,
    "install": cmd_install,
    "list": cmd_list,
    "status": cmd_status,
    "get": cmd_get,
    "history": cmd_history,
    "template": cmd_template,
    "uninstall": cmd_uninstall,
    "version": cmd_version,
    "repo": cmd_repo,
}
_ = format_duration
