"""Fault injection and the call log."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.sim.helpers import install_all, ok, run
from tests.sim.simlib.api import Sim


def test_hang_fault_blocks_until_killed(sim_demo: Sim) -> None:
    sim_demo.fault("hang", tool="talosctl", match="upgrade", seconds=30)
    with pytest.raises(subprocess.TimeoutExpired):
        sim_demo.run("talosctl", "-n", "10.5.0.11", "upgrade", "--insecure", "--wait=false", timeout=0.5)
    ok(sim_demo, "talosctl", "version", "--client")  # other invocations unaffected
    hung = [c for c in sim_demo.calls("talosctl") if "upgrade" in c["argv"]]
    assert hung and hung[0]["rc"] is None


def test_apply_rejected_and_fail_faults(sim_demo: Sim, tmp_path: Path) -> None:
    sim_demo.fault("apply-rejected", node="10.5.0.12", message="config rejected by policy", count=1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(sim_demo.machine_config("10.5.0.12"))
    r = run(sim_demo, "talosctl", "apply-config", "-i", "-n", "10.5.0.12", "-f", str(cfg))
    assert r.returncode == 1 and "code = InvalidArgument desc = config rejected by policy" in r.stderr
    ok(sim_demo, "talosctl", "apply-config", "-i", "-n", "10.5.0.12", "-f", str(cfg))  # count=1: gone
    sim_demo.fault("fail", tool="kubectl", match="get nodes", message="boom", exit=7)
    r = run(sim_demo, "kubectl", "get", "nodes")
    assert r.returncode == 7 and r.stderr == "boom\n"


def test_api_unreachable_faults(sim_demo: Sim, tmp_path: Path) -> None:
    _, tc = install_all(sim_demo, tmp_path)
    sim_demo.fault("talos-api-unreachable", node="10.5.0.14")
    r = run(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", "10.5.0.14", "version")
    assert "dial tcp 10.5.0.14:50000: i/o timeout" in r.stderr
    sim_demo.clear_faults()
    sim_demo.make_ready()
    sim_demo.fault("k8s-api-unreachable", cluster="demo")
    r = run(sim_demo, "kubectl", "--kubeconfig", str(sim_demo.root / "kubeconfig"), "get", "ns")
    assert (
        r.returncode == 1
        and r.stderr.strip() == "Unable to connect to the server: dial tcp 10.5.0.10:6443: i/o timeout"
    )
    r = run(sim_demo, "helm", "--kubeconfig", str(sim_demo.root / "kubeconfig"), "list")
    assert r.stderr.startswith('Error: Kubernetes cluster unreachable: Get "https://10.5.0.10:6443/version"')


def test_etcd_quorum_loss_takes_the_kubernetes_api_down(sim_demo: Sim) -> None:
    sim_demo.make_ready()
    kc = str(sim_demo.root / "kubeconfig")
    ok(sim_demo, "kubectl", "--kubeconfig", kc, "get", "ns")
    sim_demo.fault("etcd-unhealthy", node="10.5.0.11")
    ok(sim_demo, "kubectl", "--kubeconfig", kc, "get", "ns")  # 2 of 3 members: quorum holds
    sim_demo.fault("etcd-unhealthy", node="10.5.0.12")
    r = run(sim_demo, "kubectl", "--kubeconfig", kc, "get", "ns")
    assert r.returncode == 1 and "no route to host" in r.stderr  # the VIP is released without etcd


def test_pod_stuck_terminating(sim_demo: Sim) -> None:
    sim_demo.make_ready()
    k = ["--kubeconfig", str(sim_demo.root / "kubeconfig")]
    ok(sim_demo, "kubectl", *k, "create", "namespace", "media")
    deploy = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: plex, namespace: media}\nspec:\n  replicas: 1\n"
        "  selector: {matchLabels: {app: plex}}\n  template: {metadata: {labels: {app: plex}}, spec: {containers: [{name: c, image: x}]}}\n"  # noqa: E501
    )
    ok(sim_demo, "kubectl", *k, "apply", "-f", "-", input=deploy)
    assert "Running" in ok(sim_demo, "kubectl", *k, "-n", "media", "get", "pods")
    sim_demo.fault("pod-stuck-terminating", match="media/plex-")
    ok(sim_demo, "kubectl", *k, "-n", "media", "scale", "deployment", "plex", "--replicas=0")
    r = run(sim_demo, "kubectl", *k, "-n", "media", "wait", "pod", "-l", "app=plex", "--for=delete", "--timeout=200ms")
    assert r.returncode == 1 and "timed out" in r.stderr
    assert "Terminating" in ok(sim_demo, "kubectl", *k, "-n", "media", "get", "pods")
    sim_demo.clear_faults()
    ok(sim_demo, "kubectl", *k, "-n", "media", "wait", "pod", "-l", "app=plex", "--for=delete", "--timeout=5s")


def test_call_log_records_argv_and_stdin_size_never_content(sim_demo: Sim) -> None:
    sim_demo.make_ready()
    k = ["--kubeconfig", str(sim_demo.root / "kubeconfig")]
    secret = "AGE-SECRET-KEY-1SUPERSECRETVALUE"
    ok(
        sim_demo,
        "kubectl",
        *k,
        "-n",
        "default",
        "create",
        "secret",
        "generic",
        "sops-age",
        "--from-file=age.agekey=/dev/stdin",
        input=secret,
    )
    ok(sim_demo, "kubectl", *k, "get", "ns")
    log = (sim_demo.root / "calls.log").read_text()
    assert secret not in log
    calls = sim_demo.calls("kubectl")
    assert calls[-2]["stdin_bytes"] == len(secret) and calls[-1]["stdin_bytes"] is None
    assert calls[-2]["argv"][:2] == ["--kubeconfig", str(sim_demo.root / "kubeconfig")]
    assert calls[-2]["ts"] <= calls[-1]["ts"]
    for line in log.splitlines():
        assert set(json.loads(line)) >= {"tool", "argv", "stdin_bytes", "ts"}
