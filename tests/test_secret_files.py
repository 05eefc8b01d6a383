"""Secret material never sits in a named file longer than the call, and not at all after a kill; the files the toolkit
owns are 0600; the age key's exposure is reported.

The kill case is a real process: it runs `talosctl apply-config` through the SubprocessRunner (the config as a
TempFile, a talosconfig in the run's spool as the bootstrap's plan-time probe does), is SIGKILLed while the tool
runs, and the next start-up must leave no file holding the secret anywhere we write (spool, TMPDIR, state dir)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_ops.core import files
from k8s_ops.core.audit import AuditLog
from k8s_ops.core.command import Command, TempFile
from k8s_ops.core.runner import SubprocessRunner
from k8s_ops.core.secret import Secret
from tests.sim.simlib.api import Sim

SECRET = "machine-ca-key-0123456789abcdef-DO-NOT-LEAK"


def _holders(*roots: Path) -> list[Path]:
    """Regular files under `roots` whose bytes contain SECRET."""
    found = []
    for root in roots:
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                p = Path(dirpath) / name
                try:
                    if p.is_file() and not p.is_symlink() and SECRET.encode() in p.read_bytes():
                        found.append(p)
                except OSError:
                    continue
    return found


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """State dir and TMPDIR of our own; the spool root (under /dev/shm, keyed by the state dir) removed after."""
    state, tmpdir = tmp_path / "state", tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("K8S_OPS_STATE_DIR", str(state))
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    yield {"state": str(state), "tmp": str(tmpdir)}
    import shutil

    shutil.rmtree(files.spool_root(), ignore_errors=True)


_CHILD = textwrap.dedent(
    """
    import os, sys
    {prelude}
    from pathlib import Path
    from k8s_ops.core.command import TempFile
    from k8s_ops.core.files import spooled
    from k8s_ops.core.runner import SubprocessRunner
    from k8s_ops.core.secret import Secret
    from k8s_ops.tools.talosctl import Talosctl

    secret = Secret(sys.argv[2])
    with spooled("talosconfig", b"key: " + secret.reveal()) as talosconfig:
        tctl = Talosctl(talosconfig, ("10.0.0.11",), binary=sys.argv[1])
        command = tctl.apply_config("10.0.0.11", TempFile("cp1.yaml", secret), mode="auto", insecure=False, host="cp1")
        SubprocessRunner().run(command)
    """
)

# a talosctl that reads --file as upstream does (one plain read of the path), says so, then hangs
_TOOL = textwrap.dedent(
    """
    import os, sys, time
    path = sys.argv[sys.argv.index("--file") + 1]
    data = open(path, "rb").read()
    with open(os.path.join(os.path.dirname(sys.argv[0]), "seen"), "w") as seen:
        seen.write(path if data.endswith(b"DO-NOT-LEAK") else "wrong content")
    time.sleep(600)
    """
)


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "no-memfd"])
def test_a_sigkilled_apply_leaves_no_secret_file_after_the_next_start(
    tmp_path: Path, isolated: dict[str, str], memfd: bool
) -> None:
    tool = tmp_path / "bin" / "talosctl"
    tool.parent.mkdir()
    tool.write_text(f"#!{sys.executable}\n{_TOOL}")
    tool.chmod(0o755)
    prelude = "" if memfd else "del os.memfd_create  # the fallback: a file in the spool, unlinked before the spawn"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(prelude=prelude), str(tool), SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
        start_new_session=True,
    )
    audit = Path(isolated["state"]) / "audit.log"
    try:
        seen = tool.parent / "seen"
        deadline = time.monotonic() + 120  # a backstop only: the loop ends when the tool has read its file
        while not (seen.exists() and seen.read_text()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # the tool got the config as /dev/fd/N: no named file on disk holds it while it runs
        assert seen.read_text().startswith("/dev/fd/")
        os.killpg(proc.pid, 9)  # SIGKILL the run (and its tool): no handler, no finally, no cleanup
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    roots = [files.spool_root(), Path(isolated["tmp"]), Path(isolated["state"])]
    left = _holders(*roots)
    assert [p.name for p in left] == ["talosconfig"]  # only the spooled talosconfig the probe needed by path
    # the audit log shows the command that was in flight: a start without an end
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["event"] for e in entries] == ["start"] and "apply-config" in entries[0]["cmd"]
    assert SECRET not in audit.read_text()

    # the next run's start-up
    said: list[str] = []
    assert files.clean_stale_spool(out=said.append) == 1
    assert said == ["removed 1 stale secret file left by a killed run"]
    assert _holders(*roots) == []


def test_the_spool_of_a_live_run_is_never_cleaned(isolated: dict[str, str]) -> None:
    with files.spooled("talosconfig", SECRET.encode()) as path:
        said: list[str] = []
        assert files.clean_stale_spool(out=said.append) == 0 and said == []
        assert path.read_bytes() == SECRET.encode()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert not path.exists()


def test_a_tempfile_reaches_the_tool_as_an_anonymous_descriptor(tmp_path: Path, isolated: dict[str, str]) -> None:
    tool = tmp_path / "reader"
    tool.write_text(
        f"#!{sys.executable}\nimport os, sys, json\np = sys.argv[1]\n"
        "print(json.dumps([p, open(p).read(), os.readlink(p), oct(os.stat(p).st_mode & 0o777)]))\n"
    )
    tool.chmod(0o755)
    runner = SubprocessRunner(audit=AuditLog(tmp_path / "audit.log"))
    result = runner.run(Command((str(tool), TempFile("cp1.yaml", Secret(SECRET)))))
    path, content, target, mode = json.loads(result.stdout)
    assert path.startswith("/dev/fd/") and content == SECRET and mode == "0o600"
    assert target.startswith("/memfd:") or target.endswith("(deleted)")  # no name on any filesystem
    assert _holders(tmp_path, files.spool_root()) == []


def test_an_isolated_home_lives_in_the_spool_and_is_removed(tmp_path: Path, isolated: dict[str, str]) -> None:
    tool = tmp_path / "home"
    tool.write_text(f"#!{sys.executable}\nimport os\nprint(os.environ['HOME'])\n")
    tool.chmod(0o755)
    runner = SubprocessRunner(audit=AuditLog(tmp_path / "audit.log"))
    home = runner.run(Command((str(tool),), isolated=True)).stdout.strip()
    assert Path(home).is_relative_to(files.spool_root()) and not Path(home).exists()


def test_owned_files_are_tightened_once_and_an_exposed_age_key_is_named(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "build" / "kubeconfig"
    kubeconfig.parent.mkdir()
    kubeconfig.write_text("x")
    kubeconfig.chmod(0o644)
    said: list[str] = []
    assert files.tighten_tree(tmp_path / "build", out=said.append) == 1
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    assert said == [f"note: {kubeconfig} was 644, readable beyond you; made it 600"]
    kubeconfig.chmod(0o640)
    files.tighten(kubeconfig, out=said.append)
    assert len(said) == 1 and stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600  # said once

    key = tmp_path / "age.agekey"
    key.write_text("AGE-SECRET-KEY-1")
    key.chmod(0o644)
    warned: list[str] = []
    assert files.warn_if_exposed(key, "age key", out=warned.append)
    assert warned == [f"warning: the age key {key} is readable by group/others (644); run: chmod 600 {key}"]
    assert stat.S_IMODE(key.stat().st_mode) == 0o644  # never changed behind the operator's back
    key.chmod(0o600)
    assert not files.warn_if_exposed(tmp_path / "age2", "age key", out=warned.append)


def test_a_task_start_tightens_the_cluster_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke.context import Context
    from invoke.tasks import task

    from k8s_ops.core.cli import guarded

    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path / "build"))
    talosconfig = tmp_path / "build" / "lab" / "talosconfig"
    talosconfig.parent.mkdir(parents=True)
    talosconfig.write_text("context: lab")
    talosconfig.chmod(0o644)

    @task
    @guarded
    def noop(c: Context, cluster: str) -> None:
        """Nothing."""

    noop(Context(), cluster="lab")
    assert stat.S_IMODE(talosconfig.stat().st_mode) == 0o600
    assert f"note: {talosconfig} was 644" in capsys.readouterr().err


def test_the_simulated_talosctl_reads_the_config_from_a_descriptor_like_talosctl(
    sim_demo: Sim, tmp_path: Path, isolated: dict[str, str]
) -> None:
    # talosctl reads `apply-config --file` with os.ReadFile and `validate --config` with os.Open (FIDELITY.md,
    # "Secret files handed to tools"), so a /dev/fd/N path works; the simulator reads them the same way
    from k8s_ops.tools.talosctl import Talosctl, parse_validate, validate_command

    cp1 = "10.5.0.11"
    config = Secret(sim_demo.machine_config(cp1))
    runner = SubprocessRunner(audit=AuditLog(tmp_path / "audit.log"))
    result = runner.run(validate_command(TempFile("cp1.yaml", config), host="cp1"), check=False)
    assert parse_validate(result, file="cp1.yaml") == [] and result.ok
    talosconfig = sim_demo.write_talosconfig(tmp_path / "tc")
    tctl = Talosctl(talosconfig, (cp1,))
    before = sim_demo.node(cp1)["phase"]
    # accepted (exit 0): the simulator read and validated the config from the descriptor, then acted on it
    runner.run(tctl.apply_config(cp1, TempFile("cp1.yaml", config), mode="auto", insecure=True, host="cp1"))
    assert sim_demo.node(cp1)["phase"] != before
    call = sim_demo.calls("talosctl")[-1]["argv"]
    assert call[call.index("--file") + 1].startswith("/dev/fd/")
    assert _holders(tmp_path, files.spool_root()) == []


def test_a_normal_exit_leaves_no_spool_behind(isolated: dict[str, str]) -> None:
    code = "from k8s_ops.core.files import run_spool, spool_root; run_spool(); print(spool_root())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=dict(os.environ))
    assert out.stdout.strip() == str(files.spool_root()) and not files.spool_root().exists()
