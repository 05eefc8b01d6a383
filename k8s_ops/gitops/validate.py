"""`gitops.validate` for one cluster: everything Flux would apply, built offline, then checked.

1. The world bootstrap creates (`k8s_ops.bootstrap.manifests`: the root GitRepository and Kustomization,
   `cluster-vars` from the inventory, the sops-age and git credentials Secrets).
2. Starting at the root Kustomization (`gitops.path`), each Flux Kustomization's path is built with real
   kustomize (`build.run_build`), level by level, builds of a level in parallel (bounded pool); the
   Kustomizations found in a build (after its substitution) are the next level. Only Kustomizations whose
   source is the cluster's own repository are followed; others are skipped with a note.
3. Each build gets its Kustomization's `postBuild` substitution (`substitute`), then `commonMetadata`
   (labels/annotations set on every object, as kustomize-controller does at apply time). Flux reads
   `substituteFrom` sources from the cluster; offline, the cluster is what bootstrap creates plus what any
   Kustomization of this build applies (an ExternalSecret's Secret: keys unknown), so a Kustomization whose
   source comes from a build not done yet is substituted again at the end (whether the source exists in time
   is the graph check's). A post-build failure fails the whole Kustomization: nothing of it is applied.
4. The graph (`graph.check_graph`) and every object's schema (`schemas.SchemaSet`) are checked.

Variables from a Secret come from the SOPS-encrypted Secret in the repository (decrypted when a key is
available; its key names are readable without one) — values are Secrets, masked everywhere, never printed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.secret import Secret, mask_text
from k8s_ops.gitops import build as _build
from k8s_ops.gitops.graph import Node, check_graph, key_of
from k8s_ops.gitops.schemas import SchemaSet, fetch_pins
from k8s_ops.gitops.substitute import VAR_NAME, SubstitutionError, substitute_object, substitution_disabled
from k8s_ops.talos import yamlio

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner
    from k8s_ops.talos.inventory import Cluster

__all__ = ["Finding", "ValidationReport", "validate_cluster"]

KS_GROUP = "kustomize.toolkit.fluxcd.io"
UNKNOWN = "unknown"
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Finding:
    """One problem: where (repository file and line), which object, what (check: build/substitute/graph/schema)."""

    file: str
    line: int | None
    object: str
    check: str
    message: str
    severity: str = "error"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "object": self.object,
            "check": self.check,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass(frozen=True)
class ValidationReport:
    """What `validate_cluster` found for one cluster."""

    cluster: str
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]
    kustomizations: int
    objects: int
    build_seconds: float = 0.0
    # what Flux would apply, after substitution (may hold decrypted Secret values: never serialised or printed)
    applied: tuple[Node, ...] = field(default=(), repr=False, compare=False)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")


def describe(obj: Mapping[str, Any]) -> str:
    """`Kind namespace/name` (or `Kind name` without a namespace)."""
    _, kind, ns, name = key_of(obj)
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


@dataclass
class _Doc:
    start: int
    end: int
    kind: str
    name: str
    lines: dict[tuple[Any, ...], int]


class _Files:
    """Repository files read once: their text and, per YAML document, the line of every key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._docs: dict[str, list[_Doc]] = {}
        self._text: dict[str, list[str]] = {}

    def text(self, rel: str) -> list[str]:
        if rel not in self._text:
            try:
                self._text[rel] = yamlio.read_text(self.root / rel).splitlines()
            except (OSError, yamlio.YAMLError):  # the build reports what is wrong with it; no line numbers here
                self._text[rel] = []
        return self._text[rel]

    def docs(self, rel: str) -> list[_Doc]:
        if rel in self._docs:
            return self._docs[rel]
        out: list[_Doc] = []
        try:
            for node in yaml.compose_all("\n".join(self.text(rel)), Loader=_Loader):
                if node is None:
                    continue
                yamlio.check_graph(node)  # walked below: no alias bomb, no nesting past the bound
                lines: dict[tuple[Any, ...], int] = {}
                _index(node, (), lines)
                data: dict[str, Any] = {}
                if isinstance(node, yaml.MappingNode):
                    for k, v in node.value:
                        if isinstance(k, yaml.ScalarNode) and k.value in ("kind", "metadata"):
                            data[k.value] = v
                kind = data["kind"].value if isinstance(data.get("kind"), yaml.ScalarNode) else ""
                name = ""
                meta = data.get("metadata")
                if isinstance(meta, yaml.MappingNode):
                    for k, v in meta.value:
                        if isinstance(k, yaml.ScalarNode) and k.value == "name" and isinstance(v, yaml.ScalarNode):
                            name = v.value
                out.append(_Doc(node.start_mark.line + 1, node.end_mark.line + 1, kind, name, lines))
        except (yaml.YAMLError, yamlio.YAMLError):
            pass
        self._docs[rel] = out
        return out

    def doc_for(self, rel: str, obj: Mapping[str, Any]) -> _Doc | None:
        _, kind, _, name = key_of(obj)
        docs = self.docs(rel)
        for d in docs:
            if d.kind == kind and d.name == name:
                return d
        for d in docs:  # a name prefix/suffix or a substituted name: the same kind, a name inside the built one
            if d.kind == kind and d.name and (d.name in name or "${" in d.name):
                return d
        same = [d for d in docs if d.kind == kind]
        return same[0] if len(same) == 1 else (docs[0] if len(docs) == 1 else None)

    def line(self, rel: str, obj: Mapping[str, Any], path: Sequence[Any] = ()) -> int | None:
        doc = self.doc_for(rel, obj)
        if doc is None:
            return None
        p = tuple(path)
        for n in range(len(p), -1, -1):
            if p[:n] in doc.lines:
                return doc.lines[p[:n]]
        return doc.start

    def text_line(self, rel: str, obj: Mapping[str, Any], needle: str) -> int | None:
        doc = self.doc_for(rel, obj)
        lines = self.text(rel)
        lo, hi = (doc.start, doc.end) if doc is not None else (1, len(lines))
        for i in range(lo - 1, min(hi, len(lines))):
            if needle in lines[i]:
                return i + 1
        for i, text in enumerate(lines):
            if needle in text:
                return i + 1
        return doc.start if doc is not None else None


def _index(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                p = (*path, k.value)
                lines[p] = k.start_mark.line + 1
                _index(v, p, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), lines)


@dataclass
class _Ks:
    """A Flux Kustomization to build: its identity, (substituted) spec and where it is defined."""

    obj: Mapping[str, Any]
    origin: str | None

    @property
    def id(self) -> str:
        meta = self.obj.get("metadata") or {}
        return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.obj.get("spec")
        return spec if isinstance(spec, Mapping) else {}


@dataclass
class _Run:
    cluster: Cluster
    root: Path
    runner: Runner
    files: _Files
    world: list[dict[str, Any]]
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    by_id: dict[tuple[str, str, str], list[Node]] = field(default_factory=dict)
    secrets: list[Secret] = field(default_factory=list)
    decrypt_problem: str | None = None
    # Kustomizations whose substituteFrom names a ConfigMap/Secret not built yet (it may come from a deeper or
    # later Kustomization): substituted again once every build is in
    waiting: set[str] = field(default_factory=set)
    _key: Any = None

    def add(
        self,
        origin: str | None,
        obj: Mapping[str, Any],
        check: str,
        message: str,
        *,
        path: Sequence[Any] = (),
        needle: str | None = None,
        severity: str = "error",
        owner: str = "",
    ) -> None:
        file = origin or (f"(generated by Kustomization {owner})" if owner else "(generated)")
        line = None
        if origin is not None:
            line = self.files.text_line(origin, obj, needle) if needle else self.files.line(origin, obj, path)
        self.findings.append(Finding(file, line, describe(obj), check, mask_text(message), severity))

    def extend(self, nodes: Sequence[Node]) -> None:
        self.nodes.extend(nodes)
        for n in nodes:
            self.by_id.setdefault(key_of(n.obj)[1:], []).append(n)

    def drop(self, owner: str) -> None:
        """Forget the objects one Kustomization applies (to substitute them again)."""
        kept = [n for n in self.nodes if n.owner != owner]
        self.nodes, self.by_id = [], {}
        self.extend(kept)

    def find(self, kind: str, ns: str, name: str) -> list[Mapping[str, Any]]:
        """Objects of the repository (built so far), then of the bootstrap world, with that kind/namespace/name."""
        found = [n.obj for n in self.by_id.get((kind, ns, name), ())]
        return [*found, *(o for o in self.world if key_of(o)[1:] == (kind, ns, name))]

    # ------------------------------------------------------------------ variables

    def var_source(self, kind: str, ns: str, name: str) -> tuple[dict[str, str | None], bool] | None:
        """The variables of a ConfigMap/Secret (None values: present but unknown), and whether they are all known;
        None when no such object is known."""
        nodes = self.by_id.get((kind, ns, name), [])
        candidates = self.find(kind, ns, name)
        if not candidates:
            if kind == "Secret" and any(
                str(((es.obj.get("spec") or {}).get("target") or {}).get("name") or key_of(es.obj)[3]) == name
                for es in self.nodes
                if es.obj.get("kind") == "ExternalSecret" and key_of(es.obj)[2] == ns
            ):
                return {}, False  # an ExternalSecret creates it in the cluster: its keys are not known here
            return None
        obj = candidates[0]
        if kind == "ConfigMap":
            data = obj.get("data") or {}
            return {str(k): str(v).replace("\n", "") for k, v in data.items()}, True
        if "sops" in obj:
            return self._sops_secret(obj, nodes[0].origin if nodes else None)
        if obj.get("kind") == "Secret" and not obj.get("data") and not obj.get("stringData"):
            return {}, False  # created outside the repository (bootstrap): its keys are not known here
        return self._secret_values(obj), True

    def _secret_values(self, obj: Mapping[str, Any]) -> dict[str, str | None]:
        """A plain Secret's `data` (base64) and `stringData`; every value registered as a secret (masked)."""
        import base64
        import binascii

        out: dict[str, str | None] = {}
        for k, v in (obj.get("data") or {}).items():
            try:
                out[str(k)] = base64.b64decode(str(v), validate=True).decode().replace("\n", "")
            except (binascii.Error, UnicodeDecodeError):
                out[str(k)] = None
        for k, v in (obj.get("stringData") or {}).items():
            out[str(k)] = str(v).replace("\n", "")
        for value in out.values():
            if value:
                self.secrets.append(Secret(value))
        return out

    def _sops_secret(self, obj: Mapping[str, Any], origin: str | None) -> tuple[dict[str, str | None], bool]:
        """A SOPS-encrypted Secret's variables: its key names are plain text; its values come from decrypting the
        repository file it was built from (the cluster's age key), else they are unknown."""
        keys = [*(obj.get("data") or {}).keys(), *(obj.get("stringData") or {}).keys()]
        unknown: dict[str, str | None] = {str(k): None for k in keys}
        if self.decrypt_problem is not None or origin is None:
            return unknown, True
        try:
            from k8s_ops.tools.sops import Sops, resolve_age_key

            if self._key is None:
                self._key = resolve_age_key(inventory_key_file=self.cluster.age_key_file, cluster=self.cluster.name)
            plain = Sops(key=self._key).decrypt(self.root / origin)
            docs = [d for d in yamlio.load_documents(plain.reveal(), loader=_Loader) if isinstance(d, dict)]
        except (ToolkitError, yamlio.YAMLError) as exc:
            self.decrypt_problem = type(exc).__name__
            self.notes.append(f"SOPS Secrets not decrypted ({type(exc).__name__}): their variables are {UNKNOWN}")
            return unknown, True
        name = key_of(obj)[3]
        same = [d for d in docs if d.get("kind") == "Secret" and (d.get("metadata") or {}).get("name") == name]
        if not same:
            return unknown, True
        return self._secret_values(same[0]), True

    def variables(self, ks: _Ks) -> tuple[dict[str, str | None], bool, list[str]]:
        """The variables of a Kustomization (None: a Secret value not known), whether every source was readable,
        and problems (bad names)."""
        ns = str((ks.obj.get("metadata") or {}).get("namespace") or "")
        post = ks.spec.get("postBuild") or {}
        vars_: dict[str, str | None] = {}
        complete = True
        problems: list[str] = []
        for src in post.get("substituteFrom") or []:
            if not isinstance(src, Mapping):
                continue
            found = self.var_source(str(src.get("kind")), ns, str(src.get("name")))
            if found is None:
                if not src.get("optional"):
                    complete = False  # reported by the graph check
                    self.waiting.add(ks.id)
                continue
            values, known = found
            complete = complete and known
            vars_.update(values)
        for k, v in (post.get("substitute") or {}).items():
            vars_[str(k)] = str(v).replace("\n", "")
        for name in vars_:
            if not VAR_NAME.match(name):
                problems.append(f"'{name}' var name is invalid, must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$'")
        return vars_, complete, problems


def _world(cluster: Cluster) -> list[dict[str, Any]]:
    from k8s_ops.bootstrap import manifests

    objs = [
        dict(manifests.git_repository(cluster, with_credentials=True).manifest),
        dict(manifests.root_kustomization(cluster).manifest),
        dict(manifests.cluster_vars_configmap(cluster).manifest),
    ]
    for name in (manifests.SOPS_AGE, manifests.GIT_CREDENTIALS):
        objs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "flux-system"}})
    return objs


def _follow(ks: _Ks, run: _Run) -> str | None:
    """Why a Kustomization is not built here (None: build it)."""
    ref = ks.spec.get("sourceRef")
    if not isinstance(ref, Mapping):
        return "no sourceRef"
    ns = str(ref.get("namespace") or (ks.obj.get("metadata") or {}).get("namespace") or "")
    kind, name = str(ref.get("kind")), str(ref.get("name"))
    if kind != "GitRepository":
        return f"its source is {kind} {ns}/{name}"
    sources = run.find(kind, ns, name)
    if not sources:
        return f"its source GitRepository {ns}/{name} is not defined"
    url = str(((sources[0].get("spec") or {}).get("url")) or "")
    if url.rstrip("/").removesuffix(".git") != run.cluster.gitops.repository.rstrip("/").removesuffix(".git"):
        return f"its source GitRepository {ns}/{name} is another repository ({url})"
    return None


def _post_process(ks: _Ks, built: list[_build.Built], run: _Run) -> list[Node]:
    """Substitution then commonMetadata for one build; problems recorded; the objects Flux would apply.

    kustomize-controller substitutes object by object inside its build and returns the first error (an invalid
    variable name, text envsubst cannot parse, YAML broken by a value): the Kustomization is then BuildFailed and
    none of its objects is applied. Such a failure is one finding on the Kustomization and its objects are not
    validated as if applied."""
    out: list[Node] = []
    post = ks.spec.get("postBuild")
    vars_: dict[str, str | None] = {}
    complete = True
    problems: list[str] = []
    if isinstance(post, Mapping):
        vars_, complete, problems = run.variables(ks)
    always = ks.spec.get("substituteStrategy") == "Always"
    runs = isinstance(post, Mapping) and bool(vars_ or always)
    if problems and runs and any(not substitution_disabled(b.obj) for b in built):
        run.add(ks.origin, ks.obj, "substitute", "; ".join(problems) + _failed(built), path=("spec", "postBuild"))
        return []
    common = ks.spec.get("commonMetadata") if isinstance(ks.spec.get("commonMetadata"), Mapping) else None
    for b in built:
        obj = b.obj
        if runs and not substitution_disabled(obj):

            def lookup(name: str) -> str | None:
                if name not in vars_:
                    return None
                value = vars_[name]
                return UNKNOWN if value is None else value

            try:
                obj, expansion = substitute_object(obj, lookup)
            except SubstitutionError as exc:
                line = run.files.line(b.file, b.obj) if b.file else None
                where = b.file or f"generated by Kustomization {ks.id}"
                where += f":{line}" if line else ""
                message = f"post build failed for {describe(b.obj)} ({where}): {exc}" + _failed(built)
                run.add(ks.origin, ks.obj, "substitute", message, path=("spec", "postBuild"))
                return []
            for name in expansion.missing:
                message = f"variable ${{{name}}} is not set (Kustomization {ks.id} substitutes it)"
                severity = "error"
                if not complete:
                    message += "; a source of its postBuild.substituteFrom is not readable here"
                    severity = "warning"
                run.add(b.file, b.obj, "substitute", message, needle="${" + name, severity=severity, owner=ks.id)
        if common is not None:
            meta = obj.setdefault("metadata", {})
            for key in ("labels", "annotations"):
                extra = common.get(key)
                if isinstance(extra, Mapping) and extra:
                    meta[key] = {**(meta.get(key) or {}), **{str(k): str(v) for k, v in extra.items()}}
        out.append(Node(obj, b.file, ks.id))
    return out


def _failed(built: Sequence[_build.Built]) -> str:
    return f" — Flux fails the whole Kustomization: none of its {len(built)} object(s) is applied (nor validated here)"


def _is_flux_ks(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Kustomization" and str(obj.get("apiVersion", "")).startswith(KS_GROUP + "/")


def validate_cluster(
    cluster: Cluster,
    *,
    repo: Path,
    runner: Runner,
    offline: bool = False,
    workers: int | None = None,
    kubectl: str | None = None,
    helm: str | None = None,
) -> ValidationReport:
    """Build and check everything Flux would apply to `cluster` from the repository at `repo`; with `helm` (the
    binary) also render every HelmRelease's chart and check what it renders."""
    from k8s_ops.bootstrap.manifests import root_kustomization

    kubectl = kubectl or _build.kubectl_binary()
    run = _Run(cluster, repo, runner, _Files(repo), _world(cluster))
    root = _Ks(dict(root_kustomization(cluster).manifest), None)
    level: list[_Ks] = [root]
    seen: set[str] = set()
    deferred: list[tuple[_Ks, list[_build.Built]]] = []
    count = 0
    build_seconds = 0.0
    pool_size = workers or max(2, os.cpu_count() or 2)

    def one(ks: _Ks) -> tuple[_Ks, list[_build.Built] | str, float]:
        started = time.perf_counter()
        try:
            result: list[_build.Built] | str = _build.run_build(
                runner, kubectl, repo, str(ks.spec.get("path", "")), ks.spec
            )
        except _build.BuildError as exc:
            result = exc.message
        return ks, result, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=pool_size) as pool:
        while level:
            todo = []
            for ks in level:
                if ks.id in seen:
                    continue
                seen.add(ks.id)
                why = _follow(ks, run)
                if why is not None:
                    run.notes.append(f"Kustomization {ks.id} not built: {why}")
                    continue
                todo.append(ks)
            results = list(pool.map(one, todo))
            level = []
            for ks, built, seconds in results:
                count += 1
                build_seconds += seconds
                if isinstance(built, str):
                    if ks.origin is None:  # the root Kustomization: its path is the inventory's gitops.path
                        run.findings.append(_inventory_finding(cluster, repo, ks, _relative(built, repo)))
                    else:
                        run.add(ks.origin, ks.obj, "build", _relative(built, repo), path=("spec", "path"))
                    continue
                mark = len(run.findings)
                nodes = _post_process(ks, built, run)
                if ks.id in run.waiting:  # its findings come from the second substitution below
                    del run.findings[mark:]
                    deferred.append((ks, built))
                run.extend(nodes)
                level.extend(_Ks(n.obj, n.origin) for n in nodes if _is_flux_ks(n.obj))

    # Flux reads substituteFrom sources from the cluster, where any Kustomization may have created them: once
    # every build is in, substitute again those whose source was not known yet (graph.py checks the ordering)
    for ks, built in deferred:
        run.waiting.discard(ks.id)
        run.drop(ks.id)
        run.extend(_post_process(ks, built, run))

    for issue in check_graph(run.nodes, run.world):
        run.add(issue.node.origin, issue.node.obj, "graph", issue.message, path=issue.path, owner=issue.node.owner)
    schemas = _check_schemas(run, offline=offline)
    if helm is not None:
        _render_charts(run, schemas, helm)
    order = sorted(run.findings, key=lambda f: (f.file, f.line or 0, f.object, f.message))
    return ValidationReport(
        cluster.name, tuple(order), tuple(run.notes), count, len(run.nodes), build_seconds, tuple(run.nodes)
    )


def _inventory_finding(cluster: Cluster, repo: Path, ks: _Ks, message: str) -> Finding:
    """A problem of the root Kustomization, placed on the inventory's `gitops.path` line."""
    file = cluster.file
    try:
        shown = file.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        shown = str(file)
    line = None
    try:
        for i, text in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if text.strip().startswith("path:") and cluster.gitops.path in text:
                line = i
                break
    except OSError:
        pass
    return Finding(shown, line, describe(ks.obj), "build", f"gitops.path: {message}")


def _relative(text: str, repo: Path) -> str:
    return text.replace(str(repo.resolve()) + "/", "").replace(str(repo) + "/", "")


def _check_schemas(run: _Run, *, offline: bool) -> SchemaSet:
    schemas = SchemaSet(run.cluster.kubernetes_version)
    missing_groups = {
        str(n.obj.get("apiVersion", "")).rsplit("/", 1)[0]
        for n in run.nodes
        if not SchemaSet.is_builtin_group(str(n.obj.get("apiVersion", "")))
    }
    files, notes = fetch_pins(missing_groups, offline=offline)
    run.notes.extend(notes)
    cached: list[dict[str, Any]] = []
    for file in files:
        try:
            cached.extend(
                d
                for d in yamlio.load_documents(yamlio.read_text(file), loader=_Loader)
                if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
            )
        except (OSError, yamlio.YAMLError) as exc:
            run.notes.append(f"unreadable cached CRD file {file}: {exc}")
    schemas.add_crds(cached)
    schemas.add_crds(n.obj for n in run.nodes if n.obj.get("kind") == "CustomResourceDefinition")
    skipped: dict[str, int] = {}
    for node in run.nodes:
        obj = node.obj
        if "sops" in obj:  # validated after decryption by Flux; its encrypted form is not the applied object
            continue
        findings = schemas.validate(obj)
        api_version = str(obj.get("apiVersion", ""))
        if findings is None:
            if SchemaSet.is_builtin_group(api_version):
                run.add(
                    node.origin,
                    obj,
                    "schema",
                    f"{obj.get('kind')} {api_version} is not a kind of Kubernetes {schemas.k8s_minor}",
                    path=("kind",),
                    owner=node.owner,
                )
            else:
                kind = f"{obj.get('kind')} ({api_version})"
                skipped[kind] = skipped.get(kind, 0) + 1
            continue
        for f in findings:
            where = ".".join(str(p) for p in f.path) or "(object)"
            run.add(node.origin, obj, "schema", f"{where}: {f.message}", path=f.path, owner=node.owner)
    for kind, n in sorted(skipped.items()):
        run.notes.append(f"no schema for {kind}: {n} object(s) not schema-checked")
    return schemas


def _render_charts(run: _Run, schemas: SchemaSet, helm: str) -> None:
    """`helm template` each HelmRelease and schema-check the result (findings on the HelmRelease's file)."""
    from k8s_ops.core.errors import last_error_line
    from k8s_ops.gitops.charts import chart_source, merged_values, template_command

    for node in (n for n in run.nodes if n.obj.get("kind") == "HelmRelease"):
        source = chart_source(node.obj, run.find)
        if isinstance(source, str):
            run.notes.append(f"--render-helm: {describe(node.obj)} not rendered: {source}")
            continue
        values, notes = merged_values(node.obj, run.find)
        run.notes.extend(f"--render-helm: {describe(node.obj)}: {n}" for n in notes)
        result = run.runner.run(template_command(helm, node.obj, source, values), check=False)
        if not result.ok:
            run.add(
                node.origin,
                node.obj,
                "helm",
                f"helm template {source.chart} failed: {last_error_line(result)}",
                path=("spec",),
                owner=node.owner,
            )
            continue
        try:
            rendered = [d for d in yamlio.load_documents(result.stdout, loader=_Loader) if isinstance(d, dict)]
        except yamlio.YAMLError as exc:
            run.add(node.origin, node.obj, "helm", f"helm template output is not YAML: {exc}", path=("spec",))
            continue
        for obj in rendered:
            for f in schemas.validate(obj) or []:
                where = ".".join(str(p) for p in f.path) or "(object)"
                run.add(
                    node.origin,
                    node.obj,
                    "helm",
                    f"chart renders {describe(obj)}: {where}: {f.message}",
                    path=("spec",),
                    owner=node.owner,
                )
