"""`gitops.validate` output: text grouped by file, JSON, or GitHub Actions workflow annotations.

GitHub's workflow command syntax (docs.github.com, "Workflow commands for GitHub Actions"): `::error
file={name},line={line},title={title}::{message}`; property values escape `%`, CR, LF, `:` and `,`, messages
escape `%`, CR and LF.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import groupby

from k8s_ops.core.github import escape_data, escape_property
from k8s_ops.gitops.validate import Finding, ValidationReport

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "json", "github")


def _where(f: Finding) -> str:
    return f"{f.file}:{f.line}" if f.line is not None else f.file


def _text(reports: Sequence[ValidationReport]) -> str:
    out: list[str] = []
    for report in reports:
        errors = len(report.errors)
        warnings = len(report.findings) - errors
        for file, group in groupby(report.findings, key=lambda f: f.file):
            out.append(file)
            for f in group:
                out.append(f"  {_where(f)}: {f.severity}: {f.object}: {f.message} [{f.check}]")
        for note in report.notes:
            out.append(f"note: {note}")
        verdict = "clean" if errors == 0 else f"{errors} error(s)"
        out.append(
            f"cluster {report.cluster}: {report.kustomizations} Kustomization(s), {report.objects} object(s): "
            f"{verdict}" + (f", {warnings} warning(s)" if warnings else "")
        )
    return "\n".join(out) + "\n"


def _json(reports: Sequence[ValidationReport]) -> str:
    data = [
        {
            "cluster": r.cluster,
            "ok": not r.errors,
            "kustomizations": r.kustomizations,
            "objects": r.objects,
            "findings": [f.to_json() for f in r.findings],
            "notes": list(r.notes),
        }
        for r in reports
    ]
    return json.dumps({"ok": all(d["ok"] for d in data), "clusters": data}, indent=2) + "\n"


def _github(reports: Sequence[ValidationReport]) -> str:
    out: list[str] = []
    for r in reports:
        for f in r.findings:
            level = "error" if f.severity == "error" else "warning"
            props = [f"file={escape_property(f.file)}"]
            if f.line is not None:
                props.append(f"line={f.line}")
            props.append(f"title={escape_property(f'gitops.validate {r.cluster} {f.check}')}")
            out.append(f"::{level} {','.join(props)}::{escape_data(f'{f.object}: {f.message}')}")
        for note in r.notes:
            out.append(f"::notice title={escape_property(f'gitops.validate {r.cluster}')}::{escape_data(note)}")
    return "\n".join(out) + ("\n" if out else "")


def render(reports: Sequence[ValidationReport], fmt: str) -> str:
    """The reports in `fmt` (one of FORMATS)."""
    if fmt == "json":
        return _json(reports)
    if fmt == "github":
        return _github(reports)
    return _text(reports)
