"""gitops.validate building blocks: Flux substitution (upstream test vectors), Flux's kustomization rewrite,
the graph checks, CRD schema reading, kubectl resolution and the GitHub annotation format."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from k8s_ops.core.runner import SubprocessRunner
from k8s_ops.gitops.build import BuildError, flux_kustomization, kubectl_binary, run_build
from k8s_ops.gitops.graph import Node, check_graph
from k8s_ops.gitops.report import render
from k8s_ops.gitops.schemas import SchemaSet, structural_to_jsonschema
from k8s_ops.gitops.substitute import SubstitutionError, expand, substitute_object, substitution_disabled
from k8s_ops.gitops.validate import Finding, ValidationReport

# fluxcd/pkg envsubst/eval_test.go (envsubst/v1.5.0) TestExpand: (vars, input, output)
EXPAND = [
    ({"var01": "abcdEFGH28ij"}, "${#var01}", "12"),
    ({"var01": "abcdEFGH28ij"}, "${var01^}", "AbcdEFGH28ij"),
    ({"var01": "abcdEFGH28ij"}, "${var01^^}", "ABCDEFGH28IJ"),
    ({"var01": "ABCDEFGH28IJ"}, "${var01,}", "aBCDEFGH28IJ"),
    ({"var01": "ABCDEFGH28IJ"}, "${var01,,}", "abcdefgh28ij"),
    ({"path_name": "/home/bozo/ideas/thoughts.for.today"}, "${path_name:11}", "ideas/thoughts.for.today"),
    ({"path_name": "/home/bozo/ideas/thoughts.for.today"}, "${path_name:11:5}", "ideas"),
    ({"var": "abc"}, "${var=xyz}", "abc"),
    ({}, "${var=xyz}", "xyz"),
    ({"default_var": "foo"}, "something ${var=${default_var}}", "something foo"),
    ({"default_var": "foo1"}, "foo: ${var=${default_var}-suffix}", "foo: foo1-suffix"),
    ({"default_var": "foo1"}, "foo: ${var=prefix${default_var}-suffix}", "foo: prefixfoo1-suffix"),
    ({}, "${var:=xyz}", "xyz"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ/%abc/XYZ}", "abcABC123ABCXYZ"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ/#abc/XYZ}", "XYZABC123ABCabc"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ//abc/xyz}", "xyzABC123ABCxyz"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ/abc/xyz}", "xyzABC123ABCabc"),
    ({"filename": "bash.string.txt"}, "${filename#*.}", "string.txt"),
    ({"filename": "path/to/file"}, "${filename#*/}", "to/file"),
    ({"filename": "/path/to/file"}, "${filename#*/}", "path/to/file"),
    ({"filename": "bash.string.txt"}, "${filename##*.}", "txt"),
    ({"filename": "path/to/file"}, "${filename##*/}", "file"),
    ({"filename": "/path/to/file"}, "${filename##*/}", "file"),
    ({"filename": "bash.string.txt"}, "${filename%.*}", "bash.string"),
    ({"filename": "bash.string.txt"}, "${filename%%.*}", "bash"),
    ({"var01": "abcdEFGH28ij"}, "${var=${var01^^}}", "ABCDEFGH28IJ"),
    ({"var01": "abcdEFGH28ij"}, "$${var01}", "${var01}"),
    (
        {"var01": "abcdEFGH28ij"},
        "some text ${var01}$${var$${var01}$var01${var01}",
        "some text abcdEFGH28ij${var${var01}$var01abcdEFGH28ij",
    ),
    ({"default_var": "foo"}, "something $${var=${default_var}}", "something ${var=foo}"),
    ({"stringZ": "foo/bar"}, r"${stringZ/\//-}", "foo-bar"),
    ({"stringZ": "foo/bar/baz"}, r"${stringZ//\//-}", "foo-bar-baz"),
    ({"default_var": "foo"}, "\\\\something ${var=${default_var}}", "\\\\something foo"),
    ({"stringZ": "foo.bar"}, "${stringZ/./}", "foobar"),
]


@pytest.mark.parametrize(("variables", "text", "want"), EXPAND, ids=[e[1] for e in EXPAND])
def test_flux_envsubst_upstream_vectors(variables: dict[str, str], text: str, want: str) -> None:
    assert expand(text, variables).text == want


def test_flux_envsubst_strict_mode_vectors() -> None:
    """envsubst/eval_test.go TestExpandStrict: only a plain ${VAR} that is unset is an error."""
    assert expand("abcdEFGH28ij", {}).missing == ()
    assert expand("${foo}", {"foo": "bar"}).text == "bar"
    assert expand("${foo}", {"foo": ""}).missing == ()
    assert expand("${missing}", {}).missing == ("missing",)
    assert expand("${missing:=default}", {"foo": "bar"}) == expand("${missing:=default}", {})
    assert expand("${missing:=default}", {}).text == "default"
    assert expand("${missing,,} ${missing:0:2}", {}).missing == ()
    assert expand("$VAR and ${A} and ${A}", {}).missing == ("A",)  # braces only; each variable once


def test_flux_envsubst_parse_errors() -> None:
    with pytest.raises(SubstitutionError, match="missing closing brace"):
        expand("${unclosed", {})
    with pytest.raises(SubstitutionError, match="bad substitution"):
        expand("${a!b}", {})


def test_substitution_is_skipped_by_the_disabled_label_or_annotation() -> None:
    key = "kustomize.toolkit.fluxcd.io/substitute"
    assert substitution_disabled({"metadata": {"annotations": {key: "disabled"}}})
    assert substitution_disabled({"metadata": {"labels": {key: "disabled"}}})
    assert not substitution_disabled({"metadata": {"annotations": {key: "enabled"}}})


def test_substitution_runs_on_the_yaml_text_so_values_change_type() -> None:
    obj = {"spec": {"replicas": "${N}", "enabled": "${ON}", "name": "x-${N}"}}
    out, expansion = substitute_object(obj, {"N": "3", "ON": "true"}.get)
    assert out == {"spec": {"replicas": 3, "enabled": True, "name": "x-3"}}
    assert expansion.missing == ()
    with pytest.raises(SubstitutionError, match="no longer valid YAML"):
        substitute_object({"a": "${V}"}, {"V": "b: c: d"}.get)


# ------------------------------------------------------------------ Flux's kustomization rewrite


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"


def test_directory_without_kustomization_gets_flux_generated_resources(tmp_path: Path) -> None:
    """kustomize_generator.go scanManifests: every .yaml/.yml below, a subdirectory with a kustomization whole."""
    _write(
        tmp_path,
        {
            "app/a.yaml": CM.format("a"),
            "app/nested/b.yml": CM.format("b"),
            "app/notes.txt": "not yaml",
            "app/sub/kustomization.yaml": "resources: [c.yaml]\n",
            "app/sub/c.yaml": CM.format("c"),
            "app/sub/ignored.yaml": CM.format("ignored"),
        },
    )
    data, asked = flux_kustomization(tmp_path / "app", {})
    assert data["resources"] == ["./a.yaml", "./nested/b.yml", "./sub"]
    assert not asked
    built = run_build(SubprocessRunner(), kubectl_binary(), tmp_path, "./app", {"targetNamespace": "t"})
    assert sorted((b.obj["metadata"]["name"], b.obj["metadata"]["namespace"], b.file) for b in built) == [
        ("a", "t", "app/a.yaml"),
        ("b", "t", "app/nested/b.yml"),
        ("c", "t", "app/sub/c.yaml"),
    ]


def test_flux_spec_fields_are_added_to_the_existing_kustomization(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: [a.yaml]\n",
            "app/a.yaml": CM.format("a"),
            "comp/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
            "resources: [extra.yaml]\n",
            "comp/extra.yaml": CM.format("extra"),
        },
    )
    spec: dict[str, Any] = {
        "components": ["../comp", "../missing"],
        "ignoreMissingComponents": True,
        "namePrefix": "p-",
        "patches": [{"patch": "- op: add\n  path: /data\n  value: {k: v}", "target": {"kind": "ConfigMap"}}],
    }
    built = run_build(SubprocessRunner(), kubectl_binary(), tmp_path, "app", spec)
    assert sorted((b.obj["metadata"]["name"], b.obj.get("data"), b.file) for b in built) == [
        ("p-a", {"k": "v"}, "app/a.yaml"),
        ("p-extra", {"k": "v"}, "comp/extra.yaml"),
    ]
    assert not (tmp_path / "app" / "kustomization.yaml").read_text().count("buildMetadata")  # repo never written


def test_build_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="does not exist"):
        run_build(SubprocessRunner(), kubectl_binary(), tmp_path, "./nope", {})
    with pytest.raises(BuildError, match="outside the source"):
        run_build(SubprocessRunner(), kubectl_binary(), tmp_path, "../x", {})


def test_kustomize_builds_use_the_wheel_kubectl_even_with_the_simulator_first_on_path(sim: object) -> None:
    from tests.sim.simlib.api import BIN

    assert shutil.which("kubectl") == str(BIN / "kubectl")  # the simulator's kubectl wins on PATH ...
    assert Path(kubectl_binary()).parent != BIN  # ... but kustomize builds never use it
    assert (
        "Kustomize Version"
        in subprocess.run([kubectl_binary(), "version", "--client"], capture_output=True, text=True, check=True).stdout
    )


# ------------------------------------------------------------------ graph


def _n(kind: str, name: str, ns: str = "apps", api: str = "v1", **spec: Any) -> Node:
    obj: dict[str, Any] = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns}}
    if spec:
        obj["spec"] = spec
    return Node(obj, f"{name}.yaml", "flux-system/apps")


HR = "helm.toolkit.fluxcd.io/v2"


def test_helmrelease_sources_and_values_from() -> None:
    nodes = [
        _n(
            "HelmRelease",
            "a",
            api=HR,
            chart={
                "spec": {
                    "chart": "a",
                    "sourceRef": {"kind": "HelmRepository", "name": "repo", "namespace": "flux-system"},
                }
            },
            valuesFrom=[
                {"kind": "Secret", "name": "from-es"},
                {"kind": "ConfigMap", "name": "absent", "optional": True},
                {"kind": "ConfigMap", "name": "absent-required"},
            ],
        ),
        _n("ExternalSecret", "es", api="external-secrets.io/v1", target={"name": "from-es"}),
        _n("HelmRelease", "b", api=HR),
        _n("HelmRelease", "c", api=HR, chartRef={"kind": "OCIRepository", "name": "c"}, dependsOn=[{"name": "a"}]),
        _n("OCIRepository", "c", api="source.toolkit.fluxcd.io/v1"),
    ]
    messages = sorted(i.message for i in check_graph(nodes))
    assert messages == [
        "chart source HelmRepository flux-system/repo is not defined for this cluster",
        "neither spec.chart nor spec.chartRef is set",
        "valuesFrom ConfigMap apps/absent-required is not defined (and not optional)",
    ]


def test_kustomization_source_substitute_from_and_world() -> None:
    ks = "kustomize.toolkit.fluxcd.io/v1"
    nodes = [
        _n(
            "Kustomization",
            "a",
            ns="flux-system",
            api=ks,
            sourceRef={"kind": "GitRepository", "name": "flux-system"},
            postBuild={
                "substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}, {"kind": "Secret", "name": "gone"}]
            },
        ),
        _n("Kustomization", "b", ns="flux-system", api=ks, sourceRef={"kind": "OCIRepository", "name": "other"}),
    ]
    world = [
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "flux-system", "namespace": "flux-system"},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-vars", "namespace": "flux-system"}},
    ]
    assert sorted(i.message for i in check_graph(nodes, world)) == [
        "sourceRef OCIRepository flux-system/other is not defined for this cluster",
        "substituteFrom Secret flux-system/gone is not defined (and not optional)",
    ]


def test_dependson_cycles_are_reported_once() -> None:
    ks = "kustomize.toolkit.fluxcd.io/v1"
    src = {"kind": "GitRepository", "name": "g"}
    nodes = [
        _n("Kustomization", n, api=ks, sourceRef=src, dependsOn=[{"name": d}])
        for n, d in (("a", "b"), ("b", "c"), ("c", "a"), ("d", "d"))
    ] + [_n("GitRepository", "g", api="source.toolkit.fluxcd.io/v1")]
    cycles = sorted(i.message for i in check_graph(nodes) if "cycle" in i.message)
    assert cycles == [
        "dependsOn cycle: apps/a → apps/b → apps/c → apps/a",
        "dependsOn cycle: apps/d → apps/d",
    ]


def test_substitute_from_sources_must_exist_before_the_kustomization_builds() -> None:
    """Who applies a substituteFrom ConfigMap decides whether Flux can ever build its consumer."""
    ks = "kustomize.toolkit.fluxcd.io/v1"
    src = {"kind": "GitRepository", "name": "g", "namespace": "apps"}

    def kustomization(name: str, owner: str, vars_from: str = "", depends: tuple[str, ...] = ()) -> Node:
        spec: dict[str, Any] = {"sourceRef": src, "dependsOn": [{"name": d} for d in depends]}
        if vars_from:
            spec["postBuild"] = {"substituteFrom": [{"kind": "ConfigMap", "name": vars_from}]}
        obj = {"apiVersion": ks, "kind": "Kustomization", "metadata": {"name": name, "namespace": "apps"}, "spec": spec}
        return Node(obj, f"{name}.yaml", owner)

    def configmap(name: str, owner: str) -> Node:
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "apps"}}
        return Node(obj, f"{name}-cm.yaml", owner)

    nodes = [
        _n("GitRepository", "g", api="source.toolkit.fluxcd.io/v1"),
        kustomization("parent", "flux-system/root"),
        configmap("from-parent", "flux-system/root"),  # applied with parent by the same ancestor: fine
        kustomization("uses-parent", "apps/parent", "from-parent"),
        kustomization("vars", "flux-system/root"),
        configmap("from-vars", "apps/vars"),
        kustomization("unordered", "flux-system/root", "from-vars"),
        kustomization("mid", "flux-system/root", depends=("vars",)),
        kustomization("ordered", "flux-system/root", "from-vars", depends=("mid",)),  # transitively
        kustomization("selfish", "flux-system/root", "own"),
        configmap("own", "apps/selfish"),
        kustomization("waits", "flux-system/root", depends=("stuck",)),
        configmap("later", "apps/waits"),
        kustomization("stuck", "flux-system/root", "later"),
        kustomization("world", "flux-system/root", "cluster-vars"),
    ]
    world = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-vars", "namespace": "apps"}}]
    found = {i.node.obj["metadata"]["name"]: i.message for i in check_graph(nodes, world)}
    assert found == {
        "unordered": "substituteFrom ConfigMap apps/from-vars is defined by Kustomization apps/vars (must exist "
        "before this one: add dependsOn)",
        "selfish": "substituteFrom ConfigMap apps/own is defined by this Kustomization itself: Flux reads it from "
        "the cluster before applying, so the build fails until it exists and it never does (move it to a "
        "Kustomization this one dependsOn)",
        "stuck": "substituteFrom ConfigMap apps/later is defined by Kustomization apps/waits, which dependsOn this "
        "one: neither ever becomes Ready",
    }


# ------------------------------------------------------------------ schemas


def test_structural_crd_schema_reads_as_the_api_server_reads_it() -> None:
    schema = structural_to_jsonschema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "port": {
                            "x-kubernetes-int-or-string": True,
                            "anyOf": [{"type": "integer"}, {"type": "string"}],
                        },
                        "note": {"type": "string", "nullable": True},
                        "free": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                            "properties": {"a": {}},
                        },
                    },
                }
            },
        }
    )
    import jsonschema  # type: ignore[import-untyped]

    v = jsonschema.Draft7Validator(schema)
    ok = {
        "apiVersion": "x/v1",
        "kind": "X",
        "metadata": {"name": "n"},
        "spec": {"port": "http", "note": None, "free": {"anything": 1}},
    }
    assert list(v.iter_errors(ok)) == []
    assert [e.message for e in v.iter_errors({"spec": {"port": 80, "typo": 1}})] == [
        "Additional properties are not allowed ('typo' was unexpected)"
    ]


def test_builtin_schemas_follow_the_cluster_kubernetes_version() -> None:
    schemas = SchemaSet("v1.35.0")
    assert schemas.k8s_minor == "1.35"
    assert schemas.validate({"apiVersion": "v1", "kind": "NoSuchKind"}) is None
    findings = schemas.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "datta": {}})
    assert findings is not None and [(f.path, f.message) for f in findings] == [(("datta",), "unknown field 'datta'")]
    assert SchemaSet.is_builtin_group("networking.k8s.io/v1") and not SchemaSet.is_builtin_group("cilium.io/v2")


# ------------------------------------------------------------------ output


def test_github_annotations_escape_properties_and_messages() -> None:
    f = Finding("a,b:c.yaml", 3, "ConfigMap x/y", "schema", "100% wrong\nnext")
    report = ValidationReport("lab", (f,), ("a note",), 1, 1)
    assert render([report], "github").splitlines() == [
        "::error file=a%2Cb%3Ac.yaml,line=3,title=gitops.validate lab schema::ConfigMap x/y: 100%25 wrong%0Anext",
        "::notice title=gitops.validate lab::a note",
    ]


def test_toolkit_kubectl_is_the_wheel_when_none_is_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from k8s_ops.core import preflight
    from k8s_ops.tools import kubectl

    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl anywhere on PATH
    preflight.reset_cache()
    try:
        assert kubectl.executable() == kubectl_binary()
        assert kubectl.kubectl("lab", "get", "nodes")[0] == kubectl_binary()
        (found,) = preflight.preflight(SubprocessRunner(), ["kubectl"])
        assert found.version >= (1, 36, 0)
    finally:
        preflight.reset_cache()


def test_toolkit_kubectl_on_path_keeps_winning(sim: object) -> None:
    from k8s_ops.tools import kubectl

    assert kubectl.executable() == "kubectl"
    assert kubectl.kubectl("lab", "get", "nodes")[:2] == ("kubectl", "--kubeconfig")


def test_missing_upstream_crds_are_fetched_once_into_the_state_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from k8s_ops.core import paths
    from k8s_ops.gitops.schemas import PINS, fetch_pins

    crd = (Path(__file__).parent / "fixtures/gitops/repo/crds/cloudnative-pg/clusters.yaml").read_bytes()
    pin = next(p for p in PINS if p.name == "cloudnative-pg")
    asked: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, content=b"kind: Namespace\n---\n" + crd)  # non-CRD documents are dropped

    files, notes = fetch_pins(
        ["postgresql.cnpg.io"], offline=False, client=httpx.Client(transport=httpx.MockTransport(serve))
    )
    assert asked == list(pin.urls)
    assert notes == []
    assert [f.parent for f in files] == [paths.state_dir() / "gitops" / "crds" / f"cloudnative-pg-{pin.version}"]
    assert "kind: Namespace" not in files[0].read_text()
    again, _ = fetch_pins(["postgresql.cnpg.io"], offline=True)  # the cache answers, nothing is fetched
    assert again == files

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no network", request=request)

    refused: list[str] = []

    def refuse_and_count(request: httpx.Request) -> httpx.Response:
        refused.append(str(request.url))
        return refuse(request)

    client = httpx.Client(transport=httpx.MockTransport(refuse_and_count))
    _, notes = fetch_pins(["cilium.io", "gateway.networking.k8s.io"], offline=False, client=client)
    cilium = next(p for p in PINS if p.name == "cilium")
    gateway = next(p for p in PINS if p.name == "gateway-api")
    assert len(refused) == 1  # the network is down: the other pin is not tried
    assert [n.split(" — ")[0] for n in notes] == [
        f"could not fetch CRDs of gateway-api {gateway.version} (ConnectError: no network); its kinds are skipped",
        f"could not fetch CRDs of cilium {cilium.version} (not tried after ConnectError: no network); "
        "its kinds are skipped",
    ]
    assert notes[1].split(" — ")[1] == (
        "to fill the cache run gitops.validate once without --offline where raw.githubusercontent.com answers, or "
        f"save the CRD YAML of {cilium.urls[0]} (and 6 more) into "
        f"{paths.state_dir() / 'gitops' / 'crds' / f'cilium-{cilium.version}'}/"
    )
