"""Pure Kubernetes objects the bootstrap creates before Flux takes over. No I/O.

* namespaces, annotated `kustomize.toolkit.fluxcd.io/prune: disabled` so a Flux prune never deletes them (and
  with them the secrets below);
* in `flux-system`: Secret `sops-age` (`age.agekey`), the git credentials Secret, ConfigMap `cluster-vars`;
* the GitRepository and the root Kustomization (`k8s_ops.tools.flux.ROOT_KUSTOMIZATION`) with SOPS decryption
  (`secretRef: sops-age`) and `postBuild.substituteFrom` cluster-vars.

Secrets are `SecretObject`s: their data stays `Secret` and the manifest is only ever serialised into a
`Secret` (kubectl stdin); `describe()` and `to_display()` show keys, never values.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from k8s_ops.core.errors import Problem, ProblemsError
from k8s_ops.core.secret import Secret
from k8s_ops.tools.flux import FLUX_NAMESPACE, ROOT_KUSTOMIZATION

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Cluster

__all__ = [
    "AGE_KEY_DATA",
    "CLUSTER_VARS",
    "GITREPOSITORY_API",
    "GIT_CREDENTIALS",
    "GIT_REPOSITORY",
    "KUSTOMIZATION_API",
    "MANAGED_BY",
    "PRUNE_DISABLED",
    "SOPS_AGE",
    "KubeObject",
    "SecretObject",
    "bootstrap_namespaces",
    "cluster_vars_configmap",
    "cluster_vars_data",
    "git_credentials_secret",
    "git_repository",
    "namespace",
    "root_kustomization",
    "sops_age_secret",
]

SOPS_AGE: Final = "sops-age"
AGE_KEY_DATA: Final = "age.agekey"  # kustomize-controller: a data key ending in .agekey holds an age identity
GIT_CREDENTIALS: Final = "git-credentials"
CLUSTER_VARS: Final = "cluster-vars"
GIT_REPOSITORY: Final = ROOT_KUSTOMIZATION  # `flux bootstrap` and FluxInstance name both after the root
GITREPOSITORY_API: Final = "source.toolkit.fluxcd.io/v1"
KUSTOMIZATION_API: Final = "kustomize.toolkit.fluxcd.io/v1"
PRUNE_DISABLED: Final = {"kustomize.toolkit.fluxcd.io/prune": "disabled"}
MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "k8s-ops"}
_VAR_NAME: Final = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")


@dataclass(frozen=True)
class KubeObject:
    """A non-secret object: its kubectl resource name, identity and the full manifest."""

    resource: str  # kubectl resource argument, fully qualified for CRDs (`gitrepositories.source.toolkit.fluxcd.io`)
    name: str
    namespace: str | None
    manifest: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    def ref(self) -> str:
        """`Kind namespace/name`, as messages name it."""
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    def to_bytes(self) -> bytes:
        return json.dumps(self.manifest, indent=2, sort_keys=True).encode() + b"\n"


@dataclass(frozen=True)
class SecretObject:
    """A Kubernetes Secret whose values stay masked; only `to_stdin()` reveals them, into a `Secret`."""

    name: str
    namespace: str
    data: Mapping[str, Secret] = field(repr=False)
    labels: Mapping[str, str] = field(default_factory=lambda: dict(MANAGED_BY))
    annotations: Mapping[str, str] = field(default_factory=dict)
    source: str = ""  # where the values come from (for plans): a file name or a description

    resource: ClassVar[str] = "secrets"
    kind: ClassVar[str] = "Secret"

    def ref(self) -> str:
        return f"Secret {self.namespace}/{self.name}"

    def encoded(self) -> dict[str, str]:
        """`data` as Kubernetes stores it (base64). Holds the secret values: compare, never print."""
        return {k: base64.b64encode(v.reveal()).decode() for k, v in sorted(self.data.items())}

    def to_stdin(self) -> Secret:
        """The manifest as JSON, for `kubectl apply -f -` stdin."""
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "labels": dict(self.labels)}
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        doc = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta, "data": self.encoded()}
        return Secret(json.dumps(doc, indent=2, sort_keys=True) + "\n")

    def fingerprint(self) -> str:
        """A short digest of the values (sha256, 12 hex), safe to show: proves 'same content' without it."""
        h = hashlib.sha256()
        for k, v in sorted(self.encoded().items()):
            h.update(k.encode() + b"\0" + v.encode() + b"\0")
        return h.hexdigest()[:12]

    def describe(self) -> str:
        keys = ", ".join(sorted(self.data)) or "no keys"
        src = f" from {self.source}" if self.source else ""
        return f"{self.ref()} (keys: {keys}; values masked{src})"


# --------------------------------------------------------------------------- namespaces


def namespace(name: str) -> KubeObject:
    """A Namespace Flux must never prune (it holds the bootstrap secrets)."""
    return KubeObject(
        "namespaces",
        name,
        None,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(MANAGED_BY), "annotations": dict(PRUNE_DISABLED)},
        },
    )


def bootstrap_namespaces(release_namespaces: tuple[str, ...] = ()) -> tuple[KubeObject, ...]:
    """`flux-system` plus every release namespace that Kubernetes does not create itself."""
    builtin = {"kube-system", "kube-public", "kube-node-lease", "default"}
    names = dict.fromkeys([FLUX_NAMESPACE, *release_namespaces])
    return tuple(namespace(n) for n in names if n not in builtin)


# --------------------------------------------------------------------------- secrets


def sops_age_secret(age_key: Secret, *, source: str = "") -> SecretObject:
    """`flux-system/sops-age` with `age.agekey`: the key kustomize-controller decrypts SOPS files with."""
    return SecretObject(SOPS_AGE, FLUX_NAMESPACE, {AGE_KEY_DATA: age_key}, source=source)


def git_credentials_secret(data: Mapping[str, Secret], *, source: str = "") -> SecretObject:
    """The GitRepository's auth Secret: the keys of `k8s_ops.bootstrap.credentials` as they are (SSH `identity` +
    `known_hosts` [+ `password`], HTTPS `username` + `password` or `bearerToken`, or the GitHub App keys)."""
    return SecretObject(GIT_CREDENTIALS, FLUX_NAMESPACE, dict(data), source=source)


# --------------------------------------------------------------------------- cluster-vars


def cluster_vars_data(cluster: Cluster) -> dict[str, str]:
    """CLUSTER_* generated from the inventory, then `vars`. A bad name or a clash is an error (file+field).

    The inventory loader already rejects both; this check keeps a Cluster built any other way honest, since a
    silently dropped or overridden variable is substituted into every manifest Flux applies.
    """
    from k8s_ops.talos.inventory import GENERATED_VARS, cluster_vars

    problems: list[Problem] = []
    for key in cluster.vars:
        if not _VAR_NAME.match(key):
            problems.append(
                Problem(str(cluster.file), f"vars.{key}", "variable names must match ^[_A-Za-z][_A-Za-z0-9]*$")
            )
        elif key in GENERATED_VARS:
            problems.append(
                Problem(str(cluster.file), f"vars.{key}", f"{key} is generated from the inventory; it cannot be set")
            )
    if problems:
        raise ProblemsError(problems)
    data = cluster_vars(cluster)
    missing = [k for k in GENERATED_VARS if k not in data]
    if missing:  # pragma: no cover - guards k8s_ops.talos.inventory.cluster_vars against regressions
        raise ProblemsError([Problem(str(cluster.file), "", f"cluster-vars lacks {', '.join(missing)}")])
    return {k: str(v) for k, v in data.items()}


def cluster_vars_configmap(cluster: Cluster) -> KubeObject:
    """`flux-system/cluster-vars`: the root Kustomization substitutes `${VAR}` from it."""
    return KubeObject(
        "configmaps",
        CLUSTER_VARS,
        FLUX_NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CLUSTER_VARS, "namespace": FLUX_NAMESPACE, "labels": dict(MANAGED_BY)},
            "data": cluster_vars_data(cluster),
        },
    )


# --------------------------------------------------------------------------- Flux sync objects


def git_repository(
    cluster: Cluster, *, with_credentials: bool, provider: str | None = None, interval: str = "1m"
) -> KubeObject:
    """The GitRepository the root Kustomization syncs from: the inventory's repository and branch.

    `provider`: `github` for GitHub App credentials (`k8s_ops.bootstrap.credentials.GitCredentials.provider`):
    source-controller reads the app keys only with `spec.provider: github` and fails the secret otherwise
    (fluxcd/source-controller v1.7.4 docs/spec/v1/gitrepositories.md "Provider" / "GitHub").
    """
    spec: dict[str, Any] = {
        "interval": interval,
        "url": cluster.gitops.repository,
        "ref": {"branch": cluster.gitops.branch},
    }
    if provider is not None:
        spec["provider"] = provider
    if with_credentials:
        spec["secretRef"] = {"name": GIT_CREDENTIALS}
    return KubeObject(
        "gitrepositories.source.toolkit.fluxcd.io",
        GIT_REPOSITORY,
        FLUX_NAMESPACE,
        {
            "apiVersion": GITREPOSITORY_API,
            "kind": "GitRepository",
            "metadata": {"name": GIT_REPOSITORY, "namespace": FLUX_NAMESPACE, "labels": dict(MANAGED_BY)},
            "spec": spec,
        },
    )


def _sync_path(path: str) -> str:
    stripped = path.strip().removeprefix("./").strip("/")
    return f"./{stripped}" if stripped else "./"


def root_kustomization(cluster: Cluster, *, interval: str = "10m", timeout: str = "5m") -> KubeObject:
    """The root Kustomization: the inventory's path, SOPS via `sops-age`, `${VAR}`s from cluster-vars."""
    return KubeObject(
        "kustomizations.kustomize.toolkit.fluxcd.io",
        ROOT_KUSTOMIZATION,
        FLUX_NAMESPACE,
        {
            "apiVersion": KUSTOMIZATION_API,
            "kind": "Kustomization",
            "metadata": {"name": ROOT_KUSTOMIZATION, "namespace": FLUX_NAMESPACE, "labels": dict(MANAGED_BY)},
            "spec": {
                "interval": interval,
                "timeout": timeout,
                "path": _sync_path(cluster.gitops.path),
                "prune": True,
                "wait": False,
                "sourceRef": {"kind": "GitRepository", "name": GIT_REPOSITORY},
                "decryption": {"provider": "sops", "secretRef": {"name": SOPS_AGE}},
                "postBuild": {"substituteFrom": [{"kind": "ConfigMap", "name": CLUSTER_VARS}]},
            },
        },
    )
