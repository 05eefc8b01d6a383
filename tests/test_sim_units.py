"""Simulator building blocks: Go durations, kubectl JSONPath, cobra-style parsing, the `sim` control CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sim.helpers import ok, run
from tests.sim.simlib import jsonpath
from tests.sim.simlib.api import Sim
from tests.sim.simlib.cliparse import Flag, ParseError, flags, parse
from tests.sim.simlib.util import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"), [("1m0s", 60), ("10m", 600), ("500ms", 0.5), ("1h2m3.5s", 3723.5), ("0", 0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_duration_errors_and_format() -> None:
    with pytest.raises(DurationError, match='missing unit in duration "10"'):
        parse_duration("10")
    assert [format_duration(x) for x in (60, 1800, 0.5, 3723)] == ["1m0s", "30m0s", "500ms", "1h2m3s"]


def test_jsonpath_templates() -> None:
    doc = {
        "items": [
            {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
        ],
        "data": {"age.agekey": "k"},
    }
    assert jsonpath.render(doc, "{.items[*].metadata.name}") == "a b"
    assert (
        jsonpath.render(
            doc, '{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}'
        )
        == "a=True\nb=False\n"
    )
    assert jsonpath.render(doc, "{.data.age\\.agekey}") == "k"
    assert jsonpath.render(doc, "{.items[1].metadata}") == '{"name":"b"}'
    assert jsonpath.render(doc, "{.missing}") == ""


def test_cobra_parsing() -> None:
    spec = flags(
        Flag("nodes", "n", "strings"),
        Flag("wait", None, "bool", True),
        Flag("timeout", None, "duration", 60.0),
        Flag("file", "f", "string"),
        Flag("insecure", "i"),
    )
    p = parse(["-n", "a,b", "--nodes=c", "x", "--wait=false", "-if", "cfg.yaml", "--timeout", "2m", "--", "-z"], spec)
    assert p["nodes"] == ["a", "b", "c"] and p["wait"] is False and p["insecure"] and p["file"] == "cfg.yaml"
    assert p["timeout"] == 120 and p.args == ["x", "-z"]
    with pytest.raises(ParseError, match="unknown flag: --nope"):
        parse(["--nope"], spec)


def test_sim_cli_create_fault_state_wipe(sim: Sim, tmp_path: Path) -> None:
    inv = tmp_path / "cluster.yaml"
    inv.write_text(
        "name: lab\nendpoint: https://10.9.0.10:6443\nnodes:\n"
        "  - {hostname: lab-cp-1, address: 10.9.0.11, role: controlplane}\n"
        "  - {hostname: lab-wk-1, address: 10.9.0.12, role: worker}\n"
    )
    out = ok(sim, "sim", "create", "--inventory", str(inv))
    assert "created cluster lab: endpoint 10.9.0.10" in out
    assert json.loads(ok(sim, "sim", "fault", "etcd-unhealthy", "--node", "10.9.0.11"))["kind"] == "etcd-unhealthy"
    ok(sim, "sim", "set", "reboot_seconds", "0.05")
    state = json.loads(ok(sim, "sim", "state"))
    assert state["settings"]["reboot_seconds"] == 0.05 and state["faults"][0]["node"] == "10.9.0.11"
    ok(sim, "sim", "clear-faults")
    assert json.loads(ok(sim, "sim", "state"))["faults"] == []
    assert "lab-cp-1" in ok(sim, "sim", "state", "--summary")
    ok(sim, "sim", "wipe")
    r = run(sim, "sim", "fault", "bogus")
    assert r.returncode != 0
    r = run(sim, "sim", "create", "--inventory", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1 and "sim:" in r.stderr


def test_version_discovery(sim: Sim) -> None:
    assert json.loads(ok(sim, "kubectl", "version", "--client", "-o", "json"))["clientVersion"][
        "gitVersion"
    ].startswith("v1.35.")
    assert ok(sim, "helm", "version", "--short").startswith("v3.19.")
    assert ok(sim, "flux", "version", "--client") == "flux: v2.7.5\n"
    assert ok(sim, "talosctl", "version", "--client", "--short") == "Client:\nTalos v1.12.11\n"
