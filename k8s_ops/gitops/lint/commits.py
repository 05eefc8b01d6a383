"""Commit subjects: `<type>(<scope>): <description>` with the repository's types and scopes (GL035).

The subjects come from `git log` (k8s_ops.tools.git) through the runner; the check itself is pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from k8s_ops.gitops.lint.config import Commits
from k8s_ops.gitops.lint.model import RULES, Finding, Hit, Repo, as_severity, rule
from k8s_ops.tools.git import LogEntry

__all__ = ["check_subject", "commit_findings"]

_SUBJECT = re.compile(r"^(?P<type>[a-z]+)(?:\((?P<scope>[^)]*)\))?(?P<bang>!)?: (?P<desc>.*)$")
_SCOPE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@rule("GL035", "commit-message", "error",
      "commit subjects read `<type>(<scope>): <description>` with the repository's types and scopes "
      "(`--commits RANGE`)",
      "reword the commit (git commit --amend / rebase -i), e.g. `fix(apps): correct the odoo route`")  # fmt: skip
def _commit_message(repo: Repo) -> Iterator[Hit]:
    return iter(())  # commits are not files: `commit_findings` checks them when --commits is given


def check_subject(subject: str, cfg: Commits) -> list[str]:
    """What is wrong with one subject (empty when it is right)."""
    m = _SUBJECT.match(subject)
    if m is None:
        return [f"{subject!r} is not `<type>(<scope>): <description>`"]
    problems = []
    kind, scope, desc = m.group("type"), m.group("scope"), m.group("desc")
    if kind not in cfg.types:
        problems.append(f"type {kind!r} is not one of {', '.join(cfg.types)}")
    if scope is None:
        if cfg.scope_required:
            problems.append(f"no (scope); one of {', '.join(cfg.scopes)}" if cfg.scopes else "no (scope)")
    elif cfg.scopes and scope not in cfg.scopes:
        problems.append(f"scope {scope!r} is not one of {', '.join(cfg.scopes)}")
    elif not cfg.scopes and not _SCOPE.match(scope):
        problems.append(f"scope {scope!r} is not kebab-case")
    if not desc.strip():
        problems.append("empty description")
    if cfg.max_length is not None and len(subject) > cfg.max_length:
        problems.append(f"subject is {len(subject)} characters, at most {cfg.max_length}")
    return problems


def commit_findings(entries: Iterable[LogEntry], cfg: Commits, severity: str | None = None) -> list[Finding]:
    r = RULES["GL035"]
    sev = as_severity(severity or r.severity)
    out = []
    for e in entries:
        for problem in check_subject(e.subject, cfg):
            out.append(Finding(r.id, r.name, sev, f"commit {e.commit[:12]}", None, problem, r.hint, e.subject))
    return out
