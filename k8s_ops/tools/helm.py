"""helm: argv builders and output parsers — the toolkit's only module that knows helm's CLI.

Every call names `--kubeconfig <build/<c>/kubeconfig> --kube-context <c>` explicitly (as `k8s_ops.tools.kubectl`
does), so a stray `KUBECONFIG` or current-context never redirects an install to the other cluster.

Values always travel as a file (`--values $TMP/<release>-values.yaml`, a TempFile: /dev/fd/N), never `--set`:
a `--set` value is on argv and helm's own `--set` parser mangles commas and dots. `upgrade --install` is
run without `--wait`: the toolkit waits on its own bounded checks that name what they wait for (a helm
`--wait` on a release whose readiness depends on a CRD it creates is how bootstraps hang silently).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from k8s_ops.core.command import Command, Result, TempFile
from k8s_ops.core.errors import OutputError
from k8s_ops.core.facts import dig
from k8s_ops.tools.kubectl import KubeTarget

__all__ = [
    "HelmOutputError",
    "HelmRelease",
    "helm_target_flags",
    "parse_status",
    "status",
    "upgrade_install",
]


class HelmOutputError(OutputError):
    """helm printed something that is not the JSON asked for."""


def _target(cluster_or_target: str | KubeTarget) -> KubeTarget:
    return cluster_or_target if isinstance(cluster_or_target, KubeTarget) else KubeTarget.for_cluster(cluster_or_target)


def helm_target_flags(cluster_or_target: str | KubeTarget) -> tuple[str, ...]:
    """`--kubeconfig <path> --kube-context <ctx>`."""
    t = _target(cluster_or_target)
    return ("--kubeconfig", str(t.kubeconfig), "--kube-context", t.context)


def upgrade_install(
    target: str | KubeTarget,
    release: str,
    chart: str,
    *,
    version: str,
    namespace: str,
    values: bytes,
    create_namespace: bool = True,
    timeout: float | None = None,
) -> Command:
    """`helm upgrade <release> <chart> --install --version V --namespace NS --values $TMP/<release>-values.yaml`.

    The version is always pinned: an unpinned install takes whatever the registry serves that day.
    """
    argv: list[str | TempFile] = [
        "helm",
        "upgrade",
        release,
        chart,
        "--install",
        "--version",
        version,
        "--namespace",
        namespace,
    ]
    if create_namespace:
        argv.append("--create-namespace")
    argv += ["--values", TempFile(f"{release}-values.yaml", values), *helm_target_flags(target)]
    return Command(
        argv=tuple(argv),
        description=f"install or upgrade the {release} release ({chart} {version}) in {namespace}",
        mutates=True,
        timeout=timeout,
    )


def status(target: str | KubeTarget, release: str, namespace: str) -> Command:
    """`helm status <release> --namespace NS --output json`: state, chart and user-supplied values in one read."""
    return Command(
        argv=("helm", "status", release, "--namespace", namespace, "--output", "json", *helm_target_flags(target)),
        description=f"read the {release} release in {namespace}",
    )


# --------------------------------------------------------------------------- parsers


@dataclass(frozen=True)
class HelmRelease:
    """A release as `helm status -o json` reports it."""

    name: str
    namespace: str
    chart: str  # chart name
    version: str  # chart version
    status: str  # deployed, failed, pending-install, pending-upgrade, ...
    revision: int
    values: dict[str, Any] = field(default_factory=dict, compare=False)  # user-supplied values

    @property
    def deployed(self) -> bool:
        return self.status == "deployed"


def _json(result: Result) -> Any:
    text = result.stdout.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HelmOutputError(f"helm did not print JSON: {exc}: {text[:200]!r}") from None


def parse_status(result: Result) -> HelmRelease:
    """The release from `helm status -o json` (`info.status`, `chart.metadata`, `config` = user values)."""
    data = _json(result)
    if not isinstance(data, dict):
        raise HelmOutputError(f"helm status printed {type(data).__name__}, expected an object")
    meta = dig(data, "chart", "metadata", default={})
    config = data.get("config") or {}
    try:
        revision = int(data.get("version") or 0)
    except (TypeError, ValueError):
        revision = 0
    return HelmRelease(
        name=str(data.get("name", "")),
        namespace=str(data.get("namespace", "")),
        chart=str(meta.get("name", "")),
        version=str(meta.get("version", "")),
        status=str(dig(data, "info", "status", default="")),
        revision=revision,
        values=config if isinstance(config, dict) else {},
    )
