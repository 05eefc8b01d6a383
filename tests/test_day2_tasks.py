"""Day-2 task wiring: --help text, clean errors before any command runs (unknown cluster, no kubeconfig)."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.day2 import tasks as day2_tasks
from k8s_ops.day2.common import require_target


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "clusters" / "infra").mkdir(parents=True)
    (tmp_path / "clusters" / "apps").mkdir(parents=True)
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(tmp_path / "clusters"))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path / "build"))
    return tmp_path


def test_unknown_cluster_names_the_known_ones(dirs: Path) -> None:
    with pytest.raises(Exception, match="unknown cluster 'nope'") as info:
        require_target("nope")
    assert "known clusters: apps, infra" in str(info.value)


def test_missing_kubeconfig_says_how_to_get_it(dirs: Path) -> None:
    with pytest.raises(Exception, match="no kubeconfig for cluster 'apps'") as info:
        require_target("apps")
    assert "invoke talos.kubeconfig --cluster apps" in str(info.value)
    kc = dirs / "build" / "apps" / "kubeconfig"
    kc.parent.mkdir(parents=True)
    kc.write_text("apiVersion: v1\n")
    target = require_target("apps")
    assert (target.kubeconfig, target.context) == (kc, "apps")


@pytest.mark.parametrize(
    ("task", "kwargs"),
    [
        (day2_tasks.sync_secrets, {}),
        (day2_tasks.hr_restart, {"name": "x", "namespace": "y"}),
        (day2_tasks.reconcile, {}),
        (day2_tasks.cleanse_pods, {}),
        (day2_tasks.snapshot, {"app": "plex"}),
        (day2_tasks.restore, {"app": "plex", "yes": True}),
        (day2_tasks.unlock, {"app": "plex"}),
        (day2_tasks.sync_all, {}),
        (day2_tasks.hr_restart, {"failed": True}),
        (day2_tasks.pause, {"flux": True}),
        (day2_tasks.resume, {}),
        (day2_tasks.node_shell, {"node": "k8s-1", "command": "true"}),
        (day2_tasks.browse_pvc, {"namespace": "media", "claim": "data", "command": "ls"}),
        (day2_tasks.apply_ks, {"path": "kubernetes/apps"}),
        (day2_tasks.snapshot, {"all_": True}),
        (day2_tasks.unlock, {"all_": True, "selector": "tier=media"}),
        (day2_tasks.list_, {"app": "plex"}),
        (day2_tasks.status, {}),
    ],
)
def test_tasks_fail_cleanly_without_a_kubeconfig(
    dirs: Path, task: object, kwargs: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Exit) as info:
        task(Context(), cluster="infra", **kwargs)  # type: ignore[operator]
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no kubeconfig for cluster 'infra'") and "Traceback" not in err


def test_bad_timeout_and_previous_are_clear_errors(dirs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exit):
        day2_tasks.snapshot(Context(), cluster="infra", app="plex", timeout="soon")
    assert "--timeout must be a number of minutes, got 'soon'" in capsys.readouterr().err
    with pytest.raises(Exit):
        day2_tasks.restore(Context(), cluster="infra", app="plex", previous="two")
    assert "--previous must be a whole number" in capsys.readouterr().err


def test_every_task_has_help_for_every_option() -> None:
    for collection in (day2_tasks.kubernetes, day2_tasks.volsync):
        for t in collection.tasks.values():
            name = t.name
            assert t.__doc__ and t.__doc__.strip()
            params = [p for p in t.argspec(t.body).parameters if p != "c"]
            assert params
            documented = {k.replace("-", "_") for k in t.help}
            assert set(params) <= documented, (name, set(params) - documented)
