"""`gitops.lint` output: text grouped by file, JSON, or GitHub Actions workflow annotations; `--list-rules`.

Same three formats and the same GitHub escaping as `gitops.validate` (k8s_ops/gitops/report.py, whose escapes are
reused here); findings differ (rule id, name and fix hint), so the rendering is lint's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from itertools import groupby

from k8s_ops.core.github import escape_data, escape_property
from k8s_ops.gitops.lint.engine import LintResult
from k8s_ops.gitops.lint.model import Finding, Rule
from k8s_ops.gitops.report import FORMATS

__all__ = ["FORMATS", "render", "render_rules"]


def _text(result: LintResult) -> str:
    out: list[str] = []
    for file, group in groupby(result.findings, key=lambda f: f.file):
        out.append(file)
        for f in group:
            obj = f"{f.object}: " if f.object else ""
            out.append(f"  {f.where}: {f.severity}: {obj}{f.message} [{f.rule} {f.name}]")
            out.append(f"      fix: {f.hint}")
    for note in result.notes:
        out.append(f"note: {note}")
    others = len(result.findings) - result.errors - result.warnings
    counts = [f"{result.errors} error(s)", f"{result.warnings} warning(s)"] + ([f"{others} info"] if others else [])
    verdict = "clean" if not result.findings else ", ".join(counts)
    out.append(f"gitops.lint: {result.files} file(s): {verdict}")
    return "\n".join(out) + "\n"


def _json(result: LintResult) -> str:
    data = {
        "ok": result.errors == 0,
        "files": result.files,
        "errors": result.errors,
        "warnings": result.warnings,
        "findings": [f.to_json() for f in result.findings],
        "notes": list(result.notes),
    }
    return json.dumps(data, indent=2) + "\n"


def _annotation(f: Finding) -> str:
    level = {"error": "error", "warning": "warning"}.get(f.severity, "notice")
    props = [f"file={escape_property(f.file)}"] if not f.file.startswith("commit ") else []
    if f.line is not None:
        props.append(f"line={f.line}")
    props.append(f"title={escape_property(f'{f.rule} {f.name}')}")
    obj = f"{f.object}: " if f.object else ""
    return f"::{level} {','.join(props)}::{escape_data(f'{obj}{f.message}' + chr(10) + f'fix: {f.hint}')}"


def _github(result: LintResult) -> str:
    out = [_annotation(f) for f in result.findings]
    out += [f"::notice title=gitops.lint::{escape_data(n)}" for n in result.notes]
    return "\n".join(out) + ("\n" if out else "")


def render(result: LintResult, fmt: str) -> str:
    """The result in `fmt` (one of FORMATS)."""
    if fmt == "json":
        return _json(result)
    if fmt == "github":
        return _github(result)
    return _text(result)


def render_rules(rules: Sequence[Rule], severities: Mapping[str, str], *, as_json: bool = False) -> str:
    """`--list-rules`: every rule with its configured severity (`off` when disabled), what it checks, the fix."""
    if as_json:
        data = [{**r.to_json(), "severity": severities[r.id]} for r in rules]
        return json.dumps(data, indent=2) + "\n"
    out = []
    for r in rules:
        out.append(f"{r.id} {r.name} [{severities[r.id]}]")
        out.append(f"    {r.summary}")
        out.append(f"    fix: {r.hint}")
    return "\n".join(out) + "\n"
