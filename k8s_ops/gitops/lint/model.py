"""What the lint rules see and what they return: the repository's YAML files parsed with line numbers, its apps,
and findings.

A rule is a small function `check(repo) -> Iterable[Hit]` registered with `rule(...)`; the engine (`engine.py`)
turns hits into `Finding`s with the configured severity, drops the ones an object opted out of, and reports the
rest. Rules never read files themselves: everything is in `Repo`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from k8s_ops.talos.yamlio import LocatedDocument

if TYPE_CHECKING:
    from k8s_ops.gitops.lint.config import LintConfig

__all__ = [
    "RULES",
    "App",
    "ClusterFacts",
    "Doc",
    "Finding",
    "Hit",
    "Repo",
    "RepoFile",
    "Rule",
    "Severity",
    "as_severity",
    "dig",
    "rule",
    "strings",
]

Severity = Literal["error", "warning", "info"]


def as_severity(value: str) -> Severity:
    """A configured setting other than `off` as a Severity."""
    for severity in _SEVERITIES:
        if value == severity:
            return severity
    raise ValueError(f"not a severity: {value!r}")


_SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


# --------------------------------------------------------------------------- repository model


def dig(data: Any, *path: str | int) -> Any:
    """`data[p0][p1]…`, or None when a step is missing or the shape differs."""
    cur = data
    for part in path:
        if isinstance(part, int) and isinstance(cur, list) and 0 <= part < len(cur):
            cur = cur[part]
        elif isinstance(part, str) and isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
    return cur


def strings(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string value (not key) under `data` with its path."""
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for k, v in data.items():
            yield from strings(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from strings(v, (*path, i))


@dataclass(frozen=True)
class Doc:
    """One YAML document (a Kubernetes object) of a repository file."""

    file: str  # repository-relative, POSIX
    index: int  # 0-based position in the file
    located: LocatedDocument = field(repr=False)

    @property
    def data(self) -> Any:
        return self.located.data

    def get(self, *path: str | int) -> Any:
        return dig(self.data, *path)

    def line(self, *path: str | int) -> int:
        return self.located.line(path)

    @property
    def api_version(self) -> str:
        v = self.get("apiVersion")
        return v if isinstance(v, str) else ""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def kind(self) -> str:
        v = self.get("kind")
        return v if isinstance(v, str) else ""

    @property
    def name(self) -> str:
        v = self.get("metadata", "name")
        return v if isinstance(v, str) else ""

    @property
    def namespace(self) -> str:
        v = self.get("metadata", "namespace")
        return v if isinstance(v, str) else ""

    def mapping(self, *path: str | int) -> dict[str, Any]:
        v = self.get(*path)
        return {str(k): x for k, x in v.items()} if isinstance(v, dict) else {}

    @property
    def annotations(self) -> dict[str, Any]:
        return self.mapping("metadata", "annotations")

    @property
    def labels(self) -> dict[str, Any]:
        return self.mapping("metadata", "labels")

    def is_(self, group: str, kind: str) -> bool:
        return self.group == group and self.kind == kind

    @property
    def ref(self) -> str:
        """`Kind/namespace/name` (or `Kind/name`), as findings name the object."""
        if not self.kind:
            return ""
        parts = [self.kind, self.namespace, self.name] if self.namespace else [self.kind, self.name]
        return "/".join(p for p in parts if p)


@dataclass(frozen=True)
class RepoFile:
    """A file under the linted trees; `docs` is empty and `error` set when its YAML cannot be read."""

    path: str  # repository-relative, POSIX
    docs: tuple[Doc, ...] = ()
    error: str | None = None
    error_line: int | None = None
    text: str = field(default="", repr=False)

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]


@dataclass(frozen=True)
class App:
    """An app directory: `<apps root>/<category>/<app>/` with its `ks.yaml` and `app/`."""

    path: str  # repository-relative directory
    category: str
    name: str
    cluster: str | None  # None: shared by every cluster (`kubernetes/apps`)
    files: tuple[RepoFile, ...]

    @property
    def docs(self) -> Iterator[Doc]:
        for f in self.files:
            yield from f.docs

    @property
    def ks_docs(self) -> tuple[Doc, ...]:
        """The Flux Kustomizations of the app's `ks.yaml`."""
        return tuple(
            d
            for f in self.files
            if f.path == f"{self.path}/ks.yaml"
            for d in f.docs
            if d.is_("kustomize.toolkit.fluxcd.io", "Kustomization")
        )

    @property
    def ks_names(self) -> frozenset[str]:
        return frozenset(d.name for d in self.ks_docs)

    @property
    def depends_on(self) -> frozenset[str]:
        out: set[str] = set()
        for d in self.ks_docs:
            deps = d.get("spec", "dependsOn")
            for dep in deps if isinstance(deps, list) else []:
                name = dig(dep, "name")
                if isinstance(name, str):
                    out.add(name)
        return frozenset(out)

    def text(self) -> str:
        """The app's manifests (every file but ks.yaml) as one text, for marker searches."""
        ks = f"{self.path}/ks.yaml"
        return "\n".join(f.text for f in self.files if f.path != ks)


@dataclass(frozen=True)
class ClusterFacts:
    """What the inventory knows about one cluster that must never be written literally in the repository."""

    name: str
    domain: str
    cidrs: tuple[str, ...]  # node, pod, service (and LB when the inventory has one)
    addresses: tuple[str, ...]  # the API VIP
    variables: tuple[str, ...] = ()  # its cluster-vars keys


_SUBST_NAME = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Repo:
    """Everything a rule may look at. `files` covers the whole linted tree (rules see the context); the engine
    reports only findings in `scope`."""

    root: Path
    files: tuple[RepoFile, ...]
    apps: tuple[App, ...]
    config: LintConfig
    clusters: Mapping[str, ClusterFacts]  # from the inventory; empty when none could be loaded
    cluster: str | None  # --cluster: shared files are checked for this cluster only

    @property
    def docs(self) -> Iterator[Doc]:
        for f in self.files:
            yield from f.docs

    def kinds(self, group: str, *kinds: str) -> Iterator[Doc]:
        for d in self.docs:
            if d.group == group and d.kind in kinds:
                yield d

    def clusters_of(self, path: str) -> tuple[str, ...]:
        """The clusters a file is applied to: its own under `clusters/<c>/`, else every known cluster (or the
        `--cluster` one)."""
        m = re.match(r"^clusters/([^/]+)/", path)
        if m:
            return (m.group(1),)
        if self.cluster is not None:
            return (self.cluster,)
        return tuple(sorted(set(self.clusters) | set(self.config.gateways.external)))

    @functools.cached_property
    def variables(self) -> frozenset[str]:
        """Every substitution variable the repository knows: cluster-vars keys (generated and the inventory's
        `vars`) and every `${NAME}` written anywhere in the linted trees."""
        from k8s_ops.talos.inventory import GENERATED_VARS

        names = set(GENERATED_VARS)
        for facts in self.clusters.values():
            names.update(facts.variables)
        for f in self.files:
            names.update(_SUBST_NAME.findall(f.text))
        return frozenset(names)



# --------------------------------------------------------------------------- rules and findings


@dataclass(frozen=True)
class Hit:
    """One place a rule is broken. `doc` is the object (for opt-outs and the finding's object name); file-level
    hits have none."""

    file: str
    line: int | None
    message: str
    doc: Doc | None = None

    @classmethod
    def at(cls, doc: Doc, message: str, *path: str | int) -> Hit:
        return cls(doc.file, doc.line(*path), message, doc)


Check = Callable[["Repo"], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    """A rule of the repository's rulebook: id, kebab-case name, default severity, what it checks, how to fix."""

    id: str
    name: str
    severity: Severity
    summary: str
    hint: str
    check: Check = field(compare=False, repr=False)

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "severity": self.severity, "summary": self.summary,
                "hint": self.hint}  # fmt: skip


RULES: dict[str, Rule] = {}


def rule(id: str, name: str, severity: Severity, summary: str, hint: str) -> Callable[[Check], Check]:
    """Register a rule; ids and names are unique."""

    def register(fn: Check) -> Check:
        assert id not in RULES and all(r.name != name for r in RULES.values()), f"duplicate rule {id} {name}"
        RULES[id] = Rule(id, name, severity, summary, hint, fn)
        return fn

    return register


@dataclass(frozen=True)
class Finding:
    """A hit as reported: rule, severity (after configuration), where, what, how to fix."""

    rule: str
    name: str
    severity: Severity
    file: str
    line: int | None
    message: str
    hint: str
    object: str = ""

    @property
    def where(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"

    def __str__(self) -> str:
        obj = f" [{self.object}]" if self.object else ""
        return f"{self.where}: {self.severity} {self.rule} {self.name}: {self.message}{obj}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "name": self.name,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "object": self.object or None,
            "message": self.message,
            "hint": self.hint,
        }


def sort_key(f: Finding) -> tuple[str, int, str, str]:
    return (f.file, f.line or 0, f.rule, f.message)


def unique(items: Sequence[Finding]) -> list[Finding]:
    return sorted(dict.fromkeys(items), key=sort_key)
