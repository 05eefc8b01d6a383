"""The bootstrap's pinned software: `bootstrap/charts.yaml` (releases, CRD bundles, Flux) and the values files.

`charts.yaml` is the ONE place a chart version is written; each version carries a `# renovate:` comment on
the line above so Renovate's regex manager proposes bumps (a version without one is a load error: it would
silently never be updated). Values are jinja2 templates in `bootstrap/values/` (StrictUndefined) rendered
from the inventory; a chart release is "unchanged" when helm reports the same chart version and exactly
these values.

Template context: `cluster` (the inventory model), `vars` (the cluster-vars data), `flux_version`,
`cluster_dns_ip` (the tenth address of the service CIDR, which Talos' kubelet uses as clusterDNS).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from k8s_ops.errors import Problem, ProblemsError

if TYPE_CHECKING:
    from talos.inventory import Cluster

__all__ = [
    "BOOTSTRAP_DIR",
    "CHARTS_FILE",
    "VALUES_DIR",
    "Charts",
    "CrdBundle",
    "Release",
    "RenderedValues",
    "cluster_dns_ip",
    "load_charts",
    "render_all_values",
    "render_values",
]

BOOTSTRAP_DIR: Final = Path(__file__).resolve().parent
CHARTS_FILE: Final = BOOTSTRAP_DIR / "charts.yaml"
VALUES_DIR: Final = BOOTSTRAP_DIR / "values"

_NAME = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
_RENOVATE = re.compile(r"^\s*#\s*renovate:\s*datasource=\S+\s+depName=\S+")
_VERSION_KEY = re.compile(r"^(\s*)(-\s+)?version:\s*\S")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Release(_Model):
    """One helm release: chart reference, pinned version, namespace and values template."""

    name: str = Field(pattern=_NAME)
    namespace: str = Field(pattern=_NAME)
    chart: str = Field(min_length=1)
    version: str = Field(pattern=r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]*)?$")
    values: str = Field(pattern=r"^[A-Za-z0-9._-]+\.yaml\.j2$")


class CrdBundle(_Model):
    """A set of CRDs applied from a URL before any release (e.g. the Gateway API)."""

    name: str = Field(pattern=_NAME)
    version: str = Field(pattern=r"^v?\d+\.\d+\.\d+$")
    url: str = Field(pattern=r"^https://\S+$")
    version_annotation: str | None = Field(default=None, alias="versionAnnotation")
    names: tuple[str, ...] = Field(min_length=1)

    @property
    def resolved_url(self) -> str:
        """`url` with `{version}` replaced."""
        return self.url.replace("{version}", self.version)


class _Flux(_Model):
    version: str = Field(pattern=r"^v?\d+\.\d+\.\d+$")


class Charts(_Model):
    """Everything charts.yaml pins."""

    releases: tuple[Release, ...] = Field(min_length=1)
    crds: tuple[CrdBundle, ...] = ()
    flux: _Flux

    @property
    def flux_version(self) -> str:
        return self.flux.version

    def release(self, name: str) -> Release:
        for r in self.releases:
            if r.name == name:
                return r
        raise KeyError(f"no release {name!r} in {CHARTS_FILE}")


@dataclass(frozen=True)
class RenderedValues:
    """A release's values for one cluster: the YAML handed to helm and the parsed mapping."""

    release: Release
    text: bytes
    data: Mapping[str, Any]


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


def _renovate_problems(path: Path, text: str) -> list[Problem]:
    """Every `version:` line needs a `# renovate: datasource=… depName=…` comment on the line above."""
    problems: list[Problem] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _VERSION_KEY.match(line) and not (i > 0 and _RENOVATE.match(lines[i - 1])):
            problems.append(
                Problem(
                    str(path),
                    "version",
                    "a pinned version needs a `# renovate: datasource=… depName=…` comment on the line above "
                    "(without it Renovate never proposes updates)",
                    i + 1,
                )
            )
    return problems


def load_charts(path: Path | None = None) -> Charts:
    """Load and validate charts.yaml; ProblemsError listing every problem (file, field, line)."""
    file = path or CHARTS_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProblemsError([Problem(str(file), "", f"cannot read: {exc.strerror}")]) from None
    problems = _renovate_problems(file, text)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ProblemsError([Problem(str(file), "", f"YAML syntax error: {exc}", line)]) from None
    charts: Charts | None = None
    try:
        charts = Charts.model_validate(raw)
    except ValidationError as exc:
        problems += [Problem(str(file), _field(tuple(e["loc"])), e["msg"]) for e in exc.errors()]
    if charts is not None:
        seen: set[str] = set()
        for i, r in enumerate(charts.releases):
            if r.name in seen:
                problems.append(Problem(str(file), f"releases[{i}].name", f"duplicate release {r.name!r}"))
            seen.add(r.name)
            values_file = file.parent / "values" / r.values
            if not values_file.is_file():
                problems.append(Problem(str(file), f"releases[{i}].values", f"values file {values_file} not found"))
        for i, c in enumerate(charts.crds):
            if "{version}" not in c.url and c.version not in c.url:
                problems.append(
                    Problem(str(file), f"crds[{i}].url", "the url must contain {version} (or the version itself)")
                )
    if problems:
        raise ProblemsError(problems)
    assert charts is not None
    return charts


def cluster_dns_ip(cluster: Cluster) -> str:
    """The tenth address of the service CIDR: Talos' kubelet `clusterDNS` default, so CoreDNS must use it."""
    net = ipaddress.ip_network(str(cluster.network.service_cidr))
    return str(net[10])


def _environment(values_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(values_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _context(cluster: Cluster, charts: Charts) -> dict[str, Any]:
    from talos.inventory import cluster_vars

    return {
        "cluster": cluster,
        "vars": cluster_vars(cluster),
        "flux_version": charts.flux_version,
        "cluster_dns_ip": cluster_dns_ip(cluster),
    }


def _render(env: jinja2.Environment, release: Release, ctx: Mapping[str, Any], values_dir: Path) -> RenderedValues:
    path = values_dir / release.values
    try:
        text = env.get_template(release.values).render(**ctx)
    except jinja2.TemplateSyntaxError as exc:
        raise ProblemsError([Problem(str(path), "", f"template syntax error: {exc.message}", exc.lineno)]) from None
    except jinja2.UndefinedError as exc:
        raise ProblemsError([Problem(str(path), "", f"undefined in template: {exc.message}")]) from None
    except jinja2.TemplateNotFound:
        raise ProblemsError([Problem(str(path), "", "values file not found")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ProblemsError(
            [Problem(str(path), "", f"rendered values are not valid YAML: {exc}", mark.line + 1 if mark else None)]
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProblemsError([Problem(str(path), "", "rendered values must be a mapping")])
    return RenderedValues(release, text.encode(), data)


def render_values(
    release: Release, cluster: Cluster, charts: Charts, *, values_dir: Path | None = None
) -> RenderedValues:
    """Render one release's values for `cluster`."""
    vdir = values_dir or VALUES_DIR
    return _render(_environment(vdir), release, _context(cluster, charts), vdir)


def render_all_values(cluster: Cluster, charts: Charts, *, values_dir: Path | None = None) -> dict[str, RenderedValues]:
    """Every release's values, by release name; all template problems at once."""
    vdir = values_dir or VALUES_DIR
    env = _environment(vdir)
    ctx = _context(cluster, charts)
    out: dict[str, RenderedValues] = {}
    problems: list[Problem] = []
    for release in charts.releases:
        try:
            out[release.name] = _render(env, release, ctx, vdir)
        except ProblemsError as exc:
            problems += exc.problems
    if problems:
        raise ProblemsError(problems)
    return out
