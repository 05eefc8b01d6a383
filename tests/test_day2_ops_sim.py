"""Issue 15 day-2 tasks end to end through the simulator: pause/resume, sync-all, hr-restart --failed, node-shell,
browse-pvc, and the volsync list/status/--all/--as-of tasks. The world is test_day2_sim's (one app `plex` in
`media`), plus what each test adds."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.day2 import tasks as day2_tasks
from tests.sim.simlib.api import Sim
from tests.sim.simlib.kube import Kube
from tests.sim.simlib.manifests import READY_COLS, crd
from tests.test_day2_sim import CLUSTER, World, build_world, every_call_is_explicit, fail_task, run_task


@pytest.fixture
def world(sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    built = build_world(sim, tmp_path, monkeypatch)
    with sim.store.tx() as tx:
        kube = Kube(tx.clusters[CLUSTER], tx.now)
        kube.put(
            crd("keda.sh", "ScaledObject", "scaledobjects", versions=("v1alpha1",), short=("so",), columns=READY_COLS),
            manager="test",
        )
        for name, notes in (("plex", {}), ("sonarr", {"autoscaling.keda.sh/paused-replicas": "0"})):
            kube.put(
                {
                    "apiVersion": "keda.sh/v1alpha1",
                    "kind": "ScaledObject",
                    "metadata": {"name": name, "namespace": "media", "annotations": notes},
                    "spec": {"scaleTargetRef": {"name": name}},
                },
                manager="test",
            )
        for name, extra in (("sonarr", {}), ("radarr", {"paused": True})):
            kube.put(
                {
                    "apiVersion": "volsync.backube/v1alpha1",
                    "kind": "ReplicationSource",
                    "metadata": {"name": name, "namespace": "media", "labels": {"tier": "arr"}},
                    "spec": {
                        "sourcePVC": f"{name}-config",
                        "trigger": {"manual": "first"},
                        "restic": {"repository": f"{name}-volsync-secret", "copyMethod": "Snapshot"},
                        **extra,
                    },
                },
                manager="test",
            )
    yield built


def _edit(world: World, kind: str, name: str, namespace: str, change: Any) -> None:
    with world.sim.store.tx() as tx:
        kube = Kube(tx.clusters[CLUSTER], tx.now)
        obj = kube.find(kind, namespace, name)
        assert obj is not None
        change(obj)


# ---------------------------------------------------------------------------------------------- pause / resume


def test_pause_records_only_what_it_paused_and_resume_resumes_only_that(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the root Kustomization is suspended by someone else beforehand: pause must leave it, resume must not touch it
    _edit(world, "Kustomization", "flux-system", "flux-system", lambda o: o["spec"].update(suspend=True))
    record = tmp_path / "state" / "paused" / f"{CLUSTER}.json"
    out, _ = run_task(day2_tasks.pause, capsys, dry_run=True)
    assert "suspend Kustomization flux-system/flux-system: skipped — paused already" in out
    assert "pause autoscaling of ScaledObject media/sonarr: skipped — paused already" in out
    assert f"write {record}" in out and not record.exists()
    out, _ = run_task(day2_tasks.pause, capsys)
    assert out.startswith("paused 5 object(s)")
    assert world.obj("Kustomization", "plex", "flux-system")["spec"]["suspend"] is True
    assert world.obj("HelmRelease", "plex", "media")["spec"]["suspend"] is True
    assert world.obj("ReplicationSource", "plex", "media")["spec"]["paused"] is True
    assert world.obj("ScaledObject", "plex", "media")["metadata"]["annotations"] == {
        "autoscaling.keda.sh/paused": "true"
    }
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    recorded = {(e["kind"], e["namespace"], e["name"]) for e in json.loads(record.read_text())["paused"]}
    assert recorded == {
        ("kustomization", "flux-system", "plex"),
        ("helmrelease", "media", "plex"),
        ("replicationsource", "media", "plex"),
        ("replicationsource", "media", "sonarr"),
        ("scaledobject", "media", "plex"),
    }
    # resume only flux first: the rest stays recorded
    out, _ = run_task(day2_tasks.resume, capsys, flux=True)
    assert out.strip() == "resumed 2 object(s)"
    assert not world.obj("HelmRelease", "plex", "media")["spec"].get("suspend")
    assert world.obj("ReplicationSource", "plex", "media")["spec"]["paused"] is True
    assert len(json.loads(record.read_text())["paused"]) == 3
    out, _ = run_task(day2_tasks.resume, capsys)
    assert out.strip() == "resumed 3 object(s)"
    assert world.obj("ReplicationSource", "radarr", "media")["spec"]["paused"] is True  # paused before: left
    assert "paused" not in world.obj("ReplicationSource", "plex", "media")["spec"]
    assert not world.obj("ScaledObject", "plex", "media")["metadata"].get("annotations")
    assert world.obj("ScaledObject", "sonarr", "media")["metadata"]["annotations"] == {
        "autoscaling.keda.sh/paused-replicas": "0"
    }
    assert world.obj("Kustomization", "flux-system", "flux-system")["spec"]["suspend"] is True
    assert json.loads(record.read_text())["paused"] == []
    out, _ = run_task(day2_tasks.resume, capsys, dry_run=True)
    assert "nothing recorded" in out
    every_call_is_explicit(world)


def test_pause_filters_namespaces_and_a_failure_resumes_what_it_paused(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = run_task(day2_tasks.pause, capsys, flux=True, namespace="media", dry_run=True, json=True)
    plan = json.loads(out)
    described = [s["description"] for s in plan["steps"]]
    assert described[1:] == ["suspend HelmRelease media/plex"]
    assert plan["on_failure"] is not None
    # the ScaledObject patch fails: the Flux objects and the source paused before it are resumed again
    world.sim.fault(
        "fail", tool="kubectl", match="patch scaledobjects", message="admission webhook denied the request", count=1
    )
    err = fail_task(day2_tasks.pause, capsys)
    assert "admission webhook denied the request" in err
    assert "resumed HelmRelease media/plex" in err and "unpaused ReplicationSource media/plex" in err
    assert not world.obj("HelmRelease", "plex", "media")["spec"].get("suspend")
    assert not world.obj("Kustomization", "plex", "flux-system")["spec"].get("suspend")
    assert "paused" not in world.obj("ReplicationSource", "plex", "media")["spec"]


def test_pause_refuses_unknown_namespaces_cleanly(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    err = fail_task(day2_tasks.pause, capsys, namespace="Media!")
    assert "namespace" in err and "Media!" in err


# ---------------------------------------------------------------------------------------------- sync-all, hr-restart


def test_sync_all_reconciles_in_order_and_names_the_failures(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run_task(day2_tasks.sync_all, capsys, dry_run=True)
    order = [line for line in out.splitlines() if line.startswith("[")]
    assert [o.split(" ", 3)[1:3] for o in order] == [
        ["reconcile", "1"],
        ["reconcile", "1"],
        ["reconcile", "2"],
        ["reconcile", "1"],
        ["check", "that"],
    ]
    assert "GitRepository" in order[0] and "OCIRepository" in order[1] and "HelmRelease" in order[3]
    assert "forceAt" not in out
    out, err = run_task(day2_tasks.sync_all, capsys)
    assert out.strip() == "reconciled 5 Flux object(s); all Ready"
    token = world.obj("GitRepository", "flux-system", "flux-system")["metadata"]["annotations"][
        "reconcile.fluxcd.io/requestedAt"
    ]
    for kind, name, ns in (("Kustomization", "plex", "flux-system"), ("HelmRelease", "plex", "media")):
        assert world.obj(kind, name, ns)["status"]["lastHandledReconcileAt"] == token
    # the order of the annotate calls: sources, then Kustomizations, then HelmReleases
    kinds = [a[a.index("annotate") + 1] for a in world.calls("kubectl") if "annotate" in a]
    assert [k.split(".")[0] for k in kinds] == ["gitrepositories", "ocirepositories", "kustomizations", "helmreleases"]
    # --force: HelmReleases get forceAt == requestedAt; a failing upgrade is named at the end
    world.sim.fault("helm-fails", match="media/plex", message="timed out waiting for the condition")
    err = fail_task(day2_tasks.sync_all, capsys, force=True)
    assert "1 of 5 Flux object(s) not Ready after the sync" in err
    assert "HelmRelease media/plex (UpgradeFailed" in err and "timed out waiting for the condition" in err
    notes = world.obj("HelmRelease", "plex", "media")["metadata"]["annotations"]
    assert notes["reconcile.fluxcd.io/forceAt"] == notes["reconcile.fluxcd.io/requestedAt"] != token
    every_call_is_explicit(world)


def test_sync_all_skips_suspended_objects(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(world, "Kustomization", "plex", "flux-system", lambda o: o["spec"].update(suspend=True))
    out, _ = run_task(day2_tasks.sync_all, capsys, dry_run=True)
    assert "suspended Kustomization(s) skipped: flux-system/plex" in out
    assert "reconcile 1 Kustomization(s)" in out


def test_hr_restart_failed_restarts_only_releases_not_ready(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run_task(day2_tasks.hr_restart, capsys, failed=True, dry_run=True)
    assert "every HelmRelease is Ready" in out
    world.sim.fault("helm-fails", match="media/plex", message="boom")
    kc = ("--kubeconfig", str(world.kubeconfig), "--context", CLUSTER)
    patch = '{"spec":{"values":{"replicaCount":2}}}'
    world.sim.run("kubectl", *kc, "patch", "hr", "plex", "-n", "media", "--type", "merge", "--patch", patch)
    world.sim.advance(1)
    assert world.obj("HelmRelease", "plex", "media")["status"]["conditions"][0]["status"] == "False"
    world.sim.clear_faults()
    out, _ = run_task(day2_tasks.hr_restart, capsys, failed=True, dry_run=True)
    assert "suspend HelmRelease media/plex" in out and "resume HelmRelease media/plex" in out
    out, _ = run_task(day2_tasks.hr_restart, capsys, failed=True)
    assert out.strip() == "restarted 1 HelmRelease(s); all Ready"
    hr = world.obj("HelmRelease", "plex", "media")
    assert not hr["spec"].get("suspend")
    err = fail_task(day2_tasks.hr_restart, capsys)
    assert "--name and --namespace are required" in err


# ---------------------------------------------------------------------------------------------- volsync.*


def test_snapshot_all_runs_every_selected_source_and_names_failures(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sim.advance(2)  # sonarr's first manual sync ("first") completes
    out, _ = run_task(day2_tasks.snapshot, capsys, all_=True, dry_run=True)
    assert "skipped: media/radarr (paused)" in out
    assert "trigger a manual backup of 2 ReplicationSource(s)" in out
    out, err = run_task(day2_tasks.snapshot, capsys, all_=True)
    assert out.strip() == "backed up 2 ReplicationSource(s); skipped 1: media/radarr (paused)"
    plex, sonarr = world.obj("ReplicationSource", "plex", "media"), world.obj("ReplicationSource", "sonarr", "media")
    assert plex["status"]["lastManualSync"] == sonarr["status"]["lastManualSync"] != "first"
    assert plex["spec"]["trigger"] == {"schedule": "0 * * * *"}  # the schedule is back
    assert "manual" in sonarr["spec"]["trigger"]  # a manual-only source keeps its trigger
    # a label selector; one failing mover is named, the other still completes
    world.fault("volsync-job-fails", match="media/sonarr", message="Fatal: unable to create lock in backend")
    err = fail_task(day2_tasks.snapshot, capsys, all_=True, selector="tier=arr")
    assert "backup failed for 1 of 1 ReplicationSource(s)" in err
    assert "media/sonarr: ERROR: restic exited with status 1" in err
    err = fail_task(day2_tasks.snapshot, capsys, all_=True, app="plex")
    assert "either --app or --all" in err
    every_call_is_explicit(world)


def test_status_is_one_table_with_locked_repositories(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.fault("volsync-job-fails", match="media/sonarr", message="Fatal: unable to create lock in backend")
    world.sim.advance(5)
    with pytest.raises(Exit) as info:  # the last sync of a source failed
        day2_tasks.status(Context(), cluster=CLUSTER)
    assert info.value.code == 1
    captured = capsys.readouterr()
    out = captured.out
    lines = out.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "LAST", "SYNC", "DURATION", "NEXT", "SYNC", "RESULT", "LOCKED"]
    rows = {line.split()[1]: line for line in lines[1:]}
    assert set(rows) == {"plex", "sonarr", "radarr"}
    assert rows["sonarr"].split()[-2:] == ["Failed", "LOCKED"]
    assert "(paused)" in rows["radarr"]
    world.sim.clear_faults()
    out, _ = run_task(day2_tasks.unlock, capsys, all_=True, selector="tier=arr")
    assert out.strip().startswith("unlocked 1 ReplicationSource(s)")
    out, _ = run_task(day2_tasks.status, capsys, json=True)
    data = {r["name"]: r for r in json.loads(out)}
    assert data["sonarr"]["result"] == "Successful" and data["sonarr"]["locked"] is False
    assert data["radarr"]["paused"] is True


def test_restore_as_of_sets_restore_as_of(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run_task(
        day2_tasks.restore, capsys, app="plex", as_of="2026-01-02T04:05:06+01:00", dry_run=True, json=True
    )
    plan = json.loads(out)
    assert any("restoreAsOf: '2026-01-02T03:05:06Z'" in n for n in plan["notes"])
    steps = [s["description"] for s in plan["steps"]]
    assert "restore PVC media/plex-config from restic (as of 2026-01-02T03:05:06Z snapshot)" in steps
    out, _ = run_task(day2_tasks.restore, capsys, app="plex", as_of="2026-01-02", previous="1", yes=True)
    assert "as of 2026-01-02T00:00:00Z, previous=1 snapshot" in out
    err = fail_task(day2_tasks.restore, capsys, app="plex", as_of="yesterday", yes=True)
    assert "--as-of must be a time like" in err
    err = fail_task(day2_tasks.restore, capsys, app="plex", as_of="2026-01-02T03:04:05", yes=True)
    assert "has no time zone" in err


# ---------------------------------------------------------------------------------------------- node-shell, browse-pvc


def _node(world: World) -> str:
    pod = next(p for p in world.sim.objects(CLUSTER, "Pod", "media") if p["metadata"]["name"].startswith("plex-"))
    return str(pod["spec"]["nodeName"])


def test_node_shell_runs_a_command_on_the_node_then_removes_the_pod(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    node = _node(world)
    out, _ = run_task(day2_tasks.node_shell, capsys, node=node, dry_run=True, json=True)
    plan = json.loads(out)
    session = plan["steps"][0]["prepare"][0]
    assert session["effect"] == "pod-session" and session["interactive"] is True
    argv = session["argv"]
    assert argv[argv.index("debug") :][:8] == [
        "debug",
        f"node/{node}",
        "--namespace",
        "kube-system",
        "--profile",
        "sysadmin",
        "--image",
        argv[argv.index("--image") + 1],
    ]
    assert "@sha256:" in argv[argv.index("--image") + 1] and argv[-4:] == ["--stdin", "--tty", "--", "sh"]
    assert plan["on_failure"]["commands"][0]["argv"][-6:] == [
        "--selector",
        "app.kubernetes.io/managed-by=kubectl-debug",
        "--field-selector",
        f"spec.nodeName={node}",
        "--ignore-not-found",
        "--wait=false",
    ]
    out, _ = run_task(day2_tasks.node_shell, capsys, node=node, command="cat /host/etc/os-release")
    assert f"sim: ran sh -c 'cat /host/etc/os-release' on node {node}" in out and "/host=host:/" in out
    assert out.strip().endswith(f"debug pod on {node} removed")
    assert not [p for p in world.sim.objects(CLUSTER, "Pod", "kube-system") if "node-debugger" in p["metadata"]["name"]]
    err = fail_task(day2_tasks.node_shell, capsys, node="nope", command="true")
    assert "no node named nope" in err
    every_call_is_explicit(world)


def test_node_shell_without_a_terminal_needs_a_command(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    err = fail_task(day2_tasks.node_shell, capsys, node=_node(world))
    assert "interactive and stdin is not a terminal" in err and "--command" in err


def test_browse_pvc_mounts_read_only_on_the_attached_node_and_cleans_up(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    node = _node(world)
    out, _ = run_task(day2_tasks.browse_pvc, capsys, namespace="media", claim="plex-config", dry_run=True)
    assert f"mounting plex-config at /data read-only on node {node}" in out
    assert "claim media/plex-config in use by plex-" in out
    out, _ = run_task(day2_tasks.browse_pvc, capsys, namespace="media", claim="plex-config", command="ls -la")
    assert "sim: ran sh -c 'ls -la' in pod media/browse-plex-config-" in out
    assert f"on node {node} [/data=pvc/plex-config(ro)]" in out
    assert out.strip().endswith("browse pod for media/plex-config removed")
    assert not [p for p in world.sim.objects(CLUSTER, "Pod", "media") if p["metadata"]["name"].startswith("browse-")]
    out, _ = run_task(day2_tasks.browse_pvc, capsys, namespace="media", claim="plex-config", command="touch x", rw=True)
    assert "/data=pvc/plex-config(rw)" in out
    err = fail_task(day2_tasks.browse_pvc, capsys, namespace="media", claim="nope", command="ls")
    assert "PersistentVolumeClaim media/nope not found" in err


def test_browse_pvc_refuses_a_claim_in_use_it_cannot_share(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(
        world,
        "PersistentVolumeClaim",
        "plex-config",
        "media",
        lambda o: o["spec"].update(accessModes=["ReadWriteOncePod"]),
    )
    err = fail_task(day2_tasks.browse_pvc, capsys, namespace="media", claim="plex-config", command="ls")
    assert "claim plex-config is ReadWriteOncePod and in use by plex-" in err
    assert not [p for p in world.sim.objects(CLUSTER, "Pod", "media") if p["metadata"]["name"].startswith("browse-")]


# ---------------------------------------------------------------------------------------------- volsync.list


def test_list_shows_the_repository_snapshots_and_deletes_the_job(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    run_task(day2_tasks.snapshot, capsys, app="plex")
    run_task(day2_tasks.snapshot, capsys, app="plex")
    out, _ = run_task(day2_tasks.list_, capsys, app="plex", dry_run=True)
    assert (
        "run restic snapshots in job media/volsync-list-plex-" in out
        and "(repository Secret plex-volsync-secret)" in out
    )
    assert "read the snapshot list" in out and "on failure of any step" in out
    out, _ = run_task(day2_tasks.list_, capsys, app="plex")
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "ID", "SIZE"] and len(lines) == 3
    assert lines[1].split()[2:] == ["20.000", "MiB"] and lines[2].split()[2:] == ["17.000", "MiB"]  # newest first
    assert not world.sim.objects(CLUSTER, "Job", "media")
    out, _ = run_task(day2_tasks.list_, capsys, app="plex", json=True)
    data = json.loads(out)
    assert [d["size"] for d in data] == [20 * 1024 * 1024, 17 * 1024 * 1024] and len(data[0]["id"]) == 64
    # the Job's definition: the repository Secret as environment, never a value on argv
    job_apply = [c for c in world.sim.calls("kubectl") if "apply" in c["argv"]]
    assert job_apply and all("RESTIC_PASSWORD" not in " ".join(c["argv"]) for c in job_apply)
    world.sim.fault("job-fails", cluster=CLUSTER, match="media/volsync-list-plex", message="Fatal: wrong password")
    err = fail_task(day2_tasks.list_, capsys, app="plex")
    assert "failed: BackoffLimitExceeded" in err and "deleted job media/volsync-list-plex-" in err
    assert not world.sim.objects(CLUSTER, "Job", "media")


# ---------------------------------------------------------------------------------------------- apply-ks


def _app_tree(root: Path, tz: str = "${TIMEZONE}") -> None:
    app = root / "kubernetes" / "apps" / "media" / "plex" / "app"
    app.mkdir(parents=True)
    (app / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
        "  - configmap.yaml\n  - secret.sops.yaml\n"
    )
    (app / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${APP}-env\ndata:\n"
        f"  TZ: {tz}\n  DOMAIN: plex.${{SECRET_DOMAIN}}\n"
    )
    (app / "secret.sops.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: plex-sops\nstringData:\n  TOKEN: ENC[AES256_GCM,data:xx]\n"
        "sops:\n  age: []\n  version: 3.11.0\n"
    )


def _ks_with_vars(world: World, substitute_from: list[dict[str, Any]]) -> None:
    with world.sim.store.tx() as tx:
        kube = Kube(tx.clusters[CLUSTER], tx.now)
        kube.put(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cluster-vars", "namespace": "flux-system"},
                "data": {"TIMEZONE": "Europe/Paris", "SECRET_DOMAIN": "example.org"},
            },
            manager="test",
        )
        kube.put(
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "plex-app", "namespace": "flux-system"},
                "spec": {
                    "interval": "1h",
                    "path": "./kubernetes/apps/media/plex/app",
                    "targetNamespace": "media",
                    "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
                    "postBuild": {"substitute": {"APP": "plex"}, "substituteFrom": substitute_from},
                },
            },
            manager="test",
        )


def test_apply_ks_builds_substitutes_diffs_and_applies(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    _app_tree(repo)
    _ks_with_vars(world, [{"kind": "ConfigMap", "name": "cluster-vars"}])
    path = "kubernetes/apps/media/plex/app"
    out, _ = run_task(day2_tasks.apply_ks, capsys, path=path, root=str(repo), dry_run=True)
    assert "diff -u -N /tmp/LIVE-0/v1.ConfigMap.media.plex-env" in out
    assert "+  TZ: Europe/Paris" in out and "+  DOMAIN: plex.example.org" in out
    assert "+    kustomize.toolkit.fluxcd.io/name: plex-app" in out
    assert "left out: Secret media/plex-sops (SOPS-encrypted" in out
    assert world.maybe("ConfigMap", "plex-env", "media") is None  # the dry run changed nothing
    out, _ = run_task(day2_tasks.apply_ks, capsys, path=path, root=str(repo))
    assert out.strip() == f"applied 1 object(s) of {path}"
    cm = world.obj("ConfigMap", "plex-env", "media")
    assert cm["data"] == {"TZ": "Europe/Paris", "DOMAIN": "plex.example.org"}
    assert cm["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/namespace"] == "flux-system"
    assert world.maybe("Secret", "plex-sops", "media") is None
    applied = [a for a in world.calls("kubectl") if "apply" in a and "--server-side" in a]
    assert applied and applied[-1][applied[-1].index("--field-manager") + 1] == "kustomize-controller"
    out, _ = run_task(day2_tasks.apply_ks, capsys, path=path, root=str(repo), dry_run=True)
    assert "server-side diff: no change" in out
    every_call_is_explicit(world)


def test_apply_ks_refuses_missing_variables_secret_sources_and_unknown_paths(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    _app_tree(repo, tz="${NOT_SET}")
    _ks_with_vars(world, [{"kind": "ConfigMap", "name": "cluster-vars"}])
    path = "kubernetes/apps/media/plex/app"
    err = fail_task(day2_tasks.apply_ks, capsys, path=path, root=str(repo), dry_run=True)
    assert "variables without a value: NOT_SET (ConfigMap media/plex-env)" in err
    err = fail_task(day2_tasks.apply_ks, capsys, path="kubernetes/apps/nope", root=str(repo), dry_run=True)
    assert "no Kustomization with spec.path kubernetes/apps/nope" in err and "flux-system/plex-app" in err
    _ks_with_vars(world, [{"kind": "Secret", "name": "cluster-secrets"}])
    err = fail_task(day2_tasks.apply_ks, capsys, path=path, root=str(repo), dry_run=True)
    assert "substitutes from Secret flux-system/cluster-secrets" in err
