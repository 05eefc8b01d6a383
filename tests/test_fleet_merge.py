"""fleet.kubeconfig-merge / fleet.talosconfig-merge: one file with every cluster's context, 0600, atomic; the
operator's own file only with --install, after a backup."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.context import Context

from k8s_ops.fleet import tasks as fleet_tasks

REPO = Path(__file__).resolve().parent.parent
KEY = {
    "apps": "QVBQUy1DTElFTlQtS0VZLW5ldmVyLXNob3duLWluLWEtZGlmZg==",
    "infra": "SU5GUkEtQ0xJRU5ULUtFWS1uZXZlci1zaG93bg==",
}


def kubeconfig(cluster: str) -> dict[str, Any]:
    """What talos.kubeconfig writes: talosctl's names (cluster <c>, user admin@<c>), the context renamed <c>."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": f"https://{cluster}.example:6443", "certificate-authority-data": "Q0E="},
            }
        ],
        "contexts": [
            {"name": cluster, "context": {"cluster": cluster, "user": f"admin@{cluster}", "namespace": "default"}}
        ],
        "users": [
            {"name": f"admin@{cluster}", "user": {"client-certificate-data": "Q1JU", "client-key-data": KEY[cluster]}}
        ],
        "current-context": cluster,
    }


def talosconfig(cluster: str) -> dict[str, Any]:
    entry = {
        "endpoints": [f"10.0.{len(cluster)}.11"],
        "nodes": [f"10.0.{len(cluster)}.11"],
        "ca": "Q0E=",
        "crt": "Q1JU",
        "key": KEY[cluster],
    }
    return {"context": cluster, "contexts": {cluster: entry}}


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clusters, build, home = tmp_path / "clusters", tmp_path / "build", tmp_path / "home"
    home.mkdir()
    for name in ("apps", "infra"):
        shutil.copytree(REPO / "clusters" / name, clusters / name)
        (build / name).mkdir(parents=True)
        (build / name / "kubeconfig").write_text(yaml.safe_dump(kubeconfig(name)))
        (build / name / "talosconfig").write_text(yaml.safe_dump(talosconfig(name)))
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(clusters))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(build))
    monkeypatch.setenv("HOME", str(home))
    return tmp_path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_kubeconfig_merge_writes_every_context_named_after_its_cluster(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet_tasks.kubeconfig_merge(Context(), dry_run=True)
    out = capsys.readouterr().out
    assert "write every cluster's kubeconfig context (apps, infra)" in out
    assert KEY["apps"] not in out and KEY["infra"] not in out and "client-key-data: ***" in out
    assert not (fleet / "build" / "kubeconfig").exists()
    fleet_tasks.kubeconfig_merge(Context())
    merged = fleet / "build" / "kubeconfig"
    assert mode(merged) == 0o600
    doc = yaml.safe_load(merged.read_text())
    assert [c["name"] for c in doc["contexts"]] == ["apps", "infra"]
    assert [u["name"] for u in doc["users"]] == ["apps", "infra"]
    assert doc["contexts"][1]["context"] == {"cluster": "infra", "user": "infra", "namespace": "default"}
    assert doc["users"][1]["user"]["client-key-data"] == KEY["infra"]
    assert doc["clusters"][0]["cluster"]["server"] == "https://apps.example:6443"
    assert not (fleet / "home" / ".kube").exists()  # never touched without --install


def test_kubeconfig_merge_elsewhere_and_skips_a_cluster_without_one(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fleet / "build" / "apps" / "kubeconfig").unlink()
    out = fleet / "out" / "fleet.yaml"
    fleet_tasks.kubeconfig_merge(Context(), out=str(out))
    capsys.readouterr()
    doc = yaml.safe_load(out.read_text())
    assert [c["name"] for c in doc["contexts"]] == ["infra"] and doc["current-context"] == "infra"
    fleet_tasks.kubeconfig_merge(Context(), out=str(out), dry_run=True)
    text = capsys.readouterr().out
    assert "note: skipped apps: no file at" in text and "invoke talos.kubeconfig --cluster apps" in text
    assert "— unchanged" in text


def test_kubeconfig_install_backs_up_then_merges_keeping_other_entries(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home_cfg = fleet / "home" / ".kube" / "config"
    home_cfg.parent.mkdir()
    mine = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kind", "cluster": {"server": "https://127.0.0.1:1"}},
            {"name": "infra", "cluster": {"server": "https://stale:6443"}},
        ],
        "contexts": [{"name": "kind", "context": {"cluster": "kind", "user": "kind"}}],
        "users": [{"name": "kind", "user": {"token": "kind-token-abcdef"}}],
        "current-context": "kind",
    }
    original = yaml.safe_dump(mine).encode()
    home_cfg.write_bytes(original)
    fleet_tasks.kubeconfig_merge(Context(), install=True)
    (backup,) = home_cfg.parent.glob("config.k8s-ops-backup-*")
    assert backup.read_bytes() == original and mode(backup) == 0o600
    doc = yaml.safe_load(home_cfg.read_text())
    assert [c["name"] for c in doc["contexts"]] == ["kind", "apps", "infra"]
    assert {c["name"]: c["cluster"]["server"] for c in doc["clusters"]}["infra"] == "https://infra.example:6443"
    assert doc["current-context"] == "kind" and mode(home_cfg) == 0o600
    fleet_tasks.kubeconfig_merge(Context(), install=True, dry_run=True)
    assert f"[-] merge the contexts into {home_cfg}: skipped — {home_cfg} already has them" in capsys.readouterr().out


def test_talosconfig_merge_and_install(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet_tasks.talosconfig_merge(Context(), dry_run=True)
    out = capsys.readouterr().out
    assert KEY["apps"] not in out and "write every cluster's talosconfig context (apps, infra)" in out
    fleet_tasks.talosconfig_merge(Context())
    merged = fleet / "build" / "talosconfig"
    doc = yaml.safe_load(merged.read_text())
    assert mode(merged) == 0o600 and sorted(doc["contexts"]) == ["apps", "infra"] and doc["context"] == "apps"
    assert doc["contexts"]["infra"]["key"] == KEY["infra"]
    assert not (fleet / "home" / ".talos").exists()
    fleet_tasks.talosconfig_merge(Context(), install=True)  # no ~/.talos/config yet: nothing to back up
    installed = fleet / "home" / ".talos" / "config"
    assert sorted(yaml.safe_load(installed.read_text())["contexts"]) == ["apps", "infra"]
    assert list(installed.parent.glob("config.k8s-ops-backup-*")) == []


def test_install_refuses_an_unreadable_own_file(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from invoke.exceptions import Exit

    home_cfg = fleet / "home" / ".kube" / "config"
    home_cfg.parent.mkdir()
    home_cfg.write_text("clusters: [unclosed\n")
    with pytest.raises(Exit):
        fleet_tasks.kubeconfig_merge(Context(), install=True)
    err = capsys.readouterr().err
    assert f"{home_cfg}: not a kubeconfig" in err and "nothing was changed" in err and "Traceback" not in err
    assert home_cfg.read_text() == "clusters: [unclosed\n" and not (fleet / "build" / "kubeconfig").exists()
