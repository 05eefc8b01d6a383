"""k8s_ops.tools.kubectl and k8s_ops.tools.flux: explicit kubeconfig/context on every argv, builders and parsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from k8s_ops.core.command import Result
from k8s_ops.tools import flux, kubectl
from k8s_ops.tools.flux import REQUESTED_AT, ROOT_KUSTOMIZATION, flux_status
from k8s_ops.tools.kubectl import KubeTarget


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path))
    return tmp_path


def test_argv_always_names_the_clusters_kubeconfig_and_context(build: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/somewhere/else")
    assert kubectl.kubectl("apps", "get", "nodes") == (
        "kubectl", "--kubeconfig", str(build / "apps" / "kubeconfig"), "--context", "apps", "get", "nodes",
    )  # fmt: skip
    assert flux.flux("infra", "get", "ks")[:5] == (
        "flux", "--kubeconfig", str(build / "infra" / "kubeconfig"), "--context", "infra",
    )  # fmt: skip
    explicit = KubeTarget(Path("/tmp/kc"), "admin@infra")
    assert kubectl.kubectl(explicit, "version")[1:5] == ("--kubeconfig", "/tmp/kc", "--context", "admin@infra")


def test_builders_mutate_flags_and_exact_argv() -> None:
    t = KubeTarget(Path("/k"), "c")
    get = kubectl.get(t, "pods", namespace="media", selector="app=x")
    assert not get.mutates and get.display_argv()[5:] == [
        "get", "pods", "--namespace", "media", "--selector", "app=x", "--output", "json",
    ]  # fmt: skip
    patch = kubectl.merge_patch(t, "rs", "a", {"spec": {"trigger": {"manual": None}}}, namespace="n")
    assert patch.mutates and patch.display_argv()[-2:] == ["--patch", '{"spec":{"trigger":{"manual":null}}}']
    apply = kubectl.apply_manifest(t, [{"kind": "A"}, {"kind": "B"}])
    assert isinstance(apply.stdin, bytes)
    assert [i["kind"] for i in json.loads(apply.stdin)["items"]] == ["A", "B"]
    assert kubectl.delete(t, "pods", ["a"], namespace="n", wait=False).display_argv()[-2:] == [
        "--ignore-not-found",
        "--wait=false",
    ]
    assert flux.reconcile(t, "helmrelease", "x", "n", force=True).display_argv()[-1] == "--force"
    with pytest.raises(ValueError, match="only for HelmReleases"):
        flux.reconcile(t, "kustomization", "x", "n", force=True)
    assert flux.resume(t, "kustomization", "x", "n").display_argv()[-1] == "--wait=false"


def test_root_kustomization_is_defined_once() -> None:
    assert ROOT_KUSTOMIZATION == "flux-system"
    assert flux.FLUX_NAMESPACE == "flux-system"


def test_parsers() -> None:
    items = kubectl.parse_items(Result(0, json.dumps({"kind": "List", "items": [{"a": 1}]})))
    assert items == [{"a": 1}]
    assert kubectl.parse_items(Result(0, json.dumps({"kind": "Pod"}))) == [{"kind": "Pod"}]
    with pytest.raises(kubectl.KubectlOutputError, match="did not print JSON"):
        kubectl.parse_object(Result(0, "No resources found"))
    assert kubectl.is_not_found(Result(1, "", 'Error from server (NotFound): pods "x" not found'))
    assert not kubectl.is_not_found(Result(1, "", "Unable to connect to the server: dial tcp: i/o timeout"))
    t = kubectl.parse_time("2026-01-01T00:00:00Z")
    assert t is not None and t.timestamp() == 1_767_225_600
    assert kubectl.parse_time("garbage") is None


def flux_obj(**kw: object) -> dict[str, object]:
    o: dict[str, object] = {
        "metadata": {"name": "a", "namespace": "n", "generation": 2, "annotations": {REQUESTED_AT: "t2"}},
        "spec": {},
        "status": {
            "observedGeneration": 2,
            "lastHandledReconcileAt": "t2",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "ok"}],
        },
    }
    o.update(kw)
    return o


def test_flux_status_reconciled_needs_current_generation_and_request() -> None:
    assert flux_status(flux_obj()).reconciled
    old_request = flux_obj()
    old_request["status"]["lastHandledReconcileAt"] = "t1"  # type: ignore[index]
    assert not flux_status(old_request).reconciled
    old_gen = flux_obj()
    old_gen["status"]["observedGeneration"] = 1  # type: ignore[index]
    assert not flux_status(old_gen).reconciled
    s = flux_status(flux_obj(spec={"suspend": True}))
    assert s.suspended and "suspended" in s.describe()
    assert flux_status({"metadata": {"name": "x"}}).ready is None
