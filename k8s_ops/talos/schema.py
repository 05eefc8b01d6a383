"""Per-document JSON-schema validation of rendered Talos machine configs, with the schema's known defects tolerated.

Where the schema comes from
    The official `config.schema.json` of the cluster's exact Talos tag, fetched from
    `https://raw.githubusercontent.com/siderolabs/talos/<vX.Y.Z>/pkg/machinery/config/schemas/config.schema.json`.
    We pick the tag URL over the website's per-minor copy (`talos.dev/v1.12/schemas/...`) because a tag is
    immutable: the file matches the Talos we install byte for byte and a cached copy never goes stale.
    It is cached (0600) under `<state_dir>/cache/talos-schema/`; the project never vendors it.
    `K8S_OPS_TALOS_SCHEMA` (a file path or a URL) overrides the source. Offline without a cached copy is an error.

How a document is validated (as Talos's own `config_schema_test.go` does)
    Each YAML document is checked against the `$def` whose `properties.kind.enum[0]` equals its `kind`;
    a document without `kind` is the `v1alpha1.Config`; an unknown kind is checked against the top-level `oneOf`.

Tolerated schema defects (`TOLERANCES`, verified on the v1.12.11 fixtures)
    1. deprecated (`docgen:nodoc`) v1alpha1 fields are missing from the schema, yet Talos accepts them:
       `persist`, `machine.install.{extraKernelArgs,extensions,bootloader}`, legacy `machine.network.*`,
       `machine.{registries,time,disks,systemDiskEncryption}`, `machine.features.{rbac,stableHostname,
       apidCheckExtKeyUsage}` — dropped before validation. (Our own renderer must not emit
       `install.extraKernelArgs` or `machine.network.hostname`; `k8s_ops.talos.semantic` rejects those.)
    2. the schema names the kind `KubeSpanEndpoints`; Go registers `KubeSpanEndpointsConfig` — validated as
       the former.
    3. `RegistryTLSConfig.clientIdentity` has `crt` in the schema, `cert` in Go — validated renamed.
    4. `KmsgLogConfig.url` pattern `^(tcp|udp)://` is stricter than Talos — a pattern error is ignored when the
       value is an absolute `scheme://host` URL.
    Each tolerance applies only while the schema still has the defect (the field is absent, the kind is missing,
    ...), so a fixed schema validates the real field again. `talosctl validate` stays the authority.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from k8s_ops.core import paths
from k8s_ops.core.errors import Problem, ToolkitError, field_path
from k8s_ops.core.facts import dig
from k8s_ops.core.files import write_private

if TYPE_CHECKING:
    import httpx

__all__ = [
    "SCHEMA_ENV",
    "TOLERANCES",
    "DocumentResult",
    "SchemaIssue",
    "TalosSchema",
    "Tolerance",
    "document_label",
    "json_path",
    "load_schema",
    "official_schema_url",
]

SCHEMA_ENV = "K8S_OPS_TALOS_SCHEMA"
CONFIG_DEF = "v1alpha1.Config"
_URL_RE = re.compile(r"^https?://", re.I)
_ABSOLUTE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/\s]+")


# --- tolerances -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """One known defect of the Talos schema and how validation works around it.

    `kind` is the document kind (`v1alpha1` for the main document), `path` the field inside it.
    """

    defect: int
    kind: str
    path: tuple[str, ...]
    action: Literal["drop", "rename", "kind-alias", "url-pattern"]
    reason: str
    to: str = ""

    @property
    def where(self) -> str:
        return f"{self.kind} {'.'.join(self.path)}".strip()


_DEPRECATED = "deprecated field (docgen:nodoc) absent from the schema; Talos accepts it"
TOLERANCES: tuple[Tolerance, ...] = (
    Tolerance(1, "v1alpha1", ("persist",), "drop", _DEPRECATED + " (every v1.12 `gen config` emits it)"),
    *(
        Tolerance(1, "v1alpha1", ("machine", *p), "drop", _DEPRECATED)
        for p in (
            ("install", "extraKernelArgs"),
            ("install", "extensions"),
            ("install", "bootloader"),
            ("network", "hostname"),
            ("network", "interfaces"),
            ("network", "nameservers"),
            ("network", "searchDomains"),
            ("network", "extraHostEntries"),
            ("network", "disableSearchDomain"),
            ("registries",),
            ("time",),
            ("disks",),
            ("systemDiskEncryption",),
            ("features", "rbac"),
            ("features", "stableHostname"),
            ("features", "apidCheckExtKeyUsage"),
        )
    ),
    Tolerance(
        2, "KubeSpanEndpointsConfig", (), "kind-alias",
        "schema kind enum says KubeSpanEndpoints; Go registers KubeSpanEndpointsConfig", to="KubeSpanEndpoints",
    ),
    Tolerance(
        3, "RegistryTLSConfig", ("clientIdentity", "cert"), "rename",
        "schema has clientIdentity.crt; Go decodes clientIdentity.cert", to="crt",
    ),
    Tolerance(
        4, "KmsgLogConfig", ("url",), "url-pattern",
        "schema pattern ^(tcp|udp):// is stricter than Talos (upstream testdata uses https://)",
    ),
)  # fmt: skip


# --- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaIssue:
    """One schema violation in one document: `path` is the JSON path inside the document."""

    path: str
    message: str


@dataclass(frozen=True)
class DocumentResult:
    label: str
    issues: tuple[SchemaIssue, ...] = ()
    tolerated: tuple[Tolerance, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.issues


def json_path(parts: Iterable[Any]) -> str:
    """`machine.install.disk`, `machine.certSANs[0]`, `machine.nodeLabels["node.kubernetes.io/x"]`."""
    return field_path(parts)


def document_label(doc: Mapping[str, Any]) -> str:
    """`v1alpha1` for the main document, else `<kind>` or `<kind>/<name>`."""
    kind = doc.get("kind")
    if kind is None:
        return "v1alpha1"
    name = doc.get("name")
    return f"{kind}/{name}" if isinstance(name, str) and name else str(kind)


# --- the schema -------------------------------------------------------------------------------------


class TalosSchema:
    """A loaded `config.schema.json`: per-kind validators, defect tolerances, per-document results."""

    def __init__(self, schema: Mapping[str, Any], *, source: str = "<memory>") -> None:
        defs = schema.get("$defs")
        if not isinstance(defs, Mapping) or CONFIG_DEF not in defs or "oneOf" not in schema:
            raise ToolkitError(f"{source} is not a Talos config schema (no $defs/{CONFIG_DEF} or top-level oneOf)")
        self.raw = schema
        self.source = source
        self.defs: Mapping[str, Any] = defs
        self.kinds: dict[str, str] = {}
        for name, definition in defs.items():
            enum = (definition.get("properties") or {}).get("kind", {}).get("enum") or []
            if enum and isinstance(enum[0], str):
                self.kinds.setdefault(enum[0], name)
        self._validators: dict[str | None, Any] = {}

    @property
    def version(self) -> str | None:
        """The Talos minor in `$id` (`v1.12`), if any."""
        m = re.search(r"/(v\d+\.\d+)/", str(self.raw.get("$id", "")))
        return m.group(1) if m else None

    # -- schema introspection (decides whether a tolerance still applies)

    def _resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in node and seen < 32:
            ref = str(node["$ref"])
            if not ref.startswith("#/$defs/"):
                break
            node = self.defs.get(ref[len("#/$defs/") :], {})
            seen += 1
        return node

    def has_field(self, def_name: str, path: Sequence[str]) -> bool:
        """Whether the schema defines `path` under `$defs[def_name]`."""
        node: Mapping[str, Any] = self.defs.get(def_name, {})
        for part in path:
            props = self._resolve(node).get("properties") or {}
            if part not in props:
                return False
            node = props[part]
        return True

    def _validator(self, def_name: str | None) -> Any:
        if def_name not in self._validators:
            from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

            sub = {"$ref": f"#/$defs/{def_name}"} if def_name else {"oneOf": self.raw["oneOf"]}
            self._validators[def_name] = Draft202012Validator({**sub, "$defs": self.defs})
        return self._validators[def_name]

    # -- validation

    def _apply_tolerances(
        self, doc: dict[str, Any], kind_key: str, def_name: str | None
    ) -> tuple[dict[str, Any], str | None, list[Tolerance]]:
        used: list[Tolerance] = []
        for tol in TOLERANCES:
            if tol.kind != kind_key:
                continue
            if tol.action == "kind-alias" and def_name is None and tol.to in self.kinds:
                doc = {**doc, "kind": tol.to}
                def_name = self.kinds[tol.to]
                used.append(tol)
            elif tol.action in ("drop", "rename") and def_name is not None:
                parent = dig(doc, *tol.path[:-1])
                leaf = tol.path[-1]
                if not isinstance(parent, dict) or leaf not in parent or self.has_field(def_name, tol.path):
                    continue
                if tol.action == "rename":
                    target = (*tol.path[:-1], tol.to)
                    if not self.has_field(def_name, target) or tol.to in parent:
                        continue
                doc = _copy_on_write(doc, tol.path[:-1])
                parent = dig(doc, *tol.path[:-1])
                value = parent.pop(leaf)
                if tol.action == "rename":
                    parent[tol.to] = value
                used.append(tol)
        return doc, def_name, used

    def validate_document(self, doc: Any) -> DocumentResult:
        """Validate one parsed YAML document; returns its issues and the tolerances that were needed."""
        if not isinstance(doc, dict):
            return DocumentResult("?", (SchemaIssue("", f"a document must be a mapping, got {type(doc).__name__}"),))
        label = document_label(doc)
        kind = doc.get("kind")
        kind_key = "v1alpha1" if kind is None else str(kind)
        def_name: str | None = CONFIG_DEF if kind is None else self.kinds.get(str(kind))
        checked, def_name, used = self._apply_tolerances(doc, kind_key, def_name)
        if def_name is None:
            errors = list(self._validator(None).iter_errors(checked))
            if errors:
                import difflib

                close = difflib.get_close_matches(str(kind), list(self.kinds), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                msg = f"unknown document kind {kind!r}: matches none of the schema's documents{hint}"
                return DocumentResult(label, (SchemaIssue("kind", msg),), tuple(used))
            return DocumentResult(label, (), tuple(used))
        issues: list[SchemaIssue] = []
        for err in self._validator(def_name).iter_errors(checked):
            path = tuple(err.absolute_path)
            tol = self._url_pattern_tolerance(kind_key, path, err)
            if tol is not None:
                used.append(tol)
                continue
            issues.append(SchemaIssue(json_path(_original_path(path, used)), err.message))
        issues.sort(key=lambda i: (i.path, i.message))
        return DocumentResult(label, tuple(issues), tuple(used))

    @staticmethod
    def _url_pattern_tolerance(kind_key: str, path: tuple[Any, ...], err: Any) -> Tolerance | None:
        if err.validator != "pattern" or not isinstance(err.instance, str):
            return None
        for tol in TOLERANCES:
            if tol.action == "url-pattern" and tol.kind == kind_key and path == tol.path:
                return tol if _ABSOLUTE_URL.match(err.instance) else None
        return None

    def validate_documents(self, docs: Sequence[Any], *, file: str) -> tuple[list[Problem], list[DocumentResult]]:
        """Every document of one file: Problems (field = `<label> <json path>`) and the per-document results."""
        problems: list[Problem] = []
        results: list[DocumentResult] = []
        for index, doc in enumerate(docs):
            result = self.validate_document(doc)
            results.append(result)
            label = result.label if result.label != "?" else f"document {index + 1}"
            for issue in result.issues:
                problems.append(Problem(file, f"{label} {issue.path}".strip(), f"schema: {issue.message}"))
        return problems, results


def _original_path(path: tuple[Any, ...], used: Sequence[Tolerance]) -> tuple[Any, ...]:
    """Report errors under a renamed field by the name the document uses (`cert`, not the schema's `crt`)."""
    for tol in used:
        if tol.action == "rename":
            renamed = (*tol.path[:-1], tol.to)
            if path[: len(renamed)] == renamed:
                return (*tol.path, *path[len(renamed) :])
    return path


def _copy_on_write(doc: dict[str, Any], path: Sequence[str]) -> dict[str, Any]:
    """A copy of `doc` whose mappings along `path` are fresh (the caller's document is never modified)."""
    root = dict(doc)
    node = root
    for part in path:
        child = node[part]
        node[part] = dict(child) if isinstance(child, dict) else copy.deepcopy(child)
        node = node[part]
    return root


# --- loading ----------------------------------------------------------------------------------------


def official_schema_url(talos_version: str) -> str:
    """The schema of an exact Talos tag on GitHub (immutable, so safe to cache forever)."""
    tag = talos_version if talos_version.startswith("v") else f"v{talos_version}"
    return f"https://raw.githubusercontent.com/siderolabs/talos/{tag}/pkg/machinery/config/schemas/config.schema.json"


def cache_dir() -> Path:
    return paths.state_dir() / "cache" / "talos-schema"


def _cache_file(url: str, talos_version: str) -> Path:
    if url == official_schema_url(talos_version):
        return cache_dir() / f"{talos_version}.config.schema.json"
    return cache_dir() / f"url-{hashlib.sha256(url.encode()).hexdigest()[:16]}.config.schema.json"


def _parse(data: bytes, source: str) -> TalosSchema:
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise ToolkitError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ToolkitError(f"{source} is not a JSON object")
    return TalosSchema(raw, source=source)


def _minor(talos_version: str) -> str:
    m = re.match(r"^v?(\d+)\.(\d+)", talos_version)
    return f"v{m.group(1)}.{m.group(2)}" if m else talos_version


def _fetch(url: str, client: httpx.Client | None) -> bytes:
    import httpx

    own = client is None
    http = client if client is not None else httpx.Client(timeout=20.0, follow_redirects=True)
    try:
        response = http.get(url)
        response.raise_for_status()
        return response.content
    finally:
        if own:
            http.close()


def load_schema(talos_version: str, *, client: httpx.Client | None = None) -> TalosSchema:
    """The Talos config schema for `talos_version`: `K8S_OPS_TALOS_SCHEMA` (path or URL), else the cached
    official copy, else fetched from GitHub and cached. `client` is the HTTP test seam."""
    import httpx

    override = os.environ.get(SCHEMA_ENV, "").strip()
    if override and not _URL_RE.match(override):
        path = Path(override).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ToolkitError(f"{SCHEMA_ENV}={override}: cannot read the schema: {exc.strerror}") from None
        schema = _parse(data, str(path))
    else:
        url = override or official_schema_url(talos_version)
        cache = _cache_file(url, talos_version)
        schema_or_none: TalosSchema | None = None
        if cache.is_file():
            try:
                schema_or_none = _parse(cache.read_bytes(), str(cache))
            except ToolkitError:
                schema_or_none = None  # a damaged cache entry is refetched
        if schema_or_none is None:
            try:
                data = _fetch(url, client)
            except httpx.HTTPError as exc:
                raise ToolkitError(
                    f"cannot fetch the Talos {talos_version} config schema from {url}: {exc}",
                    hint=f"no cached copy at {cache}; connect once to cache it, or set {SCHEMA_ENV} "
                    "to a local config.schema.json",
                ) from None
            schema_or_none = _parse(data, url)
            write_private(cache, data)
        schema = schema_or_none
    expected = _minor(talos_version)
    if schema.version is not None and schema.version != expected:
        raise ToolkitError(
            f"{schema.source} is the Talos {schema.version} schema, but the cluster runs {talos_version}",
            hint=f"point {SCHEMA_ENV} at the {expected} schema, or unset it",
        )
    return schema
