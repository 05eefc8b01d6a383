"""`bootstrap.dr-check` (issue 14 §4): red when something a rebuild needs is missing or differs, yellow for a stale
snapshot, exit non-zero only for red; it only reads (1Password fake, loopback S3, the simulator untouched)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.backups.catalog import Sidecar, object_key, snapshot_name
from k8s_ops.backups.s3 import S3Store, credentials_from_env
from k8s_ops.bootstrap import tasks as bootstrap_tasks
from k8s_ops.core import paths
from k8s_ops.talos.inventory import load_cluster
from k8s_ops.tools.sops import generate_age_key
from tests.bootstrap_world import World, bootstrap_world
from tests.s3_server import S3, s3, s3_server  # noqa: F401


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with bootstrap_world(tmp_path) as w:
        yield w


def _ctx(world: World) -> Context:
    return Context(Config(overrides={"k8s_ops": {"runner": lambda: world.runner}}))


def _check(world: World, capsys: pytest.CaptureFixture[str], **kw: Any) -> tuple[dict[str, str], bool, str]:
    failed = False
    try:
        bootstrap_tasks.dr_check(_ctx(world), cluster="demo", json=True, **kw)
    except Exit as exc:
        failed = exc.code != 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["recoverable"] is not failed
    return {f["check"]: f["status"] for f in doc["findings"]}, failed, captured.err


def _upload(s3: S3, world: World, taken: datetime) -> str:  # noqa: F811
    cluster = load_cluster("demo")
    assert cluster.backups is not None and cluster.backups.etcd is not None
    db = b"\x01" * 1024
    data = db + hashlib.sha256(db).digest()
    local = world.clusters.parent / "snap.db"
    local.write_bytes(data)
    side = Sidecar("demo", taken, len(data), hashlib.sha256(data).hexdigest(), hashlib.sha256(db).hexdigest())
    store = S3Store.for_target(cluster.backups.etcd, credentials_from_env())
    key = object_key(cluster.backups.etcd, "demo", snapshot_name(taken))
    store.upload_file(local, key, side.metadata())
    store.put_bytes(key + ".json", side.dumps())
    return key


def test_nothing_stored_is_red_names_every_missing_item_and_changes_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    mark = len(world.calls())
    items_before = world.onepassword.snapshot()
    status, failed, err = _check(world, capsys)
    assert failed
    for check in ("age-key", "talos-secrets", "kubeconfig", "talosconfig", "etcd-snapshot"):
        assert status[check] == "fail", (check, status)
    assert status["deploy-key"] == "ok" and status["inventory"] == status["charts"] == "ok"
    assert status["connect"] == status["bootstrap-secrets"] == "skip"
    assert "cannot be rebuilt" in err and "etcd-snapshot" in err
    assert world.onepassword.snapshot() == items_before and world.calls(mark) == []  # read-only


def test_everything_stored_is_green_a_stale_snapshot_yellow_a_differing_key_red(
    world: World,
    s3: S3,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    from k8s_ops import onepassword as op

    cluster_yaml = world.clusters / "demo" / "cluster.yaml"
    cluster_yaml.write_text(cluster_yaml.read_text() + s3.backups_yaml())
    for path in (paths.kubeconfig_path("demo"), paths.talosconfig_path("demo")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {path.name} of demo\n")
    op.push(load_cluster("demo"), "all")
    _upload(s3, world, datetime.now(UTC) - timedelta(hours=30))

    status, failed, _ = _check(world, capsys)
    assert not failed and status["etcd-snapshot"] == "warn"
    assert all(status[k] == "ok" for k in ("age-key", "talos-secrets", "kubeconfig", "talosconfig", "deploy-key"))
    status, failed, _ = _check(world, capsys, max_age_hours=48)
    assert not failed and status["etcd-snapshot"] == "ok"

    # 1Password's age key is another key than the one this checkout decrypts with: red
    other = generate_age_key()[0].reveal()
    world.onepassword.set_field("sops-age-key-demo", "content", base64.b64encode(other).decode())
    world.onepassword.set_field("sops-age-key-demo", "sha256", hashlib.sha256(other).hexdigest())
    status, failed, err = _check(world, capsys, max_age_hours=48)
    assert failed and status["age-key"] == "fail" and "age-key" in err
    assert other.decode().strip() not in err


def test_a_bad_max_age_is_refused(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exit):
        bootstrap_tasks.dr_check(_ctx(world), cluster="demo", max_age_hours=-1)
    assert "--max-age-hours" in capsys.readouterr().err


def test_recover_from_must_exist_and_verify_before_any_node_is_touched_also_in_a_dry_run(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    mark = len(world.calls())
    for dry in (True, False):
        with pytest.raises(Exit):
            bootstrap_tasks.rebuild(_ctx(world), cluster="demo", recover_from="/nonexistent/etcd.db", dry_run=dry)
        assert "does not exist" in capsys.readouterr().err
    db = b"\x02" * 512
    snap = world.clusters.parent / "flipped.db"
    data = bytearray(db + hashlib.sha256(db).digest())
    data[7] ^= 0x80
    snap.write_bytes(bytes(data))
    with pytest.raises(Exit):
        bootstrap_tasks.rebuild(_ctx(world), cluster="demo", recover_from=str(snap), dry_run=True)
    assert "is corrupt" in capsys.readouterr().err
    with pytest.raises(Exit):
        bootstrap_tasks.rebuild(_ctx(world), cluster="demo", recover_from="latest", dry_run=True)
    assert "no verified etcd snapshot" in capsys.readouterr().err
    assert world.calls(mark) == []  # not one talosctl/kubectl call: no node was even probed
