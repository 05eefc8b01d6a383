"""kubernetes.* plans and their execution against a fake kube API: sync-secrets, hr-restart, reconcile, cleanse-pods."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from k8s_ops.core.command import Result
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.execute import StepFailed
from k8s_ops.core.pipeline import RecoveryFailed, run
from k8s_ops.day2.kubernetes import (
    EXTERNALSECRET,
    external_secrets_fact,
    plan_cleanse_pods,
    plan_hr_restart,
    plan_reconcile,
    plan_sync_secrets,
    select_pods,
    select_secrets,
)
from k8s_ops.tools.flux import HELMRELEASE, KUSTOMIZATION, ROOT_KUSTOMIZATION
from k8s_ops.tools.kubectl import list_or_empty
from tests.day2_fake import TARGET, Controller, FakeKube, Obj, flux_controller, obj, ready_flux

EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.fixture(autouse=True)
def fast_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_OPS_POLL_INTERVAL", "0.001")
    monkeypatch.setenv("K8S_OPS_TIMEOUT_SCALE", "0.0005")


def quiet(_: str) -> None:
    pass


def rfc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def es(ns: str, name: str, refreshed: int = EPOCH - 3600) -> Obj:
    o = obj(EXTERNALSECRET, ns, name)
    o["status"] = {"refreshTime": rfc(refreshed), "conditions": [{"type": "Ready", "status": "True"}]}
    return o


def eso_controller(*, broken: frozenset[str] = frozenset()) -> Controller:
    """Refresh every ExternalSecret whose force-sync annotation changed; `broken` ones fail at the store."""

    def run(k: FakeKube) -> None:
        for (resource, _, name), o in k.objects.items():
            if resource != EXTERNALSECRET:
                continue
            want = (o["metadata"].get("annotations") or {}).get("force-sync")
            if want is None or o.get("_seen") == want:
                continue
            o["_seen"] = want
            if name in broken:
                o["status"]["conditions"] = [
                    {"type": "Ready", "status": "False", "reason": "SecretSyncedError", "message": "item not found"}
                ]
            else:
                o["status"]["refreshTime"] = rfc(int(want))

    return run


# ---------------------------------------------------------------------------------------------- sync-secrets


def three_secrets() -> FakeKube:
    return FakeKube(es("media", "plex"), es("media", "sonarr"), es("auth", "authelia"))


def test_sync_secrets_annotates_each_namespace_once_with_overwrite_and_waits_for_refresh() -> None:
    kube = three_secrets()
    kube.controllers.append(eso_controller())
    runner = kube.runner()
    selected = select_secrets(external_secrets_fact(runner, TARGET, None))
    plan = plan_sync_secrets("infra", TARGET, selected, epoch=EPOCH)
    assert [c.display_argv()[5:] for s in plan.steps for c in s.commands] == [
        ["annotate", EXTERNALSECRET, "authelia", "--namespace", "auth", f"force-sync={EPOCH}", "--overwrite"],
        ["annotate", EXTERNALSECRET, "plex", "sonarr", "--namespace", "media", f"force-sync={EPOCH}", "--overwrite"],
    ]
    assert "3 ExternalSecret(s) in 2 namespace(s)" in plan.to_text()
    run(plan, runner, out=quiet)
    for name in ("plex", "sonarr"):
        assert kube.get(EXTERNALSECRET, "media", name)["status"]["refreshTime"] == rfc(EPOCH)  # type: ignore[index]


def test_sync_secrets_lists_all_namespaces_or_one() -> None:
    kube = three_secrets()
    runner = kube.runner()
    assert len(external_secrets_fact(runner, TARGET, None)) == 3
    assert "--all-namespaces" in runner.argvs[-1]
    assert len(external_secrets_fact(runner, TARGET, "media")) == 2
    assert runner.argvs[-1][-4:] == ["--namespace", "media", "--output", "json"]


def test_sync_secrets_by_name_and_unknown_name_is_a_clear_error() -> None:
    secrets = external_secrets_fact(three_secrets().runner(), TARGET, None)
    assert [s["metadata"]["name"] for s in select_secrets(secrets, names=["plex"])] == ["plex"]
    with pytest.raises(ToolkitError, match="no ExternalSecret named nope in any namespace"):
        select_secrets(secrets, names=["plex", "nope"])


def test_sync_secrets_with_nothing_to_sync_is_a_noop() -> None:
    plan = plan_sync_secrets("infra", TARGET, [], epoch=EPOCH)
    assert [s.noop for s in plan.steps] == ["no ExternalSecrets found"]


def test_sync_secrets_missing_crd_reads_as_none() -> None:
    kube = FakeKube()
    kube.failing["get " + EXTERNALSECRET] = Result(
        1, "", 'error: the server doesn\'t have a resource type "externalsecrets"'
    )
    assert external_secrets_fact(kube.runner(), TARGET, None) == []


def test_sync_secrets_names_the_secret_whose_store_fails() -> None:
    kube = three_secrets()
    kube.controllers.append(eso_controller(broken=frozenset({"sonarr"})))
    runner = kube.runner()
    plan = plan_sync_secrets("infra", TARGET, select_secrets(external_secrets_fact(runner, TARGET, None)), epoch=EPOCH)
    with pytest.raises(StepFailed) as info:
        run(plan, runner, out=quiet)
    msg = str(info.value)
    assert "1 of 3 not synced yet: media/sonarr (SecretSyncedError: item not found)" in msg


# ---------------------------------------------------------------------------------------------- hr-restart


def test_hr_restart_suspends_resumes_and_waits_ready() -> None:
    kube = FakeKube(ready_flux(HELMRELEASE, "media", "plex"))
    kube.controllers.append(flux_controller())
    runner = kube.runner()
    plan = plan_hr_restart("infra", TARGET, kube.get(HELMRELEASE, "media", "plex"), name="plex", namespace="media")
    run(plan, runner, out=quiet)
    assert [m[5:] for m in kube.mutations] == [
        ["suspend", "helmrelease", "plex", "--namespace", "media"],
        ["resume", "helmrelease", "plex", "--namespace", "media", "--wait=false"],
    ]
    hr = kube.get(HELMRELEASE, "media", "plex")
    assert hr is not None and not hr["spec"].get("suspend")


def test_hr_restart_unknown_release_is_a_clear_error() -> None:
    with pytest.raises(ToolkitError, match="HelmRelease media/nope not found"):
        plan_hr_restart("infra", TARGET, None, name="nope", namespace="media")


def test_hr_restart_failure_resumes_and_says_so() -> None:
    kube = FakeKube(ready_flux(HELMRELEASE, "media", "plex"))
    kube.controllers.append(flux_controller(fail="upgrade retries exhausted", stalled=True))
    runner = kube.runner()
    plan = plan_hr_restart("infra", TARGET, kube.get(HELMRELEASE, "media", "plex"), name="plex", namespace="media")
    with pytest.raises(RecoveryFailed) as info:
        run(plan, runner, out=quiet)
    msg = str(info.value)
    assert "stalled" in msg and "upgrade retries exhausted" in msg
    assert "resumed HelmRelease media/plex" in msg
    assert not kube.get(HELMRELEASE, "media", "plex")["spec"].get("suspend")  # type: ignore[index]


def test_hr_restart_resume_command_failure_is_retried_by_recovery_and_reported_if_it_fails_again() -> None:
    kube = FakeKube(ready_flux(HELMRELEASE, "media", "plex"))
    kube.failing["flux --kubeconfig /tmp/k8s-ops-test/kubeconfig --context infra resume"] = Result(
        1, "", "✗ conn refused"
    )
    runner = kube.runner()
    plan = plan_hr_restart("infra", TARGET, kube.get(HELMRELEASE, "media", "plex"), name="plex", namespace="media")
    with pytest.raises(RecoveryFailed) as info:
        run(plan, runner, out=quiet)
    assert "recovery INCOMPLETE" in str(info.value) and "resume helmrelease plex" in str(info.value)


# ---------------------------------------------------------------------------------------------- reconcile


def test_reconcile_defaults_to_the_root_kustomization_with_source() -> None:
    kube = FakeKube(ready_flux(KUSTOMIZATION, "flux-system", ROOT_KUSTOMIZATION))
    kube.controllers.append(flux_controller())
    runner = kube.runner()
    plan = plan_reconcile("infra", TARGET, kube.get(KUSTOMIZATION, "flux-system", "flux-system"), with_source=True)
    run(plan, runner, out=quiet)
    assert [m[5:] for m in kube.mutations] == [
        ["reconcile", "kustomization", "flux-system", "--namespace", "flux-system", "--with-source"]
    ]
    data = plan.to_json()
    assert data["steps"][0]["after"][0].startswith("Kustomization flux-system/flux-system Ready")


def test_reconcile_refuses_a_suspended_or_missing_kustomization() -> None:
    ks = ready_flux(KUSTOMIZATION, "flux-system", "apps")
    ks["spec"]["suspend"] = True
    with pytest.raises(ToolkitError, match="is suspended") as info:
        plan_reconcile("infra", TARGET, ks, name="apps")
    assert "--context infra resume ks apps -n flux-system" in str(info.value)
    with pytest.raises(ToolkitError, match="Kustomization flux-system/apps not found"):
        plan_reconcile("infra", TARGET, None, name="apps")


def test_reconcile_waits_for_the_requested_reconcile_not_an_old_ready() -> None:
    # Ready=True from before the request must not count: nobody reconciles, so the wait times out
    kube = FakeKube(ready_flux(KUSTOMIZATION, "flux-system", "flux-system"))
    runner = kube.runner()
    plan = plan_reconcile("infra", TARGET, kube.get(KUSTOMIZATION, "flux-system", "flux-system"))
    with pytest.raises(StepFailed, match="timed out"):
        run(plan, runner, out=quiet)


def test_reconcile_stalled_fails_at_once_with_the_message() -> None:
    kube = FakeKube(ready_flux(KUSTOMIZATION, "flux-system", "flux-system"))
    kube.controllers.append(flux_controller(fail="kustomize build failed: missing resource", stalled=True))
    plan = plan_reconcile("infra", TARGET, kube.get(KUSTOMIZATION, "flux-system", "flux-system"))
    with pytest.raises(StepFailed, match="kustomize build failed: missing resource"):
        run(plan, kube.runner(), out=quiet)


# ---------------------------------------------------------------------------------------------- cleanse-pods


def pod(ns: str, name: str, phase: str) -> Obj:
    o = obj("pods", ns, name)
    o["status"] = {"phase": phase}
    return o


def pods_kube() -> FakeKube:
    return FakeKube(
        pod("media", "plex-0", "Running"),
        pod("media", "job-a", "Succeeded"),
        pod("media", "job-b", "Failed"),
        pod("auth", "stuck", "Pending"),
        pod("auth", "old", "Failed"),
    )


def test_cleanse_pods_deletes_failed_and_succeeded_and_lists_them() -> None:
    kube = pods_kube()
    runner = kube.runner()
    pods = list_or_empty(runner, TARGET, "pods", all_namespaces=True)
    plan = plan_cleanse_pods("infra", TARGET, select_pods(pods))
    text = plan.to_text()
    assert "delete 2 pod(s) in media: job-a (Succeeded), job-b (Failed)" in text
    assert "3 pod(s): 1 Succeeded, 2 Failed" in text or "3 pod(s): 2 Failed, 1 Succeeded" in text
    assert "stuck" not in text and "plex-0" not in text
    run(plan, runner, out=quiet)
    assert sorted(n for (_, _, n) in kube.objects) == ["plex-0", "stuck"]
    assert ["delete", "pods", "job-a", "job-b", "--namespace", "media", "--ignore-not-found", "--wait=false"] in [
        m[5:] for m in kube.mutations
    ]


def test_cleanse_pods_pending_too_and_nothing_to_do() -> None:
    pods = [pod("auth", "stuck", "Pending"), pod("media", "plex-0", "Running")]
    assert [p["metadata"]["name"] for p in select_pods(pods, pending=True)] == ["stuck"]
    plan = plan_cleanse_pods("infra", TARGET, select_pods(pods), pending=False)
    assert plan.steps[0].noop == "no pods in phase Failed, Succeeded"
    assert json.loads(plan.to_json_text())["steps"][0]["noop"] == "no pods in phase Failed, Succeeded"
