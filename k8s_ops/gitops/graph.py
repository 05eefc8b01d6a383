"""The object graph Flux would apply: duplicates, dependsOn, cycles, sources, HelmRelease charts and values.

Reference defaults follow the Flux APIs (kustomize.toolkit.fluxcd.io/v1, helm.toolkit.fluxcd.io/v2; FIDELITY.md):
a `sourceRef`/`dependsOn`/`chartRef` without `namespace` means the referring object's namespace; Kustomization
`dependsOn` names Kustomizations, HelmRelease `dependsOn` names HelmReleases; `valuesFrom` and `substituteFrom`
name ConfigMaps/Secrets in the referring object's own namespace, `optional: true` may be missing. A Secret may
also come from an ExternalSecret (`spec.target.name`, default the ExternalSecret's name) in the same namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["GraphIssue", "Key", "Node", "check_graph", "key_of"]

Key = tuple[str, str, str, str]  # group, kind, namespace, name

SOURCE_KINDS = ("GitRepository", "OCIRepository", "HelmRepository", "Bucket", "HelmChart", "ExternalArtifact")


@dataclass(frozen=True)
class Node:
    """One object Flux applies and where it is defined (`origin`: the repository file; `owner`: the Kustomization)."""

    obj: Mapping[str, Any]
    origin: str | None
    owner: str


@dataclass(frozen=True)
class GraphIssue:
    """A graph problem on `node` at the field `path`."""

    node: Node
    path: tuple[str | int, ...]
    message: str


def _group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (
        _group(str(obj.get("apiVersion", ""))),
        str(obj.get("kind", "")),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )


def _ns(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


class _Index:
    def __init__(self, nodes: Sequence[Node], world: Iterable[Mapping[str, Any]]) -> None:
        self.by_kind: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
        for obj in [*(n.obj for n in nodes), *world]:
            _, kind, ns, name = key_of(obj)
            self.by_kind.setdefault((kind, ns, name), []).append(obj)
            if kind == "ExternalSecret":
                target = (_spec(obj).get("target") or {}).get("name") or name
                self.by_kind.setdefault(("Secret", ns, str(target)), []).append(obj)

    def has(self, kind: str, ns: str, name: str) -> bool:
        return (kind, ns, name) in self.by_kind


def _ref(ref: Any, default_ns: str) -> tuple[str, str, str] | None:
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
        return None
    return str(ref.get("kind") or ""), str(ref.get("namespace") or default_ns), ref["name"]


def check_graph(nodes: Sequence[Node], world: Iterable[Mapping[str, Any]] = ()) -> list[GraphIssue]:
    """Every graph problem among `nodes` (the repository's objects), with `world` (what bootstrap creates) known."""
    issues: list[GraphIssue] = []
    world = list(world)
    index = _Index(nodes, world)
    order = _Order(nodes, world)

    seen: dict[Key, Node] = {}
    for node in nodes:
        k = key_of(node.obj)
        if k in seen:
            first = seen[k]
            where = first.origin or first.owner
            issues.append(
                GraphIssue(
                    node,
                    ("metadata", "name"),
                    f"duplicate {k[1]} {k[2]}/{k[3]}: also defined in {where} (Kustomization {first.owner})",
                )
            )
        else:
            seen[k] = node

    deps: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {}
    for node in nodes:
        obj = node.obj
        kind = str(obj.get("kind", ""))
        ns = _ns(obj)
        name = str((obj.get("metadata") or {}).get("name") or "")
        spec = _spec(obj)
        flux_ks = kind == "Kustomization" and _group(str(obj.get("apiVersion", ""))) == "kustomize.toolkit.fluxcd.io"
        flux_hr = kind == "HelmRelease"
        if not (flux_ks or flux_hr):
            continue
        for i, dep in enumerate(spec.get("dependsOn") or []):
            ref = _ref(dep, ns)
            if ref is None:
                continue
            _, dns, dname = ref
            if not index.has(kind, dns, dname):
                issues.append(
                    GraphIssue(
                        node,
                        ("spec", "dependsOn", i),
                        f"dependsOn {kind} {dns}/{dname}, which is not defined for this cluster",
                    )
                )
            deps.setdefault((kind, ns, name), []).append((kind, dns, dname))
        if flux_ks:
            ref = _ref(spec.get("sourceRef"), ns)
            if ref is None:
                issues.append(GraphIssue(node, ("spec", "sourceRef"), "sourceRef is missing"))
            elif not index.has(*ref):
                issues.append(
                    GraphIssue(
                        node,
                        ("spec", "sourceRef"),
                        f"sourceRef {ref[0]} {ref[1]}/{ref[2]} is not defined for this cluster",
                    )
                )
            post = spec.get("postBuild") or {}
            for i, src in enumerate(post.get("substituteFrom") or [] if isinstance(post, Mapping) else []):
                sref = _ref(src, ns)
                if sref is None or (isinstance(src, Mapping) and src.get("optional")):
                    continue
                if not index.has(sref[0], ns, sref[2]):
                    issues.append(
                        GraphIssue(
                            node,
                            ("spec", "postBuild", "substituteFrom", i),
                            f"substituteFrom {sref[0]} {ns}/{sref[2]} is not defined (and not optional)",
                        )
                    )
                    continue
                problem = order.problem(f"{ns}/{name}", (sref[0], ns, sref[2]))
                if problem is not None:
                    issues.append(GraphIssue(node, ("spec", "postBuild", "substituteFrom", i), problem))
        if flux_hr:
            chart = (spec.get("chart") or {}).get("spec") if isinstance(spec.get("chart"), Mapping) else None
            chart_ref = spec.get("chartRef")
            if isinstance(chart_ref, Mapping):
                ref = _ref(chart_ref, ns)
                if ref is not None and not index.has(*ref):
                    issues.append(
                        GraphIssue(
                            node,
                            ("spec", "chartRef"),
                            f"chartRef {ref[0]} {ref[1]}/{ref[2]} is not defined for this cluster",
                        )
                    )
            elif isinstance(chart, Mapping):
                ref = _ref(chart.get("sourceRef"), ns)
                if ref is not None and not index.has(*ref):
                    issues.append(
                        GraphIssue(
                            node,
                            ("spec", "chart", "spec", "sourceRef"),
                            f"chart source {ref[0]} {ref[1]}/{ref[2]} is not defined for this cluster",
                        )
                    )
            else:
                issues.append(GraphIssue(node, ("spec",), "neither spec.chart nor spec.chartRef is set"))
            for i, vf in enumerate(spec.get("valuesFrom") or []):
                vref = _ref(vf, ns)
                if vref is None or (isinstance(vf, Mapping) and vf.get("optional")):
                    continue
                if not index.has(vref[0], ns, vref[2]):
                    issues.append(
                        GraphIssue(
                            node,
                            ("spec", "valuesFrom", i),
                            f"valuesFrom {vref[0]} {ns}/{vref[2]} is not defined (and not optional)",
                        )
                    )

    by_id: dict[tuple[str, str, str], Node] = {}
    for node in nodes:
        k = key_of(node.obj)
        by_id.setdefault((k[1], k[2], k[3]), node)
    for cycle in _cycles(deps):
        head = by_id.get(cycle[0])
        if head is None:
            continue
        text = " → ".join(f"{n[1]}/{n[2]}" for n in (*cycle, cycle[0]))
        issues.append(GraphIssue(head, ("spec", "dependsOn"), f"dependsOn cycle: {text}"))
    return issues


class _Order:
    """Whether a `substituteFrom` source exists before its Kustomization builds.

    kustomize-controller reads the ConfigMap/Secret from the cluster at build time and fails the whole
    Kustomization while it is missing (fluxcd/pkg kustomize `LoadVariables`), retrying every retryInterval. It
    exists in time when bootstrap creates it, or an ancestor Kustomization (the one that applied this one, or its
    own ancestors) applies it, or this one `dependsOn` (transitively) the Kustomization that applies it. Applied by
    this Kustomization itself, by one it creates, or by one that depends on it, it never exists: a deadlock.
    """

    def __init__(self, nodes: Sequence[Node], world: Sequence[Mapping[str, Any]]) -> None:
        self.world = {key_of(o)[1:] for o in world}
        self.parent: dict[str, str] = {}
        self.deps: dict[str, set[str]] = {}
        self.owners: dict[tuple[str, str, str], list[str]] = {}
        for n in nodes:
            _, kind, ns, name = key_of(n.obj)
            self.owners.setdefault((kind, ns, name), []).append(n.owner)
            if kind == "ExternalSecret":
                target = (_spec(n.obj).get("target") or {}).get("name") or name
                self.owners.setdefault(("Secret", ns, str(target)), []).append(n.owner)
            if kind == "Kustomization" and _group(str(n.obj.get("apiVersion", ""))) == "kustomize.toolkit.fluxcd.io":
                me = f"{ns}/{name}"
                self.parent.setdefault(me, n.owner)
                for dep in _spec(n.obj).get("dependsOn") or []:
                    ref = _ref(dep, ns)
                    if ref is not None:
                        self.deps.setdefault(me, set()).add(f"{ref[1]}/{ref[2]}")

    def _ancestors(self, ks: str) -> list[str]:
        out: list[str] = []
        while ks in self.parent and self.parent[ks] not in out:  # a Kustomization applying itself: no loop
            ks = self.parent[ks]
            out.append(ks)
        return out

    def _depends(self, ks: str, on: str) -> bool:
        seen: set[str] = set()
        todo = [ks]
        while todo:
            cur = todo.pop()
            for dep in self.deps.get(cur, ()):
                if dep == on:
                    return True
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return False

    def problem(self, ks: str, source: tuple[str, str, str]) -> str | None:
        """Why `source` may not exist when Kustomization `ks` builds (None: it does)."""
        owners = self.owners.get(source, [])
        if source in self.world or not owners:
            return None
        ancestors = self._ancestors(ks)
        if any(o in ancestors or self._depends(ks, o) for o in owners):
            return None
        owner = owners[0]
        what = f"substituteFrom {source[0]} {source[1]}/{source[2]}"
        if owner == ks:
            return (
                f"{what} is defined by this Kustomization itself: Flux reads it from the cluster before applying, "
                "so the build fails until it exists and it never does (move it to a Kustomization this one dependsOn)"
            )
        if ks in self._ancestors(owner):
            return (
                f"{what} is defined by Kustomization {owner}, which this one creates: the build fails until it "
                "exists and it never does (move it to a Kustomization this one dependsOn)"
            )
        if self._depends(owner, ks):
            return f"{what} is defined by Kustomization {owner}, which dependsOn this one: neither ever becomes Ready"
        return f"{what} is defined by Kustomization {owner} (must exist before this one: add dependsOn)"


def _cycles(deps: Mapping[tuple[str, str, str], list[tuple[str, str, str]]]) -> list[list[tuple[str, str, str]]]:
    """Each elementary cycle once (found by DFS, reported from its smallest member)."""
    found: list[list[tuple[str, str, str]]] = []
    keys: set[tuple[tuple[str, str, str], ...]] = set()
    state: dict[tuple[str, str, str], int] = {}
    stack: list[tuple[str, str, str]] = []

    def visit(n: tuple[str, str, str]) -> None:
        state[n] = 1
        stack.append(n)
        for m in deps.get(n, []):
            if state.get(m) == 1:
                cycle = stack[stack.index(m) :]
                start = cycle.index(min(cycle))
                cycle = cycle[start:] + cycle[:start]
                if tuple(cycle) not in keys:
                    keys.add(tuple(cycle))
                    found.append(cycle)
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(deps):
        if n not in state:
            visit(n)
    return found
