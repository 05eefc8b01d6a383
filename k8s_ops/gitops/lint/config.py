"""The lint configuration: `.k8s-ops-lint.yaml` at the repository root, every key optional.

The defaults are the repository's rulebook (severities, the gateway of each cluster, the annotation prefix, the
shared CNPG cluster, the dependency table, the interval standards, commit types and scopes); the file overrides
any of them. Keys are camelCase like cluster.yaml; a bad file is a ProblemsError naming the key and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from k8s_ops.core.errors import Problem, ProblemsError

__all__ = ["CONFIG_FILE", "Dependency", "LintConfig", "load_config"]

CONFIG_FILE = ".k8s-ops-lint.yaml"

RuleSetting = Literal["error", "warning", "info", "off"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


def _compiles(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {pattern!r} ({exc})") from None
    return patterns


class Gateways(_Model):
    """HTTPRoute parents: the external gateway differs per cluster; `shared` ones exist in every cluster."""

    namespace: str = "networking"
    section_name: str = "https"
    external: dict[str, str] = Field(
        default_factory=lambda: {"infra": "envoy-external", "apps": "envoy-gateway-external"}
    )
    shared: tuple[str, ...] = ("envoy-internal",)


class Cnpg(_Model):
    """The one shared CloudNativePG cluster per Kubernetes cluster, and how a database app is recognised."""

    cluster_name: str = "postgres"
    depends_on: str = "cloudnative-pg-cluster"
    markers: tuple[str, ...] = (r"postgres-rw\.", r"-pguser-secret\b", r"components/cnpg\b")

    @field_validator("markers")
    @classmethod
    def _regexes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _compiles(v)


class Dependency(_Model):
    """An app whose manifests match any of `when` (regular expressions) must depend on `dependsOn`."""

    rule: str  # the rule id reporting it
    service: str
    depends_on: str
    when: tuple[str, ...]

    @field_validator("when")
    @classmethod
    def _regexes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _compiles(v)


def _dependencies() -> tuple[Dependency, ...]:
    return (
        Dependency(rule="GL024", service="SSO (authentik)", depends_on="authentik",
                   when=(r"authentik\.\$\{CLUSTER_DOMAIN\}", r"/application/o/")),
        Dependency(rule="GL025", service="Dragonfly", depends_on="dragonfly-operator",
                   when=(r"kind:\s*Dragonfly\b", r"dragonflydb\.io/")),
        Dependency(rule="GL026", service="Kafka", depends_on="strimzi-kafka",
                   when=(r"kafka\.strimzi\.io/", r"-kafka-bootstrap\b")),
        Dependency(rule="GL027", service="Ceph storage", depends_on="rook-ceph-cluster",
                   when=("storageClassName:\\s*[\"']?ceph-", "storageClass:\\s*[\"']?ceph-")),
    )  # fmt: skip


class FluxKustomization(_Model):
    """ks.yaml standards."""

    interval: str = "30m"
    retry_interval: str = "1m"
    timeout: str = "5m"
    prune: bool = True
    wait: bool = False
    source_kind: str = "GitRepository"
    vars_config_map: str = "cluster-vars"
    name_label: str = "app.kubernetes.io/name"


class Tier(_Model):
    """How a tier-2 app is marked (a label on its ks.yaml commonMetadata or on any of its objects)."""

    label: str = "monosense.dev/tier"
    value: str = "2"


class Commits(_Model):
    """`<type>(<scope>): <description>`; an empty `scopes` accepts any kebab-case scope."""

    types: tuple[str, ...] = ("feat", "fix", "refactor", "chore", "docs", "ci")
    scopes: tuple[str, ...] = ("infra", "apps", "flux", "talos", "bootstrap", "renovate")
    scope_required: bool = True
    max_length: int | None = None  # the rulebook sets no limit


_KNOWN_PREFIXES = (
    "kubernetes.io", "k8s.io", "fluxcd.io", "helm.sh", "cert-manager.io", "external-dns.alpha.kubernetes.io",
    "reloader.stakater.com", "cilium.io", "cnpg.io", "gateway.networking.k8s.io", "gethomepage.dev",
    "volsync.backube", "argocd.argoproj.io", "prometheus.io", "openebs.io", "ceph.rook.io", "rook.io",
    "cluster-autoscaler.kubernetes.io", "kustomize.config.k8s.io", "config.kubernetes.io", "kyverno.io",
    "meta.helm.sh", "strimzi.io", "dragonflydb.io", "postgresql.cnpg.io", "external-secrets.io", "gatus.io",
    "grafana.io", "grafana.com",
)  # fmt: skip


class LintConfig(_Model):
    """Everything gitops.lint reads from `.k8s-ops-lint.yaml` (see the module docstring for the defaults)."""

    include: tuple[str, ...] = ("kubernetes/**", "clusters/*/flux/**", "clusters/*/apps/**")
    exclude: tuple[str, ...] = ()
    apps_roots: tuple[str, ...] = ("kubernetes/apps", "clusters/*/apps")
    rules: dict[str, RuleSetting] = Field(default_factory=dict)
    annotation_prefix: str = "monosense.dev/"
    known_prefixes: tuple[str, ...] = _KNOWN_PREFIXES
    gateways: Gateways = Gateways()
    cnpg: Cnpg = Cnpg()
    dependencies: tuple[Dependency, ...] = Field(default_factory=_dependencies)
    operators: tuple[str, ...] = (
        "cloudnative-pg", "external-secrets", "cert-manager", "rook-ceph", "dragonfly-operator",
        "strimzi-kafka-operator", "volsync", "snapshot-controller", "victoria-metrics-operator", "keda",
        "envoy-gateway", "cilium", "flux-operator",
    )  # fmt: skip
    intervals: dict[str, str] = Field(
        default_factory=lambda: {"HelmRelease": "1h", "OCIRepository": "5m", "GitRepository": "1m"}
    )
    kustomization: FluxKustomization = FluxKustomization()
    tier: Tier = Tier()
    commits: Commits = Commits()

    @property
    def ignore_annotation(self) -> str:
        """The opt-out annotation: `<prefix>lint-ignore: "GL012 reason…"`."""
        return f"{self.annotation_prefix}lint-ignore"

    def is_operator(self, name: str) -> bool:
        return name in self.operators or name.endswith("-operator")


def load_config(root: Path, file: Path | None = None) -> LintConfig:
    """`file` (default `<root>/.k8s-ops-lint.yaml`) merged over the defaults; no file means the defaults."""
    from k8s_ops.talos.inventory.problems import validation_problems
    from k8s_ops.talos.inventory.source import read_yaml

    path = file if file is not None else root / CONFIG_FILE
    if file is None and not path.is_file():
        return LintConfig()
    problems: list[Problem] = []
    src = read_yaml(path, problems)
    if src is None:
        raise ProblemsError(problems)
    if src.data is None:
        return LintConfig()
    if not isinstance(src.data, dict):
        raise ProblemsError([src.problem((), "expected a mapping of lint settings")])
    try:
        config = LintConfig.model_validate(src.data)
    except ValidationError as exc:
        raise ProblemsError(validation_problems(src, exc), hint=f"fix {path}") from None
    from k8s_ops.gitops.lint.model import RULES

    known = set(RULES) | {r.name for r in RULES.values()}
    bad = [src.problem(("rules", k), f"unknown rule {k!r}") for k in config.rules if k not in known]
    if bad:
        raise ProblemsError(bad, hint="`invoke gitops.lint --list-rules` lists the rules")
    return config
