"""The talosctl simulator behaves like talosctl v1.12."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from k8s_ops.tools.talosctl import parse_json_stream
from tests.sim.helpers import applied, bootstrap, install_all, machinestatus, ok, run, write_configs
from tests.sim.simlib.api import Sim

CP1, CP2, CP3, WK1 = "10.5.0.11", "10.5.0.12", "10.5.0.13", "10.5.0.14"
X509 = "x509: certificate signed by unknown authority"


def test_maintenance_mode_answers_only_insecure(sim_demo: Sim, tmp_path: Path) -> None:
    st = machinestatus(sim_demo, CP1, "--insecure")
    assert st["node"] == CP1
    assert st["metadata"]["type"] == "MachineStatuses.runtime.talos.dev"  # type: ignore[index]
    assert st["spec"]["stage"] == "maintenance"  # type: ignore[index]
    assert "Tag:" in ok(sim_demo, "talosctl", "-n", CP1, "version", "--insecure")
    assert "512 GB" in ok(sim_demo, "talosctl", "-n", CP1, "get", "disks", "--insecure")
    tc = sim_demo.write_talosconfig(tmp_path / "tc")
    r = run(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP1, "get", "machinestatus")
    assert r.returncode == 1
    assert "transport: authentication handshake failed: tls: failed to verify certificate: " + X509 in r.stderr
    r = run(sim_demo, "talosctl", "-n", CP1, "get", "machineconfig", "--insecure")
    assert r.returncode == 1 and "PermissionDenied" in r.stderr


def test_install_then_insecure_refused_and_stale_talosconfig_rejected(sim_demo: Sim, tmp_path: Path) -> None:
    configs = write_configs(sim_demo, tmp_path)
    before = sim_demo.node(CP1)["boot_id"]
    r = run(sim_demo, "talosctl", "apply-config", "--insecure", "-n", CP1, "-f", str(configs[CP1]))
    assert r.returncode == 0, r.stderr
    sim_demo.settle()
    node = sim_demo.node(CP1)
    # installed and rebooted: a fresh controlplane stays `booting` (etcd waits to join) until `talosctl bootstrap`
    assert node["stage"] == "booting" and node["boot_id"] != before
    r = run(sim_demo, "talosctl", "apply-config", "--insecure", "-n", CP1, "-f", str(configs[CP1]))
    assert r.returncode == 1 and "tls: certificate required" in r.stderr
    good = sim_demo.write_talosconfig(tmp_path / "good")
    st = machinestatus(sim_demo, CP1, "--talosconfig", str(good))
    assert st["spec"]["stage"] == "booting" and st["spec"]["status"]["ready"] is False  # type: ignore[index]
    unmet = {c["name"] for c in st["spec"]["status"]["unmetConditions"]}  # type: ignore[index]
    assert unmet == {"services", "staticPods", "nodeReady"}
    stale = sim_demo.write_talosconfig(tmp_path / "stale", ca="c3RhbGUtY2E=")
    r = run(sim_demo, "talosctl", "--talosconfig", str(stale), "-n", CP1, "version")
    assert r.returncode == 1 and X509 in r.stderr
    # TALOSCONFIG env is honoured
    r = sim_demo.run("talosctl", "-n", CP1, "version", "--short", env={"TALOSCONFIG": str(good)})
    assert r.returncode == 0 and "Client:\nTalos v1.12.11" in r.stdout and "NODE:        10.5.0.11" in r.stdout


def test_insecure_apply_uses_only_the_first_node(sim_demo: Sim, tmp_path: Path) -> None:
    configs = write_configs(sim_demo, tmp_path)
    ok(sim_demo, "talosctl", "apply-config", "--insecure", "-n", f"{CP1},{CP2}", "-f", str(configs[CP1]))
    sim_demo.settle()
    assert sim_demo.node(CP1)["stage"] == "booting"
    assert sim_demo.node(CP2)["stage"] == "maintenance"


def test_maintenance_apply_modes_and_rejections(sim_demo: Sim, tmp_path: Path) -> None:
    configs = write_configs(sim_demo, tmp_path)
    r = run(sim_demo, "talosctl", "apply-config", "-i", "-n", CP1, "-f", str(configs[CP1]), "-m", "staged")
    assert r.returncode == 1
    assert (
        "code = Unimplemented desc = apply configuration --mode='staged' is not supported in maintenance mode"
        in r.stderr
    )
    out = applied(sim_demo, "apply-config", "-i", "-n", CP1, "-f", str(configs[CP1]), "--dry-run")
    assert out == "Dry run summary:\nNode is running in maintenance mode and does not have a config yet.\n"
    assert sim_demo.node(CP1)["stage"] == "maintenance"
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: x\nauto: 'off'\n")
    r = run(sim_demo, "talosctl", "apply-config", "-i", "-n", CP1, "-f", str(bad))
    assert (
        r.returncode == 1
        and "configuration validation failed" in r.stderr
        and "v1alpha1 config is required" in r.stderr
    )
    both = tmp_path / "both.yaml"
    both.write_text(sim_demo.machine_config(CP1, extra={"machine": {"install": {"extraKernelArgs": ["a=b"]}}}))
    r = run(sim_demo, "talosctl", "apply-config", "-i", "-n", CP1, "-f", str(both))
    assert "install.extraKernelArgs and install.grubUseUKICmdline can't be used together" in r.stderr
    r = run(sim_demo, "talosctl", "apply-config", "-i", "-n", CP1, "-f", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1 and 'failed to read configuration from "' in r.stderr
    r = run(sim_demo, "talosctl", "apply-config", "-i", "-n", CP1)
    assert r.returncode == 1 and "no filename supplied for configuration" in r.stderr


def test_configured_apply_modes_messages_and_reboots(sim_demo: Sim, tmp_path: Path) -> None:
    configs, tc = install_all(sim_demo, tmp_path)
    base = ["talosctl", "--talosconfig", str(tc), "-n", WK1, "apply-config", "-f", str(configs[WK1])]
    out = applied(sim_demo, *base[1:], "--dry-run")
    assert out.startswith(
        "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\n\nNo changes."
    )
    changed = tmp_path / "changed.yaml"
    changed.write_text(sim_demo.machine_config(WK1, extra={"machine": {"sysctls": {"vm.max_map_count": "262144"}}}))
    args = ["--talosconfig", str(tc), "-n", WK1, "apply-config", "-f", str(changed)]
    out = applied(sim_demo, *args, "--dry-run")
    assert "+    sysctls:" in out or "sysctls" in out
    boot = sim_demo.node(WK1)["boot_id"]
    assert applied(sim_demo, *args) == "Applied configuration without a reboot\n"
    assert sim_demo.node(WK1)["boot_id"] == boot
    assert (
        applied(sim_demo, *args, "-m", "staged") == "Staged configuration to be applied after the next reboot\n"
    )
    out = applied(sim_demo, *args, "--mode=try", "--timeout", "2m")
    assert out == (
        "Applied configuration without a reboot\n"
        "The config is applied in 'try' mode and will be automatically reverted back in 2m0s\n"
    )
    assert applied(sim_demo, *args, "-m", "reboot") == "Applied configuration with a reboot\n"
    assert sim_demo.node(WK1)["stage"] in ("rebooting", "booting") or sim_demo.node(WK1)["phase"] != "up"
    sim_demo.settle()
    assert sim_demo.node(WK1)["boot_id"] != boot
    disk = tmp_path / "disk.yaml"
    disk.write_text(sim_demo.machine_config(WK1, extra={"machine": {"install": {"disk": "/dev/sdb"}}}))
    r = run(
        sim_demo, "talosctl", "--talosconfig", str(tc), "-n", WK1, "apply-config", "-f", str(disk), "-m", "no-reboot"
    )
    assert r.returncode == 1 and "can't be applied in immediate mode" in r.stderr
    out = applied(sim_demo, "--talosconfig", str(tc), "-n", WK1, "apply-config", "-f", str(disk))
    assert out.startswith("Applied configuration with a reboot")
    nov1 = tmp_path / "nov1.yaml"
    nov1.write_text("apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: x\nauto: 'off'\n")
    r = run(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP1, "apply-config", "-f", str(nov1))
    assert "doesn't contain v1alpha1 config, did you mean to patch the machine config instead?" in r.stderr


def test_try_mode_reverts_after_timeout(sim_demo: Sim, tmp_path: Path) -> None:
    _, tc = install_all(sim_demo, tmp_path)
    sim_demo.set("timeout_scale", 0.001)
    changed = tmp_path / "changed.yaml"
    changed.write_text(sim_demo.machine_config(WK1, hostname="renamed"))
    ok(
        sim_demo,
        "talosctl",
        "--talosconfig",
        str(tc),
        "-n",
        WK1,
        "apply-config",
        "-f",
        str(changed),
        "-m",
        "try",
        "--timeout",
        "1m",
    )
    sim_demo.set("timeout_scale", 1.0)
    assert sim_demo.node(WK1)["name"] == "renamed"  # looking does not move time (logical clock)
    sim_demo.advance(0.05)  # one step: 0.06 s have not passed yet
    assert sim_demo.node(WK1)["name"] == "renamed"
    sim_demo.advance(0.05)
    assert sim_demo.node(WK1)["name"] == "demo-wk-1"


def test_boot_id_changes_on_every_reboot(sim_demo: Sim, tmp_path: Path) -> None:
    _, tc = install_all(sim_demo, tmp_path)
    ids = set()
    for _ in range(2):
        ids.add(
            ok(
                sim_demo, "talosctl", "--talosconfig", str(tc), "-n", WK1, "read", "/proc/sys/kernel/random/boot_id"
            ).strip()
        )
        ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", WK1, "reboot", "--wait=false")
        sim_demo.settle()
    ids.add(
        ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", WK1, "read", "/proc/sys/kernel/random/boot_id").strip()
    )
    assert len(ids) == 3


def test_bootstrap_once_already_exists_and_worker_refused(sim_demo: Sim, tmp_path: Path) -> None:
    _, tc = install_all(sim_demo, tmp_path)
    t = ["--talosconfig", str(tc)]
    r = run(sim_demo, "talosctl", *t, "-n", WK1, "bootstrap")
    assert r.returncode == 1 and "bootstrap can only be performed on a control plane node" in r.stderr
    # accepted while the controlplane is still `booting` (etcd waits to join), which then finishes its boot
    assert machinestatus(sim_demo, CP1, "--talosconfig", str(tc))["spec"]["stage"] == "booting"  # type: ignore[index]
    assert "STATE    Preparing" in ok(sim_demo, "talosctl", *t, "-n", CP1, "service", "etcd")
    ok(sim_demo, "talosctl", *t, "-n", CP1, "bootstrap")
    assert machinestatus(sim_demo, CP1, "--talosconfig", str(tc))["spec"]["stage"] == "running"  # type: ignore[index]
    assert "STATE    Running" in ok(sim_demo, "talosctl", *t, "-n", CP1, "service", "etcd")
    r = run(sim_demo, "talosctl", *t, "-n", CP1, "bootstrap")
    assert r.returncode == 1
    assert (
        r.stderr.strip()
        == "error executing bootstrap: rpc error: code = AlreadyExists desc = etcd data directory is not empty"
    )
    out = ok(sim_demo, "talosctl", *t, "-n", CP1, "etcd", "members")
    assert out.splitlines()[0].split() == ["NODE", "ID", "HOSTNAME", "PEER", "URLS", "CLIENT", "URLS", "LEARNER"]
    assert {"demo-cp-1", "demo-cp-2", "demo-cp-3"} <= set(out.split())
    assert "MEMBER" in ok(sim_demo, "talosctl", *t, "-n", CP1, "etcd", "status")
    r = run(sim_demo, "talosctl", *t, "-n", CP2, "bootstrap")
    assert "AlreadyExists" in r.stderr  # joined members hold data too


def test_kubeconfig_and_vip_only_after_bootstrap(sim_demo: Sim, tmp_path: Path) -> None:
    _, tc = install_all(sim_demo, tmp_path)
    kc = tmp_path / "kc"
    ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP1, "kubeconfig", str(kc), "--merge=false")
    data = json.loads(json.dumps(__import__("yaml").safe_load(kc.read_text())))
    assert data["clusters"][0]["cluster"]["server"] == "https://10.5.0.10:6443"
    assert data["current-context"] == "admin@demo"
    assert oct(kc.stat().st_mode & 0o777) == "0o600"
    r = run(sim_demo, "kubectl", "--kubeconfig", str(kc), "get", "nodes")
    assert r.returncode == 1 and "dial tcp 10.5.0.10:6443: connect: no route to host" in r.stderr
    r = run(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP1, "kubeconfig", str(kc), "--merge=false")
    assert r.returncode == 1 and "already exists" in r.stderr
    ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP1, "bootstrap")
    assert "demo-cp-1" in ok(sim_demo, "kubectl", "--kubeconfig", str(kc), "get", "nodes")
    out = ok(
        sim_demo,
        "talosctl",
        "--talosconfig",
        str(tc),
        "-n",
        CP1,
        "kubeconfig",
        "-",
        "--merge=false",
        "--force-context-name",
        "main",
    )
    # --force-context-name is a merge option: stdout (no merge) gets talosctl's raw `admin@<cluster>` context
    assert "current-context: admin@demo" in out and "main" not in out
    ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP1, "kubeconfig")
    ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP1, "kubeconfig")
    merged = __import__("yaml").safe_load((Path(sim_demo.env()["HOME"]) / ".kube" / "config").read_text())
    assert {c["name"] for c in merged["contexts"]} == {"admin@demo", "admin@demo-1"}


def test_upgrade_wait_changes_version_and_schematic(sim_demo: Sim, tmp_path: Path) -> None:
    tc, _ = bootstrap(sim_demo, tmp_path, cni=True)  # --wait needs the node running *and* ready: a CNI
    img = "factory.talos.dev/installer/" + "a" * 64 + ":v1.12.11"
    t = ["--talosconfig", str(tc), "-n", CP2]
    boot = sim_demo.node(CP2)["boot_id"]
    r = run(sim_demo, "talosctl", *t, "upgrade", "--image", img, "--wait", "--timeout", "1m")
    assert r.returncode == 0, r.stderr
    node = sim_demo.node(CP2)
    assert node["boot_id"] != boot and node["stage"] == "running"
    assert node["installed_image"] == img and node["schematic"] == "a" * 64
    assert "\tTag:         v1.12.11\n" in ok(sim_demo, "talosctl", *t, "version").split("Server:")[1]
    r = run(sim_demo, "talosctl", *t, "upgrade", "--image", img, "--wait-timeout", "5m")
    assert r.returncode == 1 and r.stderr.startswith("unknown flag: --wait-timeout")
    out = ok(sim_demo, "talosctl", *t, "upgrade", "-i", "ghcr.io/siderolabs/installer:v1.12.12", "--wait=false")
    assert out.split()[:3] == ["NODE", "ACK", "STARTED"] and "Upgrade request received" in out
    sim_demo.settle()
    assert sim_demo.node(CP2)["talos_version"] == "v1.12.12"
    r = run(sim_demo, "talosctl", *t, "upgrade", "-i", "not an image", "--wait=false")
    assert r.returncode == 1 and "error validating installer image" in r.stderr


def test_get_extensions_lists_the_schematic_of_the_installed_image(sim_demo: Sim, tmp_path: Path) -> None:
    # installed with the generic installer: no extensions; a CNI, as upgrade --wait waits for ready
    tc, _ = bootstrap(sim_demo, tmp_path, cni=True)
    t = ["--talosconfig", str(tc), "-n", CP2]
    assert ok(sim_demo, "talosctl", *t, "get", "extensions", "-o", "json") == ""
    # `sim create` registered the inventory's schematic (intel-ucode, iscsi-tools) under its factory ID.
    (known,) = sim_demo.cluster()["schematics"]
    assert sim_demo.cluster()["schematics"][known] == ["siderolabs/intel-ucode", "siderolabs/iscsi-tools"]
    ok(sim_demo, "talosctl", *t, "upgrade", "--image", f"factory.talos.dev/metal-installer/{known}:v1.12.11")
    docs = parse_json_stream(ok(sim_demo, "talosctl", *t, "get", "extensions", "-o", "json"))
    assert {d["node"] for d in docs} == {CP2}
    assert {d["metadata"]["type"] for d in docs} == {"ExtensionStatuses.runtime.talos.dev"}
    assert [d["metadata"]["id"] for d in docs] == ["0", "1", "2"]
    meta = [d["spec"]["metadata"] for d in docs]
    assert [m["name"] for m in meta] == ["intel-ucode", "iscsi-tools", "schematic"] and meta[2]["version"] == known
    table = ok(sim_demo, "talosctl", *t, "get", "extensions").splitlines()
    assert table[0].split() == ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", "NAME", "VERSION"]
    assert table[2].split()[2:6] == ["ExtensionStatus", "1", "1", "iscsi-tools"]
    # An ID the simulator was not told about carries no extensions (only the factory's marker) ...
    other = "b" * 64
    ok(sim_demo, "talosctl", *t, "upgrade", "--image", f"factory.talos.dev/metal-installer/{other}:v1.12.11")
    names = ok(sim_demo, "talosctl", *t, "get", "extensions", "-o", "jsonpath={.spec.metadata.name}")
    assert names.split() == ["schematic"]
    # ... until `sim set-schematic` says which it does.
    ok(sim_demo, "sim", "set-schematic", other, "siderolabs/zfs")
    out = ok(sim_demo, "talosctl", *t, "get", "extensions", "-o", "jsonpath={.spec.metadata.name}")
    assert out.split() == ["zfs", "schematic"]


def test_upgrade_refused_while_etcd_unhealthy_unless_forced(sim_demo: Sim, tmp_path: Path) -> None:
    tc, _ = bootstrap(sim_demo, tmp_path)
    sim_demo.fault("etcd-unhealthy", node=CP3)
    t = ["--talosconfig", str(tc), "-n", CP2]
    r = run(sim_demo, "talosctl", *t, "upgrade", "--wait=false")
    assert r.returncode == 1 and "is not healthy; all members must be healthy to perform an upgrade" in r.stderr
    ok(sim_demo, "talosctl", *t, "upgrade", "--wait=false", "--force")
    ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", WK1, "upgrade", "--wait=false")


def test_upgrade_wait_times_out_when_node_never_returns(sim_demo: Sim, tmp_path: Path) -> None:
    _, tc = install_all(sim_demo, tmp_path)
    sim_demo.fault("node-never-returns", node=WK1)
    sim_demo.set("timeout_scale", 0.01)
    r = run(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", WK1, "upgrade", "--timeout", "30s")
    assert r.returncode == 1 and "timeout" in r.stderr
    r = run(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", WK1, "version")
    assert "connect: connection refused" in r.stderr
    sim_demo.clear_faults()
    sim_demo.settle()
    assert sim_demo.node(WK1)["stage"] == "running"


def test_reset_returns_node_to_maintenance_and_graceful_leaves_etcd(sim_demo: Sim, tmp_path: Path) -> None:
    tc, _ = bootstrap(sim_demo, tmp_path)
    t = ["--talosconfig", str(tc)]
    ok(
        sim_demo,
        "talosctl",
        *t,
        "-n",
        CP3,
        "reset",
        "--reboot",
        "--system-labels-to-wipe",
        "STATE",
        "--system-labels-to-wipe",
        "EPHEMERAL",
        "--wait",
        "--timeout",
        "1m",
    )
    assert sim_demo.node(CP3)["stage"] == "maintenance"
    members = ok(sim_demo, "talosctl", *t, "-n", CP1, "etcd", "members")
    assert "demo-cp-3" not in members
    # non-graceful reset leaves a stale member behind, which breaks health until removed
    ok(sim_demo, "talosctl", *t, "-n", CP2, "reset", "--graceful=false", "--reboot", "--wait=false")
    sim_demo.settle()
    members = ok(sim_demo, "talosctl", *t, "-n", CP1, "etcd", "members")
    assert "demo-cp-2" in members
    stale_id = next(line.split()[1] for line in members.splitlines() if "demo-cp-2" in line)
    ok(sim_demo, "talosctl", *t, "-n", CP1, "etcd", "remove-member", stale_id)
    assert "demo-cp-2" not in ok(sim_demo, "talosctl", *t, "-n", CP1, "etcd", "members")
    ok(sim_demo, "talosctl", *t, "-n", WK1, "reset", "--wait=false")
    sim_demo.settle()
    r = run(sim_demo, "talosctl", "-n", WK1, "version", "--insecure")
    assert r.returncode == 1 and "no route to host" in r.stderr  # shut down (no --reboot)
    sim_demo.power_on(WK1)
    sim_demo.settle()
    assert machinestatus(sim_demo, WK1, "--insecure")["spec"]["stage"] == "maintenance"  # type: ignore[index]


def test_etcd_snapshot_and_disaster_recovery(sim_demo: Sim, tmp_path: Path) -> None:
    tc, kc = bootstrap(sim_demo, tmp_path)
    ok(sim_demo, "kubectl", "--kubeconfig", str(kc), "create", "namespace", "keepme")
    snap = tmp_path / "db.snapshot"
    out = ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP1, "etcd", "snapshot", str(snap))
    assert out.startswith(f'etcd snapshot saved to "{snap}" (') and "snapshot info: hash " in out
    sim_demo.wipe()
    assert sim_demo.node(CP1)["stage"] == "maintenance"
    _, tc = install_all(sim_demo, tmp_path)
    out = ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP1, "bootstrap", "--recover-from", str(snap))
    assert out.startswith(f'recovering from snapshot "{snap}": hash ')
    assert "keepme" in ok(sim_demo, "kubectl", "--kubeconfig", str(kc), "get", "ns")
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"not a snapshot")
    r = run(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP2, "bootstrap", "--recover-from", str(bogus))
    assert r.returncode == 1


def test_health_fails_before_bootstrap_and_passes_when_complete(sim_demo: Sim, tmp_path: Path) -> None:
    _, tc = install_all(sim_demo, tmp_path)
    r = run(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP1, "health", "--wait-timeout", "300ms")
    assert r.returncode == 1
    assert (
        "waiting for etcd to be healthy: ..." in r.stderr
        and 'service "etcd" not in expected state "Running"' in r.stderr
    )
    assert "healthcheck error: rpc error: code = DeadlineExceeded desc = context deadline exceeded" in r.stderr
    sim_demo.make_ready()
    ok(sim_demo, "helm", "repo", "add", "coredns", "https://coredns.github.io/helm")
    ok(
        sim_demo,
        "helm",
        "--kubeconfig",
        str(sim_demo.root / "kubeconfig"),
        "upgrade",
        "--install",
        "coredns",
        "coredns/coredns",
        "-n",
        "kube-system",
        "--set",
        "k8sAppLabelOverride=kube-dns",
        "--wait",
    )
    r = run(
        sim_demo,
        "talosctl",
        "--talosconfig",
        str(sim_demo.root / "talosconfig"),
        "-n",
        CP1,
        "health",
        "--control-plane-nodes",
        f"{CP1},{CP2},{CP3}",
        "--worker-nodes",
        f"{WK1},10.5.0.15",
        "--wait-timeout",
        "2s",
    )
    assert r.returncode == 0, r.stderr
    assert "waiting for all k8s nodes to report ready: OK" in r.stderr
    assert "waiting for kube-proxy to report ready: SKIP" in r.stderr


def test_upgrade_k8s_updates_kubelets(sim_demo: Sim) -> None:
    sim_demo.make_ready()
    tc, kc = str(sim_demo.root / "talosconfig"), str(sim_demo.root / "kubeconfig")
    r = run(sim_demo, "talosctl", "--talosconfig", tc, "-n", CP1, "upgrade-k8s", "--to", "1.37.0")
    assert r.returncode == 1 and "unsupported upgrade path 1.35->1.37" in r.stderr
    out = ok(sim_demo, "talosctl", "--talosconfig", tc, "-n", CP1, "upgrade-k8s", "--to", "1.36.1", "--dry-run")
    assert "skipped in dry-run" in out
    assert "v1.35.0" in ok(sim_demo, "kubectl", "--kubeconfig", kc, "get", "nodes")
    out = ok(sim_demo, "talosctl", "--talosconfig", tc, "-n", CP1, "upgrade-k8s", "--to", "1.36.1")
    assert 'updating kubelet to version "1.36.1"' in out
    versions = ok(
        sim_demo,
        "kubectl",
        "--kubeconfig",
        kc,
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[*].status.nodeInfo.kubeletVersion}",
    )
    assert set(versions.split()) == {"v1.36.1"}
    cfg = ok(sim_demo, "talosctl", "--talosconfig", tc, "-n", WK1, "get", "machineconfig", "-o", "jsonpath={.spec}")
    assert "ghcr.io/siderolabs/kubelet:v1.36.1" in cfg


def test_concurrent_applies_keep_every_node(sim_demo: Sim, tmp_path: Path) -> None:
    configs, tc = install_all(sim_demo, tmp_path)
    for a in configs:
        configs[a].write_text(
            sim_demo.machine_config(a, extra={"machine": {"sysctls": {"fs.inotify.max_user_watches": "1048576"}}})
        )
    procs = [
        subprocess.Popen(
            ["talosctl", "--talosconfig", str(tc), "-n", a, "apply-config", "-f", str(p)],
            env=sim_demo.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a, p in configs.items()
    ]
    outs = [pr.communicate(timeout=30) for pr in procs]
    assert all(pr.returncode == 0 for pr in procs), outs
    for a in configs:
        assert "max_user_watches" in sim_demo.node(a)["config"]["yaml"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["upgrade", "--bogus"], "unknown flag: --bogus"),
        (["get", "-z"], "unknown shorthand flag: 'z' in -z"),
        (["apply-config", "--file"], "flag needs an argument: --file"),
        (
            ["health", "--wait-timeout", "10"],
            'invalid argument "10" for "--wait-timeout" flag: time: missing unit in duration "10"',
        ),
        (["reset", "--graceful=maybe"], 'invalid argument "maybe" for "--graceful" flag'),
        (["frobnicate"], 'unknown command "frobnicate" for "talosctl"'),
    ],
)
def test_cobra_style_flag_errors(sim_demo: Sim, argv: list[str], message: str) -> None:
    r = run(sim_demo, "talosctl", *argv)
    assert r.returncode == 1 and message in r.stderr


def test_global_flags_anywhere_and_equals_forms(sim_demo: Sim, tmp_path: Path) -> None:
    _, tc = install_all(sim_demo, tmp_path)
    a = ok(sim_demo, "talosctl", "get", f"--talosconfig={tc}", "machinestatus", "--nodes", CP1, "-oyaml")
    b = ok(sim_demo, "talosctl", "--talosconfig", str(tc), "-n", CP1, "get", "machinestatus", "--output=yaml")
    assert "stage: booting" in a and a.split("updated")[0] == b.split("updated")[0]
    assert ok(sim_demo, "talosctl", "version", "--client", "--short") == "Client:\nTalos v1.12.11\n"
