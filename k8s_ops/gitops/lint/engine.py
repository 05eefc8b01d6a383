"""Run the rules: read the linted trees, find the apps, know the clusters, apply severities and opt-outs.

Reading: the files under the config's `include` globs (repository-relative, `**` spans directories), each YAML
file parsed with line numbers in the toolkit's one YAML dialect (`k8s_ops.talos.yamlio`). Rules see the whole
tree (a rule about an app needs its other files); findings are reported for the files under the PATHs given
(default: everything) and, with `--cluster C`, not for another cluster's `clusters/<other>/` tree.

Opt-out: an object carrying `<prefix>lint-ignore: "GL012 why this object is an exception"` (several rules:
`GL012,GL018 why`; several lines for several reasons) does not report those rules. The reason is mandatory:
an opt-out without one, or naming an unknown rule, is itself a finding (GL008) and opts out of nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from k8s_ops.core.errors import Problem, ProblemsError
from k8s_ops.gitops.lint.config import LintConfig
from k8s_ops.gitops.lint.model import (
    RULES,
    App,
    ClusterFacts,
    Doc,
    Finding,
    Hit,
    Repo,
    RepoFile,
    Rule,
    as_severity,
    unique,
)
from k8s_ops.talos import yamlio

__all__ = ["LintResult", "OptOut", "glob_regex", "lint", "load_clusters", "opt_outs", "read_repo", "setting"]

_SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__"}


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A repository-relative glob as a regex: `**` any depth (also none), `*` and `?` within one path segment."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(f"^{out}$")


def _walk_roots(root: Path, patterns: Sequence[str]) -> list[Path]:
    """The directories to walk: each include glob's literal prefix (never the whole checkout with its .venv)."""
    out: set[Path] = set()
    for p in patterns:
        literal = []
        for part in p.split("/"):
            if any(ch in part for ch in "*?["):
                break
            literal.append(part)
        out.add(root.joinpath(*literal) if literal else root)
    return sorted(d for d in out if d.is_dir())


def _read(root: Path, path: Path) -> RepoFile:
    rel = path.relative_to(root).as_posix()
    if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
        # lint runs on pull requests: a link to a file outside the checkout is never read (nor quoted in a message)
        return RepoFile(rel, error="a symbolic link to a file outside the repository; not read")
    try:
        text = yamlio.read_text(path)
        located = yamlio.load_located_documents(text)
    except yamlio.YAMLError as exc:
        return RepoFile(rel, error=str(exc), error_line=exc.line)
    except OSError as exc:
        return RepoFile(rel, error=f"cannot read: {exc.strerror or exc}")
    docs = tuple(Doc(rel, i, d) for i, d in enumerate(located))
    return RepoFile(rel, docs, text=text)


def read_repo(root: Path, config: LintConfig) -> tuple[RepoFile, ...]:
    """Every YAML file (`.yaml`, `.yml`) under the include globs and not excluded, in path order."""
    include = [glob_regex(p) for p in config.include]
    exclude = [glob_regex(p) for p in config.exclude]
    seen: set[Path] = set()
    files: list[RepoFile] = []
    for top in _walk_roots(root, config.include):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for name in sorted(filenames):
                path = Path(dirpath) / name
                rel = path.relative_to(root).as_posix()
                if path in seen or not name.endswith((".yaml", ".yml")):
                    continue
                if any(r.match(rel) for r in include) and not any(r.match(rel) for r in exclude):
                    seen.add(path)
                    files.append(_read(root, path))
    return tuple(sorted(files, key=lambda f: f.path))


def find_apps(files: Sequence[RepoFile], config: LintConfig) -> tuple[App, ...]:
    """App directories: `<apps root>/<category>/<app>/` for every apps root glob (`clusters/*/apps` → that
    cluster's apps)."""
    roots = [glob_regex(p) for p in config.apps_roots]
    by_dir: dict[str, list[RepoFile]] = {}
    for f in files:
        parts = f.path.split("/")
        for n in range(1, len(parts) - 2):
            base = "/".join(parts[:n])
            if any(r.match(base) for r in roots):
                by_dir.setdefault("/".join(parts[: n + 2]), []).append(f)
                break
    apps = []
    for path, members in sorted(by_dir.items()):
        parts = path.split("/")
        m = re.match(r"^clusters/([^/]+)/", path)
        apps.append(App(path, parts[-2], parts[-1], m.group(1) if m else None, tuple(members)))
    return tuple(apps)


def load_clusters(root: Path, cluster: str | None, notes: list[str] | None = None) -> dict[str, ClusterFacts]:
    """What the inventory knows: `--cluster C` loads that cluster (its problems are errors); otherwise every
    cluster that loads. The inventory is `<root>/clusters/*/cluster.yaml` when the linted repository has one, else
    the toolkit's clusters dir (`K8S_OPS_CLUSTERS_DIR`)."""
    from k8s_ops.core import paths
    from k8s_ops.talos.inventory import Cluster, cluster_vars, load_all, load_cluster

    local = root / "clusters"
    cdir = local if any(local.glob("*/cluster.yaml")) else paths.clusters_dir()
    found: dict[str, Cluster] = {}
    if cluster is not None:
        found[cluster] = load_cluster(cluster, clusters_dir=cdir)
    else:
        try:
            found = load_all(cdir)
        except ProblemsError:
            for d in sorted(cdir.glob("*/cluster.yaml")):
                try:
                    found[d.parent.name] = load_cluster(d.parent.name, clusters_dir=cdir)
                except ProblemsError:
                    # a broken inventory is the inventory checks' business; lint uses what loads and says so
                    if notes is not None:
                        notes.append(f"the inventory of {d.parent.name} does not load: its literals are not checked")
    out = {}
    for name, c in found.items():
        cidrs = [str(c.network.node_cidr), str(c.network.pod_cidr), str(c.network.service_cidr)]
        lb = c.vars.get("CLUSTER_LB_CIDR")
        if isinstance(lb, str):
            cidrs.append(lb)
        out[name] = ClusterFacts(name, c.domain, tuple(cidrs), (str(c.endpoint),), tuple(cluster_vars(c)))
    return out


# --------------------------------------------------------------------------- opt-outs


_RULE_TOKEN = re.compile(r"^(GL\d{3}|[a-z0-9]+(?:-[a-z0-9]+)+)[,:]?$")


@dataclass(frozen=True)
class OptOut:
    """One line of an opt-out annotation: the rules it names, its reason, what is wrong with it (if anything)."""

    rules: tuple[str, ...]  # rule ids
    reason: str
    problem: str | None


def opt_outs(doc: Doc, config: LintConfig) -> list[OptOut]:
    value = doc.annotations.get(config.ignore_annotation)
    if value is None:
        return []
    if not isinstance(value, str):
        return [OptOut((), "", "must be a string: `GL012 reason…`")]
    by_name = {r.name: r.id for r in RULES.values()}
    out = []
    for line in value.splitlines() or [""]:
        tokens = line.replace(",", ", ").split()
        ids: list[str] = []
        unknown: list[str] = []
        while tokens:
            m = _RULE_TOKEN.match(tokens[0])
            if m is None:
                break
            token = m.group(1)
            if token in RULES:
                ids.append(token)
            elif token in by_name:
                ids.append(by_name[token])
            elif token.startswith("GL"):
                unknown.append(token)
            else:
                break  # a kebab-case word of the reason
            tokens.pop(0)
        reason = " ".join(tokens).strip(" -:")
        problem = None
        if unknown:
            problem = f"names unknown rule(s) {', '.join(unknown)}"
        elif not ids:
            problem = "names no rule: write `GL012 reason…`"
        elif not reason:
            problem = f"opts out of {', '.join(ids)} without a reason"
        out.append(OptOut(tuple(ids), reason, problem))
    return out


def _ignored(doc: Doc, config: LintConfig) -> frozenset[str]:
    return frozenset(r for o in opt_outs(doc, config) if o.problem is None for r in o.rules)


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class LintResult:
    findings: tuple[Finding, ...]
    files: int  # files in scope
    notes: tuple[str, ...] = ()

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)


def enabled_rules(config: LintConfig) -> list[Rule]:
    """The registered rules (the package imports `rules/`, which registers them) minus the ones the configuration
    turns `off`, in id order."""
    return [r for _, r in sorted(RULES.items()) if setting(config, r) != "off"]


def setting(config: LintConfig, r: Rule) -> str:
    """The rule's configured severity, or `off` (by id or name; else its default)."""
    return config.rules.get(r.id) or config.rules.get(r.name) or r.severity


def _in_scope(path: str, scope: Sequence[str], cluster: str | None) -> bool:
    if cluster is not None:
        m = re.match(r"^clusters/([^/]+)/", path)
        if m and m.group(1) != cluster:
            return False
    return not scope or any(path == s or path.startswith(s.rstrip("/") + "/") or s in {"", "."} for s in scope)


def lint(
    root: Path,
    config: LintConfig,
    *,
    scope: Sequence[str] = (),
    cluster: str | None = None,
    clusters: dict[str, ClusterFacts] | None = None,
) -> LintResult:
    """Lint the repository at `root`. `scope`: repository-relative paths to report on (default all);
    `clusters`: the inventory's facts (default: read with `load_clusters`)."""
    notes: list[str] = []
    facts = clusters if clusters is not None else load_clusters(root, cluster, notes)
    files = read_repo(root, config)
    repo = Repo(root, files, find_apps(files, config), config, facts, cluster)
    if not facts:
        notes.append("no cluster inventory found: cluster-specific literals (GL020) are not checked")
    findings: list[Finding] = []
    ignored: dict[tuple[str, int], frozenset[str]] = {}
    for r in enabled_rules(config):
        severity = setting(config, r)
        for hit in r.check(repo):
            if not _in_scope(hit.file, scope, cluster):
                continue
            if hit.doc is not None and r.id != "GL008":
                key = (hit.doc.file, hit.doc.index)
                if key not in ignored:
                    ignored[key] = _ignored(hit.doc, config)
                if r.id in ignored[key]:
                    continue
            findings.append(_finding(r, severity, hit))
    in_scope = sum(_in_scope(f.path, scope, cluster) for f in files)
    return LintResult(tuple(unique(findings)), in_scope, tuple(notes))


def _finding(r: Rule, severity: str, hit: Hit) -> Finding:
    obj = hit.doc.ref if hit.doc is not None else ""
    return Finding(r.id, r.name, as_severity(severity), hit.file, hit.line, hit.message, r.hint, obj)


def check_scope(root: Path, paths_: Iterable[str]) -> list[str]:
    """PATH arguments as repository-relative paths; ProblemsError for one outside the repository or missing."""
    root = root.resolve()
    out, problems = [], []
    for p in paths_:
        path = Path(p)
        if path.is_absolute():
            full = path.resolve()
        else:  # relative to the repository root when it names something there, else to the working directory
            full = (root / path if (root / path).exists() else Path.cwd() / path).resolve()
        try:
            rel = full.relative_to(root).as_posix()
        except ValueError:
            problems.append(Problem(p, "", f"not inside the repository {root}"))
            continue
        if not full.exists():
            problems.append(Problem(p, "", "no such file or directory"))
            continue
        out.append("" if rel == "." else rel)
    if problems:
        raise ProblemsError(problems)
    return out
