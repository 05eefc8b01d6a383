"""Image Factory schematic: canonical YAML, offline ID, installer image, upload (httpx.MockTransport)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from k8s_ops.core.errors import ProblemsError, ToolkitError
from k8s_ops.talos.schematic import (
    Schematic,
    go_yaml_scalar,
    installer_image,
    schematic_id,
    schematic_yaml,
    upload_schematic,
)
from k8s_ops.talos.yamlio import load_documents

EMPTY_ID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
ISCSI_ID = "613e1592b2da41ae5e265e8789429f22e121aab91cb4deb6bc3c0b6262961245"
ISCSI = ("siderolabs/iscsi-tools", "siderolabs/util-linux-tools")


@dataclass(frozen=True)
class _Spec:
    extensions: tuple[str, ...] = ()
    extra_kernel_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Cluster:
    schematic: _Spec = field(default_factory=_Spec)
    talos_version: str = "v1.12.11"


# --- the documented check values (the factory's real IDs) ---------------------------------------------


def test_empty_schematic_is_customization_braces_with_the_factory_id() -> None:
    assert Schematic().to_yaml() == b"customization: {}\n"
    assert Schematic().id == EMPTY_ID


def test_official_extensions_yaml_and_id_match_the_factory() -> None:
    s = Schematic(extensions=ISCSI)
    assert s.to_yaml() == (
        b"customization:\n    systemExtensions:\n        officialExtensions:\n"
        b"            - siderolabs/iscsi-tools\n            - siderolabs/util-linux-tools\n"
    )
    assert s.id == ISCSI_ID


def test_id_is_sha256_of_the_yaml_and_order_matters() -> None:
    s = Schematic(extensions=ISCSI, extra_kernel_args=("net.ifnames=0", "quiet"))
    assert s.id == hashlib.sha256(s.to_yaml()).hexdigest()
    # the factory neither sorts nor de-duplicates: another order is another schematic
    assert Schematic(extensions=tuple(reversed(ISCSI))).id != ISCSI_ID


def test_kernel_args_come_before_extensions_with_four_space_indent() -> None:
    s = Schematic(extensions=("siderolabs/i915",), extra_kernel_args=("net.ifnames=0", "-", "1"))
    assert s.to_yaml().decode() == (
        "customization:\n"
        "    extraKernelArgs:\n"
        "        - net.ifnames=0\n"
        "        - '-'\n"
        '        - "1"\n'
        "    systemExtensions:\n"
        "        officialExtensions:\n"
        "            - siderolabs/i915\n"
    )


# --- Go yaml.v3 scalar quoting ---------------------------------------------------------------------

# Outputs recorded from go.yaml.in/yaml/v4 v4.0.0-rc.6 `yaml.Marshal` (the factory's library since 2025-11) of a
# []string element in block context. gopkg.in/yaml.v3 3.0.1 agrees except that it double-quotes the YAML 1.1
# values marked v3 below.
GO_YAML = [
    ("quiet", "quiet"),
    ("net.ifnames=0", "net.ifnames=0"),
    ("console=ttyS0,115200n8", "console=ttyS0,115200n8"),
    ("off", "'off'"),  # v3: "off"
    ("On", "'On'"),  # v3
    ("yes", "'yes'"),  # v3
    ("n", "'n'"),  # v3
    ("true", '"true"'),
    ("False", '"False"'),
    ("null", '"null"'),
    ("~", '"~"'),
    ("", '""'),
    ("123", '"123"'),
    ("0x1F", '"0x1F"'),
    ("0o17", '"0o17"'),
    ("1_000", '"1_000"'),
    ("08", '"08"'),
    ("1.5", '"1.5"'),
    (".5", '".5"'),
    ("1e3", '"1e3"'),
    ("1e999", "1e999"),
    ("-.inf", '"-.inf"'),
    (".nan", '".nan"'),
    ("1:30", "'1:30'"),  # v3: base-60 float
    ("2024-01-02", '"2024-01-02"'),
    ("2024-1-2T10:00:00Z", '"2024-1-2T10:00:00Z"'),
    ("2024-13-45", "2024-13-45"),
    ("-", "'-'"),
    ("- a", "'- a'"),
    ("a: b", "'a: b'"),
    ("a:b", "a:b"),
    ("a #b", "'a #b'"),
    ("a#b", "a#b"),
    (" x", "' x'"),
    ("x ", "'x '"),
    ("#x", "'#x'"),
    ("{}", "'{}'"),
    ("[x]", "'[x]'"),
    ("*x", "'*x'"),
    ("&x", "'&x'"),
    ("!x", "'!x'"),
    ("|x", "'|x'"),
    (">x", "'>x'"),
    ("%x", "'%x'"),
    ("@x", "'@x'"),
    ("`x", "'`x'"),
    ("'q'", "'''q'''"),
    ('"q"', "'\"q\"'"),
    ("it's", "it's"),
    ("?x", "?x"),
    ("? x", "'? x'"),
    (":x", ":x"),
    ("---", "'---'"),
    ("...x", "'...x'"),
    ("--x", "--x"),
    ("<<", "'<<'"),  # v3: plain
    ("a\tb", '"a\\tb"'),
    ("\x07", '"\\a"'),
    ("é", "é"),
    ("\U0001f600", '"\\U0001F600"'),
    ("a\\b", "a\\b"),
    ("9223372036854775808", '"9223372036854775808"'),
    ("18446744073709551616", '"18446744073709551616"'),
    ("0xG", "0xG"),
]


@pytest.mark.parametrize(("value", "expected"), GO_YAML)
def test_scalar_quoting_matches_the_factorys_go_yaml(value: str, expected: str) -> None:
    assert go_yaml_scalar(value) == expected


# Go reads these plain scalars as strings, Python readers do not (PyYAML: invalid date; the 1.2 loader: float
# overflow to inf), so Go's plain output cannot round-trip through them.
_PYTHON_READER_QUIRKS = {"1e999", "2024-13-45"}


@pytest.mark.parametrize(("value", "_"), [c for c in GO_YAML if c[0] not in _PYTHON_READER_QUIRKS])
def test_every_emitted_scalar_reads_back_as_the_same_string(value: str, _: str) -> None:
    text = Schematic(extra_kernel_args=(value,)).to_yaml()
    for loaded in (yaml.safe_load(text), load_documents(text)[0]):  # YAML 1.1 (PyYAML) and 1.2 (Talos) readers
        assert loaded["customization"]["extraKernelArgs"] == [value]


def test_multiline_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="multi-line"):
        go_yaml_scalar("a\nb")


_GO_PROGRAM = """package main

import (
	"encoding/json"
	"fmt"
	"os"

	"YAML_IMPORT"
)

type SystemExtensions struct {
	OfficialExtensions []string `yaml:"officialExtensions,omitempty"`
}
type Customization struct {
	ExtraKernelArgs  []string         `yaml:"extraKernelArgs,omitempty"`
	SystemExtensions SystemExtensions `yaml:"systemExtensions,omitempty"`
}
type Schematic struct {
	Customization Customization `yaml:"customization"`
}

func main() {
	var cases [][2][]string
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	out := []string{}
	for _, c := range cases {
		b, err := yaml.Marshal(&Schematic{Customization{c[0], SystemExtensions{c[1]}}})
		if err != nil {
			panic(err)
		}
		out = append(out, string(b))
	}
	j, _ := json.Marshal(out)
	fmt.Println(string(j))
}
"""
_V3 = "gopkg.in/yaml.v3"
_V4 = "go.yaml.in/yaml/v4"
_YAML11 = re.compile(
    r"^(?:[yYnN]|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|<<|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)$"
)


def _go_yaml_library() -> tuple[str, Path] | None:
    """A Go YAML library on a GOPATH: v4 (the factory's) preferred, else Debian's gopkg.in/yaml.v3."""
    gopaths = [Path(p) for p in os.environ.get("K8S_OPS_TEST_GOPATH", "").split(os.pathsep) if p]
    gopaths.append(Path("/usr/share/gocode"))
    for library in (_V4, _V3):
        for gopath in gopaths:
            if (gopath / "src" / library).is_dir():
                return library, gopath
    return None


@pytest.mark.skipif(
    shutil.which("go") is None or _go_yaml_library() is None,
    reason="differential test needs `go` and a Go YAML library on a GOPATH: go.yaml.in/yaml/v4 under "
    "$K8S_OPS_TEST_GOPATH/src, or gopkg.in/yaml.v3 (apt-get install golang-go golang-gopkg-yaml.v3-dev)",
)
def test_differential_against_real_go_yaml(tmp_path: Path) -> None:
    import random

    found = _go_yaml_library()
    assert found is not None
    library, gopath = found
    rng = random.Random(20240601)
    alphabet = [*"ab01:-#. ,'\"{}[]?!&*|>%@`\t_+eE~xoOyn", "é", "\x07", "\x85"]
    values = [v for v, _ in GO_YAML] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(1500)
    ]
    cases = [[[v], []] for v in values] + [[["quiet", "net.ifnames=0"], list(ISCSI)], [[], []]]
    (tmp_path / "main.go").write_text(_GO_PROGRAM.replace("YAML_IMPORT", library))
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(gopath), "GOCACHE": str(tmp_path / "cache")}
    subprocess.run(["go", "build", "-o", "marshal", "."], cwd=tmp_path, env=env, check=True, timeout=300)
    out = subprocess.run(
        [str(tmp_path / "marshal")], input=json.dumps(cases), capture_output=True, text=True, check=True, timeout=60
    )
    go = json.loads(out.stdout)
    ours = [Schematic(tuple(ext), tuple(args)).to_yaml().decode() for args, ext in cases]
    mismatches = [(c, g, o) for c, g, o in zip(cases, go, ours, strict=True) if g != o]
    if library == _V3:  # the one documented v3/v4 difference: v3 double-quotes YAML 1.1 values, `<<` is plain
        assert all(_YAML11.match(c[0][0]) for c, _, _ in mismatches)
        v3 = [(c, o.replace(f"'{c[0][0]}'", "<<" if c[0][0] == "<<" else f'"{c[0][0]}"')) for c, _, o in mismatches]
        assert [(c, g) for c, g, _ in mismatches] == v3
    else:
        assert mismatches == []


# --- cluster API -----------------------------------------------------------------------------------


def test_cluster_api_uses_the_inventory_schematic_and_version() -> None:
    cluster = _Cluster(_Spec(extensions=ISCSI))
    assert schematic_yaml(cluster) == Schematic(ISCSI).to_yaml()
    assert schematic_id(cluster) == ISCSI_ID
    assert installer_image(cluster) == f"factory.talos.dev/metal-installer/{ISCSI_ID}:v1.12.11"
    assert installer_image(_Cluster()) == f"factory.talos.dev/metal-installer/{EMPTY_ID}:v1.12.11"


def test_cluster_api_accepts_the_real_inventory_model() -> None:
    from k8s_ops.talos import inventory

    spec = inventory.Schematic(extensions=ISCSI, extra_kernel_args=("net.ifnames=0",))
    cluster: inventory.Cluster = inventory.Cluster.model_construct(schematic=spec, talos_version="v1.12.3")
    expected = Schematic(ISCSI, ("net.ifnames=0",))
    assert installer_image(cluster) == f"factory.talos.dev/metal-installer/{expected.id}:v1.12.3"


# --- upload ----------------------------------------------------------------------------------------


def _client(handler: httpx.MockTransport) -> httpx.Client:
    return httpx.Client(transport=handler)


def test_upload_posts_the_canonical_yaml_and_accepts_the_same_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("K8S_OPS_IMAGE_FACTORY", raising=False)
    seen: list[httpx.Request] = []
    s = Schematic(ISCSI)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = request.read()
        return httpx.Response(201, json={"id": hashlib.sha256(body).hexdigest(), "schematic": body.decode()})

    assert upload_schematic(s, client=_client(httpx.MockTransport(handler))) == ISCSI_ID
    assert [(r.method, str(r.url)) for r in seen] == [("POST", "https://factory.talos.dev/schematics")]
    assert seen[0].content == s.to_yaml()


def test_upload_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_OPS_IMAGE_FACTORY", "http://factory.internal:8080/")
    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return httpx.Response(201, json={"id": EMPTY_ID})

    upload_schematic(Schematic(), client=_client(httpx.MockTransport(handler)))
    assert urls == ["http://factory.internal:8080/schematics"]


def test_upload_with_a_different_id_is_an_error() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(201, json={"id": "0" * 64}))
    with pytest.raises(ProblemsError) as exc:
        upload_schematic(Schematic(ISCSI), client=_client(transport))
    assert ISCSI_ID in str(exc.value) and "0" * 64 in str(exc.value)


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (httpx.Response(400, text="yaml: unknown field 'foo'\n"), "HTTP 400.*unknown field"),
        (httpx.Response(201, text="not json"), "without a schematic id"),
        (httpx.Response(201, json={"schematic": "x"}), "without a schematic id"),
    ],
)
def test_upload_rejections_are_clear_errors(response: httpx.Response, match: str) -> None:
    with pytest.raises(ToolkitError, match=match):
        upload_schematic(Schematic(), client=_client(httpx.MockTransport(lambda r: response)))


def test_upload_network_failure_is_a_toolkit_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route to host", request=request)

    with pytest.raises(ToolkitError, match="no route to host"):
        upload_schematic(Schematic(), client=_client(httpx.MockTransport(handler)))


# --- the task --------------------------------------------------------------------------------------


def _write_cluster(root: Path, extensions: list[str]) -> None:
    from tests.test_inventory import base, write

    data = base("lab")
    data["schematic"] = {"extensions": extensions, "extraKernelArgs": ["net.ifnames=0"]}
    write(root, "lab", data)


def test_task_prints_yaml_id_and_installer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke.context import Context

    from k8s_ops.talos.tasks import schematic

    _write_cluster(tmp_path, list(ISCSI))
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(tmp_path))
    schematic(Context(), cluster="lab")
    out = capsys.readouterr().out
    expected = Schematic(ISCSI, ("net.ifnames=0",))
    assert out.startswith(expected.to_yaml().decode())
    assert f"# id: {expected.id}\n" in out
    assert f"# installer: factory.talos.dev/metal-installer/{expected.id}:v1.12.0\n" in out
    assert yaml.safe_load(out) == {"customization": {"extraKernelArgs": ["net.ifnames=0"], "systemExtensions": {
        "officialExtensions": list(ISCSI)}}}  # fmt: skip


def test_task_upload_checks_the_factory_id_and_fails_cleanly_on_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke.context import Context
    from invoke.exceptions import Exit

    from k8s_ops.talos import schematic as schematic_module
    from k8s_ops.talos.tasks import schematic

    _write_cluster(tmp_path, list(ISCSI))
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(tmp_path))
    monkeypatch.setenv("K8S_OPS_IMAGE_FACTORY", "https://factory.test")
    answer: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == "https://factory.test/schematics"
        return httpx.Response(201, json={"id": answer.get("id") or hashlib.sha256(request.read()).hexdigest()})

    monkeypatch.setattr(schematic_module, "_new_client", lambda: httpx.Client(transport=httpx.MockTransport(handler)))
    schematic(Context(), cluster="lab", upload=True)
    assert "# uploaded: the Image Factory returned the same id" in capsys.readouterr().out
    answer["id"] = "f" * 64
    with pytest.raises(Exit) as exc:
        schematic(Context(), cluster="lab", upload=True)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "f" * 64 in err and "Traceback" not in err
