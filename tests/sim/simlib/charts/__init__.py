"""Simulated Helm charts: what `helm upgrade --install` creates for a chart, keyed by the chart's name (the
last path element of `oci://…/cilium`, `cilium/cilium`). Add a chart by dropping a module into this package
that calls `register(Chart(...))`; unknown charts render a single Deployment named after the release."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

from ..manifests import workload
from ..util import JSON

Render = Callable[[str, str, JSON, str], list[JSON]]


@dataclass(frozen=True)
class Chart:
    name: str
    version: str
    app_version: str
    render: Render
    defaults: JSON = field(default_factory=dict)


CHARTS: dict[str, Chart] = {}
_loaded = False


def register(chart: Chart) -> None:
    CHARTS[chart.name] = chart


def _generic(release: str, ns: str, values: JSON, version: str) -> list[JSON]:
    return [
        workload(
            "Deployment",
            release,
            ns,
            labels={"app.kubernetes.io/name": release, "app.kubernetes.io/instance": release},
            replicas=int(values.get("replicaCount", 1)),
        )
    ]


def chart_name(ref: str) -> str:
    return ref.rstrip("/").rsplit("/", 1)[-1].split(":", 1)[0]


def lookup(ref: str) -> Chart:
    global _loaded
    if not _loaded:
        for mod in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{mod.name}")
        _loaded = True
    name = chart_name(ref)
    return CHARTS.get(name) or Chart(name, "0.1.0", "0.1.0", _generic)
