"""gitops.promote on a real local git repository (a bare remote, a clone, branches main and release) with the
infra cluster's Flux statuses set in the simulator as Flux writes them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.fleet import tasks as fleet_tasks
from tests.fleet_world import Fleet, build_fleet, ready, rfc3339
from tests.sim.simlib.api import Sim


def history(revision: str, *, first_hours_ago: float, status: str = "ReconciliationSucceeded") -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "digest": "sha256:" + "1" * 64,
        "firstReconciled": rfc3339(now - timedelta(hours=first_hours_ago)),
        "lastReconciled": rfc3339(now - timedelta(minutes=5)),
        "lastReconciledDuration": "2s",
        "lastReconciledStatus": status,
        "totalReconciliations": 12,
        "metadata": {"revision": revision},
    }


@pytest.fixture
def fleet(sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    return build_fleet(sim, tmp_path, monkeypatch)


def applied_on_infra(fleet: Fleet, commit: str, *, soaked_hours: float | None) -> str:
    rev = f"main@sha1:{commit}"
    hist = None if soaked_hours is None else [history(rev, first_hours_ago=soaked_hours)]
    fleet.flux("infra", git_revision=rev, applied=rev, history=hist)
    return rev


def promote(fleet: Fleet, capsys: pytest.CaptureFixture[str], **kw: object) -> tuple[str, str]:
    fleet_tasks.promote(Context(), from_="infra", to="apps", repo=str(fleet.git.clone), **kw)
    out = capsys.readouterr()
    return out.out, out.err


def refused(fleet: Fleet, capsys: pytest.CaptureFixture[str], **kw: object) -> str:
    with pytest.raises(Exit) as info:
        fleet_tasks.promote(Context(), from_="infra", to="apps", repo=str(fleet.git.clone), **kw)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_soak_not_reached_refuses_naming_the_remaining_time(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    applied_on_infra(fleet, fleet.commits["c3"], soaked_hours=2)
    err = refused(fleet, capsys, dry_run=True)
    assert "soak not reached" in err and "of 24h" in err
    assert re.search(r"2[12]h[0-5]\dm to go", err), err
    assert "status.history" in err
    assert fleet.git.head("release") == fleet.commits["c1"]


def test_soak_reached_dry_run_shows_the_commits_and_changes_nothing(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    c = fleet.commits
    applied_on_infra(fleet, c["c3"], soaked_hours=30)
    out, _ = promote(fleet, capsys, dry_run=True)
    assert f"2 commit(s) of main promoted to release ({c['c1'][:12]}..)" in out
    assert f"{c['c3'][:12]} fix(apps): third" in out and f"{c['c2'][:12]} feat(apps): second" in out
    assert f"update-ref -m 'k8s-ops gitops.promote: fast-forward to {c['c3'][:12]}' refs/heads/release" in out
    assert "not pushed: re-run with --push" in out
    assert fleet.git.head("release") == c["c1"]
    out, _ = promote(fleet, capsys, dry_run=True, json=True)
    plan = json.loads(out)
    assert plan["cluster"] == "apps" and [s["mutates"] for s in plan["steps"]] == [True]
    schema = json.loads((Path(__file__).parent / "fixtures" / "plan.schema.json").read_text())
    jsonschema.validate(plan, schema)


def test_soak_reached_fast_forwards_the_local_branch_only(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    c = fleet.commits
    applied_on_infra(fleet, c["c2"], soaked_hours=25)  # infra applied c2; c3 is newer and not promoted
    promote(fleet, capsys)
    assert fleet.git.head("release") == c["c2"]
    assert fleet.git.head("release", remote=True) == c["c1"]  # no --push: the remote is unchanged
    out, _ = promote(fleet, capsys, dry_run=True)
    assert "[-] fast-forward local branch release to" in out and "already at it" in out


def test_checked_out_branch_is_fast_forwarded_with_merge_ff_only(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    c = fleet.commits
    fleet.git.run("checkout", "-q", "release")
    applied_on_infra(fleet, c["c3"], soaked_hours=48)
    out, _ = promote(fleet, capsys, dry_run=True)
    assert "merge --ff-only " + c["c3"] in out
    promote(fleet, capsys)
    assert fleet.git.head("release") == c["c3"]
    assert fleet.git.run("status", "--porcelain") == ""  # the work tree moved with the branch


def test_without_history_the_ready_transition_is_the_soak_start(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    c = fleet.commits
    rev = f"main@sha1:{c['c3']}"
    # Flux < 2.7 has no status.history; kustomize-controller moves Ready's lastTransitionTime at every
    # reconciliation (Unknown, then True), so a recent transition refuses even when the revision is older
    fleet.flux("infra", git_revision=rev, applied=rev, ready_=ready(message=f"Applied revision: {rev}", ago=600))
    err = refused(fleet, capsys, dry_run=True)
    assert "lastTransitionTime" in err and re.search(r"23h[45]\dm to go", err), err
    fleet.flux("infra", git_revision=rev, applied=rev, ready_=ready(message=f"Applied revision: {rev}", ago=90000))
    out, _ = promote(fleet, capsys, dry_run=True)
    assert "measured from the Ready condition's lastTransitionTime" in out


def test_soak_comes_from_the_target_inventory(
    sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = build_fleet(sim, tmp_path, monkeypatch, soak="90m")
    applied_on_infra(fleet, fleet.commits["c3"], soaked_hours=2)
    out, _ = promote(fleet, capsys, dry_run=True)
    assert "soak 90m" in out


def test_not_ready_infra_refuses(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    rev = f"main@sha1:{fleet.commits['c3']}"
    failing = ready("False", "HealthCheckFailed", "timeout waiting for: [Deployment/media/plex status: 'InProgress']")
    fleet.flux("infra", git_revision=rev, applied=rev, ready_=failing, history=[history(rev, first_hours_ago=40)])
    err = refused(fleet, capsys, dry_run=True)
    assert "cluster infra: Kustomization flux-system is not Ready (HealthCheckFailed: timeout" in err


def test_diverged_release_refuses(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    g = fleet.git
    g.run("checkout", "-q", "release")
    hotfix = g.commit("fix(apps): hotfix straight on release")
    g.run("push", "-q", "origin", "release")
    g.run("checkout", "-q", "main")
    applied_on_infra(fleet, fleet.commits["c3"], soaked_hours=30)
    err = refused(fleet, capsys, dry_run=True)
    assert "have diverged" in err and "a promotion only fast-forwards" in err
    assert g.head("release", remote=True) == hotfix


def test_applied_commit_missing_from_main_refuses(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    g = fleet.git
    g.run("checkout", "-q", "-b", "feature")
    stray = g.commit("feat(x): never merged")
    g.run("checkout", "-q", "main")
    applied_on_infra(fleet, stray, soaked_hours=30)
    err = refused(fleet, capsys, dry_run=True)
    assert f"{stray[:12]} is not on origin/main" in err


def test_push_only_after_typed_confirmation(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = fleet.commits
    applied_on_infra(fleet, c["c3"], soaked_hours=30)
    out, _ = promote(fleet, capsys, dry_run=True, push=True)
    assert f"push --porcelain origin {c['c3']}:refs/heads/release" in out and "(destructive)" in out
    assert "--force" not in out
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    err = refused(fleet, capsys, push=True)  # no terminal, no --yes: nothing runs at all
    assert "refusing to promote" in err and "--yes" in err
    assert fleet.git.head("release") == c["c1"] and fleet.git.head("release", remote=True) == c["c1"]
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "infra")
    err = refused(fleet, capsys, push=True)
    assert "not confirmed (expected 'apps')" in err
    assert fleet.git.head("release", remote=True) == c["c1"]
    monkeypatch.setattr("builtins.input", lambda prompt: "apps")
    promote(fleet, capsys, push=True)
    assert fleet.git.head("release") == c["c3"] and fleet.git.head("release", remote=True) == c["c3"]
    out, _ = promote(fleet, capsys, dry_run=True, push=True)  # promoted: nothing left to do
    assert "already contains" in out and "(destructive)" not in out


def test_local_branch_with_unpushed_commits_is_never_moved_back(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    g, c = fleet.git, fleet.commits
    g.run("checkout", "-q", "release")
    local = g.commit("chore(release): local only, not pushed")
    g.run("checkout", "-q", "main")
    applied_on_infra(fleet, c["c3"], soaked_hours=30)
    err = refused(fleet, capsys, dry_run=True)
    assert "local branch release" in err and "has commits not in" in err
    assert g.head("release") == local


def test_a_commit_the_clone_has_not_fetched_refuses_with_the_fetch_hint(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    g = fleet.git
    other = type(g)(g.root, g.remote, g.root / "other")
    g.run("clone", "-q", str(g.remote), str(other.clone), cwd=g.root)
    newer = other.commit("feat(apps): pushed from another machine")
    other.run("push", "-q", "origin", "main")
    applied_on_infra(fleet, newer, soaked_hours=30)
    err = refused(fleet, capsys, dry_run=True)
    assert f"lacks the applied commit ({newer[:12]})" in err and f"git -C {g.clone} fetch origin" in err
    g.run("fetch", "-q", "origin")
    out, _ = promote(fleet, capsys, dry_run=True)
    assert "3 commit(s) of main promoted to release" in out
