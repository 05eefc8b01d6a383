"""fleet.status against two simulated clusters (one of them not answering) and a real git remote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.fleet import tasks as fleet_tasks
from tests.fleet_world import Fleet, build_fleet, ready
from tests.sim.simlib.api import Sim


@pytest.fixture
def fleet(sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    f = build_fleet(sim, tmp_path, monkeypatch)
    c = f.commits
    hr = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "plex", "namespace": "flux-system"},
        "spec": {"interval": "1h", "chartRef": {"kind": "OCIRepository", "name": "plex"}},
    }
    hr_status = {"observedGeneration": 1, "conditions": [ready("False", "UpgradeFailed", "context deadline exceeded")]}
    paused = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "volsync", "namespace": "flux-system"},
        "spec": {
            "interval": "10m",
            "path": "./x",
            "prune": True,
            "suspend": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        },
    }
    rev = f"main@sha1:{c['c3']}"
    f.flux("infra", git_revision=rev, applied=rev, extra=[(hr, hr_status), (paused, {"observedGeneration": 1})])
    old = f"release@sha1:{c['c1']}"
    f.flux("apps", git_revision=old, applied=old)
    return f


def run_status(capsys: pytest.CaptureFixture[str], **kw: object) -> tuple[str, str, int]:
    code = 0
    try:
        fleet_tasks.status(Context(), **kw)
    except Exit as exc:
        code = exc.code
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return out.out, out.err, code


def test_status_json_covers_every_cluster(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    c = fleet.commits
    out, _, code = run_status(capsys, json=True, repo=str(fleet.git.clone))
    assert code == 0
    data = json.loads(out)
    rows = {r["cluster"]: r for r in data["clusters"]}
    assert sorted(rows) == ["apps", "infra"]
    infra, apps = rows["infra"], rows["apps"]
    assert infra["reachable"] and infra["branch"] == "main" and infra["liveBranch"] == "main"
    assert infra["fetchedRevision"] == infra["appliedRevision"] == infra["remoteHead"] == c["c3"]
    assert infra["sync"] == "current"
    assert infra["nodes"] and all(n["talos"] and n["talos"].startswith("v1.12") for n in infra["nodes"])
    assert all(n["kubernetes"] == "v1.35.0" for n in infra["nodes"])
    assert infra["notReady"] == ["HelmRelease flux-system/plex (UpgradeFailed: context deadline exceeded)"]
    assert infra["suspended"] == ["Kustomization flux-system/volsync"]
    assert apps["remoteHead"] == c["c1"] and apps["sync"] == "current" and apps["notReady"] == []
    (lag,) = data["lags"]
    assert (lag["behind"], lag["ahead"], lag["commits"]) == ("release", "main", 2)
    assert 86400 * 2 - 120 <= lag["oldestAgeSeconds"] <= 86400 * 2 + 120  # c2 was committed two days ago


def test_a_cluster_that_does_not_answer_is_a_row(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.sim.fault("k8s-api-unreachable", cluster="apps")
    out, err, code = run_status(capsys, repo=str(fleet.git.clone))
    assert code == 1 and "not answering: apps" in err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["CLUSTER", "NODE", "TALOS", "K8S"]
    apps = next(line for line in lines if line.startswith("apps"))
    assert "unreachable: does not answer" in apps
    assert any(line.startswith("infra") and "current" in line for line in lines)
    assert "release lags main by 2 commit(s), oldest 2d0h old" in out
    data = json.loads(run_status(capsys, json=True, repo=str(fleet.git.clone))[0])
    apps_row = next(r for r in data["clusters"] if r["cluster"] == "apps")
    assert apps_row["reachable"] is False and apps_row["error"].startswith("does not answer")


def test_behind_the_remote_and_an_unreachable_remote(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    g = fleet.git
    new = g.commit("feat(x): pushed, not fetched by Flux yet")
    g.run("push", "-q", "origin", "main")
    data = json.loads(run_status(capsys, json=True, repo=str(g.clone))[0])
    infra = next(r for r in data["clusters"] if r["cluster"] == "infra")
    assert infra["remoteHead"] == new and infra["sync"] == f"behind the remote ({new[:12]})"
    assert data["lags"][0]["commits"] == 3
    g.remote.rename(g.remote.with_name("gone.git"))
    data = json.loads(run_status(capsys, json=True, repo=str(g.clone))[0])
    infra = next(r for r in data["clusters"] if r["cluster"] == "infra")
    assert infra["remoteHead"] is None and "does not appear to be a git repository" in infra["remoteError"]
    assert infra["sync"].startswith("unknown (") and data["lags"] == []
