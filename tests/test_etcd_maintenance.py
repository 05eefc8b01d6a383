"""etcd snapshots, off-box upload, status, defragmentation and alarms: the invoke tasks end to end against the
simulator (tests/sim) and a real S3-compatible server on loopback (tests/s3_server.py)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8s_ops.backups.snapshot import verify_file
from k8s_ops.core import paths
from tests.s3_server import S3, s3, s3_server  # noqa: F401
from tests.sim.simlib import etcd as etcdmod
from tests.sim.simlib.api import Sim
from tests.test_lifecycle_sim import CPS, failing, lab, talosctl_calls, task  # noqa: F401

MB = 1_000_000


@pytest.fixture
def offsite(lab: Sim, s3: S3) -> Iterator[tuple[Sim, S3]]:  # noqa: F811
    """The running demo cluster with `backups.etcd` pointing at the loopback S3 server."""
    inventory = Path(os.environ["K8S_OPS_CLUSTERS_DIR"]) / "demo" / "cluster.yaml"
    inventory.write_text(inventory.read_text() + s3.backups_yaml(keep_last=2, keep_daily_days=0))
    yield lab, s3


def set_db(sim: Sim, addr: str, *, db_size: int, in_use: int) -> None:
    with sim.store.tx(tick=False) as w:
        etcdmod.set_db(w, "demo", addr, db_size=db_size, in_use=in_use)


def member_id(sim: Sim, addr: str) -> str:
    return str(sim.cluster("demo")["etcd"]["members"][addr]["id"])


# --------------------------------------------------------------------------- snapshot and upload


def test_etcd_snapshot_upload_verifies_records_and_reads_back(
    offsite: tuple[Sim, S3], capsys: pytest.CaptureFixture[str]
) -> None:
    sim, s3 = offsite  # noqa: F811
    task("etcd-snapshot", upload=True)
    out = capsys.readouterr().out
    path = Path(out.split("etcd snapshot saved: ", 1)[1].split()[0])
    assert path.parent == paths.backups_dir("demo") and path.suffix == ".db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    check = verify_file(path)
    sidecar = json.loads(path.with_name(path.name + ".json").read_text())
    assert sidecar["sha256"] == check.sha256 and sidecar["size"] == check.size
    assert sidecar["members"] == 3 and sidecar["talosVersion"] == "v1.12.0" and sidecar["sourceNode"] == "demo-cp-1"
    assert sidecar["kubernetesVersion"] and isinstance(sidecar["revision"], int)
    key = f"etcd/demo/{path.name}"
    assert s3.objects() == [key, key + ".json"]
    head = s3.client().head_object(Bucket=s3.bucket, Key=key)
    assert head["ContentLength"] == check.size and head["Metadata"]["sha256"] == check.sha256
    assert json.loads(s3.client().get_object(Bucket=s3.bucket, Key=key + ".json")["Body"].read()) == sidecar
    assert f"uploaded: s3://{s3.bucket}/{key}" in out
    # The snapshot came from one node, one call (talosctl refuses several nodes for a snapshot).
    (snap,) = [a for a in talosctl_calls(sim, "etcd") if a[1] == "snapshot"]
    assert snap[snap.index("-n") + 1] == CPS[0]


def test_a_corrupt_snapshot_is_refused_before_it_is_recorded_or_uploaded(
    offsite: tuple[Sim, S3], capsys: pytest.CaptureFixture[str]
) -> None:
    sim, s3 = offsite  # noqa: F811
    sim.fault("etcd-snapshot-corrupt", node=CPS[0])
    err = failing("etcd-snapshot", capsys, upload=True)
    assert "is corrupt" in err and "ends with sha256" in err
    assert s3.objects() == []
    assert not list(paths.backups_dir("demo").glob("*.json"))


def test_upload_without_a_target_is_refused(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    err = failing("etcd-snapshot", capsys, upload=True)
    assert "--upload needs backups.etcd" in err


def test_dry_run_shows_every_step_and_needs_no_credentials(
    offsite: tuple[Sim, S3], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, s3 = offsite  # noqa: F811
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    task("etcd-snapshot", upload=True, dry_run=True, json=True)
    plan = json.loads(capsys.readouterr().out)
    kinds = [e["effect"] for st in plan["steps"] for e in st["finish"] if "effect" in e]
    assert kinds[:1] == ["etcd-snapshot"] and "write-sidecar" in kinds and "s3-upload" in kinds
    assert any("SHA-256" in a for st in plan["steps"] for a in st["after"])
    assert s3.objects() == []


def test_etcd_backups_lists_and_prunes_by_retention_keeping_the_newest_verified(
    offsite: tuple[Sim, S3], capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime, timedelta

    from k8s_ops.backups.catalog import Sidecar, snapshot_name

    _, s3 = offsite  # noqa: F811
    task("etcd-snapshot", upload=True)
    capsys.readouterr()
    now = datetime.now(UTC)
    client = s3.client()
    for days in (3, 5):  # two older verified snapshots (same bytes as the real one, other names)
        newest = sorted(k for k in s3.objects() if k.endswith(".db"))[-1]
        body = client.get_object(Bucket=s3.bucket, Key=newest)["Body"].read()
        taken = now - timedelta(days=days)
        sc = Sidecar.loads(client.get_object(Bucket=s3.bucket, Key=newest + ".json")["Body"].read(), where="x")
        key = f"etcd/demo/{snapshot_name(taken)}"
        client.put_object(Bucket=s3.bucket, Key=key, Body=body)
        client.put_object(Bucket=s3.bucket, Key=key + ".json", Body=Sidecar(**{**sc.__dict__, "taken": taken}).dumps())
    task("etcd-backups", json=True)
    listed = json.loads(capsys.readouterr().out)
    assert [b["location"] for b in listed] == ["local", "remote", "remote", "remote"]
    assert all(b["verified"] for b in listed)
    task("etcd-backups")
    table = capsys.readouterr().out
    assert "WHERE" in table and "VERIFIED" in table and table.count("remote") >= 3
    task("etcd-backups", prune=True, dry_run=True)
    assert "prune remote snapshot" in capsys.readouterr().out and len(s3.objects()) == 6
    task("etcd-backups", prune=True, yes=True)  # keepLast 2: the 5-day-old one goes, with its sidecar
    assert len(s3.objects()) == 4 and not any(snapshot_name(now - timedelta(days=5)) in k for k in s3.objects())


def test_upgrade_cluster_uploads_its_pre_upgrade_snapshot(
    offsite: tuple[Sim, S3], capsys: pytest.CaptureFixture[str]
) -> None:
    sim, s3 = offsite  # noqa: F811
    task("upgrade-cluster", dry_run=True)
    assert "s3-upload" in capsys.readouterr().out
    task("upgrade-cluster")
    out = capsys.readouterr().out
    path = Path(out.split("etcd snapshot saved: ", 1)[1].split()[0])
    assert s3.objects() == [f"etcd/demo/{path.name}", f"etcd/demo/{path.name}.json"]
    assert all(n["talos_version"] == "v1.12.11" for n in sim.state()["nodes"].values())


# --------------------------------------------------------------------------- status


def test_etcd_status_reports_leader_sizes_fragmentation_and_alarms(
    lab: Sim,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_db(lab, CPS[1], db_size=100 * MB, in_use=30 * MB)
    task("etcd-status", json=True)
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    by_node = {m["address"]: m for m in report["members"]}
    assert report["healthy"] and report["alarms"] == []
    assert by_node[CPS[0]]["leader"] is True and not by_node[CPS[1]]["leader"]
    assert by_node[CPS[1]]["dbSize"] == 100 * MB and by_node[CPS[1]]["inUse"] == 30 * MB
    assert by_node[CPS[1]]["fragmentation"] == pytest.approx(0.70)
    assert isinstance(by_node[CPS[0]]["raftIndex"], int)
    task("etcd-status")
    table = capsys.readouterr().out
    for col in ("NODE", "LEADER", "DB SIZE", "IN USE", "FRAGMENTED", "RAFT INDEX", "ALARMS", "ERRORS"):
        assert col in table
    assert "100.0 MB" in table and "70.0%" in table and "alarms: none" in table


def test_etcd_status_fails_when_a_member_does_not_answer(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    lab.fault("etcd-unhealthy", node=CPS[2])
    err = failing("etcd-status", capsys)
    assert "demo-cp-3: did not answer" in err


# --------------------------------------------------------------------------- defrag


def test_defrag_compacts_fragmented_members_followers_first_leader_last(
    lab: Sim,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_db(lab, CPS[0], db_size=200 * MB, in_use=40 * MB)  # the leader
    set_db(lab, CPS[1], db_size=100 * MB, in_use=80 * MB)  # 80 % in use: left alone
    set_db(lab, CPS[2], db_size=100 * MB, in_use=20 * MB)
    task("etcd-defrag", dry_run=True)
    plan = capsys.readouterr().out
    assert "[-] defragment etcd on demo-cp-2 (follower): skipped" in plan and "destructive" in plan
    assert plan.index("demo-cp-3") < plan.index("defragment etcd on demo-cp-1 (leader")
    task("etcd-defrag", yes=True)
    defrags = [a for a in talosctl_calls(lab, "etcd") if a[1] == "defrag"]
    assert [a[a.index("-n") + 1] for a in defrags] == [CPS[2], CPS[0]]  # one node per call, the leader last
    members = lab.cluster("demo")["etcd"]["members"]
    assert members[CPS[0]]["db_size"] < 41 * MB and members[CPS[2]]["db_size"] < 21 * MB
    assert members[CPS[1]]["db_size"] == 100 * MB
    # Health gates between members: etcd status read before and after each defragmentation.
    calls = [c["argv"][:2] for c in lab.calls("talosctl")]
    first = calls.index(["etcd", "defrag"])
    assert ["etcd", "status"] in calls[first + 1 : first + 4]
    task("etcd-defrag", yes=True)  # every member compact now: nothing to do
    assert "0 done, 3 unchanged" in capsys.readouterr().out
    assert len([a for a in talosctl_calls(lab, "etcd") if a[1] == "defrag"]) == 2


def test_defrag_asks_for_the_cluster_name_and_stops_without_it(
    lab: Sim,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_db(lab, CPS[2], db_size=100 * MB, in_use=20 * MB)
    err = failing("etcd-defrag", capsys)
    assert "demo" in err
    assert not [a for a in talosctl_calls(lab, "etcd") if a[1] == "defrag"]


def test_defrag_threshold_is_checked(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert "--threshold 1.5" in failing("etcd-defrag", capsys, threshold=1.5, yes=True)


# --------------------------------------------------------------------------- alarms


def test_alarm_disarm_refuses_while_nospace_persists_then_disarms_after_a_defrag(
    lab: Sim,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_db(lab, CPS[1], db_size=2_200_000_000, in_use=50 * MB)  # over etcd's 2 GiB quota: NOSPACE
    err = failing("etcd-alarm-disarm", capsys)
    assert "NOSPACE persists" in err and "demo-cp-2" in err and "talos.etcd-defrag" in err
    assert not [a for a in talosctl_calls(lab, "etcd") if a[1:3] == ["alarm", "disarm"]]
    task("etcd-defrag", yes=True)
    task("etcd-alarm-disarm")
    assert [a for a in talosctl_calls(lab, "etcd") if a[1:3] == ["alarm", "disarm"]]
    assert lab.cluster("demo")["etcd"]["alarms"] == []
    task("etcd-alarm-disarm")
    assert "unchanged — etcd reports no alarm" in capsys.readouterr().err


def test_writes_are_refused_while_nospace_is_raised_and_work_again_after_defrag_and_disarm(
    lab: Sim,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """etcd's capped applier refuses puts while NOSPACE is raised; reads and plain deletes still pass."""
    from tests.sim.helpers import ok, run

    kubectl = ("kubectl", "--kubeconfig", str(paths.kubeconfig_path("demo")))
    create = (*kubectl, "create", "configmap", "probe", "-n", "default", "--from-literal=a=b")
    ok(lab, *kubectl, "create", "configmap", "old", "-n", "default", "--from-literal=a=b")
    set_db(lab, CPS[1], db_size=2_200_000_000, in_use=50 * MB)  # over etcd's 2 GiB quota: NOSPACE
    refused = run(lab, *create)
    assert (refused.returncode, refused.stderr) == (1, "Error from server: etcdserver: mvcc: database space exceeded\n")
    assert "NotFound" in run(lab, *kubectl, "get", "configmap", "probe", "-n", "default").stderr
    assert "demo-cp-1" in ok(lab, *kubectl, "get", "nodes")  # reads pass
    ok(lab, *kubectl, "delete", "configmap", "old", "-n", "default")  # a Txn that only deletes costs nothing
    err = failing("etcd-alarm-disarm", capsys)
    assert "NOSPACE persists" in err
    task("etcd-defrag", yes=True)  # the cluster-side Lease is refused too: the local lock alone guards the task
    assert "etcd refuses writes (NOSPACE alarm) — local lock only" in capsys.readouterr().err
    assert run(lab, *create).returncode == 1  # the alarm stays raised until it is disarmed
    task("etcd-alarm-disarm")
    assert ok(lab, *create) == "configmap/probe created\n"


def test_alarm_disarm_never_disarms_corrupt(lab: Sim, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    member = member_id(lab, CPS[2])
    with lab.store.tx(tick=False) as w:
        etcdmod.raise_alarm(w.clusters["demo"], member, "CORRUPT")
    err = failing("etcd-alarm-disarm", capsys)
    assert "CORRUPT alarm" in err and "replace the member" in err


def test_every_etcd_task_dry_run_json_matches_the_plan_schema(
    offsite: tuple[Sim, S3], capsys: pytest.CaptureFixture[str]
) -> None:
    import jsonschema  # type: ignore[import-untyped]

    schema = json.loads((Path(__file__).parent / "fixtures" / "plan.schema.json").read_text())
    sim, _ = offsite
    set_db(sim, CPS[2], db_size=100 * MB, in_use=20 * MB)
    with sim.store.tx(tick=False) as w:
        etcdmod.raise_alarm(w.clusters["demo"], "0000000000000001", "NOSPACE")
    for name, kwargs in (
        ("etcd-snapshot", {"upload": True}),
        ("etcd-status", {}),
        ("etcd-defrag", {}),
        ("etcd-alarm-disarm", {}),
        ("etcd-backups", {"prune": True}),
    ):
        capsys.readouterr()
        task(name, dry_run=True, json=True, **kwargs)
        data = json.loads(capsys.readouterr().out)
        jsonschema.validate(data, schema)
        assert data["cluster"] == "demo" and data["steps"], name


def test_recovering_from_a_snapshot_whose_digest_does_not_match_is_refused_unless_skipped(
    sim_demo: Sim, tmp_path: Path
) -> None:
    from tests.sim.helpers import bootstrap, install_all, ok, run

    tc, _ = bootstrap(sim_demo, tmp_path)
    snap = tmp_path / "db.snapshot"
    ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CPS[0], "etcd", "snapshot", str(snap))
    data = bytearray(snap.read_bytes())
    data[-1] ^= 0x01  # the digest itself: the database still opens, etcd's restore refuses the mismatch
    bad = tmp_path / "bad.snapshot"
    bad.write_bytes(bytes(data))
    sim_demo.wipe()
    _, tc = install_all(sim_demo, tmp_path)
    r = run(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CPS[0], "bootstrap", "--recover-from", str(bad))
    assert r.returncode == 1 and "expected sha256" in r.stderr
    skip = ("bootstrap", "--recover-from", str(bad), "--recover-skip-hash-check")
    assert "recovering from snapshot" in ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CPS[0], *skip)


def test_a_corrupt_pre_upgrade_snapshot_stops_the_upgrade_before_any_node(
    lab: Sim,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    # without backups.etcd the pre-upgrade snapshot stays local: it is verified all the same
    lab.fault("etcd-snapshot-corrupt", node=CPS[0])
    err = failing("upgrade-cluster", capsys)
    assert "corrupt" in err
    assert talosctl_calls(lab, "upgrade") == []
    assert all(n["talos_version"] == "v1.12.0" for n in lab.state()["nodes"].values())
