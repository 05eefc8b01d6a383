"""Off-box etcd snapshots as plan steps: take → verify → record → upload → read back; list; prune; fetch for recovery.

The pieces (pure builders; nothing runs until the executor does):

* `Remote.for_cluster(cluster)` — the inventory's `backups.etcd` target with a store opened on first use
  (credentials are read then, never while planning: `--dry-run` needs none), or None without a target.
* `snapshot_steps(env, source, path, facts, remote=…)` — the steps of `talos.etcd-snapshot [--upload]` and of the
  pre-upgrade snapshot: (1) `talosctl etcd snapshot` to a 0600 file in a 0700 directory, then the SHA-256 trailer
  check (`k8s_ops.backups.snapshot`); (2) the sidecar beside it (written only once verified); (3) with a remote,
  the upload of the file (sidecar facts as object metadata) and of the sidecar to `<prefix>/<cluster>/<name>`, then
  a read-back: HEAD must report the same size and sha256 metadata, and the ETag must equal the file's MD5 (the
  store's own digest of what it received; single-part uploads up to 5 GiB).
* `gather_snapshot_facts(runner, env, source)` — the sidecar's live facts (Talos and Kubernetes versions, member
  count); the revision comes from talosctl's own `snapshot info` line when the snapshot runs.
* `listing(cluster, remote, now)` / `listing_table` / `listing_json` — local and remote snapshots with age, size and
  whether verified; `plan_prune(cluster, verdicts, remote)` — one destructive step per snapshot the retention
  policy drops (`k8s_ops.backups.catalog.plan_retention`; the newest verified one is never among them).
* `fetch_for_recovery(spec, cluster, remote=…, dest_dir=…)` — for `bootstrap.rebuild --recover-from
  latest|<key>|<file>`: `latest` = the newest verified remote snapshot (the newest verified local one without a
  target), `<key>` = an object key or a name under `<prefix>/<cluster>/`, `<file>` = a local path. Downloads
  (0600), verifies the trailer and the sidecar's sha256, and returns a `RecoverySnapshot(path, check, origin,
  sidecar)`; a corrupt or missing snapshot raises before anything else happens. `fetch_step(...)` wraps it as a
  plan step whose result lands in a `RecoveryCell`, for a plan that recovers right after.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k8s_ops.backups.catalog import (
    SIDECAR_SUFFIX,
    Backup,
    Keep,
    Sidecar,
    SidecarError,
    local_backups,
    object_key,
    remote_backups,
)
from k8s_ops.backups.s3 import ObjectInfo, S3Store, credentials_for
from k8s_ops.backups.snapshot import SnapshotCheck, SnapshotCorrupt, file_digests, verify_file
from k8s_ops.core import paths
from k8s_ops.core.command import Command
from k8s_ops.core.errors import GateFailed, ToolkitError
from k8s_ops.core.files import write_private
from k8s_ops.core.plan import Action, Check, EnsureDir, EnsureMode, Plan, Step
from k8s_ops.core.units import age_text, size_text
from k8s_ops.tools.talosctl import parse_snapshot_info

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner
    from k8s_ops.talos.inventory import Cluster, Node
    from k8s_ops.talos.inventory.models import EtcdBackupTarget
    from k8s_ops.talos.lifecycle import Env

__all__ = [
    "NoSnapshot",
    "RecoveryCell",
    "RecoverySnapshot",
    "Remote",
    "SnapshotFacts",
    "TakeSnapshot",
    "fetch_for_recovery",
    "fetch_step",
    "gather_snapshot_facts",
    "listing",
    "listing_json",
    "listing_table",
    "plan_prune",
    "snapshot_steps",
    "with_offsite_snapshot",
]


class NoSnapshot(ToolkitError):
    """No snapshot matches what was asked for."""


# --------------------------------------------------------------------------- the remote


@dataclass(frozen=True)
class Remote:
    """The cluster's object store target; `store()` opens it (credentials read) on first use only."""

    target: EtcdBackupTarget
    cluster: str
    vault: str | None = None
    opener: Callable[[], S3Store] | None = field(default=None, compare=False, repr=False)
    _cell: list[S3Store] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def for_cluster(cls, cluster: Cluster, opener: Callable[[], S3Store] | None = None) -> Remote | None:
        backups = cluster.backups
        if backups is None or backups.etcd is None:
            return None
        return cls(backups.etcd, cluster.name, cluster.onepassword.vault, opener)

    def store(self) -> S3Store:
        if not self._cell:
            if self.opener is not None:
                self._cell.append(self.opener())
            else:
                self._cell.append(S3Store.for_target(self.target, credentials_for(self.target, self.vault)))
        return self._cell[0]

    def key(self, name: str) -> str:
        return object_key(self.target, self.cluster, name)

    def url(self, name: str) -> str:
        return f"s3://{self.target.bucket}/{self.key(name)}"

    def describe(self) -> str:
        creds = (
            f"1Password item {self.target.credentials.onepassword.item!r}"
            if self.target.credentials.onepassword
            else "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
        return f"{self.url('')} at {self.target.endpoint} (credentials: {creds})"


# --------------------------------------------------------------------------- taking a snapshot


@dataclass(frozen=True)
class SnapshotFacts:
    """Live facts recorded in the sidecar (None: not known)."""

    cluster: str
    talos_version: str | None = None
    kubernetes_version: str | None = None
    members: int | None = None


def gather_snapshot_facts(runner: Runner, env: Env, source: Node) -> SnapshotFacts:
    """The source node's Talos version, the API server's Kubernetes version and etcd's member count (reads)."""
    from k8s_ops.talos import facts

    addr = str(source.address)
    versions = facts.talos_versions(env.tctl, [addr]).try_gather(runner)
    members = facts.etcd_members(env.tctl, addr).try_gather(runner)
    _, server = facts.gather_k8s_versions(runner, env.kube)
    return SnapshotFacts(
        cluster=env.cluster.name,
        talos_version=versions.get(addr) if versions is not None else None,
        kubernetes_version=server,
        members=len(members) if members is not None else None,
    )


@dataclass
class _Taken:
    """What the run learns about the snapshot as it goes (revision from talosctl, the verification)."""

    revision: int | None = None
    check: SnapshotCheck | None = None


@dataclass(frozen=True)
class TakeSnapshot:
    """`talosctl etcd snapshot <path>` as an effect that keeps the revision talosctl reports (`snapshot info:`)."""

    command: Command
    taken: _Taken = field(default_factory=_Taken, compare=False, repr=False)
    mutates = True

    def display(self) -> str:
        return f"$ {self.command.display()}"

    def to_json(self) -> dict[str, Any]:
        return {"effect": "etcd-snapshot", **self.command.to_json()}

    def apply(self, runner: Runner) -> None:
        result = runner.run(self.command)
        info = parse_snapshot_info(result.stdout)
        self.taken.revision = info[0] if info else None


def _verify_into(path: Path, taken: _Taken) -> Callable[[Runner], None]:
    def check(_: Runner) -> None:
        try:
            taken.check = verify_file(path)
        except SnapshotCorrupt as exc:
            raise GateFailed(f"etcd snapshot {path}", exc.message, hint=exc.hint) from None

    return check


def _sidecar(path: Path, taken: _Taken, facts: SnapshotFacts, source: Node, when: datetime) -> Sidecar:
    check = taken.check or verify_file(path)
    taken.check = check
    return Sidecar(
        cluster=facts.cluster,
        taken=when,
        size=check.size,
        sha256=check.sha256,
        content_sha256=check.content_sha256,
        talos_version=facts.talos_version,
        kubernetes_version=facts.kubernetes_version,
        members=facts.members,
        revision=taken.revision,
        source_node=source.hostname,
    )


def snapshot_steps(
    env: Env,
    source: Node,
    path: Path,
    facts: SnapshotFacts,
    *,
    remote: Remote | None = None,
    when: datetime | None = None,
    noop: str | None = None,
) -> tuple[Step, ...]:
    """Take, verify and record a snapshot at `path` (named `<stamp>.db`), and upload it when `remote` is given.
    `noop`: every step is skipped with that reason (e.g. nothing to upgrade)."""
    when = when or datetime.now(UTC)
    desc = f"snapshot etcd from {source.hostname} to {path}"
    record = f"record {path.name}{SIDECAR_SUFFIX} beside it (cluster, time, versions, members, revision, sha256)"
    if noop is not None:
        steps = [Step(desc, noop=noop), Step(record, noop=noop)]
        if remote is not None:
            steps.append(Step(f"upload {path.name} to {remote.url(path.name)}", noop=noop))
        return tuple(steps)
    if path.exists():
        raise ToolkitError(f"{path} already exists (a snapshot taken the same second); re-run to take a new one")
    taken = _Taken()
    take = TakeSnapshot(env.tctl.etcd_snapshot(str(source.address), path, host=source.hostname), taken)
    steps = [
        Step(
            desc,
            prepare=(EnsureDir(path.parent, 0o700),),
            finish=(take, EnsureMode(path, stat.S_IRUSR | stat.S_IWUSR)),
            after=(
                Check(
                    f"{path.name} ends with the SHA-256 of its content (etcd's integrity trailer)",
                    _verify_into(path, taken),
                ),
            ),
            node=source.hostname,
        )
    ]
    side_path = path.with_name(path.name + SIDECAR_SUFFIX)

    def write_sidecar(_: Runner) -> None:
        write_private(side_path, _sidecar(path, taken, facts, source, when).dumps())

    steps.append(Step(record, finish=(Action("write-sidecar", str(side_path), write_sidecar),)))
    if remote is not None:
        steps.append(_upload_step(remote, path, taken, facts, source, when))
    return tuple(steps)


def _upload_step(remote: Remote, path: Path, taken: _Taken, facts: SnapshotFacts, source: Node, when: datetime) -> Step:
    key = remote.key(path.name)
    expected: dict[str, str] = {}

    def upload(_: Runner) -> ObjectInfo:
        sidecar = _sidecar(path, taken, facts, source, when)
        sha, md5 = file_digests(path)
        if sha != sidecar.sha256:
            raise SnapshotCorrupt(f"etcd snapshot {path} changed after it was verified", hint="take a new snapshot")
        expected.update(sha256=sha, md5=md5, size=str(sidecar.size))
        store = remote.store()
        info = store.upload_file(path, key, sidecar.metadata())
        store.put_bytes(key + SIDECAR_SUFFIX, sidecar.dumps())
        return info

    def read_back(_: Runner) -> None:
        info = remote.store().head(key)
        where = remote.store().describe(key)
        if info is None:
            raise GateFailed(f"read back {where}", "the object is missing after the upload")
        problems = []
        if str(info.size) != expected.get("size"):
            problems.append(f"size {info.size}, expected {expected.get('size')}")
        if info.metadata.get("sha256") != expected.get("sha256"):
            problems.append("sha256 metadata differs from the file's")
        if "-" not in info.etag and info.etag and info.etag != expected.get("md5"):
            problems.append(f"ETag {info.etag} is not the file's MD5 {expected.get('md5')}")
        if remote.store().head(key + SIDECAR_SUFFIX) is None:
            problems.append("its sidecar object is missing")
        if problems:
            raise GateFailed(f"read back {where}", "; ".join(problems), hint="re-run the upload")

    detail = (("endpoint", remote.target.endpoint), ("sidecar", f"{key}{SIDECAR_SUFFIX}"))
    return Step(
        f"upload {path.name} to {remote.url(path.name)}",
        finish=(Action("s3-upload", remote.url(path.name), upload, detail=detail),),
        after=(Check(f"read back {remote.url(path.name)}: size, sha256 metadata and ETag (MD5) match", read_back),),
    )


# --------------------------------------------------------------------------- listing and pruning


def listing(cluster: str, remote: Remote | None) -> list[Backup]:
    """Local snapshots (the backups directory) then remote ones, newest first within each."""
    found = local_backups(paths.backups_dir(cluster))
    if remote is not None:
        found += remote_backups(remote.store(), remote.target, cluster)
    return found


def listing_table(backups: Sequence[Backup], now: datetime, verdicts: Sequence[Keep] | None = None) -> str:
    """A rich table: WHERE, NAME, AGE, SIZE, VERIFIED, REVISION, TALOS, K8S (and RETENTION with verdicts)."""
    import io

    from rich.console import Console
    from rich.table import Table

    by_ref = {v.backup.ref: v for v in verdicts or ()}
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for col in ("WHERE", "NAME", "AGE", "SIZE", "VERIFIED", "REVISION", "TALOS", "K8S"):
        table.add_column(col, no_wrap=True, justify="right" if col in ("AGE", "SIZE", "REVISION") else "left")
    if verdicts is not None:
        table.add_column("RETENTION")
    for b in backups:
        sc = b.sidecar
        row = [
            b.location,
            b.name,
            age_text(b.age(now).total_seconds()),
            size_text(b.size),
            "yes" if b.verified else f"no: {b.problem}" if b.problem else "no",
            str(sc.revision) if sc and sc.revision is not None else "-",
            (sc.talos_version if sc else None) or "-",
            (sc.kubernetes_version if sc else None) or "-",
        ]
        if verdicts is not None:
            v = by_ref.get(b.ref)
            row.append("-" if v is None else ("keep: " if v.keep else "prune: ") + v.reason)
        table.add_row(*row)
    buf = io.StringIO()
    Console(file=buf, width=240, highlight=False, color_system=None).print(table)
    return buf.getvalue()


def listing_json(backups: Sequence[Backup], now: datetime, verdicts: Sequence[Keep] | None = None) -> list[Any]:
    by_ref = {v.backup.ref: v for v in verdicts or ()}
    out = []
    for b in backups:
        data = b.to_json(now)
        if b.ref in by_ref:
            data["retention"] = {"keep": by_ref[b.ref].keep, "reason": by_ref[b.ref].reason}
        out.append(data)
    return out


def plan_prune(cluster: str, verdicts: Sequence[Keep], remote: Remote | None) -> Plan:
    """One destructive step per pruned snapshot (file or object, with its sidecar); a gate first re-checks that
    the newest verified snapshot of each location still exists."""
    drop = [v.backup for v in verdicts if not v.keep]
    keepers: dict[str, Backup] = {}
    for v in verdicts:
        if v.keep and v.backup.verified and v.backup.location not in keepers:
            keepers[v.backup.location] = v.backup
    steps: list[Step] = []
    for i, b in enumerate(drop):
        before: tuple[Check, ...] = ()
        if i == 0 and keepers:
            before = (
                Check("the newest verified snapshot of each location is still there", _keepers_exist(keepers, remote)),
            )
        if b.location == "local":
            action = Action("delete-file", b.ref, _delete_local(Path(b.ref)), detail=(("sidecar", b.sidecar_ref),))
        else:
            if remote is None:
                raise ToolkitError(f"cannot prune {b.ref}: no backups.etcd target")
            action = Action(
                "s3-delete",
                f"s3://{remote.target.bucket}/{b.ref}",
                _delete_remote(remote, b.ref),
                detail=(("sidecar", b.sidecar_ref),),
            )
        reason = next(v.reason for v in verdicts if v.backup is b)
        steps.append(
            Step(f"prune {b.location} snapshot {b.name} ({reason})", before=before, finish=(action,), destructive=True)
        )
    notes = [f"keep {len(verdicts) - len(drop)}, prune {len(drop)}"]
    notes += [f"newest verified {loc} snapshot (never pruned): {b.name}" for loc, b in sorted(keepers.items())]
    if not steps:
        steps.append(Step("prune etcd snapshots", noop="every snapshot is kept by the retention policy"))
    return Plan("prune etcd snapshots", cluster, tuple(steps), notes=tuple(notes))


def _keepers_exist(keepers: dict[str, Backup], remote: Remote | None) -> Callable[[Runner], None]:
    def check(_: Runner) -> None:
        for loc, b in keepers.items():
            present = (
                Path(b.ref).is_file()
                if loc == "local"
                else remote is not None and remote.store().head(b.ref) is not None
            )
            if not present:
                raise GateFailed("newest verified snapshot present", f"{b.ref} disappeared; nothing is pruned")

    return check


def _delete_local(path: Path) -> Callable[[Runner], None]:
    def run(_: Runner) -> None:
        path.unlink(missing_ok=True)
        path.with_name(path.name + SIDECAR_SUFFIX).unlink(missing_ok=True)

    return run


def _delete_remote(remote: Remote, key: str) -> Callable[[Runner], None]:
    def run(_: Runner) -> None:
        remote.store().delete([key, key + SIDECAR_SUFFIX])

    return run


# --------------------------------------------------------------------------- fetching for a recovery


@dataclass(frozen=True)
class RecoverySnapshot:
    """A snapshot on local disk that passed every check: etcd's trailer and, when there is one, its sidecar."""

    path: Path
    check: SnapshotCheck
    origin: str
    sidecar: Sidecar | None = None


def _against_sidecar(check: SnapshotCheck, sidecar: Sidecar | None, where: str) -> None:
    if sidecar is not None and (sidecar.sha256 != check.sha256 or sidecar.size != check.size):
        raise SnapshotCorrupt(
            f"etcd snapshot {where} does not match its sidecar (size {check.size} vs {sidecar.size}, sha256 "
            f"{check.sha256[:16]}… vs {sidecar.sha256[:16]}…)",
            hint="use another snapshot (`invoke talos.etcd-backups`)",
        )


def fetch_for_recovery(spec: str, cluster: str, *, remote: Remote | None, dest_dir: Path) -> RecoverySnapshot:
    """Resolve `latest`, an object key/name or a local file to a verified local snapshot (see the module doc)."""
    candidate = Path(spec).expanduser()
    if spec != "latest" and (candidate.is_file() or (os.sep in spec and remote is None)):
        check = verify_file(candidate)
        side = candidate.with_name(candidate.name + SIDECAR_SUFFIX)
        sidecar = Sidecar.loads(side.read_bytes(), where=str(side)) if side.is_file() else None
        _against_sidecar(check, sidecar, str(candidate))
        return RecoverySnapshot(candidate, check, f"file {candidate}", sidecar)
    if spec == "latest" and remote is None:
        local = next((b for b in local_backups(paths.backups_dir(cluster)) if b.verified), None)
        if local is None:
            raise NoSnapshot(
                f"no verified etcd snapshot of {cluster} in {paths.backups_dir(cluster)} and no backups.etcd target",
                hint="name a snapshot file, or configure backups.etcd in cluster.yaml",
            )
        return fetch_for_recovery(local.ref, cluster, remote=None, dest_dir=dest_dir)
    if remote is None:
        raise NoSnapshot(f"{spec} is not a file and cluster {cluster} has no backups.etcd target")
    store = remote.store()
    if spec == "latest":
        found = remote_backups(store, remote.target, cluster)
        newest = next((b for b in found if b.verified), None)
        if newest is None:
            raise NoSnapshot(
                f"no verified etcd snapshot under {remote.url('')} ({len(found)} unverified)",
                hint="upload one with `invoke talos.etcd-snapshot --upload` while the cluster runs",
            )
        key = newest.ref
    else:
        key = spec if "/" in spec else remote.key(spec)
    dest = dest_dir / key.rsplit("/", 1)[-1]
    store.download(key, dest)
    remote_sidecar: Sidecar | None = None
    if store.head(key + SIDECAR_SUFFIX) is not None:
        try:
            remote_sidecar = Sidecar.loads(store.get_bytes(key + SIDECAR_SUFFIX), where=key + SIDECAR_SUFFIX)
        except SidecarError:
            remote_sidecar = None
    try:
        check = verify_file(dest)
        _against_sidecar(check, remote_sidecar, store.describe(key))
    except SnapshotCorrupt:
        dest.unlink(missing_ok=True)  # never leave a corrupt snapshot where a later run could pick it up
        raise
    return RecoverySnapshot(dest, check, store.describe(key), remote_sidecar)


@dataclass
class RecoveryCell:
    """Where `fetch_step` puts the verified snapshot for the steps after it."""

    value: RecoverySnapshot | None = None


def fetch_step(
    spec: str, cluster: str, *, remote: Remote | None, dest_dir: Path, cell: RecoveryCell, stage: str | None = None
) -> Step:
    """A plan step: fetch and verify the recovery snapshot (see `fetch_for_recovery`) into `cell`."""
    what = "the newest verified snapshot" if spec == "latest" else spec
    where = remote.describe() if remote is not None else str(paths.backups_dir(cluster))

    def run(_: Runner) -> RecoverySnapshot:
        cell.value = fetch_for_recovery(spec, cluster, remote=remote, dest_dir=dest_dir)
        return cell.value

    return Step(
        f"fetch and verify {what} for the recovery",
        prepare=(EnsureDir(dest_dir, 0o700),),
        finish=(Action("fetch-snapshot", what, run, detail=(("from", where), ("to", str(dest_dir)))),),
        stage=stage,
    )


def with_offsite_snapshot(plan: Plan, env: Env, runner: Runner, snapshot: Path, source: Node | None) -> Plan:
    """`talos.upgrade-cluster`'s plan with its first step (the pre-upgrade snapshot, k8s_ops/talos/lifecycle.py)
    replaced by `snapshot_steps` uploading to the inventory's target — unchanged when there is no target. A skipped
    snapshot step (nothing to upgrade) stays skipped, with the upload."""
    remote = Remote.for_cluster(env.cluster)
    if remote is None or not plan.steps:
        return plan
    first = plan.steps[0]
    node = source or env.cluster.controlplanes[0]
    if first.noop is not None:
        steps = snapshot_steps(env, node, snapshot, SnapshotFacts(env.cluster.name), remote=remote, noop=first.noop)
    else:
        steps = snapshot_steps(env, node, snapshot, gather_snapshot_facts(runner, env, node), remote=remote)
    notes = (*plan.notes, f"the snapshot is uploaded to {remote.describe()}")
    return replace(plan, steps=(*steps, *plan.steps[1:]), notes=notes)
