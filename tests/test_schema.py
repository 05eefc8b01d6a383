"""Per-document Talos schema validation: kind dispatch, the tolerance list, fetching and caching the schema."""

from __future__ import annotations

import copy
import json
import re
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from k8s_ops.core import paths
from k8s_ops.core.errors import ToolkitError
from k8s_ops.talos.schema import (
    SCHEMA_ENV,
    TOLERANCES,
    TalosSchema,
    json_path,
    load_schema,
    official_schema_url,
)
from k8s_ops.talos.yamlio import load_documents

SHARED = paths.repo_root().parent / "shared"
REF = SHARED / "reference" / "talos"
SCHEMA_FILE = REF / "config.schema.json"
needs_reference = pytest.mark.skipif(
    not SCHEMA_FILE.is_file(), reason=f"reference Talos schema not found at {SCHEMA_FILE} (../shared absent)"
)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("K8S_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv(SCHEMA_ENV, raising=False)
    return tmp_path / "state"


@pytest.fixture(scope="module")
def reference_schema() -> TalosSchema:
    if not SCHEMA_FILE.is_file():
        pytest.skip(f"reference Talos schema not found at {SCHEMA_FILE} (../shared absent)")
    return TalosSchema(json.loads(SCHEMA_FILE.read_text()), source=str(SCHEMA_FILE))


def _docs(path: Path) -> list[Any]:
    return load_documents(path.read_text())


def _raw_errors(schema: TalosSchema, def_name: str | None, doc: Any) -> list[str]:
    """Plain jsonschema errors with no tolerance applied (proves a defect is still in the schema)."""
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    sub = {"$ref": f"#/$defs/{def_name}"} if def_name else {"oneOf": schema.raw["oneOf"]}
    return [e.message for e in Draft202012Validator({**sub, "$defs": schema.defs}).iter_errors(doc)]


# --- the reference fixtures ------------------------------------------------------------------------

STABILITY = ["base-controlplane.yaml", "base-worker.yaml", "overrides-controlplane.yaml", "overrides-worker.yaml"]


@needs_reference
@pytest.mark.parametrize("name", STABILITY)
def test_every_stability_golden_document_validates_with_the_tolerance(reference_schema: TalosSchema, name: str) -> None:
    docs = _docs(REF / "stability-v1.12" / name)
    problems, results = reference_schema.validate_documents(docs, file=name)
    assert problems == []
    used = {t.where for r in results for t in r.tolerated}
    expected = {"v1alpha1 persist"} | ({"v1alpha1 machine.install.extraKernelArgs"} if "overrides" in name else set())
    assert used == expected
    # without the tolerance the schema rejects the main document (documented defect 1)
    assert any("'persist' was unexpected" in m for m in _raw_errors(reference_schema, "v1alpha1.Config", docs[0]))


@needs_reference
def test_every_multidoc_example_validates_and_only_the_three_defects_need_tolerating(
    reference_schema: TalosSchema,
) -> None:
    needing: dict[str, set[str]] = {}
    files = sorted((REF / "multidoc-examples").glob("*.yaml"))
    assert len(files) == 45
    for f in files:
        problems, results = reference_schema.validate_documents(_docs(f), file=f.name)
        assert problems == [], f.name
        used = {t.where for r in results for t in r.tolerated}
        if used:
            needing[f.name] = used
    assert needing == {
        "kmsglog.yaml": {"KmsgLogConfig url"},
        "kubespanendpointsconfig.yaml": {"KubeSpanEndpointsConfig"},
        "registrytlsconfig.yaml": {"RegistryTLSConfig clientIdentity.cert"},
    }


@needs_reference
@pytest.mark.parametrize(
    ("name", "def_name", "raw_error"),
    [
        ("kmsglog.yaml", "runtime.KmsgLogV1Alpha1", "does not match '^(tcp|udp)://'"),
        ("kubespanendpointsconfig.yaml", None, "is not valid under any of the given schemas"),
        ("registrytlsconfig.yaml", "cri.RegistryTLSConfigV1Alpha1", "'cert' was unexpected"),
    ],
)
def test_the_three_multidoc_defects_are_real_without_the_tolerance(
    reference_schema: TalosSchema, name: str, def_name: str | None, raw_error: str
) -> None:
    doc = _docs(REF / "multidoc-examples" / name)[0]
    assert any(raw_error in m for m in _raw_errors(reference_schema, def_name, doc))
    assert reference_schema.validate_document(doc).ok


@needs_reference
def test_talhelper_multidoc_golden_validates(reference_schema: TalosSchema) -> None:
    f = SHARED / "reference" / "talhelper" / "multidocs" / "node3_expected.yaml"
    problems, _ = reference_schema.validate_documents(_docs(f), file=f.name)
    assert problems == []


@needs_reference
def test_each_drop_tolerance_names_a_field_the_schema_lacks(reference_schema: TalosSchema) -> None:
    # keeps the tolerance list honest: nothing the schema defines is skipped
    for tol in TOLERANCES:
        if tol.action == "drop":
            assert not reference_schema.has_field("v1alpha1.Config", tol.path), tol.where
    assert reference_schema.has_field("v1alpha1.Config", ("machine", "install", "image"))


# --- real errors still surface ---------------------------------------------------------------------


@needs_reference
def test_real_errors_are_reported_with_kind_and_json_path(reference_schema: TalosSchema) -> None:
    golden = _docs(REF / "stability-v1.12" / "base-worker.yaml")
    main = copy.deepcopy(golden[0])
    main["machine"]["install"]["disk"] = 5
    main["machine"]["bogus"] = True
    docs = [
        main,
        {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "sometimes"},
        {"apiVersion": "v1alpha1", "kind": "KmsgLogConfig", "name": "x", "url": "not a url"},
        {"apiVersion": "v1alpha1", "kind": "KubeSpanEndpointsConfig", "extraAnnouncedEndpoints": 3},
        {"apiVersion": "v1alpha1", "kind": "RegistryTLSConfig", "name": "r", "clientIdentity": {"cert": 1}},
        {"apiVersion": "v1alpha1", "kind": "NoSuchConfig"},
        {"apiVersion": "v1alpha1", "kind": "HostnamConfig"},
        ["not", "a", "mapping"],
    ]
    problems, _ = reference_schema.validate_documents(docs, file="cp1.yaml")
    fields = [p.field for p in problems]
    assert {p.file for p in problems} == {"cp1.yaml"}
    assert "v1alpha1 machine.install.disk" in fields
    assert "v1alpha1 machine" in fields  # additionalProperties: 'bogus'
    assert any("'bogus' was unexpected" in p.message for p in problems)
    assert "HostnameConfig auto" in fields
    assert "KmsgLogConfig/x url" in fields  # not an absolute URL: the pattern tolerance does not apply
    assert "KubeSpanEndpointsConfig extraAnnouncedEndpoints" in fields
    assert "RegistryTLSConfig/r clientIdentity.cert" in fields  # wrong type, reported under the document's name
    assert "NoSuchConfig kind" in fields
    assert any("did you mean 'HostnameConfig'" in p.message for p in problems if p.field == "HostnamConfig kind")
    assert any(p.field.startswith("document 8") for p in problems)
    assert len(problems) == 9


@needs_reference
def test_validation_never_modifies_the_callers_document(reference_schema: TalosSchema) -> None:
    doc = _docs(REF / "stability-v1.12" / "overrides-worker.yaml")[0]
    before = copy.deepcopy(doc)
    assert reference_schema.validate_document(doc).ok
    assert doc == before


@needs_reference
def test_a_tolerance_lapses_once_the_schema_is_fixed(reference_schema: TalosSchema) -> None:
    fixed = copy.deepcopy(dict(reference_schema.raw))
    fixed["$defs"]["v1alpha1.Config"]["properties"]["persist"] = {"type": "boolean"}
    schema = TalosSchema(fixed)
    doc = _docs(REF / "stability-v1.12" / "base-worker.yaml")[0]
    assert schema.validate_document(doc).tolerated == ()
    bad = {**doc, "persist": "yes"}
    assert [i.path for i in schema.validate_document(bad).issues] == ["persist"]


def test_json_path_formats_indices_and_odd_keys() -> None:
    assert json_path(["machine", "certSANs", 0]) == "machine.certSANs[0]"
    assert json_path(["machine", "nodeLabels", "node.kubernetes.io/x"]) == 'machine.nodeLabels["node.kubernetes.io/x"]'
    assert json_path([]) == ""


def test_a_file_that_is_not_a_talos_schema_is_refused() -> None:
    with pytest.raises(ToolkitError, match="not a Talos config schema"):
        TalosSchema({"$defs": {}})


# --- loading: env override, fetch, cache, offline --------------------------------------------------

_MINI = {
    "$id": "https://talos.dev/v1.12/schemas/config.schema.json",
    "$defs": {"v1alpha1.Config": {"type": "object"}},
    "oneOf": [{"$ref": "#/$defs/v1alpha1.Config"}],
}


def _serving(body: bytes, seen: list[str], status: int = 200) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(status, content=body)

    return httpx.Client(transport=httpx.MockTransport(handler))


def _offline() -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("network is unreachable", request=request)

    return httpx.Client(transport=httpx.MockTransport(handler))


@needs_reference
def test_env_path_override_loads_the_reference_schema(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCHEMA_ENV, str(SCHEMA_FILE))
    schema = load_schema("v1.12.11", client=_offline())
    assert schema.version == "v1.12"
    assert "HostnameConfig" in schema.kinds
    assert not (state / "cache").exists()  # a local file is used as is, not cached


def test_official_url_is_the_exact_tag_on_github() -> None:
    assert official_schema_url("v1.12.11") == (
        "https://raw.githubusercontent.com/siderolabs/talos/v1.12.11/pkg/machinery/config/schemas/config.schema.json"
    )


def test_fetch_caches_0600_and_the_cache_serves_offline(state: Path) -> None:
    seen: list[str] = []
    schema = load_schema("v1.12.11", client=_serving(json.dumps(_MINI).encode(), seen))
    assert seen == [official_schema_url("v1.12.11")]
    assert schema.source == official_schema_url("v1.12.11")
    cached = list((state / "cache" / "talos-schema").iterdir())
    assert [p.name for p in cached] == ["v1.12.11.config.schema.json"]
    assert stat.S_IMODE(cached[0].stat().st_mode) == 0o600
    again = load_schema("v1.12.11", client=_offline())
    assert again.raw == _MINI


def test_offline_without_cache_is_a_clear_error(state: Path) -> None:
    with pytest.raises(ToolkitError) as exc:
        load_schema("v1.12.11", client=_offline())
    text = str(exc.value)
    assert "cannot fetch the Talos v1.12.11 config schema" in text
    assert "no cached copy" in text and SCHEMA_ENV in text


def test_http_error_and_garbage_are_not_cached(state: Path) -> None:
    with pytest.raises(ToolkitError, match="404"):
        load_schema("v1.12.11", client=_serving(b"Not Found", [], status=404))
    with pytest.raises(ToolkitError, match="not valid JSON"):
        load_schema("v1.12.11", client=_serving(b"<html>", []))
    assert not (state / "cache" / "talos-schema" / "v1.12.11.config.schema.json").exists()


def test_env_url_override_is_fetched_and_cached_separately(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCHEMA_ENV, "https://mirror.example/talos/config.schema.json")
    seen: list[str] = []
    load_schema("v1.12.11", client=_serving(json.dumps(_MINI).encode(), seen))
    assert seen == ["https://mirror.example/talos/config.schema.json"]
    names = [p.name for p in (state / "cache" / "talos-schema").iterdir()]
    assert len(names) == 1 and names[0].startswith("url-")


def test_a_schema_of_another_minor_is_refused(state: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = tmp_path / "v1.11.json"
    other.write_text(json.dumps({**_MINI, "$id": "https://talos.dev/v1.11/schemas/config.schema.json"}))
    monkeypatch.setenv(SCHEMA_ENV, str(other))
    with pytest.raises(ToolkitError, match=re.escape("is the Talos v1.11 schema, but the cluster runs v1.12.11")):
        load_schema("v1.12.11")


def test_missing_override_file_names_the_variable(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCHEMA_ENV, "/nonexistent/config.schema.json")
    with pytest.raises(ToolkitError, match=re.escape(f"{SCHEMA_ENV}=/nonexistent/config.schema.json")):
        load_schema("v1.12.11")
