"""`gitops.validate --render-helm`: render each HelmRelease's chart with `helm template` and check what it renders.

Where the chart comes from follows helm-controller v2 (FIDELITY.md): `spec.chartRef` to an OCIRepository (`url` +
`ref.tag`/`ref.semver`), or `spec.chart.spec` (`chart`, `version`) from a HelmRepository (`type: oci` → `url/chart`,
else `--repo url`). Values are the `valuesFrom` ConfigMaps (`valuesKey`, default `values.yaml`) merged in order, then
the inline `values` (helm-controller "Values references"); a Secret's values are not read (noted). Other chart
sources (GitRepository, Bucket, HelmChart, a digest pin) are skipped with a note.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from k8s_ops.core.command import Command
from k8s_ops.core.secret import Secret

__all__ = ["ChartSource", "chart_source", "merged_values", "template_command"]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Find = Callable[[str, str, str], list[Mapping[str, Any]]]


@dataclass(frozen=True)
class ChartSource:
    """What `helm template` needs: the chart reference, its version (None: latest), a repository URL for `--repo`."""

    chart: str
    version: str | None
    repo: str | None = None


def chart_source(hr: Mapping[str, Any], find: Find) -> ChartSource | str:
    """The chart of a HelmRelease, or why it cannot be rendered here."""
    spec = hr.get("spec") or {}
    ns = str((hr.get("metadata") or {}).get("namespace") or "")
    ref = spec.get("chartRef")
    if isinstance(ref, Mapping):
        kind, name = str(ref.get("kind")), str(ref.get("name"))
        if kind != "OCIRepository":
            return f"chartRef {kind} is not rendered"
        found = find(kind, str(ref.get("namespace") or ns), name)
        if not found:
            return f"OCIRepository {name} is not defined"
        src = found[0].get("spec") or {}
        oref = src.get("ref") or {}
        if oref.get("digest"):
            return "a digest-pinned OCIRepository is not rendered"
        version = oref.get("tag") or oref.get("semver")
        return ChartSource(str(src.get("url")), str(version) if version else None)
    chart = (spec.get("chart") or {}).get("spec") if isinstance(spec.get("chart"), Mapping) else None
    if not isinstance(chart, Mapping):
        return "no chart"
    sref = chart.get("sourceRef") or {}
    if sref.get("kind") != "HelmRepository":
        return f"a chart from a {sref.get('kind')} is not rendered"
    found = find("HelmRepository", str(sref.get("namespace") or ns), str(sref.get("name")))
    if not found:
        return f"HelmRepository {sref.get('name')} is not defined"
    repo = found[0].get("spec") or {}
    url = str(repo.get("url", "")).rstrip("/")
    version = str(chart["version"]) if chart.get("version") else None
    if repo.get("type") == "oci":
        return ChartSource(f"{url}/{chart.get('chart')}", version)
    return ChartSource(str(chart.get("chart")), version, url)


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def merged_values(hr: Mapping[str, Any], find: Find) -> tuple[dict[str, Any], list[str]]:
    """`valuesFrom` ConfigMaps in order, then inline values; notes for what could not be read."""
    spec = hr.get("spec") or {}
    ns = str((hr.get("metadata") or {}).get("namespace") or "")
    values: dict[str, Any] = {}
    notes: list[str] = []
    for ref in spec.get("valuesFrom") or []:
        if not isinstance(ref, Mapping):
            continue
        if ref.get("kind") != "ConfigMap" or ref.get("targetPath"):
            notes.append(f"valuesFrom {ref.get('kind')} {ref.get('name')} not read when rendering")
            continue
        found = find("ConfigMap", ns, str(ref.get("name")))
        text = (found[0].get("data") or {}).get(str(ref.get("valuesKey") or "values.yaml")) if found else None
        if isinstance(text, str):
            try:
                loaded = yaml.load(text, Loader=_Loader)
            except yaml.YAMLError:
                loaded = None
            if isinstance(loaded, Mapping):
                values = _merge(values, loaded)
    inline = spec.get("values")
    if isinstance(inline, Mapping):
        values = _merge(values, inline)
    return values, notes


def template_command(helm: str, hr: Mapping[str, Any], source: ChartSource, values: Mapping[str, Any]) -> Command:
    """`helm template <release> <chart> --namespace <ns> [--version v] [--repo url] --values -` (values on stdin)."""
    meta = hr.get("metadata") or {}
    spec = hr.get("spec") or {}
    release = str(spec.get("releaseName") or meta.get("name"))
    namespace = str(spec.get("targetNamespace") or meta.get("namespace") or "default")
    argv = [helm, "template", release, source.chart, "--namespace", namespace]
    if source.version:
        argv += ["--version", source.version]
    if source.repo:
        argv += ["--repo", source.repo]
    argv += ["--values", "-"]
    body = Secret(yaml.safe_dump(dict(values), sort_keys=False).encode())  # may hold substituted Secret values
    return Command(argv=tuple(argv), stdin=body, description="helm template", timeout=300)
