"""Private files: atomic 0600 writes in 0700 directories, never half-written; modes of the files the toolkit owns
tightened; secret material handed to tools without a name on disk (`anonymous_file`), or for the length of a call
in this run's private spool dir, which the next run cleans if this one was killed (`clean_stale_spool`)."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "anonymous_file",
    "clean_stale_spool",
    "run_spool",
    "scratch_dir",
    "spool_root",
    "spooled",
    "tighten",
    "tighten_tree",
    "warn_if_exposed",
    "write_new",
    "write_private",
]


def write_private(path: Path, data: bytes, *, mode: int = 0o600) -> bool:
    """Atomically write `data` to `path` with `mode`, creating parents 0700. Returns False if unchanged.

    The temp file is created 0600 from the start (mkstemp), so secret bytes are never readable by others.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except FileNotFoundError:
        pass
    _publish(path, data, mode, os.replace)
    return True


def write_new(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Create `path` atomically and exclusively: a complete file appears, or nothing; an existing file wins.

    Raises FileExistsError when `path` exists (or appears meanwhile): os.link of the finished temp file fails
    with EEXIST instead of replacing, unlike os.replace.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _publish(path, data, mode, os.link)


def _publish(path: Path, data: bytes, mode: int, place: Callable[[str, Path], None]) -> None:
    """Write `data` to a 0600 temp file beside `path` (synced, then `mode`), put it in place with `place`
    (`os.replace` overwrites, `os.link` refuses an existing file), and never leave the temp file behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        place(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


# --------------------------------------------------------------------------- permissions of files the toolkit owns

_told: set[str] = set()  # paths already reported this run: each is said once


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def tighten(path: Path, *, out: Callable[[str], None] = _say) -> bool:
    """Make a file the toolkit owns (kubeconfig, talosconfig, rendered config, state file) 0600 when it is readable
    or writable by group or others, saying so once; a symlink or a missing file is left alone. True if changed."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o077 or st.st_uid != os.getuid():
        return False
    os.chmod(path, 0o600)
    if str(path) not in _told:
        _told.add(str(path))
        out(f"note: {path} was {oct(stat.S_IMODE(st.st_mode))[2:]}, readable beyond you; made it 600")
    return True


def tighten_tree(root: Path, *, out: Callable[[str], None] = _say) -> int:
    """`tighten` every regular file under `root` (a build dir of one cluster, the state dir); returns how many."""
    if not root.is_dir() or root.is_symlink():
        return 0
    changed = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            changed += tighten(Path(dirpath) / name, out=out)
    return changed


def warn_if_exposed(path: Path, what: str, *, out: Callable[[str], None] = _say) -> bool:
    """Warn (once) when a key file the operator owns is readable by group or others; it is never changed for them
    (it may be shared on purpose), the warning names the chmod to run. True if it warned."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return False
    if not mode & 0o077:
        return False
    key = f"warn:{path}"
    if key not in _told:
        _told.add(key)
        out(f"warning: the {what} {path} is readable by group/others ({oct(mode)[2:]}); run: chmod 600 {path}")
    return True


# --------------------------------------------------------------------------- secret material handed to tools


def anonymous_file(data: bytes) -> int:
    """A readable file descriptor holding `data` that has no name on any filesystem: a memfd (memory only) where
    the OS has one, else a 0600 file in this run's spool dir unlinked before this returns. The kernel frees it
    when the last descriptor closes — also when the process is killed. A tool reads it as `/dev/fd/<fd>`."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("k8s-ops", os.MFD_CLOEXEC)
        os.fchmod(fd, 0o600)
    else:  # pragma: no cover - macOS/BSD: no memfd
        path = run_spool() / f"f-{secrets.token_hex(8)}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.unlink(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


_SPOOL_LOCK = threading.Lock()
_spool: Path | None = None
_spool_fd: int | None = None  # flock'd for the life of the process: how the next run knows this one is alive


def spool_root() -> Path:
    """The private 0700 directory that holds secret files for as long as a tool needs a real path: memory-backed
    `/dev/shm/k8s-ops-<uid>-<state dir hash>` when /dev/shm exists, else `<state dir>/spool`."""
    from k8s_ops.core.paths import state_dir

    state = state_dir()
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        digest = hashlib.sha256(str(state.absolute()).encode()).hexdigest()[:12]
        return shm / f"k8s-ops-{os.getuid()}-{digest}"
    return state / "spool"


def _private_dir(path: Path) -> Path:
    """Create `path` 0700 (parents too) and refuse one that is a symlink or not ours."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        from k8s_ops.core.errors import ToolkitError

        raise ToolkitError(f"{path} is not a private directory of yours (a symlink, or owned by someone else)")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def run_spool() -> Path:
    """This run's own 0700 directory under `spool_root()`, created on first use; its files are removed when they
    are done with, and whatever a killed run left is removed by the next run's `clean_stale_spool`."""
    global _spool, _spool_fd
    root = spool_root()
    with _SPOOL_LOCK:
        if _spool is not None and _spool.parent == root and _spool.is_dir():
            return _spool
        name = f"run-{os.getpid()}-{secrets.token_hex(4)}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for attempt in range(3):  # another run's cleaner may remove the empty root between mkdir and open
            try:
                fd = os.open(_private_dir(root) / f"{name}.lock", flags, 0o600)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        fcntl.flock(fd, fcntl.LOCK_EX)  # the lock comes first, so a cleaner never sees this dir unlocked
        _spool_fd = fd
        _spool = _private_dir(root / name)
        atexit.register(_remove_spool, _spool, fd)
        return _spool


def _remove_spool(directory: Path, lock_fd: int) -> None:
    """At a normal exit: remove this run's spool dir and lock, and the spool root when nothing else is in it."""
    shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.unlink(directory.with_suffix(".lock"))
    with contextlib.suppress(OSError):
        os.close(lock_fd)
    with contextlib.suppress(OSError):
        directory.parent.rmdir()  # only if empty: another run may be using it


@contextlib.contextmanager
def spooled(name: str, data: bytes) -> Iterator[Path]:
    """`data` as a 0600 file in this run's spool dir for the duration of the block (for a tool that needs a real
    path it reads more than once, e.g. a talosconfig); removed afterwards, and by the next run after a kill."""
    directory = Path(tempfile.mkdtemp(dir=run_spool()))
    path = directory / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """An empty 0700 directory in this run's spool for the duration of the block (an isolated tool's HOME)."""
    directory = Path(tempfile.mkdtemp(dir=run_spool()))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def clean_stale_spool(*, out: Callable[[str], None] = _say) -> int:
    """Remove what runs that died without cleaning up (SIGKILL, power loss) left in the spool; say how many files
    in one line. A run is dead when its lock file can be locked (the kernel drops a dead process's flock). Returns
    the number of files removed."""
    root = spool_root()
    if not root.is_dir() or root.is_symlink():
        return 0
    removed = 0
    for lock in sorted(root.glob("run-*.lock")):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live run
            directory = lock.with_suffix("")
            removed += sum(len(files) for _, _, files in os.walk(directory))
            shutil.rmtree(directory, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
        finally:
            os.close(fd)
    with contextlib.suppress(OSError):
        root.rmdir()  # only if empty
    if removed:
        out(f"removed {removed} stale secret file{'s' if removed != 1 else ''} left by a killed run")
    return removed
