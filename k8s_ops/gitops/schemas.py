"""Schemas for every object Flux would apply: Kubernetes built-ins and CRDs.

* Built-ins: the `kubernetes-validate` package's strict JSON schemas (unknown fields refused) for the cluster's
  `kubernetesVersion` minor (the newest schema set not newer than it). One validator per kind, built once.
* CRDs: the `openAPIV3Schema` of every CustomResourceDefinition found in the build, then a cache of upstream
  CRDs for operators whose CRDs come from charts (`PINS`: Flux, External Secrets, CNPG, VolSync, Gateway API,
  Cilium), pinned by version and stored under `<state dir>/gitops/crds/<pin>-<version>/`. Missing pins are
  fetched with httpx unless offline; an offline run (or a failed fetch) uses what is cached and says what it
  skipped. An object whose kind has no schema at all is skipped with a note, never guessed.

A structural CRD schema is read as the API server reads it: `nullable` allows null, `x-kubernetes-int-or-string`
takes either, `x-kubernetes-preserve-unknown-fields` keeps unknown fields; any other object with `properties`
refuses fields it does not declare (the API server would drop them silently — a setting lost without a word).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml

from k8s_ops.core import paths

__all__ = [
    "PINS",
    "CrdPin",
    "SchemaError",
    "SchemaSet",
    "cache_dir",
    "crd_validators",
    "fetch_pins",
    "structural_to_jsonschema",
]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class CrdPin:
    """One operator's CRDs at a pinned version: the groups they define and where to download them."""

    name: str
    version: str
    groups: tuple[str, ...]
    urls: tuple[str, ...]


_FLUX = "https://raw.githubusercontent.com/fluxcd"
PINS: tuple[CrdPin, ...] = (
    CrdPin(
        "flux",
        "v2.7.5",
        (
            "kustomize.toolkit.fluxcd.io",
            "source.toolkit.fluxcd.io",
            "helm.toolkit.fluxcd.io",
            "notification.toolkit.fluxcd.io",
            "image.toolkit.fluxcd.io",
        ),
        (
            f"{_FLUX}/kustomize-controller/v1.7.3/config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml",
            f"{_FLUX}/helm-controller/v1.4.5/config/crd/bases/helm.toolkit.fluxcd.io_helmreleases.yaml",
            f"{_FLUX}/source-controller/v1.7.4/config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml",
            f"{_FLUX}/source-controller/v1.7.4/config/crd/bases/source.toolkit.fluxcd.io_ocirepositories.yaml",
            f"{_FLUX}/source-controller/v1.7.4/config/crd/bases/source.toolkit.fluxcd.io_helmrepositories.yaml",
            f"{_FLUX}/source-controller/v1.7.4/config/crd/bases/source.toolkit.fluxcd.io_helmcharts.yaml",
            f"{_FLUX}/source-controller/v1.7.4/config/crd/bases/source.toolkit.fluxcd.io_buckets.yaml",
        ),
    ),
    CrdPin(
        "external-secrets",
        "v0.20.4",
        ("external-secrets.io", "generators.external-secrets.io"),
        ("https://raw.githubusercontent.com/external-secrets/external-secrets/v0.20.4/deploy/crds/bundle.yaml",),
    ),
    CrdPin(
        "cloudnative-pg",
        "v1.27.1",
        ("postgresql.cnpg.io",),
        ("https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/v1.27.1/releases/cnpg-1.27.1.yaml",),
    ),
    CrdPin(
        "volsync",
        "v0.13.1",
        ("volsync.backube",),
        (
            "https://raw.githubusercontent.com/backube/volsync/v0.13.1/config/crd/bases/volsync.backube_replicationsources.yaml",
            "https://raw.githubusercontent.com/backube/volsync/v0.13.1/config/crd/bases/volsync.backube_replicationdestinations.yaml",
        ),
    ),
    CrdPin(
        "gateway-api",
        "v1.4.1",
        ("gateway.networking.k8s.io",),
        ("https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.4.1/experimental-install.yaml",),
    ),
    CrdPin(
        "cilium",
        "v1.18.4",
        ("cilium.io",),
        tuple(
            f"https://raw.githubusercontent.com/cilium/cilium/v1.18.4/pkg/k8s/apis/cilium.io/client/crds/v2/{n}.yaml"
            for n in (
                "ciliumnetworkpolicies",
                "ciliumclusterwidenetworkpolicies",
                "ciliumloadbalancerippools",
                "ciliumbgpclusterconfigs",
                "ciliumbgppeerconfigs",
                "ciliumbgpadvertisements",
                "ciliuml2announcementpolicies",
            )
        ),
    ),
)


class SchemaError(ValueError):
    """A schema that cannot be used (an unreadable CRD in the cache)."""


def cache_dir() -> Path:
    """`<state dir>/gitops/crds`: one directory per pin and version."""
    return paths.state_dir() / "gitops" / "crds"


def _pin_dir(pin: CrdPin) -> Path:
    return cache_dir() / f"{pin.name}-{pin.version}"


def fetch_pins(groups: Iterable[str], *, offline: bool, client: Any = None) -> tuple[list[Path], list[str]]:
    """The cached CRD files of every pin defining one of `groups` (fetching missing pins unless `offline`, with
    `client`, an httpx.Client, or a new one), and notes on what was skipped, each saying how to fill the cache.
    Once the network fails (no connection, a timeout) the other pins are not tried: a run without a network
    costs one failed connection, not one per pin."""
    wanted = set(groups)
    files: list[Path] = []
    notes: list[str] = []
    down: str | None = None
    for pin in PINS:
        if not wanted.intersection(pin.groups):
            continue
        d = _pin_dir(pin)
        if not (d.is_dir() and any(d.glob("*.yaml"))):
            if offline:
                notes.append(
                    f"offline: no cached CRDs for {pin.name} {pin.version}; its kinds are skipped" + _fill(pin)
                )
                continue
            problem = f"not tried after {down}" if down else _download(pin, d, client)
            if problem is not None:
                if problem.startswith(_NETWORK):
                    down = problem
                notes.append(f"could not fetch CRDs of {pin.name} {pin.version} ({problem}); its kinds are skipped")
                notes[-1] += _fill(pin)
                continue
        files.extend(sorted(d.glob("*.yaml")))
    return files, notes


_NETWORK = ("ConnectError", "ConnectTimeout", "ReadTimeout", "PoolTimeout", "ProxyError", "NetworkError")
"""httpx's transport failures: the network (or the host) is not there, so no other pin is tried either."""


def _fill(pin: CrdPin) -> str:
    hosts = ", ".join(sorted({url.split("/")[2] for url in pin.urls}))
    return (
        f" — to fill the cache run gitops.validate once without --offline where {hosts} answers, or save the CRD "
        f"YAML of {pin.urls[0]}"
        + (f" (and {len(pin.urls) - 1} more)" if len(pin.urls) > 1 else "")
        + f" into {_pin_dir(pin)}/"
    )


def _download(pin: CrdPin, target: Path, client: Any = None) -> str | None:
    import httpx

    bodies: list[tuple[str, bytes]] = []
    try:
        with client if client is not None else httpx.Client(timeout=10.0, follow_redirects=True) as http:
            for i, url in enumerate(pin.urls):
                response = http.get(url)
                response.raise_for_status()
                bodies.append((f"{i:02d}-{url.rsplit('/', 1)[-1]}", response.content))
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    target.mkdir(parents=True, exist_ok=True)
    for name, body in bodies:
        crds = [d for d in yaml.load_all(body, Loader=_Loader) if _is_crd(d)]
        text = yaml.safe_dump_all(crds, sort_keys=False)
        (target / (name if name.endswith(".yaml") else name + ".yaml")).write_text(text, encoding="utf-8")
    return None


def _is_crd(doc: object) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"


def structural_to_jsonschema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A CRD's structural openAPIV3Schema as a JSON schema the way the API server applies it (see module doc)."""

    def conv(node: Any) -> Any:
        if not isinstance(node, Mapping):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("properties", "patternProperties", "definitions"):
                out[key] = {k: conv(v) for k, v in value.items()} if isinstance(value, Mapping) else value
            elif key in ("items", "additionalProperties", "not"):
                out[key] = conv(value)
            elif key in ("allOf", "anyOf", "oneOf"):
                out[key] = [conv(v) for v in value] if isinstance(value, list) else value
            elif key.startswith("x-kubernetes-") or key in ("nullable", "format", "example", "externalDocs"):
                continue
            else:
                out[key] = value
        if node.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out.pop("anyOf", None)
            out["type"] = ["integer", "string"]
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        if node.get("nullable") and "type" in out:
            t = out["type"]
            out["type"] = [*(t if isinstance(t, list) else [t]), "null"]
        return out

    root: dict[str, Any] = conv(schema)
    # apiVersion, kind and metadata are the API server's own (always allowed, metadata checked by its own rules)
    if isinstance(root.get("properties"), dict):
        root["properties"].update(
            {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
        )
    return root


def crd_validators(crds: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) → validator for every served version of every CRD given."""
    out: dict[tuple[str, str], Any] = {}
    for crd in crds:
        spec = crd.get("spec") or {}
        group = spec.get("group")
        kind = (spec.get("names") or {}).get("kind")
        if not isinstance(group, str) or not isinstance(kind, str):
            continue
        for version in spec.get("versions") or []:
            schema = ((version.get("schema") or {}).get("openAPIV3Schema")) if isinstance(version, dict) else None
            if not isinstance(schema, Mapping) or version.get("served") is False:
                continue
            js = structural_to_jsonschema(copy.deepcopy(dict(schema)))
            out[(f"{group}/{version.get('name')}", kind)] = jsonschema.Draft7Validator(js)
    return out


_BUILTIN_GROUP = re.compile(r"^(?:[a-z0-9-]+|[a-z0-9.-]+\.k8s\.io)$")


def _builtin_dir(kubernetes_version: str) -> tuple[Path, str]:
    from kubernetes_validate import utils  # type: ignore[import-untyped]

    wanted = utils.major_minor(kubernetes_version.lstrip("v"))
    candidates = [v for v in utils.all_versions() if utils.major_minor(v) <= wanted]
    version = candidates[-1] if candidates else utils.all_versions()[0]
    base = Path(utils.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    return base, utils.major_minor(version)


@dataclass
class Finding:
    """One schema violation: the field path inside the object and the message."""

    path: tuple[str | int, ...]
    message: str


class SchemaSet:
    """Validators for built-ins of one Kubernetes version plus CRDs; thread-safe lazy loading."""

    def __init__(self, kubernetes_version: str, crds: Iterable[Mapping[str, Any]] = ()) -> None:
        self.base, self.k8s_minor = _builtin_dir(kubernetes_version)
        self._crd = crd_validators(crds)
        self._builtin: dict[tuple[str, str], Any | None] = {}
        self._lock = threading.Lock()
        self._registry: Any = None

    def add_crds(self, crds: Iterable[Mapping[str, Any]]) -> None:
        """Add CRDs (cache first, then the build's own, so the repository's CRDs win)."""
        self._crd.update(crd_validators(crds))

    def _builtin_validator(self, api_version: str, kind: str) -> Any | None:
        key = (api_version, kind)
        with self._lock:
            if key in self._builtin:
                return self._builtin[key]
            from referencing import Registry, Resource

            if self._registry is None:
                defs = json.loads((self.base / "_definitions.json").read_text(encoding="utf-8"))
                self._registry = Resource.from_contents(defs) @ Registry()
            group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            file = self.base / f"{kind.lower()}-{group_version}.json"
            validator: Any | None = None
            if file.is_file():
                schema = json.loads(file.read_text(encoding="utf-8"))
                resource = Resource.from_contents(schema)
                validator = jsonschema.Draft202012Validator(schema, registry=resource @ self._registry)
            self._builtin[key] = validator
            return validator

    def known(self, api_version: str, kind: str) -> bool:
        """Whether a schema exists for the kind (built-in or CRD)."""
        return (api_version, kind) in self._crd or self._builtin_validator(api_version, kind) is not None

    @staticmethod
    def is_builtin_group(api_version: str) -> bool:
        """`v1`, `apps/v1`, `networking.k8s.io/v1`: groups only Kubernetes itself defines."""
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        return group == "" or bool(_BUILTIN_GROUP.match(group))

    def validate(self, obj: Mapping[str, Any]) -> list[Finding] | None:
        """Every violation of `obj`'s schema (empty: valid), or None when no schema is known for its kind."""
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        validator = self._crd.get((api_version, kind)) or self._builtin_validator(api_version, kind)
        if validator is None:
            return None
        return list(_findings(validator.iter_errors(obj)))


_UNEXPECTED = re.compile(r"\('([^']+)'(?: was| were) unexpected\)|'([^']+)' (?:was|were) unexpected")


def _findings(errors: Iterator[jsonschema.ValidationError]) -> Iterator[Finding]:
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        path = tuple(error.absolute_path)
        message = error.message
        m = re.search(r"Additional properties are not allowed \((.+)\)", message)
        if m is not None:
            names = re.findall(r"'([^']+)'", m.group(1))
            for name in names:
                yield Finding((*path, name), f"unknown field {name!r}")
            continue
        if len(message) > 200:
            message = message[:200] + "…"
        yield Finding(path, message)
