"""The per-cluster run lock: one mutating run per cluster at a time on this machine.

`<state_dir>/locks/<cluster>.lock` is held with `flock(2)` for the whole run (the kernel drops it when the process
dies, so a crashed run never blocks the next one); `<cluster>.holder.json` beside it (0600) says who holds it:
`{"user", "host", "task", "pid", "cluster", "started"}`. A second run waits up to `timeout` seconds, then fails
naming the holder and since when. `break_lock` is for a holder known dead that still holds the lock (e.g. a hung
run on a shared state dir): after a typed confirmation the lock file is unlinked and a fresh one is taken — never
while the holder's pid is alive on this host.

A plan that writes local files only and belongs to no cluster (the fleet's merged kubeconfig/talosconfig) takes a
local lock of its own, `<state_dir>/locks/_<name>.lock` ('_' is never in a cluster name, so it cannot be a
cluster's), and no cluster-side Lease.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from k8s_ops.core import paths
from k8s_ops.core.errors import Aborted, ClusterLocked
from k8s_ops.core.prompt import Confirm, confirm

__all__ = ["ClusterLocked", "Holder", "cluster_lock", "describe_local", "local_label", "lock_path"]

_POLL = 0.1


@dataclass(frozen=True)
class Holder:
    user: str
    host: str
    task: str
    pid: int
    cluster: str
    started: str

    @classmethod
    def me(cls, cluster: str, task: str) -> Holder:
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(_user(), socket.gethostname(), task, os.getpid(), cluster, started)

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "host": self.host,
            "task": self.task,
            "pid": self.pid,
            "cluster": self.cluster,
            "started": self.started,
        }

    @classmethod
    def load(cls, path: Path) -> Holder | None:
        try:
            data = json.loads(path.read_text())
            return cls(
                str(data["user"]),
                str(data["host"]),
                str(data["task"]),
                int(data["pid"]),
                str(data["cluster"]),
                str(data["started"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool | None:
        """True/False when the holder ran on this host, None when it is another host's process."""
        if self.host != socket.gethostname():
            return None
        return _pid_alive(self.pid)

    def describe(self) -> str:
        state = {True: "", False: ", not running on this host", None: ""}[self.alive()]
        return f"{self.user}@{self.host} ({self.task}, pid {self.pid}{state}) since {self.started}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_path(cluster: str, *, local: bool = False) -> Path:
    """`<state_dir>/locks/<cluster>.lock` (`local`: `_<name>.lock`, a lock of local files that belong to no
    cluster); the holder record is `<cluster>.holder.json` beside it."""
    return paths.state_dir() / "locks" / (f"_{cluster}.lock" if local else f"{cluster}.lock")


def local_label(name: str) -> str:
    """How messages name the local-files lock `name` (a cluster's lock is "cluster <name>")."""
    return f"the {name} (local files)"


def describe_local(name: str) -> str:
    """The one `--dry-run` line of a plan that writes local files only and belongs to no cluster."""
    return (
        f"lock: the run takes the lock of {local_label(name)}: {lock_path(name, local=True)} "
        "(local files only: no cluster, so no cluster-side Lease)"
    )


def _holder_path(lock: Path) -> Path:
    return lock.with_name(lock.name.removesuffix(".lock") + ".holder.json")


def _open_locked(lock: Path) -> int | None:
    """Open `lock` and try to flock it; the fd if taken (and still the file at `lock`), else None."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the file was broken (unlinked) under us: take the new one


def _write_holder(path: Path, holder: Holder) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(holder.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def cluster_lock(
    cluster: str,
    task: str,
    *,
    timeout: float = 0.0,
    break_lock: bool = False,
    prompt: Confirm = confirm,
    out: Callable[[str], None] = lambda _: None,
    on_wait: Callable[[Holder | None], None] | None = None,
    local: bool = False,
) -> Iterator[Holder]:
    """Hold the cluster's lock for the `with` body; released on exit (success, failure, Ctrl-C).

    Waits up to `timeout` seconds (0: fail at once) and raises ClusterLocked naming the holder; `on_wait` is
    called once when the lock is found busy (tests use it instead of sleeps). `break_lock` removes a lock whose
    holder is dead after the operator types the cluster name. `local`: `cluster` names local files that belong
    to no cluster (`lock_path`), and the messages say so.
    """
    label = local_label(cluster) if local else f"cluster {cluster}"
    lock = lock_path(cluster, local=local)
    lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = _holder_path(lock)
    fd = _open_locked(lock)
    if fd is None and break_lock:
        fd = _break(lock, record, cluster, label, prompt, out)
    if fd is None:
        deadline = time.monotonic() + max(timeout, 0.0)
        if on_wait is not None:
            on_wait(Holder.load(record))
        if timeout > 0:
            out(f"waiting up to {timeout:g}s for the lock on {label}: {_who(record)}")
        while fd is None and time.monotonic() < deadline:
            time.sleep(_POLL)
            fd = _open_locked(lock)
    if fd is None:
        holder = Holder.load(record)
        hint = "wait for it to finish, or re-run with --lock-timeout SECONDS to wait for it"
        if holder is not None and holder.alive() is not True:
            hint = "if that run is known dead, re-run with --break-lock (asks you to type the cluster name)"
        raise ClusterLocked(f"{label} is locked by another run", _who(record), hint=hint)
    me = Holder.me(cluster, task)
    try:
        previous = Holder.load(record)
        if previous is not None and previous.pid != os.getpid():
            out(f"note: stale lock record of {label} replaced: {previous.describe()} (no longer holds it)")
        _write_holder(record, me)
        yield me
    finally:
        with contextlib.suppress(OSError):
            if Holder.load(record) == me:
                record.unlink()
        os.close(fd)  # releases the flock


def _who(record: Path) -> str:
    holder = Holder.load(record)
    return holder.describe() if holder is not None else "holder unknown (no readable record)"


def _break(
    lock: Path, record: Path, cluster: str, label: str, prompt: Confirm, out: Callable[[str], None]
) -> int | None:
    holder = Holder.load(record)
    if holder is not None and holder.alive():
        raise ClusterLocked(
            f"refusing to break the lock on {label}",
            f"its holder is running: {holder.describe()}",
            hint=f"stop pid {holder.pid} first, or wait for it",
        )
    who = holder.describe() if holder is not None else "holder unknown"
    try:
        prompt(cluster, f"break the lock on {label} held by {who} — only if that run is dead", yes=False)
    except Aborted as exc:
        raise Aborted(exc.message, hint="--break-lock always asks; run it from a terminal") from None
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()
    with contextlib.suppress(FileNotFoundError):
        record.unlink()
    out(f"lock on {label} broken (was {who})")
    return _open_locked(lock)
