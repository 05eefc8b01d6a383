"""The subprocess runner against tiny scripts: timeouts, missing tools, failures, temp files, audit log."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from k8s_ops.core.audit import AuditLog
from k8s_ops.core.command import Command, Result, TempFile, cmd
from k8s_ops.core.errors import CommandFailed, CommandTimeout, ToolNotFound
from k8s_ops.core.runner import SubprocessRunner
from k8s_ops.core.secret import Secret


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


@pytest.fixture
def runner(tmp_path: Path) -> SubprocessRunner:
    return SubprocessRunner(audit=AuditLog(tmp_path / "audit.log"))


def test_runs_argv_without_shell_and_passes_stdin(tmp_path: Path, runner: SubprocessRunner) -> None:
    tool = script(tmp_path, "echoer", "import sys, json; print(json.dumps([sys.argv[1:], sys.stdin.read()]))")
    result = runner.run(cmd(str(tool), "a b", "$HOME", ";rm", stdin=Secret("s3cret")))
    assert json.loads(result.stdout) == [["a b", "$HOME", ";rm"], "s3cret"]


def test_missing_tool_is_a_clear_error(runner: SubprocessRunner) -> None:
    with pytest.raises(ToolNotFound, match=r"talosctl not found on PATH — install it: .*talos"):
        runner.run(cmd("/nonexistent/talosctl", "version"))


def test_non_zero_exit_carries_argv_and_stderr(tmp_path: Path, runner: SubprocessRunner) -> None:
    tool = script(tmp_path, "failer", "import sys; sys.stderr.write('boom: no such node\\n'); sys.exit(3)")
    with pytest.raises(CommandFailed) as info:
        runner.run(cmd(str(tool), "-n", "10.0.0.1"))
    assert info.value.returncode == 3
    assert "boom: no such node" in str(info.value)
    assert f"{tool} -n 10.0.0.1" in str(info.value)
    assert runner.run(cmd(str(tool)), check=False).returncode == 3


def test_timeout_kills_the_process_group(tmp_path: Path, runner: SubprocessRunner) -> None:
    marker = tmp_path / "child-alive"
    child = f"import time; time.sleep(1.5); open({str(marker)!r}, 'w')"
    tool = script(
        tmp_path,
        "hanger",
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {child!r}])\ntime.sleep(60)\n",
    )
    with pytest.raises(CommandTimeout, match=r"timed out after 0\.5s"):
        runner.run(cmd(str(tool), timeout=0.5))
    import time

    time.sleep(1.6)
    assert not marker.exists(), "the child of a timed-out command must be killed too"


def test_tempfile_is_an_anonymous_private_descriptor_closed_after(tmp_path: Path, runner: SubprocessRunner) -> None:
    # before: a named 0600 file in a /tmp dir for the length of the call (left behind if the run was killed)
    tool = script(
        tmp_path,
        "reader",
        "import os, sys, stat, json\n"
        "p = sys.argv[1]\n"
        "print(json.dumps([p, open(p).read(), oct(stat.S_IMODE(os.stat(p).st_mode)), os.readlink(p)]))\n",
    )
    out = json.loads(runner.run(cmd(str(tool), TempFile("cfg.yaml", Secret("key: v")))).stdout)
    path, content, mode, target = out
    assert content == "key: v" and mode == "0o600" and path.startswith("/dev/fd/")
    assert target.startswith("/memfd:") or target.endswith("(deleted)")
    with pytest.raises(OSError):
        os.fstat(int(path.rsplit("/", 1)[1]))  # closed in this process after the call


def test_audit_log_is_redacted_and_private(tmp_path: Path, runner: SubprocessRunner) -> None:
    tool = script(tmp_path, "ok", "print('fine')")
    runner.run(cmd(str(tool), TempFile("x", Secret("zzz-secret")), stdin=Secret("stdin-secret"), mutates=True))
    log = tmp_path / "audit.log"
    text = log.read_text()
    assert "secret" not in text.replace("$TMP", "")
    entry = json.loads(text.splitlines()[-1])
    assert entry["rc"] == 0 and entry["mutates"] is True
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_isolated_command_sees_only_path_locale_its_env_and_an_empty_private_home(
    tmp_path: Path, runner: SubprocessRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leak")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", "/somewhere/else")
    monkeypatch.setenv("LANG", "C.UTF-8")
    tool = script(
        tmp_path,
        "envdump",
        "import json, os, stat\n"
        "home = os.environ['HOME']\n"
        "mode = oct(stat.S_IMODE(os.stat(home).st_mode))\n"
        "print(json.dumps([dict(os.environ), os.getcwd(), os.listdir(home), mode]))\n",
    )
    command = Command(argv=(str(tool),), env=(("SOPS_AGE_KEY", Secret("AGE-x")),), isolated=True)
    env, cwd, listing, mode = json.loads(runner.run(command).stdout)
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "HOME", "XDG_CONFIG_HOME", "SOPS_AGE_KEY", "LC_CTYPE"}
    assert env["SOPS_AGE_KEY"] == "AGE-x" and env["LANG"] == "C.UTF-8"
    assert "AWS_SECRET_ACCESS_KEY" not in env and "SOPS_AGE_KEY_FILE" not in env
    assert env["XDG_CONFIG_HOME"] == env["HOME"] + "/.config" and cwd == env["HOME"]
    assert listing == [] and mode == "0o700"
    assert not os.path.exists(env["HOME"])  # removed after the call
    assert "AGE-x" not in (tmp_path / "audit.log").read_text()


def test_result_keeps_stdout_bytes(tmp_path: Path, runner: SubprocessRunner) -> None:
    tool = script(tmp_path, "bin", "import sys; sys.stdout.buffer.write(bytes([0, 255, 10]))")
    result = runner.run(cmd(str(tool)))
    assert result.stdout_bytes() == bytes([0, 255, 10])
    assert Result(0, "text").stdout_bytes() == b"text"


def test_audit_log_records_the_start_before_the_process_runs(tmp_path: Path, runner: SubprocessRunner) -> None:
    log = tmp_path / "audit.log"
    tool = script(tmp_path, "peek", f"print(open({str(log)!r}).read(), end='')")
    seen = runner.run(cmd(str(tool), "--flag", mutates=True, node="cp1")).stdout
    start = json.loads(seen.splitlines()[-1])
    assert start["event"] == "start" and "--flag" in start["cmd"] and start["node"] == "cp1" and "rc" not in start
    end = json.loads(log.read_text().splitlines()[-1])
    assert end["event"] == "end" and end["rc"] == 0 and end["id"] == start["id"]


def test_a_symlinked_audit_log_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    from k8s_ops.core.audit import AuditLogError

    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    (tmp_path / "audit.log").symlink_to(target)
    marker = tmp_path / "ran"
    tool = script(tmp_path, "toucher", f"open({str(marker)!r}, 'w')")
    runner = SubprocessRunner(audit=AuditLog(tmp_path / "audit.log"))
    with pytest.raises(AuditLogError, match=r"is a symlink; refusing to follow it"):
        runner.run(cmd(str(tool)))
    assert target.read_text() == "precious\n" and not marker.exists()  # nothing ran without its audit line


def test_an_audit_log_that_is_a_fifo_is_an_error_not_a_hang(tmp_path: Path) -> None:
    from k8s_ops.core.audit import AuditLogError

    os.mkfifo(tmp_path / "audit.log")
    with pytest.raises(AuditLogError):
        AuditLog(tmp_path / "audit.log").begin(cmd("x"))


def test_a_wide_audit_log_is_made_private(tmp_path: Path, runner: SubprocessRunner) -> None:
    log = tmp_path / "audit.log"
    log.write_text("")
    log.chmod(0o644)
    runner.run(cmd(str(script(tmp_path, "ok", "pass"))))
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_a_stopping_run_launches_nothing_and_terminates_the_child_in_flight(
    tmp_path: Path, runner: SubprocessRunner
) -> None:
    import signal
    import threading

    from k8s_ops.core.runner import Terminated, resume_launching, stop_launching

    started = tmp_path / "started"
    tool = script(tmp_path, "sleeper", f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(60)\n")
    caught: list[BaseException] = []

    def worker() -> None:
        try:
            runner.run(cmd(str(tool)))
        except BaseException as exc:  # the test inspects what the worker thread saw
            caught.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    while not started.exists():
        thread.join(0.05)
    try:
        stop_launching(signal.SIGTERM)
        thread.join()
        assert len(caught) == 1 and isinstance(caught[0], Terminated) and caught[0].exit_code == 143
        with pytest.raises(Terminated):
            runner.run(cmd(str(tool)))  # nothing new starts while stopping
    finally:
        resume_launching()
    end = json.loads((tmp_path / "audit.log").read_text().splitlines()[-1])
    assert end["event"] == "end" and end["rc"] is None and end["note"] == "stopped"
