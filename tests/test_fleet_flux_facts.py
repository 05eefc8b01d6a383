"""The Flux and Talos facts the fleet tasks rely on (tests/sim/FIDELITY.md, "The fleet"), pinned on the pure
functions that read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from k8s_ops.core.command import Result
from k8s_ops.fleet.facts import talos_version
from k8s_ops.fleet.promote import PromotionRefused, applied_revision, soak_remaining
from k8s_ops.fleet.revision import Revision, parse_revision
from k8s_ops.tools import git
from tests.sim.simlib.controllers.flux import git_revision

SHA = "0123456789abcdef0123456789abcdef01234567"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def stamp(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def kustomization(revision: str, *, ready_hours_ago: float, history: list[dict[str, Any]] | None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "observedGeneration": 3,
        "lastAppliedRevision": revision,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "ReconciliationSucceeded",
                "message": f"Applied revision: {revision}",
                "lastTransitionTime": stamp(ready_hours_ago),
            },
        ],
    }
    if history is not None:
        status["history"] = history
    return {"metadata": {"name": "flux-system", "namespace": "flux-system", "generation": 3}, "status": status}


def snapshot(revision: str, first: float, last: float, status: str = "ReconciliationSucceeded") -> dict[str, Any]:
    return {
        "digest": "sha256:" + "a" * 64,
        "firstReconciled": stamp(first),
        "lastReconciled": stamp(last),
        "lastReconciledDuration": "1s",
        "lastReconciledStatus": status,
        "metadata": {"revision": revision},
    }


def test_flux_git_revision_formats() -> None:
    assert parse_revision(f"main@sha1:{SHA}") == Revision("main", SHA)
    assert parse_revision(f"v1.2.3@sha1:{SHA}") == Revision("v1.2.3", SHA)
    assert parse_revision(f"refs/heads/release@sha1:{SHA}") == Revision("release", SHA)
    assert parse_revision(f"sha1:{SHA}") == Revision(None, SHA)  # spec.ref.commit: no named ref
    assert parse_revision(f"main/{SHA}") == Revision("main", SHA)  # before RFC-0005
    assert parse_revision("6.5.4@sha256:" + "b" * 64) == Revision("6.5.4", "b" * 64)
    assert parse_revision("6.5.4") is None and parse_revision("") is None and parse_revision(None) is None


def test_simulated_git_revision_has_flux_format() -> None:
    class World:
        @staticmethod
        def setting(key: str) -> str:
            return "2"

    rev = parse_revision(git_revision(World(), "ssh://git@example/repo.git", {"branch": "release"}))
    assert rev is not None and rev.ref == "release" and len(rev.commit) == 40


def test_soak_is_measured_from_history_not_the_ready_transition() -> None:
    rev = f"main@sha1:{SHA}"
    # kustomize-controller sets Ready Unknown then True on every reconciliation: the transition is minutes old
    ks = kustomization(rev, ready_hours_ago=0.1, history=[snapshot(rev, first=30, last=0.1)])
    applied = applied_revision("infra", "main", ks)
    assert applied.revision == Revision("main", SHA) and applied.since == NOW - timedelta(hours=30)
    assert soak_remaining(applied, 24 * 3600, NOW) == 0
    older = applied_revision("infra", "main", kustomization(rev, ready_hours_ago=0.1, history=None))
    assert "lastTransitionTime" in older.evidence and soak_remaining(older, 24 * 3600, NOW) > 23 * 3600


def test_history_failure_of_the_revision_restarts_the_soak() -> None:
    rev = f"main@sha1:{SHA}"
    other = f"main@sha1:{'f' * 40}"
    hist = [
        snapshot(rev, first=40, last=0.2),
        snapshot(rev, first=39, last=10, status="HealthCheckFailed"),  # another build of the same commit failed
        snapshot(other, first=50, last=41),
    ]
    applied = applied_revision("infra", "main", kustomization(rev, ready_hours_ago=0.2, history=hist))
    assert applied.since == NOW - timedelta(hours=10)


def test_applied_revision_of_another_branch_or_unready_refuses() -> None:
    with pytest.raises(PromotionRefused, match="not a commit of its branch main"):
        applied_revision("infra", "main", kustomization(f"feature@sha1:{SHA}", ready_hours_ago=1, history=None))
    ks = kustomization(f"main@sha1:{SHA}", ready_hours_ago=1, history=None)
    ks["status"]["conditions"][0].update(status="Unknown", reason="Progressing", message="Reconciliation in progress")
    with pytest.raises(PromotionRefused, match=r"not Ready \(Progressing: Reconciliation in progress\)"):
        applied_revision("infra", "main", ks)


def test_talos_version_from_node_os_image() -> None:
    assert talos_version("Talos (v1.12.11)") == "v1.12.11"
    assert talos_version("Ubuntu 24.04.1 LTS") is None and talos_version(None) is None


def test_git_ls_remote_and_error_lines() -> None:
    out = f"{SHA}\trefs/heads/main\n{'f' * 40}\trefs/heads/release\n{'e' * 40}\trefs/tags/v1\n"
    assert git.parse_ls_remote(out) == {"main": SHA, "release": "f" * 40}
    failed = Result(128, "", "fatal: '/x' does not appear to be a git repository\nfatal: Could not read\n\nhint")
    assert git.error_line(failed) == "fatal: '/x' does not appear to be a git repository"
    push = git.push_branch(Path("/r"), "origin", "release", SHA)
    assert "--force" not in push.argv and push.argv[-1] == f"{SHA}:refs/heads/release" and push.mutates


def test_promote_soak_in_the_inventory(tmp_path: Path) -> None:
    import shutil

    from k8s_ops.core.errors import ProblemsError
    from k8s_ops.talos.inventory import load_cluster

    repo = Path(__file__).resolve().parent.parent
    shutil.copytree(repo / "clusters" / "apps", tmp_path / "apps")
    f = tmp_path / "apps" / "cluster.yaml"
    text = f.read_text()
    assert load_cluster("apps", clusters_dir=tmp_path).gitops.promote.soak == "24h"  # the default
    f.write_text(text.replace("  branch: release\n", "  branch: release\n  promote:\n    soak: 36h30m\n"))
    assert load_cluster("apps", clusters_dir=tmp_path).gitops.promote.soak == "36h30m"
    f.write_text(text.replace("  branch: release\n", "  branch: release\n  promote:\n    soak: one day\n"))
    with pytest.raises(ProblemsError, match=r"gitops\.promote\.soak") as info:
        load_cluster("apps", clusters_dir=tmp_path)
    assert "not a duration like 24h" in str(info.value)
