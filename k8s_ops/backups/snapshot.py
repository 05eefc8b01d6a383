"""Integrity of one etcd snapshot file: the SHA-256 trailer etcd appends to every snapshot it streams.

etcd's Maintenance.Snapshot RPC (which `talosctl etcd snapshot` streams through the Talos API) sends the bbolt
database and then the SHA-256 digest of everything it sent, 32 bytes. A bbolt file is whole pages, so the
database is a multiple of 512 bytes and a snapshot with its digest is 32 bytes more than one: `size % 512 ==
32`. talosctl itself refuses a download without that shape ("sha256 checksum not found"), and etcd's restore
(`etcdutl snapshot restore`, Talos' `bootstrap --recover-from`) truncates the 32 bytes and refuses the file
when the rest does not hash to them. This module checks the same thing before anything trusts a snapshot: after
taking it, after uploading it (the object's bytes), after downloading it.

`verify_file(path)` / `verify_bytes(data)` return a `SnapshotCheck` or raise `SnapshotCorrupt` (a ToolkitError
naming the file and what is wrong). `file_digests(path)` gives the SHA-256 and MD5 of the whole file (what an
object store sees).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from k8s_ops.core.errors import ToolkitError

__all__ = [
    "DIGEST_SIZE",
    "SECTOR",
    "SnapshotCheck",
    "SnapshotCorrupt",
    "file_digests",
    "has_trailer",
    "verify_bytes",
    "verify_file",
]

DIGEST_SIZE: Final = 32  # sha256.Size
SECTOR: Final = 512  # etcd: "a minimum disk sector size smaller than (and multiplies to) OS page size"
_CHUNK: Final = 1 << 20


class SnapshotCorrupt(ToolkitError):
    """A snapshot that etcd would refuse to restore: no SHA-256 trailer, or content that does not match it."""


@dataclass(frozen=True)
class SnapshotCheck:
    """A verified snapshot. `sha256`/`size` are of the whole file (as stored and uploaded); `content_sha256` is
    the digest etcd appended (of the database without the trailer)."""

    name: str
    size: int
    sha256: str
    content_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "content_sha256": self.content_sha256}


def has_trailer(size: int) -> bool:
    """Whether a file of `size` bytes has etcd's digest appended (etcd's own test: `size % 512 == 32`)."""
    return size % SECTOR == DIGEST_SIZE


def _no_trailer(name: str, size: int) -> SnapshotCorrupt:
    return SnapshotCorrupt(
        f"etcd snapshot {name} has no SHA-256 trailer (size {size} is not 32 bytes more than a multiple of 512): "
        "truncated, or not a snapshot streamed from etcd",
        hint="take a new snapshot with `invoke talos.etcd-snapshot`; never restore this file",
    )


def _mismatch(name: str, expected: str, actual: str) -> SnapshotCorrupt:
    return SnapshotCorrupt(
        f"etcd snapshot {name} is corrupt: it ends with sha256 {expected[:16]}… but its content hashes to "
        f"{actual[:16]}…",
        hint="etcd would refuse to restore it; use another snapshot (`invoke talos.etcd-backups`)",
    )


def verify_bytes(data: bytes, *, name: str = "<memory>") -> SnapshotCheck:
    """Check a snapshot held in memory (small ones, tests)."""
    if not has_trailer(len(data)):
        raise _no_trailer(name, len(data))
    content, trailer = data[:-DIGEST_SIZE], data[-DIGEST_SIZE:]
    actual = hashlib.sha256(content).hexdigest()
    if actual != trailer.hex():
        raise _mismatch(name, trailer.hex(), actual)
    return SnapshotCheck(name, len(data), hashlib.sha256(data).hexdigest(), actual)


def verify_file(path: Path) -> SnapshotCheck:
    """Check a snapshot file, streaming it once (it may be gigabytes)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SnapshotCorrupt(f"etcd snapshot {path} does not exist") from None
    if not has_trailer(size):
        raise _no_trailer(str(path), size)
    content = hashlib.sha256()
    whole = hashlib.sha256()
    remaining = size - DIGEST_SIZE
    with path.open("rb") as f:
        while remaining > 0:
            chunk = f.read(min(_CHUNK, remaining))
            if not chunk:
                raise SnapshotCorrupt(f"etcd snapshot {path} shrank while it was read")
            content.update(chunk)
            whole.update(chunk)
            remaining -= len(chunk)
        trailer = f.read(DIGEST_SIZE)
    whole.update(trailer)
    if content.hexdigest() != trailer.hex():
        raise _mismatch(str(path), trailer.hex(), content.hexdigest())
    return SnapshotCheck(str(path), size, whole.hexdigest(), content.hexdigest())


def file_digests(path: Path) -> tuple[str, str]:
    """(sha256, md5) hex digests of the whole file: the sha256 is recorded, the md5 is compared with the
    object store's ETag of a single-part upload."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()
