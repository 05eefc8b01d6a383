"""Flux objects and their standards (GL010–GL018)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from k8s_ops.core.units import parse_go_duration
from k8s_ops.gitops.lint.model import Doc, Hit, Repo, dig, rule, strings

__all__: list[str] = []

HELM = "helm.toolkit.fluxcd.io"
HELM_V2 = f"{HELM}/v2"
KUSTOMIZE = "kustomize.toolkit.fluxcd.io"
SOURCE = "source.toolkit.fluxcd.io"
ESO = "external-secrets.io"
ESO_V1 = f"{ESO}/v1"
HELM_CHART_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

def _same_duration(got: Any, want: str) -> bool:
    g = parse_go_duration(got)
    return g is not None and g == parse_go_duration(want)


def _helmreleases(repo: Repo) -> Iterator[Doc]:
    return repo.kinds(HELM, "HelmRelease")


@rule("GL010", "helmrelease-api-v2", "error", f"HelmRelease uses `{HELM_V2}`",
      f"set apiVersion: {HELM_V2} (v2beta1/v2beta2 are removed in current Flux)")  # fmt: skip
def helmrelease_api(repo: Repo) -> Iterator[Hit]:
    for d in _helmreleases(repo):
        if d.api_version != HELM_V2:
            yield Hit.at(d, f"apiVersion {d.api_version}, want {HELM_V2}", "apiVersion")


@rule("GL011", "helmrelease-remediation", "error",
      "HelmRelease remediation: install retries 3 (operators may use -1); upgrade cleanupOnFail, rollback, "
      "retries 3",
      "spec.install.remediation.retries: 3; spec.upgrade: {cleanupOnFail: true, remediation: {strategy: "
      "rollback, retries: 3}}")  # fmt: skip
def helmrelease_remediation(repo: Repo) -> Iterator[Hit]:
    for d in _helmreleases(repo):
        operator = repo.config.is_operator(d.name)
        retries = d.get("spec", "install", "remediation", "retries")
        allowed = (3, -1) if operator else (3,)
        if retries not in allowed or isinstance(retries, bool):
            want = "3 (or -1 for an operator)" if operator else "3"
            yield Hit.at(d, f"spec.install.remediation.retries is {_show(retries)}, want {want}",
                         "spec", "install", "remediation", "retries")  # fmt: skip
        if d.get("spec", "upgrade", "cleanupOnFail") is not True:
            yield Hit.at(d, "spec.upgrade.cleanupOnFail is not true", "spec", "upgrade", "cleanupOnFail")
        strategy = d.get("spec", "upgrade", "remediation", "strategy")
        if strategy != "rollback":
            yield Hit.at(d, f"spec.upgrade.remediation.strategy is {_show(strategy)}, want rollback",
                         "spec", "upgrade", "remediation", "strategy")  # fmt: skip
        up = d.get("spec", "upgrade", "remediation", "retries")
        if up != 3 or isinstance(up, bool):
            yield Hit.at(d, f"spec.upgrade.remediation.retries is {_show(up)}, want 3",
                         "spec", "upgrade", "remediation", "retries")  # fmt: skip


def _show(value: Any) -> str:
    return "missing" if value is None else repr(value) if isinstance(value, str) else str(value)


@rule("GL012", "operator-crds", "error", "operator HelmReleases install and upgrade CRDs with `CreateReplace`",
      "set spec.install.crds: CreateReplace and spec.upgrade.crds: CreateReplace (operators: .k8s-ops-lint.yaml "
      "`operators`, or a name ending in -operator)")  # fmt: skip
def operator_crds(repo: Repo) -> Iterator[Hit]:
    for d in _helmreleases(repo):
        if not repo.config.is_operator(d.name):
            continue
        for phase in ("install", "upgrade"):
            crds = d.get("spec", phase, "crds")
            if crds != "CreateReplace":
                yield Hit.at(d, f"operator {d.name}: spec.{phase}.crds is {_show(crds)}, want CreateReplace",
                             "spec", phase, "crds")  # fmt: skip


@rule("GL013", "externalsecret-api-v1", "error", f"External Secrets objects use `{ESO_V1}`",
      f"set apiVersion: {ESO_V1} (External Secrets Operator v1.0+ removed v1beta1)")  # fmt: skip
def externalsecret_api(repo: Repo) -> Iterator[Hit]:
    kinds = ("ExternalSecret", "ClusterExternalSecret", "SecretStore", "ClusterSecretStore")
    for d in repo.kinds(ESO, *kinds):
        if d.api_version != ESO_V1:
            yield Hit.at(d, f"{d.kind} apiVersion {d.api_version}, want {ESO_V1}", "apiVersion")


@rule("GL014", "ks-standards", "error",
      "ks.yaml Kustomizations: interval 30m, retryInterval 1m, timeout 5m, prune true, wait false, GitRepository "
      "source, substituteFrom cluster-vars, commonMetadata name label, targetNamespace",
      "set the field to the standard (.k8s-ops-lint.yaml `kustomization`); `wait: true` is accepted with "
      "healthChecks or healthCheckExprs")  # fmt: skip
def ks_standards(repo: Repo) -> Iterator[Hit]:
    std = repo.config.kustomization
    for f in repo.files:
        if f.name != "ks.yaml":
            continue
        for d in f.docs:
            if d.kind == "Kustomization" and d.group == KUSTOMIZE:
                yield from _ks(d, std)


def _ks(d: Doc, std: Any) -> Iterator[Hit]:
    if d.api_version != f"{KUSTOMIZE}/v1":
        yield Hit.at(d, f"apiVersion {d.api_version}, want {KUSTOMIZE}/v1", "apiVersion")
    for key, want in (("interval", std.interval), ("retryInterval", std.retry_interval), ("timeout", std.timeout)):
        got = d.get("spec", key)
        if not _same_duration(got, want):
            yield Hit.at(d, f"spec.{key} is {_show(got)}, want {want}", "spec", key)
    if d.get("spec", "prune") is not std.prune:
        yield Hit.at(d, f"spec.prune is {_show(d.get('spec', 'prune'))}, want {str(std.prune).lower()}",
                     "spec", "prune")  # fmt: skip
    health = d.get("spec", "healthChecks") or d.get("spec", "healthCheckExprs")
    if d.get("spec", "wait") is not std.wait and not health:
        yield Hit.at(d, f"spec.wait is {_show(d.get('spec', 'wait'))}, want {str(std.wait).lower()}",
                     "spec", "wait")  # fmt: skip
    kind = d.get("spec", "sourceRef", "kind")
    if kind != std.source_kind:
        yield Hit.at(d, f"spec.sourceRef.kind is {_show(kind)}, want {std.source_kind}", "spec", "sourceRef")
    subs = d.get("spec", "postBuild", "substituteFrom")
    refs = [(dig(s, "kind"), dig(s, "name")) for s in subs] if isinstance(subs, list) else []
    if ("ConfigMap", std.vars_config_map) not in refs:
        yield Hit.at(d, f"spec.postBuild.substituteFrom lacks ConfigMap {std.vars_config_map}",
                     "spec", "postBuild", "substituteFrom")  # fmt: skip
    label = d.get("spec", "commonMetadata", "labels", std.name_label)
    if label != d.name:
        yield Hit.at(d, f"spec.commonMetadata.labels[{std.name_label!r}] is {_show(label)}, want {d.name!r}",
                     "spec", "commonMetadata")  # fmt: skip
    if not d.get("spec", "targetNamespace"):
        yield Hit.at(d, "spec.targetNamespace is not set", "spec")


@rule("GL015", "flux-interval", "warning", "intervals per kind: HelmRelease 1h, OCIRepository 5m, GitRepository 1m",
      "set spec.interval to the standard for the kind (.k8s-ops-lint.yaml `intervals`)")  # fmt: skip
def flux_interval(repo: Repo) -> Iterator[Hit]:
    for d in repo.docs:
        want = repo.config.intervals.get(d.kind)
        if want is None or not d.group.endswith(".toolkit.fluxcd.io"):
            continue
        got = d.get("spec", "interval")
        if not _same_duration(got, want):
            yield Hit.at(d, f"{d.kind} spec.interval is {_show(got)}, want {want}", "spec", "interval")


@rule("GL016", "chart-source-oci", "warning", "charts come from an OCIRepository through `chartRef`",
      "define an OCIRepository for the chart and use spec.chartRef {kind: OCIRepository, name, namespace}; "
      "HelmRepository is legacy")  # fmt: skip
def chart_source(repo: Repo) -> Iterator[Hit]:
    for d in _helmreleases(repo):
        if d.get("spec", "chart") is not None:
            kind = d.get("spec", "chart", "spec", "sourceRef", "kind") or "a source"
            yield Hit.at(d, f"spec.chart from {kind} (legacy); use spec.chartRef to an OCIRepository",
                         "spec", "chart")  # fmt: skip
        ref_kind = d.get("spec", "chartRef", "kind")
        if ref_kind is not None and ref_kind != "OCIRepository":
            yield Hit.at(d, f"spec.chartRef.kind is {ref_kind}, want OCIRepository", "spec", "chartRef", "kind")
    for d in repo.kinds(SOURCE, "HelmRepository"):
        yield Hit.at(d, f"HelmRepository {d.name} is legacy; publish the chart through an OCIRepository")


@rule("GL017", "oci-layer-selector", "error", "an OCIRepository serving a Helm chart selects the chart layer",
      f"spec.layerSelector: {{mediaType: {HELM_CHART_MEDIA_TYPE}, operation: copy}}")  # fmt: skip
def oci_layer_selector(repo: Repo) -> Iterator[Hit]:
    charts = {
        (d.get("spec", "chartRef", "namespace") or d.namespace, d.get("spec", "chartRef", "name"))
        for d in _helmreleases(repo)
        if d.get("spec", "chartRef", "kind") == "OCIRepository"
    }
    for d in repo.kinds(SOURCE, "OCIRepository"):
        # a namespace left out (set later by targetNamespace or kustomize) matches any
        if not any(name == d.name and (not ns or not d.namespace or ns == d.namespace) for ns, name in charts):
            continue
        media = d.get("spec", "layerSelector", "mediaType")
        op = d.get("spec", "layerSelector", "operation")
        if media != HELM_CHART_MEDIA_TYPE or op != "copy":
            got = f"{{mediaType: {_show(media)}, operation: {_show(op)}}}"
            message = f"OCIRepository {d.name} serves a chart but layerSelector is {got}"
            yield Hit.at(d, message, "spec", "layerSelector")


_DOLLAR_VAR = re.compile(r"(?<![$\\])\$([A-Z_][A-Z0-9_]*)\b")
_BRACES_VAR = re.compile(r"\{\{\s*([A-Z_][A-Z0-9_]*)\s*\}\}")


@rule("GL018", "substitution-syntax", "error",
      "Flux variables are written `${VAR}` (not `$VAR` or `{{VAR}}` for a variable the repository substitutes)",
      "write ${VAR} (or ${VAR:=default}); escape a literal with $${VAR}")  # fmt: skip
def substitution_syntax(repo: Repo) -> Iterator[Hit]:
    # only names the repository substitutes (cluster-vars keys, any ${NAME} written somewhere): a Grafana dashboard's
    # $DS_PROMETHEUS or a script's $HOME is not a misspelt Flux variable
    known = repo.variables
    for d in repo.docs:
        data = {k: v for k, v in d.data.items() if k != "sops"} if isinstance(d.data, dict) else d.data
        for path, text in strings(data):
            for m in _DOLLAR_VAR.finditer(text):
                if m.group(1) in known:
                    yield Hit.at(d, f"${m.group(1)}: variables are written ${{{m.group(1)}}}", *path)
            for m in _BRACES_VAR.finditer(text):
                if m.group(1) in known:
                    yield Hit.at(d, f"{m.group(0)} is not Flux substitution; write ${{{m.group(1)}}}", *path)
