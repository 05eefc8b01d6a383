"""Commands, masked secrets and plans: what the operator sees never contains a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from k8s_ops.core.command import Command, TempFile, cmd
from k8s_ops.core.plan import FileWrite, Plan, Step, mask_text
from k8s_ops.core.secret import Secret


def test_secret_is_masked_everywhere() -> None:
    s = Secret("hunter2")
    assert str(s) == "***"
    assert repr(s) == "Secret(***)"
    assert f"{s}" == "***"
    assert f"{s:>10}" == "***"
    assert "hunter2" not in json.dumps({"v": str(s)})
    assert s.reveal() == b"hunter2"
    assert s == Secret(b"hunter2")


def test_secret_never_on_argv() -> None:
    with pytest.raises(TypeError, match="never be placed on argv"):
        Command(argv=("kubectl", Secret("x")))  # type: ignore[arg-type]


def test_display_masks_stdin_env_and_tempfiles() -> None:
    c = cmd(
        "kubectl",
        "apply",
        "-f",
        TempFile("secret.yaml", Secret("password: hunter2")),
        stdin=Secret("hunter2"),
        env={"TOKEN": Secret("tok-123"), "MODE": "x y"},
        mutates=True,
    )
    line = c.display()
    assert "hunter2" not in line and "tok-123" not in line
    assert line.startswith("MODE='x y' TOKEN=*** kubectl apply -f '$TMP/secret.yaml'")
    assert "< stdin (7 bytes, masked)" in line
    data = c.to_json()
    assert data["stdin"] == "***"
    assert data["env"] == {"MODE": "x y", "TOKEN": "***"}
    assert data["argv"] == ["kubectl", "apply", "-f", "$TMP/secret.yaml"]
    assert "hunter2" not in json.dumps(data)


def test_display_quotes_like_a_shell() -> None:
    assert cmd("talosctl", "-n", "10.0.0.1", "get", "machinestatus", "-o", "jsonpath={.spec}").display() == (
        "talosctl -n 10.0.0.1 get machinestatus -o 'jsonpath={.spec}'"
    )


def test_mask_text_longest_first() -> None:
    text = "key: abcdef and abcdefghij"
    assert mask_text(text, [Secret("abcdef"), Secret("abcdefghij")]) == "key: *** and ***"


def test_file_write_diff_masks_secrets(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("token: old-secret-1\nname: a\n")
    w = FileWrite(path, b"token: new-secret-2\nname: b\n", mask=(Secret("old-secret-1"), Secret("new-secret-2")))
    diff = w.diff()
    assert "secret-1" not in diff and "secret-2" not in diff
    assert "-name: a" in diff and "+name: b" in diff
    assert FileWrite(path, path.read_bytes()).diff() == ""


def test_plan_text_and_json_agree(tmp_path: Path) -> None:
    plan = Plan(
        title="apply configs",
        cluster="demo",
        steps=(
            Step(
                "apply config to cp-1",
                commands=(cmd("talosctl", "-n", "10.0.0.11", "apply-config", mutates=True),),
                node="cp-1",
                group="cp",
            ),
            Step(
                "apply config to cp-2",
                commands=(cmd("talosctl", "-n", "10.0.0.12", "apply-config", mutates=True),),
                node="cp-2",
                group="cp",
            ),
            Step("bootstrap etcd", noop="etcd already has 3 members"),
        ),
    )
    text = plan.to_text()
    assert text.splitlines()[0] == "Plan: apply configs — cluster demo (2 steps, 1 no-op)"
    assert "[1] apply config to cp-1  (group cp)" in text
    assert "[2] apply config to cp-2  (concurrent)" in text
    assert "    $ talosctl -n 10.0.0.12 apply-config" in text
    assert "[-] bootstrap etcd: skipped — etcd already has 3 members" in text
    data = json.loads(plan.to_json_text())
    assert [s["description"] for s in data["steps"]] == [
        "apply config to cp-1",
        "apply config to cp-2",
        "bootstrap etcd",
    ]
    assert data["steps"][0]["commands"][0]["argv"] == ["talosctl", "-n", "10.0.0.11", "apply-config"]
    assert data["steps"][0]["mutates"] is True
    assert data["steps"][2]["noop"] == "etcd already has 3 members"
