"""k8s_ops.talos.config_rules against Talos' own test vectors (tests/fixtures/talos-rules/<kind>.yaml, each naming its
upstream *_test.go at v1.12.11), plus the rendered clusters and Talos' golden configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_ops.talos.config_rules import RuleFinding, parse_bytes, talos_error, validate_documents
from tests.sim.simlib.api import Sim

FIXTURES = Path(__file__).parent / "fixtures" / "talos-rules"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "talos"


def _cases() -> list[Any]:
    out = []
    for path in sorted(FIXTURES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in data["cases"]:
            marks = [pytest.mark.skip(reason=f"known gap: {case['gap']}")] if case.get("gap") else []
            out.append(pytest.param(case, id=f"{path.stem}::{case['name']}", marks=marks))
    return out


def _texts(findings: list[RuleFinding], *, warning: bool, only: str | None) -> list[str]:
    return [f.text for f in findings if f.warning is warning and (only is None or f.phase == only)]


@pytest.mark.parametrize("case", _cases())
def test_upstream_vectors(case: dict[str, Any]) -> None:
    findings = validate_documents(case["documents"], mode=case.get("mode", "metal"), strict=case.get("strict", True))
    only = case.get("only")
    assert _texts(findings, warning=False, only=only) == case.get("errors", [])
    assert _texts(findings, warning=True, only=only) == case.get("warnings", [])
    if "talos_error" in case:
        assert talos_error(findings) == case["talos_error"]


def test_document_labels_and_fields_name_the_place() -> None:
    docs = [{"apiVersion": "v1alpha1", "kind": "UserVolumeConfig", "name": "openebs", "provisioning": {}}]
    (missing_selector, missing_size) = validate_documents(docs)
    assert (missing_size.document, missing_size.field, missing_size.phase) == (
        "UserVolumeConfig/openebs",
        "provisioning",
        "document",
    )
    assert str(missing_size) == "UserVolumeConfig/openebs provisioning: error: min size or max size is required"
    assert missing_selector.field == "provisioning.diskSelector.match"


def test_strict_promotes_only_v1alpha1_warnings() -> None:
    """container.Validate passes --strict to v1alpha1 only; document warnings stay warnings (bond.go)."""
    main = {
        "version": "v1alpha1",
        "machine": {"type": "join", "ca": {"crt": "Zm9v"}, "install": {"disk": "/dev/sda"}},
        "cluster": {"controlPlane": {"endpoint": "https://10.5.0.10:6443"}},
    }
    bond = {"apiVersion": "v1alpha1", "kind": "BondConfig", "name": "bond0", "links": ["a"], "bondMode": "802.3ad"}
    loose = validate_documents([main, bond], strict=False)
    strict = validate_documents([main, bond], strict=True)
    assert [f.warning for f in loose] == [True, True, True, True]
    assert [(f.document, f.warning) for f in strict] == [
        ("v1alpha1", False),
        ("BondConfig/bond0", True),
        ("BondConfig/bond0", True),
        ("BondConfig/bond0", True),
    ]
    assert strict[0].message == 'warning: use "worker" instead of "join" for machine type'
    assert talos_error(loose) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100GiB", 100 * 1024**3),
        ("2.5TiB", int(2.5 * 1024**4)),
        ("10GB", 10 * 1000**3),
        ("512", 512),
        ("1 MiB", 1024**2),
    ],
)
def test_parse_bytes_like_humanize(text: str, value: int) -> None:
    assert parse_bytes(text) == value


def test_parse_bytes_rejects_unknown_units() -> None:
    with pytest.raises(ValueError, match="unhandled size name: parsecs"):
        parse_bytes("12parsecs")


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="Talos reference fixtures (../shared/reference) not present")
@pytest.mark.parametrize("name", ["base-controlplane", "base-worker", "overrides-controlplane", "overrides-worker"])
def test_talos_golden_configs_pass(name: str) -> None:
    """What Talos' generator library writes validates, but for metal mode's install rules: the base goldens have no
    install disk (the CLI adds /dev/sda), the overrides carry extraKernelArgs + grubUseUKICmdline (a generator
    artefact Talos itself rejects)."""
    docs = list(yaml.safe_load_all((REFERENCE / "stability-v1.12" / f"{name}.yaml").read_text(encoding="utf-8")))
    findings = validate_documents([d for d in docs if d], mode="metal", strict=True)
    expected = (
        ["install.extraKernelArgs and install.grubUseUKICmdline can't be used together"]
        if name.startswith("overrides")
        else ["either install disk or diskSelector should be defined"]
    )
    assert [f.text for f in findings if not f.warning] == expected


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="Talos reference fixtures (../shared/reference) not present")
def test_talos_multidoc_examples_pass() -> None:
    """Every upstream per-kind example document is valid on its own."""
    bad = {}
    for path in sorted((REFERENCE / "multidoc-examples").glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        errs = [f.text for f in validate_documents(docs) if not f.warning]
        if errs:
            bad[path.name] = errs
    assert bad == {}


def test_simulator_refuses_what_the_rules_refuse(sim_demo: Sim, tmp_path: Path) -> None:
    """The simulated talosctl uses these rules: validate (strict) and a maintenance-mode apply (not strict)."""
    from tests.sim.helpers import run

    node = "10.5.0.14"  # demo-wk-1
    provisioning: dict[str, Any] = {"diskSelector": {"match": "!system_disk"}}
    volume = {"apiVersion": "v1alpha1", "kind": "UserVolumeConfig", "name": "openebs", "provisioning": provisioning}
    cfg = tmp_path / "wk.yaml"
    cfg.write_text(sim_demo.machine_config(node, extra_docs=[volume]))
    expected = "1 error occurred:\n\t* UserVolumeConfig/openebs: min size or max size is required\n"
    r = run(sim_demo, "talosctl", "validate", "--config", str(cfg), "--mode", "metal", "--strict")
    assert r.returncode == 1 and expected in r.stderr
    r = run(sim_demo, "talosctl", "apply-config", "-i", "-n", node, "-f", str(cfg))
    assert r.returncode == 1
    assert "code = InvalidArgument desc = configuration validation failed: " + expected in r.stderr
    provisioning["maxSize"] = "100%"
    cfg.write_text(sim_demo.machine_config(node, extra_docs=[volume]))
    r = run(sim_demo, "talosctl", "validate", "--config", str(cfg), "--mode", "metal", "--strict")
    assert r.returncode == 0 and "is valid for metal mode" in r.stdout
