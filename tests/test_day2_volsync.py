"""volsync.* plans and their execution against a fake kube API: snapshot, unlock, restore and its recovery."""

from __future__ import annotations

import json
from typing import Any

import pytest

from k8s_ops.core.errors import Aborted, ToolkitError
from k8s_ops.core.pipeline import RecoveryFailed, run, show
from k8s_ops.core.plan import Plan
from k8s_ops.day2.volsync import (
    REPLICATIONDESTINATION,
    REPLICATIONSOURCE,
    destination_manifest,
    find_source,
    gather_restore_facts,
    plan_restore,
    plan_snapshot,
    plan_unlock,
    sources_fact,
)
from k8s_ops.tools.flux import HELMRELEASE, KUSTOMIZATION
from tests.day2_fake import (
    TARGET,
    FakeKube,
    Obj,
    flux_controller,
    obj,
    ready_flux,
    volsync_controller,
    workload_controller,
)

EPOCH = 1_767_225_600
HOUR = 3600.0


@pytest.fixture(autouse=True)
def fast_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_OPS_POLL_INTERVAL", "0.001")
    monkeypatch.setenv("K8S_OPS_TIMEOUT_SCALE", "0.00005")


def quiet(_: str) -> None:
    pass


def source(ns: str = "media", name: str = "plex", *, schedule: str | None = "0 * * * *", **restic: Any) -> Obj:
    spec: dict[str, Any] = {
        "sourcePVC": "plex-config",
        "restic": {
            "repository": "plex-volsync-secret",
            "copyMethod": "Snapshot",
            "storageClassName": "ceph-block",
            "volumeSnapshotClassName": "csi-ceph-blockpool",
            "accessModes": ["ReadWriteOnce"],
            "cacheStorageClassName": "openebs-hostpath",
            "cacheCapacity": "2Gi",
            "moverSecurityContext": {"runAsUser": 568, "runAsGroup": 568, "fsGroup": 568},
            "pruneIntervalDays": 7,
            "retain": {"daily": 7},
            **restic,
        },
    }
    if schedule:
        spec["trigger"] = {"schedule": schedule}
    o = obj(REPLICATIONSOURCE, ns, name, spec=spec)
    o["metadata"]["labels"] = {
        "kustomize.toolkit.fluxcd.io/name": "plex",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
    o["status"] = {"lastManualSync": "", "latestMoverStatus": {"result": "Successful"}}
    return o


def deployment(ns: str, name: str, *, claim: str | None, replicas: int = 1) -> Obj:
    volumes = [{"name": "config", "persistentVolumeClaim": {"claimName": claim}}] if claim else []
    return obj(
        "deployments.apps",
        ns,
        name,
        spec={
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {"spec": {"volumes": volumes}},
        },
    )


def app_kube(**vs: Any) -> FakeKube:
    kube = FakeKube(
        source(),
        obj("persistentvolumeclaims", "media", "plex-config"),
        ready_flux(KUSTOMIZATION, "flux-system", "plex"),
        ready_flux(HELMRELEASE, "media", "plex"),
        deployment("media", "plex", claim="plex-config"),
        deployment("media", "other", claim=None),
    )
    kube.controllers += [workload_controller(stuck=vs.pop("stuck", False)), volsync_controller(**vs), flux_controller()]
    return kube


# ---------------------------------------------------------------------------------------------- finding the source


def test_find_source_by_app_then_app_backup_and_ambiguity() -> None:
    a = source("media", "plex")
    b = source("media", "sonarr-backup")
    c = source("other", "plex")
    assert find_source([b], "sonarr") is b
    assert find_source([a, c], "plex", "other") is c
    with pytest.raises(ToolkitError, match=r"exists in several namespaces \(media, other\)") as info:
        find_source([a, c], "plex")
    assert "--namespace" in str(info.value)
    with pytest.raises(ToolkitError, match="no ReplicationSource for app 'radarr'") as info:
        find_source([a, b], "radarr")
    assert "media/plex, media/sonarr-backup" in str(info.value)


def test_sources_fact_reads_all_namespaces_with_explicit_kubeconfig_and_context() -> None:
    kube = FakeKube(source())
    runner = kube.runner()
    assert [s["metadata"]["name"] for s in sources_fact(runner, TARGET, None)] == ["plex"]
    assert runner.argvs[0] == [
        "kubectl", "--kubeconfig", str(TARGET.kubeconfig), "--context", "infra",
        "get", REPLICATIONSOURCE, "--all-namespaces", "--output", "json",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- snapshot


def test_snapshot_triggers_waits_and_restores_the_schedule() -> None:
    kube = app_kube(steps=2)
    runner = kube.runner()
    plan = plan_snapshot("infra", TARGET, source(), epoch=EPOCH, timeout=2 * HOUR)
    run(plan, runner, out=quiet)
    patches = [json.loads(m[-1]) for m in kube.mutations]
    assert patches == [{"spec": {"trigger": {"manual": str(EPOCH)}}}, {"spec": {"trigger": {"manual": None}}}]
    rs = kube.get(REPLICATIONSOURCE, "media", "plex")
    assert rs is not None
    assert rs["status"]["lastManualSync"] == str(EPOCH)
    assert rs["spec"]["trigger"] == {"schedule": "0 * * * *"}  # the schedule is in charge again


def test_snapshot_of_a_manual_only_source_keeps_its_tag() -> None:
    plan = plan_snapshot("infra", TARGET, source(schedule=None), epoch=EPOCH, timeout=HOUR)
    assert plan.recovery is None
    assert len(plan.steps) == 1


def test_snapshot_job_failure_stops_at_once_with_the_reason_and_restores_the_schedule() -> None:
    kube = app_kube(fail="unable to create lock in backend: repository is already locked")
    runner = kube.runner()
    plan = plan_snapshot("infra", TARGET, source(), epoch=EPOCH, timeout=2 * HOUR)
    with pytest.raises(RecoveryFailed) as info:
        run(plan, runner, out=quiet)
    msg = str(info.value)
    assert "job media/volsync-src-plex failed: BackoffLimitExceeded" in msg
    assert "repository is already locked" in msg
    assert "schedule restored" in msg
    rs = kube.get(REPLICATIONSOURCE, "media", "plex")
    assert rs is not None and "manual" not in rs["spec"]["trigger"]


def test_snapshot_times_out_when_volsync_never_acts() -> None:
    kube = FakeKube(source())  # no controller
    plan = plan_snapshot("infra", TARGET, source(), epoch=EPOCH, timeout=HOUR)
    with pytest.raises(
        RecoveryFailed, match=r"timed out .* lastManualSync=1767225600.*job volsync-src-plex not started"
    ):
        run(plan, kube.runner(), out=quiet)


def test_snapshot_refuses_paused_and_non_restic_sources() -> None:
    paused = source()
    paused["spec"]["paused"] = True
    with pytest.raises(ToolkitError, match="is paused") as info:
        plan_snapshot("infra", TARGET, paused, epoch=EPOCH, timeout=HOUR)
    assert '"paused":false' in str(info.value)
    rsync = source()
    del rsync["spec"]["restic"]
    with pytest.raises(ToolkitError, match="does not use the restic mover"):
        plan_snapshot("infra", TARGET, rsync, epoch=EPOCH, timeout=HOUR)


def test_old_mover_failure_does_not_fail_a_new_snapshot() -> None:
    rs = source()
    rs["status"] = {
        "latestMoverStatus": {"result": "Failed", "logs": "old"},
        "lastSyncStartTime": "2025-12-31T00:00:00Z",
    }
    kube = FakeKube(rs)
    kube.controllers.append(volsync_controller(steps=3))
    plan = plan_snapshot("infra", TARGET, rs, epoch=EPOCH, timeout=HOUR)
    run(plan, kube.runner(), out=quiet)  # raises if the old Failed result were taken for this snapshot's
    after = kube.get(REPLICATIONSOURCE, "media", "plex")
    assert after is not None and after["status"]["lastManualSync"] == str(EPOCH)
    assert after["status"]["latestMoverStatus"]["result"] == "Successful"
    assert "manual" not in after["spec"]["trigger"]  # the schedule is back


# ---------------------------------------------------------------------------------------------- unlock


def test_unlock_sets_unlock_with_a_manual_sync_and_waits_for_last_unlocked() -> None:
    kube = app_kube()
    plan = plan_unlock("infra", TARGET, source(), epoch=EPOCH, timeout=HOUR)
    run(plan, kube.runner(), out=quiet)
    first = json.loads(kube.mutations[0][-1])
    assert first == {"spec": {"restic": {"unlock": str(EPOCH)}, "trigger": {"manual": str(EPOCH)}}}
    rs = kube.get(REPLICATIONSOURCE, "media", "plex")
    assert rs is not None and rs["status"]["restic"]["lastUnlocked"] == str(EPOCH)
    assert "status.restic.lastUnlocked=1767225600" in plan.to_text()


# ---------------------------------------------------------------------------------------------- restore


def test_destination_copies_repository_pvc_and_mover_settings() -> None:
    rd = destination_manifest(source(), "plex", tag="restore-1", previous=2)
    assert rd["metadata"] == {
        "name": "plex-manual",
        "namespace": "media",
        "annotations": {"monosense.dev/created-by": "k8s-ops volsync.restore"},
    }
    spec = rd["spec"]["restic"]
    assert rd["spec"]["trigger"] == {"manual": "restore-1"}
    assert spec["copyMethod"] == "Direct"
    assert spec["destinationPVC"] == "plex-config"
    assert spec["repository"] == "plex-volsync-secret"
    assert spec["moverSecurityContext"] == {"runAsUser": 568, "runAsGroup": 568, "fsGroup": 568}
    assert spec["storageClassName"] == "ceph-block" and spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["cacheStorageClassName"] == "openebs-hostpath" and spec["cacheCapacity"] == "2Gi"
    assert spec["previous"] == 2
    assert "retain" not in spec and "pruneIntervalDays" not in spec  # source-only settings
    assert "volumeSnapshotClassName" not in spec  # a Direct restore takes no snapshot
    assert "previous" not in destination_manifest(source(), "plex", tag="t", previous=None)["spec"]["restic"]


def restore_plan(kube: FakeKube, **kw: Any) -> Plan:
    facts = gather_restore_facts(kube.runner(), TARGET, "plex", None)
    return plan_restore("infra", TARGET, facts, "plex", epoch=EPOCH, previous=kw.get("previous"), timeout=HOUR)


def test_restore_full_run_in_order_and_app_back_up() -> None:
    kube = app_kube()
    plan = restore_plan(kube)
    assert plan.destructive
    run(plan, kube.runner(), yes=True, confirm_name="plex", out=quiet)
    verbs = [" ".join(m[5:8]) for m in kube.mutations]
    assert verbs == [
        "suspend kustomization plex",
        "suspend helmrelease plex",
        f"patch {REPLICATIONSOURCE} plex",
        "scale deployment/plex --namespace",
        "apply --filename -",
        f"delete {REPLICATIONDESTINATION} plex-manual",
        f"patch {REPLICATIONSOURCE} plex",
        "resume kustomization plex",
        "reconcile kustomization plex",
        "resume helmrelease plex",
        "reconcile helmrelease plex",
        "scale deployment/plex --namespace",
    ]
    assert kube.mutations[3][-1] == "--replicas=0" and kube.mutations[-1][-1] == "--replicas=1"
    assert kube.mutations[10][-1] == "--force"
    assert kube.get(REPLICATIONDESTINATION, "media", "plex-manual") is None
    rs = kube.get(REPLICATIONSOURCE, "media", "plex")
    assert rs is not None and "paused" not in rs["spec"]
    for res, ns in ((KUSTOMIZATION, "flux-system"), (HELMRELEASE, "media")):
        assert not kube.get(res, ns, "plex")["spec"].get("suspend")  # type: ignore[index]
    assert kube.get("pods", "media", "plex-0") is not None
    assert kube.get("deployments.apps", "media", "other")["spec"]["replicas"] == 1  # type: ignore[index]


def test_restore_dry_run_shows_destination_and_recovery(capsys: pytest.CaptureFixture[str]) -> None:
    kube = app_kube()
    plan = restore_plan(kube, previous=3)
    show(plan, json=False)
    text = capsys.readouterr().out
    assert "previous: 3" in text and "copyMethod: Direct" in text and "destinationPVC: plex-config" in text
    assert "(destructive)" in text
    assert "on failure of any step" in text and "resume kustomization plex" in text
    assert kube.mutations == []
    show(plan, json=True)
    data = json.loads(capsys.readouterr().out)
    assert data["on_failure"]["done"].startswith("recovered: deleted ReplicationDestination media/plex-manual")


def test_restore_needs_typed_confirmation_and_changes_nothing_without_it() -> None:
    kube = app_kube()
    plan = restore_plan(kube)
    with pytest.raises(Aborted):
        run(plan, kube.runner(), yes=False, confirm_name="plex", out=quiet)
    assert kube.mutations == []


def test_restore_pods_never_terminating_resumes_flux_and_says_so() -> None:
    kube = app_kube(stuck=True)
    plan = restore_plan(kube)
    with pytest.raises(RecoveryFailed) as info:
        run(plan, kube.runner(), yes=True, out=quiet)
    msg = str(info.value)
    assert "no pod of the app or using PVC media/plex-config left" in msg and "plex-0 (Running)" in msg
    # undone latest first, and only what ran: the restore object was never created, so nothing deletes it
    assert (
        "recovered: scaled deployment/plex back to 1; unpaused ReplicationSource media/plex; resumed HelmRelease "
        "media/plex; resumed Kustomization flux-system/plex — the app was NOT restored"
    ) in msg
    assert "ReplicationDestination" not in msg.split("recovered:")[1]
    for res, ns in ((KUSTOMIZATION, "flux-system"), (HELMRELEASE, "media")):
        assert not kube.get(res, ns, "plex")["spec"].get("suspend")  # type: ignore[index]
    assert kube.get("deployments.apps", "media", "plex")["spec"]["replicas"] == 1  # type: ignore[index]
    assert "paused" not in kube.get(REPLICATIONSOURCE, "media", "plex")["spec"]  # type: ignore[index]
    assert not any(m[5] == "apply" for m in kube.mutations)  # never started the restore


def test_restore_job_failure_deletes_the_destination_and_resumes() -> None:
    kube = app_kube(fail="no snapshots found")
    plan = restore_plan(kube)
    with pytest.raises(RecoveryFailed) as info:
        run(plan, kube.runner(), yes=True, out=quiet)
    msg = str(info.value)
    assert "job media/volsync-dst-plex-manual failed: BackoffLimitExceeded" in msg and "no snapshots found" in msg
    assert "recovered: deleted ReplicationDestination media/plex-manual; scaled deployment/plex back to 1" in msg
    assert "resumed HelmRelease media/plex; resumed Kustomization flux-system/plex" in msg
    assert kube.get(REPLICATIONDESTINATION, "media", "plex-manual") is None


def test_restore_removes_a_leftover_destination_first() -> None:
    kube = app_kube()
    kube.add(obj(REPLICATIONDESTINATION, "media", "plex-manual", spec={"trigger": {"manual": "old"}}))
    plan = restore_plan(kube)
    leftover = next(s for s in plan.steps if "leftover" in s.description)
    assert leftover.noop is None


def test_restore_refuses_a_missing_pvc_and_a_negative_previous() -> None:
    kube = app_kube()
    kube.objects.pop(("persistentvolumeclaims", "media", "plex-config"))
    with pytest.raises(ToolkitError, match=r"PVC media/plex-config .* does not exist"):
        restore_plan(kube)
    with pytest.raises(ToolkitError, match="--previous must be 0 or more"):
        restore_plan(app_kube(), previous=-1)


def test_restore_without_flux_objects_says_nothing_was_suspended() -> None:
    kube = app_kube(stuck=True)
    kube.objects.pop((KUSTOMIZATION, "flux-system", "plex"))
    kube.objects.pop((HELMRELEASE, "media", "plex"))
    plan = restore_plan(kube)
    assert [s.noop for s in plan.steps[:2]] == ["no Kustomization found", "no HelmRelease found"]
    with pytest.raises(RecoveryFailed, match="no Flux object had been suspended"):
        run(plan, kube.runner(), yes=True, out=quiet)


def test_restore_finds_the_helmrelease_from_workload_labels() -> None:
    kube = app_kube()
    kube.objects.pop((HELMRELEASE, "media", "plex"))
    kube.add(ready_flux(HELMRELEASE, "media", "plex-app"))
    kube.get("deployments.apps", "media", "plex")["metadata"]["labels"] = {  # type: ignore[index]
        "helm.toolkit.fluxcd.io/name": "plex-app",
        "helm.toolkit.fluxcd.io/namespace": "media",
    }
    plan = restore_plan(kube)
    assert plan.steps[1].description == "suspend HelmRelease media/plex-app"


def test_restore_an_interrupted_run_is_recovered_too() -> None:
    kube = app_kube()
    calls = 0

    def interrupt(k: FakeKube) -> None:
        nonlocal calls
        calls += 1
        if k.get(REPLICATIONDESTINATION, "media", "plex-manual") is not None:
            raise KeyboardInterrupt

    kube.controllers.insert(0, interrupt)
    plan = restore_plan(kube)
    with pytest.raises(RecoveryFailed) as info:
        run(plan, kube.runner(), yes=True, out=quiet)
    assert info.value.exit_code == 130
    assert "resumed HelmRelease media/plex; resumed Kustomization flux-system/plex" in str(info.value)


def test_a_new_failed_mover_status_stops_the_wait_even_after_volsync_deleted_the_job() -> None:
    before = source()
    after = source()
    after["status"] = {"latestMoverStatus": {"result": "Failed", "logs": "Fatal: wrong password or no key found"}}
    kube = FakeKube(after)  # VolSync already deleted the failed job
    plan = plan_snapshot("infra", TARGET, before, epoch=EPOCH, timeout=HOUR)
    with pytest.raises(RecoveryFailed, match="mover result Failed; last log lines:\n    Fatal: wrong password"):
        run(plan, kube.runner(), out=quiet)
