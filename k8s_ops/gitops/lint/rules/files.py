"""Files, layout, names and annotations (GL001–GL009)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from k8s_ops.gitops.lint.model import Hit, Repo, rule

__all__: list[str] = []

_SUBST = re.compile(r"\$\{[^}]*\}")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_RBAC = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@rule("GL001", "yaml-syntax", "error", "every YAML file parses (YAML 1.2, no duplicate keys)",
      "fix the YAML at the line shown; a key given twice in one mapping is an error, not 'last wins'")  # fmt: skip
def yaml_syntax(repo: Repo) -> Iterator[Hit]:
    for f in repo.files:
        if f.error is not None:
            yield Hit(f.path, f.error_line, f.error)


@rule("GL002", "yaml-extension", "error", "YAML files end in `.yaml`, never `.yml`",
      "rename the file to .yaml (and update the kustomization.yaml that lists it)")  # fmt: skip
def yaml_extension(repo: Repo) -> Iterator[Hit]:
    for f in repo.files:
        if f.path.endswith(".yml"):
            yield Hit(f.path, None, f"{f.name} ends in .yml")


@rule("GL003", "kustomization-filename", "error", "a kustomize Kustomization is in a file named `kustomization.yaml`",
      "name the file kustomization.yaml (lower case, .yaml): kustomize looks for that name")  # fmt: skip
def kustomization_filename(repo: Repo) -> Iterator[Hit]:
    for f in repo.files:
        lowered = f.name.lower()
        if lowered in {"kustomization.yaml", "kustomization.yml"} and f.name != "kustomization.yaml":
            yield Hit(f.path, None, f"{f.name} must be spelled kustomization.yaml")
            continue
        for d in f.docs:
            if d.is_("kustomize.config.k8s.io", "Kustomization") and f.name != "kustomization.yaml":
                yield Hit.at(d, f"a kustomize Kustomization in {f.name}")


@rule("GL004", "app-layout", "error", "an app is `<category>/<app>/` with `ks.yaml` and `app/kustomization.yaml`",
      "put the Flux Kustomization in <app>/ks.yaml, the manifests in <app>/app/ with a kustomization.yaml, and "
      "point ks.yaml's spec.path at ./<app dir>/app")  # fmt: skip
def app_layout(repo: Repo) -> Iterator[Hit]:
    for app in repo.apps:
        paths = {f.path for f in app.files}
        first = app.files[0].path
        ks = f"{app.path}/ks.yaml"
        if ks not in paths:
            yield Hit(first, None, f"app {app.path} has no ks.yaml")
        if f"{app.path}/app/kustomization.yaml" not in paths:
            yield Hit(ks if ks in paths else first, None, f"app {app.path} has no app/kustomization.yaml")
        for f in app.files:
            rest = f.path[len(app.path) + 1 :]
            if "/" not in rest and f.path != ks:
                yield Hit(f.path, None, f"{rest} sits beside ks.yaml; manifests belong in app/")
        for d in app.ks_docs:
            path = d.get("spec", "path")
            if not isinstance(path, str) or "$" in path:
                continue
            norm = path.removeprefix("./").rstrip("/")
            if norm != app.path and not norm.startswith(app.path + "/"):
                yield Hit.at(d, f"spec.path {path} is outside the app directory ./{app.path}", "spec", "path")


@rule("GL005", "namespace-manifest", "error", "no Namespace manifests in app directories",
      "delete the Namespace; namespaces are created once for the cluster and the app's ks.yaml targets one "
      "with spec.targetNamespace")  # fmt: skip
def namespace_manifest(repo: Repo) -> Iterator[Hit]:
    for app in repo.apps:
        for d in app.docs:
            if d.api_version == "v1" and d.kind == "Namespace":
                yield Hit.at(d, f"Namespace {d.name} in app directory {app.path}")


@rule("GL006", "kebab-case-name", "error", "object names and app directories are kebab-case",
      "use lower-case words joined by '-' (e.g. odoo-pguser-secret)")  # fmt: skip
def kebab_case_name(repo: Repo) -> Iterator[Hit]:
    for d in repo.docs:
        name = d.get("metadata", "name")
        if not isinstance(name, str) or d.is_("kustomize.config.k8s.io", "Kustomization"):
            continue
        if d.kind in _RBAC and ":" in name:
            continue  # system: and aggregated RBAC names use ':' by design
        if not _DNS_NAME.match(_SUBST.sub("x", name)):
            yield Hit.at(d, f"name {name!r} is not kebab-case", "metadata", "name")
    for app in repo.apps:
        for part in (app.category, app.name):
            if not _KEBAB.match(part):
                yield Hit(app.files[0].path, None, f"app directory {part!r} is not kebab-case")


def _domain_ok(domain: str, allowed: tuple[str, ...]) -> bool:
    return any(domain == a or domain.endswith("." + a) for a in allowed)


@rule("GL007", "annotation-prefix", "warning", "custom annotations use the repository's prefix (`monosense.dev/`)",
      "rename the annotation to <prefix><name>; well-known prefixes are listed in .k8s-ops-lint.yaml "
      "knownPrefixes")  # fmt: skip
def annotation_prefix(repo: Repo) -> Iterator[Hit]:
    prefix = repo.config.annotation_prefix
    own = prefix.rstrip("/")
    allowed = (own, *repo.config.known_prefixes)
    for d in repo.docs:
        for key in d.annotations:
            domain, slash, _ = key.rpartition("/")
            if not slash:
                yield Hit.at(d, f"annotation {key!r} has no prefix; use {prefix}{key}", "metadata", "annotations",
                             key)  # fmt: skip
            elif not _domain_ok(domain, allowed):
                yield Hit.at(d, f"annotation {key!r}: custom annotations use {prefix}", "metadata", "annotations",
                             key)  # fmt: skip


@rule("GL008", "lint-ignore-reason", "error", "an opt-out annotation names known rules and gives a reason",
      "write `<prefix>lint-ignore: \"GL012 why this object is an exception\"`")  # fmt: skip
def lint_ignore_reason(repo: Repo) -> Iterator[Hit]:
    from k8s_ops.gitops.lint.engine import opt_outs

    key = repo.config.ignore_annotation
    for d in repo.docs:
        for o in opt_outs(d, repo.config):
            if o.problem is not None:
                yield Hit.at(d, f"{key} {o.problem}", "metadata", "annotations", key)
