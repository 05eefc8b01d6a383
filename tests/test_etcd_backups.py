"""Off-box etcd snapshots: the SHA-256 trailer check, the S3 store against a real S3 server on loopback (moto's
server, tests/s3_server.py — never a mocked client), sidecars, retention, recovery fetches and the inventory model."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from k8s_ops.backups.catalog import Backup, Sidecar, local_backups, parse_stamp, plan_retention, snapshot_name
from k8s_ops.backups.etcd import NoSnapshot, Remote, fetch_for_recovery, listing_table, plan_prune
from k8s_ops.backups.s3 import BackupStoreError, S3Store, credentials_for, credentials_from_env
from k8s_ops.backups.snapshot import SnapshotCorrupt, has_trailer, verify_bytes, verify_file
from k8s_ops.core.errors import ProblemsError, SecretError
from k8s_ops.talos.inventory import load_cluster
from k8s_ops.talos.inventory.models import EtcdBackupTarget, Retention
from tests.s3_server import S3, s3, s3_server  # noqa: F401
from tests.test_inventory import base, write

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def snapshot_bytes(pages: int = 3, seed: bytes = b"etcd") -> bytes:
    """A snapshot of etcd's shape: whole 4096-byte pages, then the SHA-256 of them."""
    db = (hashlib.sha256(seed).digest() * 128)[:4096] * pages
    return db + hashlib.sha256(db).digest()


# --------------------------------------------------------------------------- the trailer


def test_a_snapshot_with_its_trailer_verifies_and_every_flipped_byte_is_refused(tmp_path: Path) -> None:
    data = snapshot_bytes()
    assert has_trailer(len(data)) and len(data) % 512 == 32
    check = verify_bytes(data)
    assert check.content_sha256 == hashlib.sha256(data[:-32]).hexdigest()
    assert check.sha256 == hashlib.sha256(data).hexdigest() and check.size == len(data)
    path = tmp_path / "s.db"
    path.write_bytes(data)
    assert verify_file(path) == verify_bytes(data, name=str(path))
    for offset in (0, 4095, 8192 + 17, len(data) - 32, len(data) - 1):  # database and trailer alike
        flipped = bytearray(data)
        flipped[offset] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(SnapshotCorrupt, match="is corrupt"):
            verify_file(path)


def test_a_truncated_or_foreign_file_has_no_trailer(tmp_path: Path) -> None:
    data = snapshot_bytes()
    for cut in (data[:-1], data[:-32], data + b"x", b""):
        path = tmp_path / "s.db"
        path.write_bytes(cut)
        with pytest.raises(SnapshotCorrupt, match="no SHA-256 trailer"):
            verify_file(path)
    with pytest.raises(SnapshotCorrupt, match="does not exist"):
        verify_file(tmp_path / "absent.db")


def test_the_simulators_snapshot_has_etcds_shape() -> None:
    from tests.sim.simlib.talosctl import make_snapshot, read_snapshot, snapshot_hash_error

    class W:
        now = 1.0

    raw = make_snapshot(W(), {"name": "demo", "k8s": {"rv": 9, "objects": {"a": {"x": 1}}}})  # type: ignore[arg-type]
    assert verify_bytes(raw).size == len(raw)
    assert snapshot_hash_error(raw) is None and read_snapshot(raw) is not None
    bad = bytearray(raw)
    bad[-1] ^= 0xFF
    assert snapshot_hash_error(bytes(bad)) is not None
    with pytest.raises(SnapshotCorrupt):
        verify_bytes(bytes(bad))


# --------------------------------------------------------------------------- names, sidecars, retention


def test_names_and_stamps_round_trip() -> None:
    assert snapshot_name(NOW) == "20261206T030000Z.db"
    assert parse_stamp("20261206T030000Z.db") == NOW
    assert parse_stamp("etcd-20261206T030000Z.snapshot") == NOW  # snapshots of earlier releases
    assert parse_stamp("20261206T030000Z.db.json") is None and parse_stamp("notes.txt") is None


def test_sidecar_round_trip_and_bad_sidecars_are_named() -> None:
    from k8s_ops.backups.catalog import SidecarError

    sc = Sidecar("demo", NOW, 100, "a" * 64, "b" * 64, "v1.12.11", "v1.35.0", 3, 42, "demo-cp-1")
    assert Sidecar.loads(sc.dumps(), where="x") == sc
    assert sc.metadata()["revision"] == "42" and sc.metadata()["sha256"] == "a" * 64
    with pytest.raises(SidecarError, match=r"x\.json is not valid"):
        Sidecar.loads(b'{"cluster": "demo"}', where="x.json")


def _b(hours_ago: float, *, verified: bool = True, location: str = "remote") -> Backup:
    taken = NOW - timedelta(hours=hours_ago)
    name = snapshot_name(taken)
    return Backup(location, name, f"etcd/demo/{name}", 10, taken, None, verified)  # type: ignore[arg-type]


def test_retention_keeps_the_newest_n_and_one_per_day_and_never_the_newest_verified() -> None:
    items = [_b(h) for h in (1, 2, 3, 26, 27, 50, 24 * 40)]
    verdicts = {v.backup.name: v for v in plan_retention(items, Retention(keep_last=2, keep_daily_days=3), NOW)}
    kept = sorted(n for n, v in verdicts.items() if v.keep)
    assert kept == sorted(b.name for b in (items[0], items[1], items[3], items[5]))
    assert "newest of" in verdicts[items[3].name].reason
    assert not verdicts[items[6].name].keep and not verdicts[items[2].name].keep
    # Only unverified snapshots are newer: the newest verified one is kept whatever the policy says.
    odd = [_b(1, verified=False), _b(2, verified=False), _b(24 * 90)]
    verdicts = {v.backup.name: v for v in plan_retention(odd, Retention(keep_last=1, keep_daily_days=0), NOW)}
    assert verdicts[odd[2].name].keep and "always kept" in verdicts[odd[2].name].reason
    assert not verdicts[odd[1].name].keep


def test_retention_judges_each_location_on_its_own() -> None:
    items = [_b(1, location="local"), _b(2, location="local"), _b(1), _b(2)]
    verdicts = plan_retention(items, Retention(keep_last=1, keep_daily_days=0), NOW)
    assert sorted((v.backup.location, v.keep) for v in verdicts) == [
        ("local", False),
        ("local", True),
        ("remote", False),
        ("remote", True),
    ]


# --------------------------------------------------------------------------- the inventory


def test_the_backups_section_loads_and_bad_values_name_their_field(tmp_path: Path) -> None:
    data: dict[str, Any] = base()
    data["backups"] = {
        "etcd": {
            "endpoint": "https://abc.r2.cloudflarestorage.com/",
            "bucket": "k8s-ops-backups",
            "credentials": {"onepassword": {"item": "r2-etcd"}},
            "retention": {"keepLast": 3},
        }
    }
    write(tmp_path, "lab", data)
    target = load_cluster("lab", clusters_dir=tmp_path).backups.etcd  # type: ignore[union-attr]
    assert target is not None
    assert (target.endpoint, target.prefix, target.region) == ("https://abc.r2.cloudflarestorage.com", "etcd", "auto")
    assert target.retention == Retention(keep_last=3, keep_daily_days=30)
    assert target.credentials.onepassword is not None
    assert target.credentials.onepassword.access_key_id_field == "access-key-id"
    data["backups"]["etcd"].update(bucket="Bad_Bucket", prefix="/etcd/", endpoint="r2.example")
    data["backups"]["etcd"]["retention"] = {"keepLast": 0}
    write(tmp_path, "lab", data)
    with pytest.raises(ProblemsError) as info:
        load_cluster("lab", clusters_dir=tmp_path)
    found = {p.field for p in info.value.problems}
    assert {"backups.etcd.bucket", "backups.etcd.prefix", "backups.etcd.endpoint"} <= found
    assert "backups.etcd.retention.keepLast" in found


# --------------------------------------------------------------------------- credentials


def test_credentials_from_the_environment_never_show_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(SecretError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set"):
        credentials_from_env()
    creds = credentials_from_env({"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"})
    assert "s3cr3t" not in repr(creds) and creds.secret_access_key.reveal_text() == "s3cr3t-value"


def test_credentials_from_a_1password_item_through_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    from onepassword import ItemCategory, ItemCreateParams, ItemField, ItemFieldType, ItemSection

    from k8s_ops.onepassword import sdk
    from tests.op_fake import FakeOnePassword

    fake = FakeOnePassword(vaults=("lab",))
    monkeypatch.setattr(sdk, "client_class", lambda: fake.Client)
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", fake.token)
    fields = [
        ItemField(id=k, title=k, field_type=ItemFieldType.CONCEALED, value=v, section_id="")
        for k, v in (("access-key-id", "AKIAFROM1P"), ("secret-access-key", "from-1password-secret"))
    ]
    fake.create(
        ItemCreateParams(
            category=ItemCategory.LOGIN,
            vault_id=fake.vault_id("lab"),
            title="r2-etcd",
            fields=fields,
            sections=[ItemSection(id="", title="")],
        )
    )
    target = EtcdBackupTarget.model_validate(
        {"endpoint": "http://127.0.0.1:1", "bucket": "b-1", "credentials": {"onepassword": {"item": "r2-etcd"}}}
    )
    creds = credentials_for(target, "lab")
    assert creds.access_key_id.reveal_text() == "AKIAFROM1P"
    assert creds.secret_access_key.reveal_text() == "from-1password-secret"
    assert "r2-etcd" in creds.source and "from-1password" not in repr(creds)
    missing = target.model_copy(update={"credentials": target.credentials.model_copy(
        update={"onepassword": target.credentials.onepassword.model_copy(update={"item": "nope"})}  # type: ignore[union-attr]
    )})  # fmt: skip
    with pytest.raises(SecretError, match="nope"):
        credentials_for(missing, "lab")


# --------------------------------------------------------------------------- the S3 store (loopback server)


def _target(s3: S3, prefix: str = "etcd") -> EtcdBackupTarget:  # noqa: F811
    return EtcdBackupTarget.model_validate(
        {"endpoint": s3.endpoint, "bucket": s3.bucket, "prefix": prefix, "region": s3.region}
    )


def _store(s3: S3) -> S3Store:  # noqa: F811
    return S3Store.for_target(_target(s3), credentials_from_env())


def test_upload_head_list_download_delete_against_a_real_s3_api(s3: S3, tmp_path: Path) -> None:  # noqa: F811
    store = _store(s3)
    path = tmp_path / "20261206T030000Z.db"
    path.write_bytes(snapshot_bytes())
    info = store.upload_file(path, "etcd/demo/20261206T030000Z.db", {"sha256": "ab" * 32, "cluster": "demo"})
    assert info.size == path.stat().st_size
    assert info.etag == hashlib.md5(path.read_bytes()).hexdigest()  # single-part upload: the ETag is the MD5
    assert info.metadata == {"sha256": "ab" * 32, "cluster": "demo"}
    store.put_bytes("etcd/demo/20261206T030000Z.db.json", b"{}")
    assert [o.key for o in store.list("etcd/demo/")] == [
        "etcd/demo/20261206T030000Z.db",
        "etcd/demo/20261206T030000Z.db.json",
    ]
    back = store.download("etcd/demo/20261206T030000Z.db", tmp_path / "dl" / "x.db")
    assert back.read_bytes() == path.read_bytes() and back.stat().st_mode & 0o777 == 0o600
    assert store.head("etcd/demo/absent.db") is None
    store.delete(["etcd/demo/20261206T030000Z.db", "etcd/demo/20261206T030000Z.db.json"])
    assert s3.objects() == []


def test_store_errors_name_bucket_and_key_never_the_secret(s3: S3) -> None:  # noqa: F811
    from k8s_ops.backups.s3 import S3Credentials
    from k8s_ops.core.secret import Secret

    wrong = S3Store(s3.endpoint, "no-such-bucket", s3.region, credentials_from_env())
    with pytest.raises(BackupStoreError, match="no-such-bucket") as info:
        wrong.list("etcd/")
    assert "test-secret-key" not in str(info.value)
    closed = S3Store("http://127.0.0.1:9", s3.bucket, s3.region, S3Credentials(Secret("k"), Secret("sekret-x")))
    with pytest.raises(BackupStoreError, match=r"127\.0\.0\.1:9") as info:
        closed.head("etcd/x.db")
    assert "sekret-x" not in str(info.value)


def _upload_snapshot(s3: S3, tmp_path: Path, when: datetime, data: bytes | None = None) -> str:  # noqa: F811
    """Upload a snapshot the way `talos.etcd-snapshot --upload` does: object + metadata + sidecar object."""
    store = _store(s3)
    name = snapshot_name(when)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_bytes(data or snapshot_bytes(seed=name.encode()))
    check = verify_file(path)
    sc = Sidecar("demo", when, check.size, check.sha256, check.content_sha256)
    key = f"etcd/demo/{name}"
    store.upload_file(path, key, sc.metadata())
    store.put_bytes(key + ".json", sc.dumps())
    return key


def _remote(s3: S3) -> Remote:  # noqa: F811
    return Remote(_target(s3), "demo")


def test_fetch_latest_downloads_the_newest_verified_snapshot(s3: S3, tmp_path: Path) -> None:  # noqa: F811
    _upload_snapshot(s3, tmp_path / "a", NOW - timedelta(days=1))
    newest = _upload_snapshot(s3, tmp_path / "b", NOW - timedelta(hours=1))
    s3.client().put_object(Bucket=s3.bucket, Key=f"etcd/demo/{snapshot_name(NOW)}", Body=b"no sidecar")
    got = fetch_for_recovery("latest", "demo", remote=_remote(s3), dest_dir=tmp_path / "dl")
    assert got.path.name == newest.rsplit("/", 1)[1] and got.sidecar is not None
    assert got.check.sha256 == got.sidecar.sha256
    by_name = fetch_for_recovery(snapshot_name(NOW - timedelta(days=1)), "demo", remote=_remote(s3), dest_dir=tmp_path)
    assert by_name.origin.startswith(f"s3://{s3.bucket}/etcd/demo/")
    local = fetch_for_recovery(str(got.path), "demo", remote=None, dest_dir=tmp_path)
    assert local.check == verify_file(got.path)


def test_a_flipped_byte_in_an_uploaded_snapshot_is_refused_and_not_left_behind(s3: S3, tmp_path: Path) -> None:  # noqa: F811
    key = _upload_snapshot(s3, tmp_path, NOW - timedelta(hours=1))
    data = bytearray(s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    data[100] ^= 0x01
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=bytes(data))  # same size: the sidecar still "verifies"
    dest = tmp_path / "dl"
    with pytest.raises(SnapshotCorrupt, match="is corrupt"):
        fetch_for_recovery("latest", "demo", remote=_remote(s3), dest_dir=dest)
    assert not any(dest.iterdir())


def test_a_snapshot_that_does_not_match_its_sidecar_is_refused(s3: S3, tmp_path: Path) -> None:  # noqa: F811
    key = _upload_snapshot(s3, tmp_path, NOW - timedelta(hours=1))
    other = snapshot_bytes(seed=b"another cluster state")  # valid trailer, other content, same size
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=other)
    with pytest.raises(SnapshotCorrupt, match="does not match its sidecar"):
        fetch_for_recovery(key, "demo", remote=_remote(s3), dest_dir=tmp_path / "dl")


def test_no_verified_snapshot_is_a_clear_error(s3: S3, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(NoSnapshot, match="no verified etcd snapshot"):
        fetch_for_recovery("latest", "demo", remote=_remote(s3), dest_dir=tmp_path)
    with pytest.raises(NoSnapshot, match="no verified etcd snapshot of demo"):
        fetch_for_recovery("latest", "demo", remote=None, dest_dir=tmp_path)


def test_prune_plan_deletes_objects_and_sidecars_but_never_the_newest_verified(
    s3: S3,  # noqa: F811
    tmp_path: Path,
) -> None:
    from k8s_ops.backups.catalog import remote_backups
    from k8s_ops.core.execute import execute
    from k8s_ops.core.testing import FakeRunner

    keys = [_upload_snapshot(s3, tmp_path / str(i), NOW - timedelta(days=i)) for i in (1, 2, 3)]
    s3.client().put_object(Bucket=s3.bucket, Key=f"etcd/demo/{snapshot_name(NOW)}", Body=b"unverified, newest")
    found = remote_backups(_store(s3), _target(s3), "demo")
    verdicts = plan_retention(found, Retention(keep_last=1, keep_daily_days=0), NOW)
    table = listing_table(found, NOW, verdicts)
    assert "keep: the newest verified snapshot (always kept)" in table and "no: no sidecar" in table
    plan = plan_prune("demo", verdicts, _remote(s3))
    assert plan.destructive and len(plan.steps) == 2
    execute(plan, FakeRunner(), yes=True, out=lambda _: None)
    assert s3.objects() == sorted([f"etcd/demo/{snapshot_name(NOW)}", keys[0], keys[0] + ".json"])


def test_local_listing_reads_sidecars(tmp_path: Path) -> None:
    path = tmp_path / snapshot_name(NOW)
    path.write_bytes(snapshot_bytes())
    (tmp_path / "etcd-20261101T000000Z.snapshot").write_bytes(b"legacy")
    check = verify_file(path)
    (tmp_path / (path.name + ".json")).write_bytes(
        Sidecar("demo", NOW, check.size, check.sha256, check.content_sha256).dumps()
    )
    found = local_backups(tmp_path)
    assert [(b.name, b.verified) for b in found] == [(path.name, True), ("etcd-20261101T000000Z.snapshot", False)]


# --------------------------------------------------------------------------- talosctl etcd status output


# The header and first cells of the example in Talos' "etcd Maintenance" guide (talos.dev/v1.9/advanced/
# etcd-maintenance: `172.20.0.3   ecebb05b59a776f1   21 MB     6.0 MB …`), then v1.12.11's header with PROTOCOL and
# STORAGE (cmd/talosctl/cmd/talos/etcd.go etcdStatusCmd) and a row carrying an alarm in ERRORS.
DOCS_STATUS = """\
NODE         MEMBER             DB SIZE   IN USE            LEADER             RAFT INDEX   RAFT TERM   RAFT APPLIED INDEX   LEARNER   ERRORS
172.20.0.3   ecebb05b59a776f1   21 MB     6.0 MB (28.57%)   ecebb05b59a776f1   53391        4           53391                false
"""  # noqa: E501
V112_STATUS = """\
NODE        MEMBER             DB SIZE   IN USE            LEADER             RAFT INDEX   RAFT TERM   RAFT APPLIED INDEX   LEARNER   PROTOCOL   STORAGE   ERRORS
10.5.0.12   e4a9ee2ab143f28e   3.0 GB    40 MB (1.33%)     d9387f80cf5a455b   73           2           73                   false     3.6.11     3.6.0     memberID:16476962578841727630 alarm:NOSPACE
"""  # noqa: E501


def test_status_parser_reads_the_talos_docs_example() -> None:
    from k8s_ops.tools.talosctl import parse_etcd_status, parse_human_bytes

    (row,) = parse_etcd_status(DOCS_STATUS).values()
    assert (row.member, row.leader, row.is_leader) == ("ecebb05b59a776f1", "ecebb05b59a776f1", True)
    assert (row.db_size, row.in_use) == (21_000_000, 6_000_000) and row.in_use_ratio == pytest.approx(0.2857)
    assert (row.raft_index, row.raft_term, row.raft_applied_index, row.errors) == (53391, 4, 53391, "")
    (row,) = parse_etcd_status(V112_STATUS).values()
    assert row.node == "10.5.0.12" and not row.is_leader and row.db_size == 3_000_000_000
    assert (row.protocol, row.storage) == ("3.6.11", "3.6.0") and row.errors.endswith("alarm:NOSPACE")
    assert [parse_human_bytes(t) for t in ("0 B", "9 B", "782 kB", "5.3 MB", "2.1 GB", "5.3MB")] == [
        0,
        9,
        782_000,
        5_300_000,
        2_100_000_000,
        None,
    ]


def test_the_simulator_formats_sizes_like_go_humanize() -> None:
    from tests.sim.simlib.etcd import humanize_bytes

    # go-humanize v1.0.1 Bytes: `%d B` below 10, one decimal below 10 units, else none; SI base 1000.
    cases = {0: "0 B", 9: "9 B", 10: "10 B", 999: "999 B", 1000: "1.0 kB", 5_300_000: "5.3 MB", 82_854_982: "83 MB"}
    assert {n: humanize_bytes(n) for n in cases} == cases
