"""Day-2 tasks end to end through the simulator: real subprocesses of the simulated kubectl and flux, in-cluster
controllers for Flux, external-secrets and VolSync, faults for the failure paths.

The world is built directly with the simulator's Python API (nodes up, etcd bootstrapped, Cilium, Flux
controllers, one app `plex` in `media` with a HelmRelease, a Kustomization, a PVC, a ReplicationSource and two
ExternalSecrets); no bootstrap runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.core import preflight as tools
from k8s_ops.day2 import tasks as day2_tasks
from tests.sim.simlib.api import Sim
from tests.sim.simlib.controllers.flux import FLUX_CRDS
from tests.sim.simlib.kube import Kube
from tests.sim.simlib.manifests import READY_COLS, crd, workload

CLUSTER = "demo"

CRDS = [
    ("external-secrets.io", "ExternalSecret", "externalsecrets", ("v1",), ("es",)),
    ("external-secrets.io", "ClusterSecretStore", "clustersecretstores", ("v1",), ("css",)),
    ("volsync.backube", "ReplicationSource", "replicationsources", ("v1alpha1",), ()),
    ("volsync.backube", "ReplicationDestination", "replicationdestinations", ("v1alpha1",), ()),
]


@dataclass
class World:
    sim: Sim
    kubeconfig: Path

    def obj(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        o = self.sim.get_object(kind, name, namespace, CLUSTER)
        assert o is not None, f"{kind} {namespace}/{name} missing"
        return o

    def maybe(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.sim.get_object(kind, name, namespace, CLUSTER)

    def fault(self, kind: str, **opts: Any) -> None:
        self.sim.fault(kind, cluster=CLUSTER, **opts)

    def calls(self, tool: str) -> list[list[str]]:
        """argv (without the tool) of every call of `tool`."""
        return [c.get("argv", []) for c in self.sim.calls(tool)]


def _put(kube: Kube, *objs: dict[str, Any]) -> None:
    for o in objs:
        kube.put(o, manager="test")


def _ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _populate(kube: Kube) -> None:
    for group, kind, plural, versions, short in [c for comp in FLUX_CRDS.values() for c in comp] + CRDS:
        _put(kube, crd(group, kind, plural, versions=versions, short=short, columns=READY_COLS))
    _put(kube, _ns("flux-system"), _ns("media"), _ns("external-secrets"), _ns("volsync-system"))
    for name in ("source-controller", "kustomize-controller", "helm-controller"):
        _put(kube, workload("Deployment", name, "flux-system", labels={"app": name}))
    _put(
        kube,
        workload(
            "Deployment", "external-secrets", "external-secrets", labels={"app.kubernetes.io/name": "external-secrets"}
        ),
        workload("Deployment", "volsync", "volsync-system", labels={"app.kubernetes.io/name": "volsync"}),
    )
    git = {"interval": "1m", "url": "https://github.com/monosense/k8s-ops", "ref": {"branch": "main"}}
    _put(
        kube,
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "flux-system", "namespace": "flux-system"},
            "spec": git,
        },
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": {"name": "plex", "namespace": "media"},
            "spec": {"interval": "1h", "url": "oci://ghcr.io/bjw-s-labs/helm/app-template", "ref": {"tag": "4.2.0"}},
        },
    )
    ks_labels = {"kustomize.toolkit.fluxcd.io/name": "plex", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}
    for name, path in (("flux-system", "./clusters/demo"), ("plex", "./kubernetes/apps/media/plex")):
        _put(
            kube,
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": name, "namespace": "flux-system"},
                "spec": {
                    "interval": "10m",
                    "path": path,
                    "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
                },
            },
        )
    _put(
        kube,
        {
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": "plex", "namespace": "media", "labels": ks_labels},
            "spec": {
                "interval": "1h",
                "chartRef": {"kind": "OCIRepository", "name": "plex"},
                "values": {"replicaCount": 1},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "plex-config", "namespace": "media", "labels": ks_labels},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
        },
        {
            "apiVersion": "volsync.backube/v1alpha1",
            "kind": "ReplicationSource",
            "metadata": {"name": "plex", "namespace": "media", "labels": ks_labels},
            "spec": {
                "sourcePVC": "plex-config",
                "trigger": {"schedule": "0 * * * *"},
                "restic": {
                    "repository": "plex-volsync-secret",
                    "copyMethod": "Snapshot",
                    "storageClassName": "ceph-block",
                    "accessModes": ["ReadWriteOnce"],
                    "cacheStorageClassName": "openebs-hostpath",
                    "moverSecurityContext": {"runAsUser": 568, "runAsGroup": 568, "fsGroup": 568},
                    "retain": {"daily": 7},
                },
            },
        },
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ClusterSecretStore",
            "metadata": {"name": "onepassword"},
            "spec": {"provider": {"onepassword": {}}},
        },
    )
    for name in ("plex", "plex-volsync"):
        _put(
            kube,
            {
                "apiVersion": "external-secrets.io/v1",
                "kind": "ExternalSecret",
                "metadata": {"name": name, "namespace": "media"},
                "spec": {
                    "secretStoreRef": {"kind": "ClusterSecretStore", "name": "onepassword"},
                    "target": {"name": f"{name}-secret"},
                    "data": [{"secretKey": "TOKEN", "remoteRef": {"key": name}}],
                },
            },
        )
    plex = workload("Deployment", "plex", "media", labels={"app.kubernetes.io/name": "plex"})
    plex["spec"]["template"]["spec"]["volumes"] = [
        {"name": "config", "persistentVolumeClaim": {"claimName": "plex-config"}}
    ]
    plex["spec"]["template"]["spec"]["securityContext"] = {"runAsUser": 568, "runAsGroup": 568, "fsGroup": 568}
    plex["metadata"]["labels"].update(
        {"helm.toolkit.fluxcd.io/name": "plex", "helm.toolkit.fluxcd.io/namespace": "media"}
    )
    _put(kube, plex)
    # finished pods for cleanse-pods: a Job pod that succeeded, one that failed, one stuck Pending
    for name, phase in (("backup-28", "Succeeded"), ("backup-29", "Failed"), ("unschedulable", "Pending")):
        kube.put(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "media"}, "spec": {}},
            manager="test",
        )
        kube.set_status(kube.find("Pod", "media", name) or {}, {"phase": phase})


@pytest.fixture
def world(sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield build_world(sim, tmp_path, monkeypatch)


def build_world(sim: Sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """The world of this module (other day-2 simulator modules build theirs from it)."""
    sim.create(name=CLUSTER)
    build = tmp_path / "build"
    kc = build / CLUSTER / "kubeconfig"
    kc.parent.mkdir(parents=True)
    sim.make_ready(CLUSTER, kubeconfig=kc)
    # talos.kubeconfig names the context after the cluster (--force-context-name); do the same here
    data = yaml.safe_load(kc.read_text())
    data["contexts"][0]["name"] = CLUSTER
    data["current-context"] = "somewhere-else"  # the tasks must not rely on the current context
    kc.write_text(yaml.safe_dump(data))
    (tmp_path / "clusters" / CLUSTER).mkdir(parents=True)
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(tmp_path / "clusters"))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(build))
    monkeypatch.setenv("K8S_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("K8S_OPS_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("K8S_OPS_TIMEOUT_SCALE", "0.005")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "stray-kubeconfig"))
    sim.set("volsync_job_seconds", 0.3)
    with sim.store.tx() as tx:
        _populate(Kube(tx.clusters[CLUSTER], tx.now))
    tools.reset_cache()
    built = World(sim, kc)
    assert built.obj("Deployment", "plex", "media")["status"]["readyReplicas"] == 1
    return built


def run_task(task: Any, capsys: pytest.CaptureFixture[str], **kwargs: Any) -> tuple[str, str]:
    task(Context(), cluster=CLUSTER, **kwargs)
    captured = capsys.readouterr()
    return captured.out, captured.err


def fail_task(task: Any, capsys: pytest.CaptureFixture[str], **kwargs: Any) -> str:
    with pytest.raises(Exit) as info:
        task(Context(), cluster=CLUSTER, **kwargs)
    assert info.value.code != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def every_call_is_explicit(world: World) -> None:
    for tool in ("kubectl", "flux"):
        for argv in world.calls(tool):
            if argv[:1] == ["version"]:
                continue
            assert "--kubeconfig" in argv and argv[argv.index("--kubeconfig") + 1] == str(world.kubeconfig), argv
            assert argv[argv.index("--context") + 1] == CLUSTER, argv


# ---------------------------------------------------------------------------------------------- kubernetes.*


def test_sync_secrets_force_syncs_and_waits(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    before = world.obj("ExternalSecret", "plex", "media")["status"]["refreshTime"]
    out, _ = run_task(day2_tasks.sync_secrets, capsys, dry_run=True)
    assert "force-sync=" in out and "plex plex-volsync --namespace media" in out
    assert world.obj("ExternalSecret", "plex", "media")["metadata"].get("annotations") is None
    out, _ = run_task(day2_tasks.sync_secrets, capsys, namespace="media")
    assert out.strip() == "force-synced 2 ExternalSecret(s)"
    es = world.obj("ExternalSecret", "plex", "media")
    assert es["metadata"]["annotations"]["force-sync"].isdigit()
    assert es["status"]["refreshTime"] >= before
    every_call_is_explicit(world)


def test_sync_secrets_failing_store_is_named(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.fault("externalsecret-fails", match="media/plex-volsync", message="item plex-volsync not found in vault")
    err = fail_task(day2_tasks.sync_secrets, capsys, name="plex-volsync")
    assert "media/plex-volsync (SecretSyncedError: error retrieving secret: item plex-volsync not found" in err


def test_hr_restart_and_reconcile(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = run_task(day2_tasks.hr_restart, capsys, name="plex", namespace="media")
    assert "HelmRelease media/plex restarted and Ready" in out
    assert "wait: HelmRelease media/plex Ready" in err
    hr = world.obj("HelmRelease", "plex", "media")
    assert not hr["spec"].get("suspend")
    out, _ = run_task(day2_tasks.reconcile, capsys, with_source=True)
    assert "Kustomization flux-system/flux-system reconciled and Ready" in out
    assert any(a[4:6] == ["reconcile", "kustomization"] and "--with-source" in a for a in world.calls("flux"))
    every_call_is_explicit(world)


def test_hr_restart_failure_leaves_the_release_resumed(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.sim.fault("helm-fails", match="media/plex", message="timed out waiting for the condition")
    # force a real upgrade attempt: change the values so the digest differs
    with world.sim.store.tx() as w:
        kube = Kube(w.clusters[CLUSTER], w.now)
        hr = kube.find("HelmRelease", "media", "plex") or {}
        hr["spec"]["values"]["replicaCount"] = 2
    err = fail_task(day2_tasks.hr_restart, capsys, name="plex", namespace="media")
    assert "timed out waiting for the condition" in err
    assert "resumed HelmRelease media/plex" in err
    assert not world.obj("HelmRelease", "plex", "media")["spec"].get("suspend")


def test_reconcile_refuses_suspended_and_unknown(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    err = fail_task(day2_tasks.reconcile, capsys, name="nope")
    assert "Kustomization flux-system/nope not found" in err
    world.sim.run("flux", "--kubeconfig", str(world.kubeconfig), "--context", CLUSTER, "suspend", "ks", "plex")
    err = fail_task(day2_tasks.reconcile, capsys, name="plex")
    assert "is suspended" in err


def test_cleanse_pods_lists_then_deletes(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run_task(day2_tasks.cleanse_pods, capsys, dry_run=True, json=True)
    plan = json.loads(out)
    argvs = [c["argv"] for s in plan["steps"] for c in s["commands"]]
    assert argvs and all(a[a.index("delete") :][:4] == ["delete", "pods", "backup-28", "backup-29"] for a in argvs)
    assert world.maybe("Pod", "backup-28", "media") is not None  # dry run changed nothing
    out, _ = run_task(day2_tasks.cleanse_pods, capsys, pending=True)
    assert out.strip() == "deleted 3 pod(s)"
    for name in ("backup-28", "backup-29", "unschedulable"):
        assert world.maybe("Pod", name, "media") is None
    assert world.obj("Deployment", "plex", "media")["status"]["readyReplicas"] == 1


# ---------------------------------------------------------------------------------------------- volsync.*


def test_snapshot_runs_the_mover_and_restores_the_schedule(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run_task(day2_tasks.snapshot, capsys, app="plex")
    assert "backup of plex done: ReplicationSource media/plex" in out and "result=Successful" in out
    rs = world.obj("ReplicationSource", "plex", "media")
    assert rs["status"]["lastManualSync"].isdigit()
    assert rs["spec"]["trigger"] == {"schedule": "0 * * * *"}
    assert world.maybe("Job", "volsync-src-plex", "media") is None
    every_call_is_explicit(world)


def test_snapshot_job_failure_is_reported_with_the_mover_logs(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.fault("volsync-job-fails", match="media/plex", message="Fatal: unable to create lock in backend")
    err = fail_task(day2_tasks.snapshot, capsys, app="plex")
    assert "job media/volsync-src-plex failed" in err and "unable to create lock in backend" in err
    assert "schedule restored" in err
    assert "manual" not in world.obj("ReplicationSource", "plex", "media")["spec"]["trigger"]


def test_unlock_is_acknowledged(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run_task(day2_tasks.unlock, capsys, app="plex")
    assert "restic repository of plex unlocked" in out
    rs = world.obj("ReplicationSource", "plex", "media")
    assert rs["status"]["restic"]["lastUnlocked"] == rs["spec"]["restic"]["unlock"]


def test_restore_end_to_end(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = run_task(day2_tasks.restore, capsys, app="plex", previous="1", yes=True)
    assert "restored plex" in out
    assert "restore PVC media/plex-config from restic (previous=1 snapshot)" in err
    flux_verbs = [a[4:6] for a in world.calls("flux") if a[:1] != ["version"]]
    assert flux_verbs == [
        ["suspend", "kustomization"],
        ["suspend", "helmrelease"],
        ["resume", "kustomization"],
        ["reconcile", "kustomization"],
        ["resume", "helmrelease"],
        ["reconcile", "helmrelease"],
    ]
    # one ReplicationDestination applied once the source is paused (earlier applies are the cluster lock's Lease)
    calls = world.calls("kubectl")
    paused_at = next(i for i, a in enumerate(calls) if a[4:6] == ["patch", "replicationsources.volsync.backube"])
    applied = [a for a in calls[paused_at:] if "apply" in a]
    assert len(applied) == 1
    assert world.maybe("ReplicationDestination", "plex-manual", "media") is None
    assert not world.obj("Kustomization", "plex", "flux-system")["spec"].get("suspend")
    assert not world.obj("HelmRelease", "plex", "media")["spec"].get("suspend")
    assert "paused" not in world.obj("ReplicationSource", "plex", "media")["spec"]
    deploy = world.obj("Deployment", "plex", "media")
    assert deploy["spec"]["replicas"] == 1 and deploy["status"]["readyReplicas"] == 1
    every_call_is_explicit(world)


def test_restore_pods_never_terminate_resumes_everything(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.sim.fault("pod-stuck-terminating", match="media/plex-")
    err = fail_task(day2_tasks.restore, capsys, app="plex", yes=True)
    assert "no pod of the app or using PVC media/plex-config left" in err
    assert "resumed HelmRelease media/plex; resumed Kustomization flux-system/plex" in err
    assert world.maybe("ReplicationDestination", "plex-manual", "media") is None
    assert not world.obj("Kustomization", "plex", "flux-system")["spec"].get("suspend")
    assert not world.obj("HelmRelease", "plex", "media")["spec"].get("suspend")
    assert world.obj("Deployment", "plex", "media")["spec"]["replicas"] == 1


def test_restore_job_failure_resumes_and_removes_the_destination(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.fault("volsync-job-fails", match="media/plex-manual", message="Fatal: no snapshot found")
    err = fail_task(day2_tasks.restore, capsys, app="plex", yes=True)
    assert "volsync-dst-plex-manual failed" in err and "no snapshot found" in err
    assert "resumed HelmRelease media/plex; resumed Kustomization flux-system/plex" in err
    assert world.maybe("ReplicationDestination", "plex-manual", "media") is None
    assert world.obj("Deployment", "plex", "media")["spec"]["replicas"] == 1
