"""Where etcd snapshots live and what is known about each: names, sidecars, listings, retention.

Names: a snapshot taken at UTC time T is `<T:%Y%m%dT%H%M%SZ>.db`, locally in `<state dir>/backups/<cluster>/` and
remotely at `<prefix>/<cluster>/<T>.db`; its sidecar (`Sidecar`, JSON) sits beside it as `<name>.json` — locally
and as an object — and records the cluster, the time, the Talos and Kubernetes versions, the etcd member count,
the revision when talosctl reported it, the source node, and the file's size and SHA-256. The sidecar is written
only after the snapshot passed `k8s_ops.backups.snapshot.verify_file`, so "has a matching sidecar" is what
*verified* means in a listing. Snapshots of older releases (`etcd-<T>.snapshot`, no sidecar) are listed as
unverified.

Retention (`plan_retention`): per location, keep the newest `keepLast`, plus the newest snapshot of each UTC day
of the last `keepDailyDays` days; everything else is pruned — except that the newest verified snapshot is always
kept, whatever the policy says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from k8s_ops.core.errors import ToolkitError

if TYPE_CHECKING:
    from k8s_ops.backups.s3 import ObjectInfo, S3Store
    from k8s_ops.talos.inventory.models import EtcdBackupTarget, Retention

__all__ = [
    "SIDECAR_SUFFIX",
    "Backup",
    "Keep",
    "Sidecar",
    "SidecarError",
    "local_backups",
    "object_key",
    "parse_stamp",
    "plan_retention",
    "remote_backups",
    "remote_dir",
    "snapshot_name",
    "stamp",
]

SIDECAR_SUFFIX: Final = ".json"
_STAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
_NAME_RE: Final = re.compile(r"^(?:etcd-)?(\d{8}T\d{6}Z)\.(?:db|snapshot)$")
Location = Literal["local", "remote"]


class SidecarError(ToolkitError):
    """A sidecar that is not the JSON this module writes."""


def stamp(when: datetime) -> str:
    """`20261206T031500Z` for a UTC time (naive times are taken as UTC)."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime(_STAMP_FORMAT)


def snapshot_name(when: datetime) -> str:
    """The file/object name of a snapshot taken at `when`: `<stamp>.db`."""
    return f"{stamp(when)}.db"


def parse_stamp(name: str) -> datetime | None:
    """The time in a snapshot name (`<stamp>.db`, legacy `etcd-<stamp>.snapshot`), or None."""
    m = _NAME_RE.match(name)
    return datetime.strptime(m.group(1), _STAMP_FORMAT).replace(tzinfo=UTC) if m else None


def remote_dir(target: EtcdBackupTarget, cluster: str) -> str:
    """`<prefix>/<cluster>/` (just `<cluster>/` with an empty prefix)."""
    return f"{target.prefix}/{cluster}/" if target.prefix else f"{cluster}/"


def object_key(target: EtcdBackupTarget, cluster: str, name: str) -> str:
    """`<prefix>/<cluster>/<name>`."""
    return remote_dir(target, cluster) + name


@dataclass(frozen=True)
class Sidecar:
    """What is recorded beside a verified snapshot (JSON keys are the field names in camelCase)."""

    cluster: str
    taken: datetime
    size: int
    sha256: str
    content_sha256: str
    talos_version: str | None = None
    kubernetes_version: str | None = None
    members: int | None = None
    revision: int | None = None
    source_node: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "taken": self.taken.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "size": self.size,
            "sha256": self.sha256,
            "contentSha256": self.content_sha256,
            "talosVersion": self.talos_version,
            "kubernetesVersion": self.kubernetes_version,
            "members": self.members,
            "revision": self.revision,
            "sourceNode": self.source_node,
        }

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2) + "\n").encode()

    def metadata(self) -> dict[str, str]:
        """The same facts as S3 user metadata (ASCII strings; unknown values left out)."""
        return {k.lower(): str(v) for k, v in self.to_json().items() if v is not None}

    @classmethod
    def loads(cls, data: bytes, *, where: str) -> Sidecar:
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            taken = datetime.strptime(str(raw["taken"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

            def opt_int(key: str) -> int | None:
                v = raw.get(key)
                return None if v is None else int(v)

            def opt_str(key: str) -> str | None:
                v = raw.get(key)
                return None if v is None else str(v)

            sha = str(raw["sha256"])
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise ValueError("sha256 is not 64 hex digits")
            return cls(
                cluster=str(raw["cluster"]),
                taken=taken,
                size=int(raw["size"]),
                sha256=sha,
                content_sha256=str(raw.get("contentSha256") or ""),
                talos_version=opt_str("talosVersion"),
                kubernetes_version=opt_str("kubernetesVersion"),
                members=opt_int("members"),
                revision=opt_int("revision"),
                source_node=opt_str("sourceNode"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SidecarError(f"snapshot sidecar {where} is not valid: {exc}") from None


@dataclass(frozen=True)
class Backup:
    """One snapshot in one place. `ref` is the local path or the object key; `verified`: a sidecar whose size
    (and, remotely, sha256 metadata) matches the snapshot; `problem` says why not, when there is a reason."""

    location: Location
    name: str
    ref: str
    size: int
    taken: datetime
    sidecar: Sidecar | None = None
    verified: bool = False
    problem: str | None = None

    @property
    def sidecar_ref(self) -> str:
        return self.ref + SIDECAR_SUFFIX

    def age(self, now: datetime) -> timedelta:
        return now - self.taken

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "location": self.location,
            "name": self.name,
            "ref": self.ref,
            "size": self.size,
            "taken": self.taken.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ageSeconds": int(self.age(now).total_seconds()),
            "verified": self.verified,
            "problem": self.problem,
            "sidecar": self.sidecar.to_json() if self.sidecar else None,
        }


def _judge(size: int, sidecar: Sidecar | None, sha256: str | None = None) -> tuple[bool, str | None]:
    if sidecar is None:
        return False, "no sidecar: never verified"
    if sidecar.size != size:
        return False, f"size {size} differs from the sidecar's {sidecar.size}"
    if sha256 is not None and sha256 != sidecar.sha256:
        return False, "sha256 metadata differs from the sidecar's"
    return True, None


def local_backups(directory: Path) -> list[Backup]:
    """Snapshots in a local backups directory, newest first (a missing directory has none)."""
    out: list[Backup] = []
    if not directory.is_dir():
        return out
    for path in directory.iterdir():
        taken = parse_stamp(path.name)
        if taken is None or not path.is_file():
            continue
        sidecar: Sidecar | None = None
        problem: str | None = None
        side = path.with_name(path.name + SIDECAR_SUFFIX)
        if side.is_file():
            try:
                sidecar = Sidecar.loads(side.read_bytes(), where=str(side))
            except SidecarError as exc:
                problem = exc.message
        size = path.stat().st_size
        verified, why = _judge(size, sidecar)
        out.append(Backup("local", path.name, str(path), size, taken, sidecar, verified, problem or why))
    return sorted(out, key=lambda b: (b.taken, b.name), reverse=True)


def remote_backups(store: S3Store, target: EtcdBackupTarget, cluster: str) -> list[Backup]:
    """Snapshots under `<prefix>/<cluster>/`, newest first; each sidecar object is read (small) and compared."""
    base = remote_dir(target, cluster)
    objects = store.list(base)
    by_key: Mapping[str, ObjectInfo] = {o.key: o for o in objects}
    out: list[Backup] = []
    for obj in objects:
        name = obj.key[len(base) :]
        taken = parse_stamp(name)
        if taken is None or "/" in name:
            continue
        sidecar: Sidecar | None = None
        problem: str | None = None
        if obj.key + SIDECAR_SUFFIX in by_key:
            try:
                sidecar = Sidecar.loads(store.get_bytes(obj.key + SIDECAR_SUFFIX), where=obj.key + SIDECAR_SUFFIX)
            except SidecarError as exc:
                problem = exc.message
        verified, why = _judge(obj.size, sidecar)
        out.append(Backup("remote", name, obj.key, obj.size, taken, sidecar, verified, problem or why))
    return sorted(out, key=lambda b: (b.taken, b.name), reverse=True)


@dataclass(frozen=True)
class Keep:
    """The retention verdict on one snapshot: kept or pruned, and why."""

    backup: Backup
    keep: bool
    reason: str


def plan_retention(backups: Iterable[Backup], policy: Retention, now: datetime) -> list[Keep]:
    """Verdicts per snapshot (newest first), each location judged on its own."""
    out: list[Keep] = []
    by_location: dict[str, list[Backup]] = {}
    for b in backups:
        by_location.setdefault(b.location, []).append(b)
    for items in by_location.values():
        out += _retain(sorted(items, key=lambda b: (b.taken, b.name), reverse=True), policy, now)
    return out


def _retain(items: Sequence[Backup], policy: Retention, now: datetime) -> list[Keep]:
    reasons: dict[int, str] = {}
    for i in range(min(policy.keep_last, len(items))):
        reasons[i] = f"one of the newest {policy.keep_last}"
    if policy.keep_daily_days > 0:
        since = now - timedelta(days=policy.keep_daily_days)
        seen_days: set[str] = set()
        for i, b in enumerate(items):
            day = b.taken.strftime("%Y-%m-%d")
            if b.taken >= since and day not in seen_days:
                seen_days.add(day)
                reasons.setdefault(i, f"newest of {day} (daily, {policy.keep_daily_days} days)")
    newest_verified = next((i for i, b in enumerate(items) if b.verified), None)
    if newest_verified is not None:
        reasons.setdefault(newest_verified, "the newest verified snapshot (always kept)")
    return [Keep(b, i in reasons, reasons.get(i) or _prune_reason(b, policy, now)) for i, b in enumerate(items)]


def _prune_reason(b: Backup, policy: Retention, now: datetime) -> str:
    days = policy.keep_daily_days
    if days and b.taken >= now - timedelta(days=days):
        return "a newer snapshot of the same day is kept"
    return f"older than the newest {policy.keep_last}" + (f" and than {days} days" if days else "")
