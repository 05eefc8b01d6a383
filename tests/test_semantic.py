"""Semantic rules on rendered documents, the talosctl validate layer, and the three layers together."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from k8s_ops.core import paths
from k8s_ops.core.command import Result, TempFile
from k8s_ops.core.secret import Secret
from k8s_ops.core.testing import FakeRunner
from k8s_ops.talos.render import RenderedConfig
from k8s_ops.talos.schema import TalosSchema
from k8s_ops.talos.semantic import NodeExpectations, check_documents
from k8s_ops.talos.validate import talosctl_validate_command, validate_rendered
from k8s_ops.talos.yamlio import load_documents
from k8s_ops.tools.talosctl import parse_validate as parse_talosctl_validate

IMAGE = "factory.talos.dev/metal-installer/" + "a" * 64 + ":v1.12.11"
SECRET_VALUE = "LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0t"
REF = paths.repo_root().parent / "shared" / "reference" / "talos"


def _main(role: str) -> dict[str, Any]:
    cp = role == "controlplane"
    cluster: dict[str, Any] = {
        "controlPlane": {"endpoint": "https://10.0.0.10:6443"},
        "ca": {"crt": "CRT", "key": SECRET_VALUE if cp else ""},
        "network": {"cni": {"name": "none"}},
        "proxy": {"disabled": True},
    }
    if cp:
        cluster |= {
            "aggregatorCA": {"crt": "CRT", "key": SECRET_VALUE},
            "serviceAccount": {"key": SECRET_VALUE},
            "etcd": {"ca": {"crt": "CRT", "key": SECRET_VALUE}},
            "secretboxEncryptionSecret": SECRET_VALUE,
        }
    return {
        "version": "v1alpha1",
        "machine": {
            "type": role,
            "ca": {"crt": "CRT", "key": SECRET_VALUE if cp else ""},
            "install": {"disk": "/dev/sda", "image": IMAGE, "wipe": False, "grubUseUKICmdline": True},
            "features": {"kubePrism": {"enabled": True, "port": 7445}},
        },
        "cluster": cluster,
    }


def _docs(role: str, hostname: str = "node1") -> list[dict[str, Any]]:
    return [
        _main(role),
        {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": hostname, "auto": "off"},
    ]


def _check(docs: list[Any], role: str = "worker", hostname: str = "node1") -> list[tuple[str, str]]:
    problems = check_documents(docs, NodeExpectations(hostname, role, IMAGE), file=f"{hostname}.yaml")  # type: ignore[arg-type]
    assert {p.file for p in problems} <= {f"{hostname}.yaml"}
    return [(p.field, p.message) for p in problems]


@pytest.mark.parametrize("role", ["controlplane", "worker"])
def test_a_config_as_we_mean_it_has_no_problems(role: str) -> None:
    assert _check(_docs(role), role) == []


@pytest.mark.parametrize(
    "path",
    [
        ("machine", "ca", "key"),
        ("cluster", "ca", "key"),
        ("cluster", "aggregatorCA"),
        ("cluster", "serviceAccount"),
        ("cluster", "etcd"),
        ("cluster", "secretboxEncryptionSecret"),
    ],
)
def test_worker_with_controlplane_secret_material_is_rejected_without_showing_it(path: tuple[str, ...]) -> None:
    docs = _docs("worker")
    src, dst = _main("controlplane"), docs[0]
    for part in path[:-1]:
        src, dst = src[part], dst[part]
    dst[path[-1]] = copy.deepcopy(src[path[-1]])
    problems = check_documents(docs, NodeExpectations("node1", "worker", IMAGE), file="node1.yaml")
    assert len(problems) == 1
    assert problems[0].field.startswith("v1alpha1 " + ".".join(path))
    assert "control-plane-only secret" in problems[0].message
    assert SECRET_VALUE not in str(problems[0])


def test_empty_worker_ca_key_is_fine_but_a_controlplane_needs_every_secret() -> None:
    docs = _docs("controlplane")
    del docs[0]["cluster"]["serviceAccount"]
    docs[0]["machine"]["ca"]["key"] = ""
    assert _check(docs, "controlplane") == [
        ("v1alpha1 machine.ca.key", "a control plane needs this secret; it is missing or empty"),
        ("v1alpha1 cluster.serviceAccount.key", "a control plane needs this secret; it is missing or empty"),
    ]


def test_cluster_shape_rules() -> None:
    docs = _docs("worker")
    main = docs[0]
    main["machine"]["type"] = "controlplane"
    del main["cluster"]["network"]["cni"]
    main["cluster"]["proxy"]["disabled"] = False
    main["machine"]["features"]["kubePrism"] = {"enabled": True, "port": 7446}
    fields = [f for f, _ in _check(docs)]
    assert fields == [
        "v1alpha1 machine.type",
        "v1alpha1 cluster.network.cni.name",
        "v1alpha1 cluster.proxy.disabled",
        "v1alpha1 machine.features.kubePrism.port",
    ]
    del main["machine"]["features"]["kubePrism"]
    main["machine"]["type"] = "worker"
    main["cluster"]["network"]["cni"] = {"name": "flannel"}
    assert _check(docs) == [
        ("v1alpha1 cluster.network.cni.name", "must be 'none': Cilium is the CNI (is 'flannel')"),
        ("v1alpha1 cluster.proxy.disabled", "must be true: Cilium replaces kube-proxy"),
        ("v1alpha1 machine.features.kubePrism.enabled", "must be true (Cilium reaches the API through KubePrism)"),
        ("v1alpha1 machine.features.kubePrism.port", "must be 7445 (is unset)"),
    ]


def test_install_image_must_be_the_factory_installer_and_no_extra_kernel_args() -> None:
    docs = _docs("worker")
    docs[0]["machine"]["install"]["image"] = "ghcr.io/siderolabs/installer:v1.12.11"
    docs[0]["machine"]["install"]["extraKernelArgs"] = ["net.ifnames=0"]
    problems = _check(docs)
    assert [f for f, _ in problems] == ["v1alpha1 machine.install.image", "v1alpha1 machine.install.extraKernelArgs"]
    assert IMAGE in problems[0][1] and "ghcr.io/siderolabs/installer" in problems[0][1]


def test_hostname_rules() -> None:
    docs = _docs("worker")
    docs[0]["machine"]["network"] = {"hostname": "node1"}
    docs[1]["auto"] = False  # what PyYAML makes of an unquoted `off`
    docs[1]["hostname"] = "node2"
    assert [f for f, _ in _check(docs)] == [
        "v1alpha1 machine.network.hostname",
        "HostnameConfig auto",
        "HostnameConfig hostname",
    ]
    assert "quoted" in _check(docs)[1][1]
    docs[1]["auto"] = "stable"
    assert "must be 'off'" in _check(docs)[1][1]
    assert _check(docs[:1]) == [
        ("v1alpha1 machine.network.hostname", _check(docs)[0][1]),
        ("HostnameConfig", "missing: add HostnameConfig with hostname 'node1' and auto 'off'"),
    ]
    assert ("HostnameConfig", "expected one HostnameConfig, found 2") in _check([*_docs("worker"), docs[1]])


def test_exactly_one_v1alpha1_document() -> None:
    assert _check(_docs("worker")[1:]) == [("v1alpha1", "expected exactly one v1alpha1 document, found 0")]
    assert ("v1alpha1", "expected exactly one v1alpha1 document, found 2") in _check(
        [*_docs("worker"), _main("worker")]
    )


def test_layer2_vip_only_on_controlplanes() -> None:
    vip = {"apiVersion": "v1alpha1", "kind": "Layer2VIPConfig", "name": "10.0.0.10", "link": "eth0"}
    assert _check([*_docs("controlplane"), vip], "controlplane") == []
    assert _check([*_docs("worker"), vip]) == [
        ("Layer2VIPConfig/10.0.0.10", "Layer2VIPConfig belongs on control planes only (the API VIP)")
    ]


@pytest.mark.skipif(not REF.is_dir(), reason=f"reference goldens not found at {REF} (../shared absent)")
@pytest.mark.parametrize("role", ["controlplane", "worker"])
def test_secret_rules_agree_with_talos_generated_goldens(role: str) -> None:
    # the upstream generator's own output: a worker has no CP secrets, a control plane has them all
    docs = load_documents((REF / "stability-v1.12" / f"base-{role}.yaml").read_text())
    messages = [m for _, m in _check(docs, role)]
    assert not any("secret" in m for m in messages), messages


# --- talosctl validate layer -----------------------------------------------------------------------


def test_talosctl_validate_command_puts_the_config_in_a_temp_file() -> None:
    command = talosctl_validate_command("cp1", "version: v1alpha1\n")
    assert command.display_argv() == [
        "talosctl", "validate", "--config", "$TMP/cp1.yaml", "--mode", "metal", "--strict",
    ]  # fmt: skip
    temp = command.argv[3]
    assert isinstance(temp, TempFile) and isinstance(temp.content, Secret)
    assert temp.content.reveal_text() == "version: v1alpha1\n"
    assert not command.mutates


@pytest.mark.skipif(not (REF / "cli-v1.12.11.md").is_file(), reason=f"talosctl CLI reference not found under {REF}")
def test_talosctl_validate_flags_exist_in_the_v1_12_reference() -> None:
    text = (REF / "cli-v1.12.11.md").read_text()
    section = text.split("## talosctl validate\n", 1)[1].split("\n## ", 1)[0]
    options = section.split("### Options", 1)[1]
    known = set(re.findall(r"--[a-z][a-z-]*", options))
    used = {a for a in talosctl_validate_command("n", "").display_argv() if a.startswith("--")}
    assert used == {"--config", "--mode", "--strict"} and used <= known
    assert "metal" in options


def test_parse_talosctl_validate_success_warning_and_errors() -> None:
    ok = Result(0, "/tmp/k8s-ops-abc/cp1.yaml is valid for metal mode\n", "")
    assert parse_talosctl_validate(ok, file="cp1.yaml") == []
    warned = Result(0, "/tmp/x/cp1.yaml is valid for metal mode\n", 'WARNING: use "worker" instead of ""\n')
    assert [p.message for p in parse_talosctl_validate(warned, file="cp1.yaml")] == [
        'warning: use "worker" instead of ""'
    ]
    failed = Result(
        1,
        "",
        "2 errors occurred:\n\t* install disk or diskSelector should be defined\n"
        "\t* invalid machine type in /tmp/k8s-ops-x/cp1.yaml\n\n",
    )
    problems = parse_talosctl_validate(failed, file="cp1.yaml")
    assert [(p.file, p.field, p.message) for p in problems] == [
        ("cp1.yaml", "talosctl", "install disk or diskSelector should be defined"),
        ("cp1.yaml", "talosctl", "invalid machine type in cp1.yaml"),
    ]
    opaque = Result(1, "", "error: failed to load config: yaml: line 3: mapping values are not allowed\n")
    assert [p.message for p in parse_talosctl_validate(opaque, file="cp1.yaml")] == [
        "error: failed to load config: yaml: line 3: mapping values are not allowed"
    ]


# --- the three layers together ---------------------------------------------------------------------

# A tiny stand-in schema (the real one is tested in test_schema.py): `debug` must be a boolean.
_SCHEMA = TalosSchema(
    {
        "$defs": {
            "v1alpha1.Config": {"type": "object", "properties": {"debug": {"type": "boolean"}}},
            "network.HostnameConfigV1Alpha1": {
                "type": "object",
                "properties": {"kind": {"enum": ["HostnameConfig"]}, "auto": {"enum": ["stable", "off"]}},
            },
        },
        "oneOf": [{"$ref": "#/$defs/v1alpha1.Config"}, {"$ref": "#/$defs/network.HostnameConfigV1Alpha1"}],
    }
)


def _cluster() -> Any:
    from k8s_ops.talos import inventory

    nodes = (
        inventory.Node.model_construct(hostname="cp1", role="controlplane"),
        inventory.Node.model_construct(hostname="w1", role="worker"),
    )
    return inventory.Cluster.model_construct(schematic=inventory.Schematic(), talos_version="v1.12.11", nodes=nodes)


def test_validate_rendered_reports_every_layer_at_once() -> None:
    from k8s_ops.talos.schematic import installer_image

    cluster = _cluster()
    image = installer_image(cluster)
    cp, worker = _docs("controlplane", "cp1"), _docs("worker", "w1")
    for docs in (cp, worker):
        docs[0]["machine"]["install"]["image"] = image
    worker[0]["debug"] = "yes"  # schema
    worker[0]["machine"]["install"]["extraKernelArgs"] = ["x"]  # semantic
    rendered = [RenderedConfig("cp1", b"cp1 text", cp), RenderedConfig("w1", b"w1 text", worker)]
    runner = FakeRunner(
        {
            re.compile(r"\$TMP/cp1\.yaml"): Result(0, "/tmp/k/cp1.yaml is valid for metal mode\n"),
            re.compile(r"\$TMP/w1\.yaml"): Result(1, "", "1 error occurred:\n\t* bad thing\n"),
        }
    )
    report = validate_rendered(cluster, rendered, _SCHEMA, runner=runner)
    assert report.documents == 4
    assert [(p.file, p.field, p.message) for p in report.problems if p.field != "talosctl"] == [
        ("w1.yaml", "v1alpha1 debug", "schema: 'yes' is not of type 'boolean'"),
        # Talos' own rule (k8s_ops.talos.config_rules), then ours (k8s_ops.talos.semantic)
        (
            "w1.yaml",
            "v1alpha1 machine.install.extraKernelArgs",
            "install.extraKernelArgs and install.grubUseUKICmdline can't be used together",
        ),
        ("w1.yaml", "v1alpha1 machine.install.extraKernelArgs", ANY),
    ]
    assert [p.file for p in report.problems if p.field == "talosctl"] == ["w1.yaml"]
    assert [c.node for c in runner.calls] == ["cp1", "w1"]
    assert report.talosctl_checked


def test_validate_rendered_without_talosctl_and_clean_configs() -> None:
    from k8s_ops.talos.schematic import installer_image

    cluster = _cluster()
    docs = _docs("controlplane", "cp1")
    docs[0]["machine"]["install"]["image"] = installer_image(cluster)
    report = validate_rendered(cluster, [RenderedConfig("cp1", b"", docs)], _SCHEMA, runner=None)
    assert report.problems == () and report.documents == 2 and not report.talosctl_checked
    stranger = validate_rendered(cluster, [RenderedConfig("x9", b"", docs)], _SCHEMA)
    assert ("x9.yaml", "", "node 'x9' is not in the inventory") in [
        (p.file, p.field, p.message) for p in stranger.problems
    ]


# --- the task, end to end (real inventory, bundle, renderer and schema) ----------------------------

SCHEMA_FILE = REF / "config.schema.json"


@pytest.mark.skipif(not SCHEMA_FILE.is_file(), reason=f"reference Talos schema not found at {SCHEMA_FILE}")
def test_validate_task_on_a_rendered_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke.context import Context
    from invoke.exceptions import Exit

    from k8s_ops.talos import tasks as talos_tasks
    from k8s_ops.talos.tasks import gen_secrets
    from tests.test_secrets_bundle import make_site

    site, _ = make_site(tmp_path, monkeypatch)
    cluster_file = site / "clusters" / "c1" / "cluster.yaml"
    # control planes need a link for the API VIP; give every node one
    cluster_file.write_text(cluster_file.read_text().replace("installDisk: /dev/sda}", "installDisk: /dev/sda, "
                                                             "interfaces: [{name: eth0}]}"))  # fmt: skip
    monkeypatch.setenv("K8S_OPS_TALOS_SCHEMA", str(SCHEMA_FILE))
    monkeypatch.setenv("K8S_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr("shutil.which", lambda name: None)  # no talosctl layer here
    gen_secrets(Context(), cluster="c1", yes=True)
    capsys.readouterr()

    talos_tasks.validate(Context(), cluster="c1")
    out, err = capsys.readouterr()
    assert re.fullmatch(r"\d+ documents valid\n", out), out
    assert int(out.split()[0]) >= 8  # 4 nodes, a v1alpha1 + HostnameConfig (+ more) each
    assert "talosctl validate` was skipped" in err

    # a patch that breaks two of our rules on every node and one schema rule: all reported at once, exit 1
    cdir = site / "clusters" / "c1"
    (cdir / "patches").mkdir(exist_ok=True)
    (cdir / "patches" / "bad.yaml").write_text(
        "machine:\n  install:\n    extraKernelArgs: [quiet]\n  bogus: 1\ncluster:\n  proxy:\n    disabled: false\n"
    )
    with (cdir / "cluster.yaml").open("a") as fh:
        fh.write("patches:\n  - bad.yaml\n")
    with pytest.raises(Exit) as exc:
        talos_tasks.validate(Context(), cluster="c1")
    assert exc.value.code == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    for host in ("cp1", "cp2", "cp3", "w1"):
        assert f"{host}.yaml: v1alpha1 machine.install.extraKernelArgs:" in err
        # Talos' own rule too, in its wording (k8s_ops.talos.config_rules)
        assert (
            f"{host}.yaml: v1alpha1 machine.install.extraKernelArgs: "
            "install.extraKernelArgs and install.grubUseUKICmdline can't be used together"
        ) in err
        assert f"{host}.yaml: v1alpha1 cluster.proxy.disabled:" in err
        assert f"{host}.yaml: v1alpha1 machine: schema: Additional properties are not allowed ('bogus'" in err
    # after the executor's progress lines ("[1] render in memory and validate …", "    gate: …"): the problems, once
    assert err.startswith("[1] render in memory and validate 4 node config(s): cp1, cp2, cp3, w1\n")
    assert "\nerror: 16 problems found:" in err and err.count("error: ") == 1
