"""Containers and secrets (GL030–GL034): pinned images, the security context, no plain-text Secret.

Containers are read from workload objects (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) and
from HelmRelease values in the app-template shape (`controllers.<c>.containers|initContainers.<n>`, pod options in
`defaultPodOptions` / `controllers.<c>.pod`); other charts' values are only searched for images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from k8s_ops.gitops.lint.model import Doc, Hit, Repo, dig, rule

__all__: list[str] = []

DIGEST = "@sha256:"
_POD_SPEC: dict[tuple[str, str], tuple[str, ...]] = {
    ("v1", "Pod"): ("spec",),
    **{("apps/v1", k): ("spec", "template", "spec") for k in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")},
    ("batch/v1", "Job"): ("spec", "template", "spec"),
    ("batch/v1", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}


@dataclass(frozen=True)
class Container:
    doc: Doc
    path: tuple[str | int, ...]  # to the container mapping
    data: dict[str, Any]
    pod_security: dict[str, Any]

    @property
    def name(self) -> str:
        n = self.data.get("name")
        return str(n) if n is not None else str(self.path[-1])

    def security(self, key: str) -> Any:
        return dig(self.data, "securityContext", key)


def _as_dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def containers(repo: Repo) -> Iterator[Container]:
    for d in repo.docs:
        spec_path = _POD_SPEC.get((d.api_version, d.kind))
        if spec_path is not None:
            pod = _as_dict(d.get(*spec_path))
            for key in ("initContainers", "containers"):
                items = pod.get(key)
                for i, c in enumerate(items if isinstance(items, list) else []):
                    if isinstance(c, dict):
                        yield Container(d, (*spec_path, key, i), c, _as_dict(pod.get("securityContext")))
        elif d.kind == "HelmRelease" and d.group == "helm.toolkit.fluxcd.io":
            yield from _app_template(d)


def _app_template(d: Doc) -> Iterator[Container]:
    values = _as_dict(d.get("spec", "values"))
    default_pod = _as_dict(dig(values, "defaultPodOptions", "securityContext"))
    for cname, ctrl in _as_dict(values.get("controllers")).items():
        pod = _as_dict(dig(ctrl, "pod", "securityContext")) or default_pod
        for key in ("initContainers", "containers"):
            for name, c in _as_dict(dig(ctrl, key)).items():
                if isinstance(c, dict):
                    yield Container(d, ("spec", "values", "controllers", cname, key, name), c, pod)


def _images(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(path, image reference) for every image in Helm values: `image: ref` strings and
    `{repository, tag}` mappings (tag shown with the repository)."""
    if isinstance(value, dict):
        repo_, tag = value.get("repository"), value.get("tag")
        if isinstance(repo_, str) and tag is not None and not value.get("digest"):
            yield (*path, "tag"), f"{repo_}:{tag}"
        for k, v in value.items():
            if k == "image" and isinstance(v, str):
                yield (*path, k), v
            else:
                yield from _images(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _images(v, (*path, i))


@rule("GL030", "image-digest", "error", "images are pinned by digest (`@sha256:`)",
      "write the image as <repository>:<tag>@sha256:<digest> (Renovate keeps the digest current)")  # fmt: skip
def image_digest(repo: Repo) -> Iterator[Hit]:
    for c in containers(repo):
        if c.doc.kind == "HelmRelease":
            continue  # values are searched below
        image = c.data.get("image")
        if isinstance(image, str) and DIGEST not in image:
            yield Hit.at(c.doc, f"container {c.name}: image {image} is not pinned by digest", *c.path, "image")
    for d in repo.kinds("helm.toolkit.fluxcd.io", "HelmRelease"):
        for path, image in _images(d.get("spec", "values"), ("spec", "values")):
            if DIGEST not in image:
                yield Hit.at(d, f"image {image} is not pinned by digest", *path)


@rule("GL031", "drop-all-capabilities", "error", "containers drop ALL capabilities",
      "securityContext: {capabilities: {drop: [ALL]}} on every container")  # fmt: skip
def drop_all(repo: Repo) -> Iterator[Hit]:
    for c in containers(repo):
        drop = c.security("capabilities")
        dropped = dig(drop, "drop")
        if not isinstance(dropped, list) or "ALL" not in dropped:
            yield Hit.at(c.doc, f"container {c.name} does not drop ALL capabilities", *c.path)


@rule("GL032", "run-as-non-root", "error", "containers run as non-root (container or pod `runAsNonRoot: true`)",
      "securityContext: {runAsNonRoot: true} with a non-zero runAsUser (container or pod level)")  # fmt: skip
def run_as_non_root(repo: Repo) -> Iterator[Hit]:
    for c in containers(repo):
        own = c.security("runAsNonRoot")
        effective = own if own is not None else c.pod_security.get("runAsNonRoot")
        user = c.security("runAsUser")
        user = user if user is not None else c.pod_security.get("runAsUser")
        if effective is not True or user == 0:
            why = "runs as root (runAsUser 0)" if user == 0 else "does not set runAsNonRoot: true"
            yield Hit.at(c.doc, f"container {c.name} {why}", *c.path)


@rule("GL033", "read-only-root-filesystem", "warning", "containers have a read-only root filesystem where possible",
      "securityContext: {readOnlyRootFilesystem: true} (mount an emptyDir for paths it must write); opt out with "
      "a reason when the image cannot")  # fmt: skip
def read_only_root(repo: Repo) -> Iterator[Hit]:
    for c in containers(repo):
        if c.security("readOnlyRootFilesystem") is not True:
            yield Hit.at(c.doc, f"container {c.name} has a writable root filesystem", *c.path)


@rule("GL034", "plaintext-secret", "error", "no Secret in plain text: every Secret is SOPS-encrypted",
      "use an ExternalSecret (1Password), or encrypt the file with `sops -e -i <file>.sops.yaml`")  # fmt: skip
def plaintext_secret(repo: Repo) -> Iterator[Hit]:
    for f in repo.files:
        for d in f.docs:
            encrypted = isinstance(d.data, dict) and isinstance(d.data.get("sops"), dict)
            if d.api_version == "v1" and d.kind == "Secret" and not encrypted:
                yield Hit.at(d, f"Secret {d.name} is not encrypted with SOPS")
        if (
            f.name.endswith(".sops.yaml")
            and f.docs
            and not any(isinstance(d.data, dict) and isinstance(d.data.get("sops"), dict) for d in f.docs)
        ):
            yield Hit(f.path, 1, f"{f.name} is named .sops.yaml but has no sops metadata (not encrypted)")
