"""The bootstrap's pinned software: `k8s_ops/bootstrap/charts.yaml` (releases, CRD bundles, Flux) and the values files.

`charts.yaml` is the ONE place a chart version is written; each version carries a `# renovate:` comment on
the line above so Renovate's regex manager proposes bumps (a version without one is a load error: it would
silently never be updated). Values are jinja2 templates in `k8s_ops/bootstrap/values/` (StrictUndefined) rendered
from the inventory; a chart release is "unchanged" when helm reports the same chart version and exactly
these values.

Template context: `cluster` (the inventory model), `vars` (the cluster-vars data), `flux_version`,
`cluster_dns_ip` (the tenth address of the service CIDR, which Talos' kubelet uses as clusterDNS).

CRD bundles (`crds:`) are applied from a release URL. A bundle that stamps its version and channel on each CRD
(the Gateway API does: `gateway.networking.k8s.io/bundle-version` and `/channel`) is compared with what the
cluster has before anything is applied (`crd_verdict`): "same channel, version >= pinned" is done, an older one
is upgraded, and CRDs that something else already moved past the pin are never downgraded. That follows
kubernetes-sigs/gateway-api v1.4.1 site-src/guides/crd-management.md: whoever installs the CRDs must never
"Overwrite Gateway API CRDs that have unrecognized or newer versions", nor "that have a different release
channel", and should "Avoid moving backwards".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from k8s_ops.core.errors import Problem, ProblemsError, field_path
from k8s_ops.talos import yamlio

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Cluster

__all__ = [
    "BOOTSTRAP_DIR",
    "CHARTS_FILE",
    "VALUES_DIR",
    "Charts",
    "CrdBundle",
    "CrdVerdict",
    "InstalledCrd",
    "Release",
    "RenderedValues",
    "cluster_dns_ip",
    "crd_bundles",
    "crd_verdict",
    "load_charts",
    "render_all_values",
    "render_values",
]

BOOTSTRAP_DIR: Final = Path(__file__).resolve().parent
CHARTS_FILE: Final = BOOTSTRAP_DIR / "charts.yaml"
VALUES_DIR: Final = BOOTSTRAP_DIR / "values"

_NAME = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
GATEWAY_API: Final = "gateway-api"  # the bundle the inventory's `gatewayAPI` settings apply to
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


STANDARD_CHANNEL: Final = "standard"


class CrdBundle(_Model):
    """A set of CRDs applied from a URL before any release (e.g. the Gateway API).

    `names` are the CRDs of the standard channel; `channelNames` lists what each other channel adds. `channel`
    is the one charts.yaml installs unless the inventory picks another (`crd_bundles`).
    """

    name: str = Field(pattern=_NAME)
    version: str = Field(pattern=r"^v?\d+\.\d+\.\d+$")
    url: str = Field(pattern=r"^https://\S+$")
    version_annotation: str | None = Field(default=None, alias="versionAnnotation")
    channel_annotation: str | None = Field(default=None, alias="channelAnnotation")
    channel: str | None = Field(default=None, pattern=_NAME)
    names: tuple[str, ...] = Field(min_length=1)
    channel_names: dict[str, tuple[str, ...]] = Field(default_factory=dict, alias="channelNames")

    @property
    def resolved_url(self) -> str:
        """`url` with `{version}` and `{channel}` replaced."""
        return self.url.replace("{version}", self.version).replace("{channel}", self.channel or STANDARD_CHANNEL)

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel this bundle is published in (`standard` plus `channelNames`)."""
        return (STANDARD_CHANNEL, *(c for c in self.channel_names if c != STANDARD_CHANNEL))

    @property
    def crd_names(self) -> tuple[str, ...]:
        """The CRDs of the chosen channel: the standard ones plus what the channel adds."""
        return (*self.names, *self.channel_names.get(self.channel or STANDARD_CHANNEL, ()))

    @property
    def label(self) -> str:
        """`gateway-api v1.4.1 (experimental channel)`, for plans and messages."""
        return f"{self.name} {self.version}" + (f" ({self.channel} channel)" if self.channel else "")

    def with_channel(self, channel: str) -> CrdBundle:
        """The same bundle for another of its channels (KeyError for an unknown one)."""
        if channel not in self.channels:
            raise KeyError(f"{self.name} has no channel {channel!r} (known: {', '.join(self.channels)})")
        return self.model_copy(update={"channel": channel})


@dataclass(frozen=True)
class InstalledCrd:
    """One CRD as the cluster has it: Established or not, and the bundle annotations (None when unset)."""

    name: str
    established: bool
    version: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class CrdVerdict:
    """What to do with a bundle given the installed CRDs: `done` (skip), `apply`, or `refuse` (never apply)."""

    action: Literal["done", "apply", "refuse"]
    reason: str


_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


def _semver(tag: str | None) -> tuple[int, int, int, int, str] | None:
    """Sortable key of `v1.4.1` / `v1.5.0-rc.1` (a pre-release sorts before its release); None if unparsable."""
    m = _SEMVER.match(tag or "")
    if m is None:
        return None
    pre = m.group(4) or ""
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if pre else 1, pre


def crd_verdict(bundle: CrdBundle, installed: Mapping[str, InstalledCrd]) -> CrdVerdict:
    """Decide from the installed CRDs whether applying `bundle` is done, needed, or would do harm.

    * every CRD present, Established, same channel, version >= pinned: `done` (newer ones are left alone);
    * missing, not Established, or the same channel at an older version: `apply` (an upgrade), unless
    * a CRD is newer than the pin, unannotated (unrecognised), or from another channel that this bundle cannot
      replace: `refuse`, naming them. Switching channels is allowed only from standard to experimental at a
      version <= pinned (experimental "includes everything in the Standard release channel", gateway-api v1.4.1
      site-src/concepts/versioning.md); experimental to standard would drop the experimental fields from the
      schemas, so it is left to the operator.
    """
    pinned = _semver(bundle.version)
    want = bundle.label
    missing: list[str] = []
    pending: list[str] = []
    older: list[str] = []
    newer: list[str] = []
    unknown: list[str] = []
    switch: list[str] = []
    foreign: list[str] = []
    for name in bundle.crd_names:
        crd = installed.get(name)
        if crd is None:
            missing.append(name)
            continue
        if not crd.established:
            pending.append(name)
        if bundle.version_annotation is None:
            continue
        have = _semver(crd.version)
        if have is None or pinned is None:
            unknown.append(f"{name} ({bundle.version_annotation}={crd.version or 'unset'})")
        elif bundle.channel_annotation and bundle.channel and crd.channel != bundle.channel:
            where = f"{name} ({crd.channel or 'no'} channel, {crd.version})"
            if have <= pinned and crd.channel == STANDARD_CHANNEL:
                switch.append(where)
            else:
                foreign.append(where)
        elif have > pinned:
            newer.append(f"{name} ({crd.version})")
        elif have < pinned:
            older.append(f"{name} ({crd.version})")
    if unknown:
        return CrdVerdict(
            "refuse",
            f"{want}: installed CRDs carry no recognisable bundle version: {', '.join(unknown)}; applying the "
            "bundle could downgrade them. Find out who installed them (delete them to let the bootstrap install "
            "the pinned bundle)",
        )
    if foreign:
        return CrdVerdict(
            "refuse",
            f"{want}: installed CRDs are from another channel: {', '.join(foreign)}. The bootstrap switches "
            f"channel only from standard to experimental at a version <= {bundle.version} (anything else would "
            "downgrade them or drop the fields only their channel has); set gatewayAPI.channel in the inventory "
            "to the installed channel, or bump the pin in k8s_ops/bootstrap/charts.yaml",
        )
    todo = missing + older + switch + pending
    if newer and todo:
        return CrdVerdict(
            "refuse",
            f"{want}: CRDs newer than the pin ({', '.join(newer)}) while others need the bundle "
            f"({', '.join(todo)}); applying {bundle.version} would downgrade the newer ones. Bump the pin in "
            "k8s_ops/bootstrap/charts.yaml to the installed version (or wait until the newer ones are Established)",
        )
    if todo:
        parts = [
            f"{label}: {', '.join(items)}"
            for label, items in (
                ("missing", missing),
                (f"older than {bundle.version}", older),
                (f"standard channel, switching to {bundle.channel}", switch),
                ("not Established", pending),
            )
            if items
        ]
        return CrdVerdict("apply", f"{want}: " + "; ".join(parts))
    done = f"all {len(bundle.crd_names)} {want} CRDs are Established"
    if newer:
        done += f"; newer than the pin, left alone: {', '.join(newer)}"
    return CrdVerdict("done", done)


def crd_bundles(cluster: Cluster, charts: Charts) -> tuple[CrdBundle, ...]:
    """charts.yaml's CRD bundles with the cluster's choices applied (`gatewayAPI.channel` for gateway-api)."""
    out: list[CrdBundle] = []
    for bundle in charts.crds:
        channel = cluster.gateway_api.channel if bundle.name == GATEWAY_API else None
        out.append(bundle.with_channel(channel) if channel and bundle.channel else bundle)
    return tuple(out)


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
        text = yamlio.read_text(file)
    except OSError as exc:
        raise ProblemsError([Problem(str(file), "", f"cannot read: {exc.strerror}")]) from None
    except yamlio.YAMLError as exc:
        raise ProblemsError([Problem(str(file), "", str(exc), exc.line)]) from None
    problems = _renovate_problems(file, text)
    try:
        raw = yamlio.load_document(text, loader=yaml.SafeLoader)
    except yamlio.YAMLError as exc:
        raise ProblemsError([Problem(str(file), "", f"YAML syntax error: {exc}", exc.line)]) from None
    charts: Charts | None = None
    try:
        charts = Charts.model_validate(raw)
    except ValidationError as exc:
        problems += [Problem(str(file), field_path(e["loc"]), e["msg"]) for e in exc.errors()]
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
            if c.channel is not None:
                if "{channel}" not in c.url:
                    problems.append(Problem(str(file), f"crds[{i}].url", "a bundle with a channel needs {channel}"))
                if c.channel not in c.channels:
                    problems.append(
                        Problem(str(file), f"crds[{i}].channel", f"unknown channel (known: {', '.join(c.channels)})")
                    )
                if c.channel_annotation is None or c.version_annotation is None:
                    problems.append(
                        Problem(
                            str(file),
                            f"crds[{i}].channelAnnotation",
                            "a bundle with a channel needs versionAnnotation and channelAnnotation",
                        )
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
    from k8s_ops.talos.inventory import cluster_vars

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
        data = yamlio.load_document(text, loader=yaml.SafeLoader)  # helm reads values with YAML 1.1 rules
    except yamlio.YAMLError as exc:
        raise ProblemsError([Problem(str(path), "", f"rendered values are not valid YAML: {exc}", exc.line)]) from None
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
