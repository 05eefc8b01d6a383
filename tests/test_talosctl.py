"""k8s_ops/tools/talosctl.py: every emitted flag exists in talosctl v1.12 (CLI reference), and the output parsers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from k8s_ops.core.command import Command, Result, TempFile
from k8s_ops.core.paths import repo_root
from k8s_ops.core.secret import Secret
from k8s_ops.tools.talosctl import (
    Extension,
    Talosctl,
    TalosctlOutputError,
    go_duration,
    parse_apply_preview,
    parse_boot_id,
    parse_etcd_members,
    parse_etcd_status,
    parse_extensions,
    parse_machinestatus,
    parse_table,
    parse_versions,
    validate_command,
)

REFERENCE = Path(repo_root()).parent / "shared" / "reference" / "talos" / "cli-v1.12.11.md"
IMAGE = "factory.talos.dev/metal-installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.12.11"

# --------------------------------------------------------------------------- the CLI reference


def parse_reference(text: str) -> dict[tuple[str, ...], set[str]]:
    """`## talosctl <words>` sections -> the flags of their `### Options` (+ inherited) blocks: `--long`, `-s`."""
    commands: dict[tuple[str, ...], set[str]] = {}
    current: tuple[str, ...] | None = None
    in_options = False
    in_block = False
    for line in text.splitlines():
        if line.startswith("## talosctl"):
            current = tuple(line[len("## talosctl") :].split())
            commands.setdefault(current, set())
            in_options = False
            continue
        if line.startswith("### "):
            in_options = line.startswith("### Options")
            continue
        if line.startswith("```"):
            in_block = not in_block
            continue
        if current is not None and in_options and in_block:
            m = re.match(r"^\s+(?:-(\w), )?--([\w-]+)", line)
            if m:
                if m.group(1):
                    commands[current].add("-" + m.group(1))
                commands[current].add("--" + m.group(2))
    return commands


@pytest.fixture(scope="module")
def reference() -> dict[tuple[str, ...], set[str]]:
    if not REFERENCE.is_file():
        pytest.skip(f"talosctl CLI reference not available ({REFERENCE}: ../shared is absent)")
    return parse_reference(REFERENCE.read_text())


def unknown_flags(argv: list[str], reference: dict[tuple[str, ...], set[str]]) -> tuple[tuple[str, ...], list[str]]:
    """The talosctl command an argv runs and the flags it uses that the reference does not list."""
    assert argv[0] == "talosctl"
    words: list[str] = []
    for token in argv[1:]:
        if token.startswith("-") or tuple([*words, token]) not in reference:
            break
        words.append(token)
    command = tuple(words)
    assert command, f"no such talosctl command: {argv}"
    allowed = reference[command]
    bad = []
    for token in argv[1 + len(words) :]:
        if token.startswith("-") and token != "-":
            flag = token.split("=", 1)[0]
            if flag not in allowed:
                bad.append(flag)
    return command, bad


def every_command() -> list[Command]:
    """One call of every builder, in every variant it has."""
    t = Talosctl(Path("/b/demo/talosconfig"), ("10.5.0.11", "10.5.0.12", "10.5.0.13"))
    cfg = TempFile("demo-cp-1.yaml", Secret(b"machine: {}"))
    out = [
        t.machinestatus(["10.5.0.11"]),
        t.machinestatus(["10.5.0.11", "10.5.0.14"]),
        t.machinestatus(["10.5.0.14"], insecure=True),
        t.boot_id("10.5.0.11"),
        t.version(["10.5.0.11", "10.5.0.12"]),
        t.extensions(["10.5.0.11", "10.5.0.14"]),
        t.etcd_members("10.5.0.11"),
        t.etcd_status(["10.5.0.11", "10.5.0.12", "10.5.0.13"]),
        t.etcd_snapshot("10.5.0.11", Path("/state/backups/demo/etcd.snapshot")),
        t.upgrade("10.5.0.11", IMAGE, timeout=600, host="demo-cp-1"),
        t.upgrade("10.5.0.11", IMAGE, timeout=0.5, host="demo-cp-1", reboot_mode="powercycle"),
        t.reboot("10.5.0.14", timeout=600, host="demo-wk-1", mode="powercycle"),
        t.reset("10.5.0.14", graceful=True, host="demo-wk-1"),
        t.reset("10.5.0.11", graceful=False, host="demo-cp-1", timeout=60),
        t.upgrade_k8s("10.5.0.11", "v1.35.1", dry_run=True),
        t.upgrade_k8s("10.5.0.11", "1.35.1", dry_run=False),
        t.kubeconfig("10.5.0.11", Path("/b/demo/kubeconfig"), context="demo"),
        t.health("10.5.0.11", controlplanes=["10.5.0.11"], workers=["10.5.0.14"], wait_timeout=600),
        t.health("10.5.0.11", controlplanes=["10.5.0.11"], workers=[], wait_timeout=30),
        t.service_etcd(["10.5.0.11", "10.5.0.12", "10.5.0.13"]),
        t.bootstrap("10.5.0.11", host="demo-cp-1"),
        t.bootstrap("10.5.0.11", host="demo-cp-1", recover_from=Path("/state/backups/demo/etcd.snapshot")),
        validate_command(cfg, host="demo-cp-1"),
    ]
    for mode in ("auto", "no-reboot", "reboot", "staged", "try"):
        out.append(t.apply_config("10.5.0.11", cfg, mode=mode, insecure=False, host="demo-cp-1"))
        out.append(t.apply_preview("10.5.0.11", cfg, mode=mode, insecure=False, host="demo-cp-1"))
    out.append(t.apply_config("10.5.0.14", cfg, mode="auto", insecure=True, host="demo-wk-1"))
    out.append(t.apply_preview("10.5.0.14", cfg, mode="auto", insecure=True, host="demo-wk-1"))
    return out


def test_reference_parser_reads_known_flags(reference: dict[tuple[str, ...], set[str]]) -> None:
    assert {"--image", "-i", "--timeout", "--reboot-mode", "--nodes", "-n", "--talosconfig"} <= reference[("upgrade",)]
    assert "--wait-timeout" not in reference[("upgrade",)]
    assert "--preserve" not in reference[("upgrade",)]
    assert "--wait-timeout" in reference[("health",)]
    assert "--nodes" in reference[("etcd", "status")]  # inherited options count


@pytest.mark.parametrize("command", every_command(), ids=lambda c: c.display()[:70])
def test_every_emitted_flag_exists_in_talosctl_v1_12(
    command: Command, reference: dict[tuple[str, ...], set[str]]
) -> None:
    name, bad = unknown_flags(command.display_argv(), reference)
    assert bad == [], f"talosctl {' '.join(name)} has no flag(s) {bad}"


def test_the_flag_check_catches_a_made_up_flag(reference: dict[tuple[str, ...], set[str]]) -> None:
    # The peers' bug: `upgrade --wait-timeout` (only `health` has it) and the hidden `--preserve`.
    _, bad = unknown_flags(["talosctl", "upgrade", "-n", "1.2.3.4", "--wait-timeout", "10m", "--preserve"], reference)
    assert bad == ["--wait-timeout", "--preserve"]
    with pytest.raises(AssertionError):
        unknown_flags(["talosctl", "generate-iso", "--talosconfig", "x"], reference)


def test_authenticated_calls_name_talosconfig_and_controlplane_endpoints() -> None:
    for command in every_command():
        argv = command.display_argv()
        if argv[1] == "validate":
            assert "--talosconfig" not in argv and "-n" not in argv  # offline: no node, no credentials
            continue
        assert argv[argv.index("--talosconfig") + 1] == "/b/demo/talosconfig"
        if "--insecure" in argv:
            assert "-e" not in argv  # the maintenance API uses -n as endpoint
            continue
        endpoints = argv[argv.index("-e") + 1]
        if argv[1] in ("reset", "bootstrap"):
            assert endpoints == argv[argv.index("-n") + 1]  # the node itself: never proxied, never the VIP
        else:
            assert endpoints == "10.5.0.11,10.5.0.12,10.5.0.13"


def test_upgrade_uses_the_factory_image_and_timeout_never_preserve_or_force() -> None:
    t = Talosctl(Path("/tc"), ("10.5.0.11",))
    argv = t.upgrade("10.5.0.14", IMAGE, timeout=600, host="demo-wk-1").display_argv()
    assert argv[argv.index("--image") + 1] == IMAGE
    assert argv[argv.index("--timeout") + 1] == "10m"
    assert not {"--preserve", "-p", "--force", "-f", "--stage", "--insecure"} & set(argv)


def test_apply_passes_the_config_as_a_temp_file_never_inline() -> None:
    t = Talosctl(Path("/tc"), ("10.5.0.11",))
    secret = Secret(b"machine:\n  token: s3cr3t-token\n")
    cmd = t.apply_config("10.5.0.11", TempFile("demo-cp-1.yaml", secret), mode="auto", insecure=False, host="x")
    assert "$TMP/demo-cp-1.yaml" in cmd.display()
    assert "s3cr3t" not in cmd.display() and "s3cr3t" not in str(cmd.to_json())
    assert cmd.stdin is None


def test_reset_wipes_state_and_ephemeral_and_does_not_wait_on_the_wiped_node() -> None:
    argv = Talosctl(Path("/tc"), ("10.5.0.11",)).reset("10.5.0.14", graceful=False, host="w").display_argv()
    labels = [argv[i + 1] for i, a in enumerate(argv) if a == "--system-labels-to-wipe"]
    assert labels == ["STATE", "EPHEMERAL"]
    assert "--graceful=false" in argv and "--reboot" in argv and "--wait=false" in argv


def test_for_cluster_never_uses_the_vip_as_endpoint() -> None:
    from k8s_ops.talos.inventory import load_cluster

    cluster = load_cluster("demo")
    t = Talosctl.for_cluster(cluster)
    assert t.endpoints == tuple(str(n.address) for n in cluster.controlplanes)
    assert str(cluster.endpoint) not in t.endpoints
    assert t.talosconfig.name == "talosconfig"


@pytest.mark.parametrize(
    ("seconds", "text"), [(600, "10m"), (90, "90s"), (60, "1m"), (0.25, "0.25s"), (1.5, "1.5s"), (0.0004, "0.001s")]
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


# --------------------------------------------------------------------------- parsers

MACHINESTATUS = """{
    "node": "10.5.0.11",
    "metadata": {"namespace": "runtime", "type": "MachineStatuses.runtime.talos.dev", "id": "machine"},
    "spec": {"stage": "running", "status": {"ready": true, "unmetConditions": []}}
}
{
    "node": "10.5.0.14",
    "metadata": {"namespace": "runtime", "type": "MachineStatuses.runtime.talos.dev", "id": "machine"},
    "spec": {"stage": "booting", "status": {"ready": false,
             "unmetConditions": [{"name": "nodeReady", "reason": "node not ready"}]}}
}
"""


def test_parse_machinestatus_stream() -> None:
    got = parse_machinestatus(MACHINESTATUS)
    assert got["10.5.0.11"].running_ready
    wk = got["10.5.0.14"]
    assert (wk.stage, wk.ready, wk.running_ready) == ("booting", False, False)
    assert "nodeReady: node not ready" in wk.describe()
    assert parse_machinestatus("") == {}
    with pytest.raises(TalosctlOutputError):
        parse_machinestatus("{not json")


# `talosctl get extensions -o json` of a factory image: one ExtensionStatus per layer (ID = layer index), spec =
# the layer (image + manifest metadata), plus the factory's `schematic` marker whose version is the schematic ID.
EXTENSIONS = """
{
    "node": "10.5.0.11",
    "metadata": {"namespace": "runtime", "type": "ExtensionStatuses.runtime.talos.dev", "id": "0", "version": 1},
    "spec": {"image": "000.sqsh", "metadata": {"name": "intel-ucode", "version": "20250812",
             "author": "Spencer Smith", "description": "Intel microcode binaries",
             "compatibility": {"talos": {"version": ">= v1.12.0"}}}}
}
{
    "node": "10.5.0.11",
    "metadata": {"namespace": "runtime", "type": "ExtensionStatuses.runtime.talos.dev", "id": "1", "version": 1},
    "spec": {"image": "001.sqsh", "metadata": {"name": "iscsi-tools", "version": "v0.2.0"}}
}
{
    "node": "10.5.0.14",
    "metadata": {"namespace": "runtime", "type": "ExtensionStatuses.runtime.talos.dev", "id": "0", "version": 1},
    "spec": {"image": "", "metadata": {"name": "schematic", "version": "376567988ad370138ad8b2698212367b"}}
}
"""


def test_extensions_reads_extension_statuses_authenticated() -> None:
    t = Talosctl(Path("/b/demo/talosconfig"), ("10.5.0.11",))
    argv = t.extensions(["10.5.0.11", "10.5.0.14"]).display_argv()
    assert argv[:3] == ["talosctl", "get", "extensions"] and argv[-2:] == ["-o", "json"]
    assert "--insecure" not in argv and argv[argv.index("-n") + 1] == "10.5.0.11,10.5.0.14"


def test_parse_extensions_by_node() -> None:
    got = parse_extensions(EXTENSIONS)
    assert got["10.5.0.11"] == (Extension("intel-ucode", "20250812"), Extension("iscsi-tools", "v0.2.0"))
    assert [e.name for e in got["10.5.0.14"]] == ["schematic"]
    assert parse_extensions("") == {}
    with pytest.raises(TalosctlOutputError):
        parse_extensions('{"node": "10.5.0.11", "spec": {"image": "x.sqsh"}}')


def test_parse_boot_id() -> None:
    assert parse_boot_id("3F2504E0-4F89-11D3-9A0C-0305E82C3301\n") == "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    with pytest.raises(TalosctlOutputError):
        parse_boot_id("rpc error: code = Unavailable")


VERSION = """Client:
\tTag:         v1.12.11
\tSHA:         2e80771b
\tOS/Arch:     linux/amd64
Server:
\tNODE:        10.5.0.11
\tTag:         v1.12.0
\tSHA:         abcdef01
\tEnabled:     RBAC
Server:
\tNODE:        10.5.0.12
\tTag:         v1.12.11
"""


def test_parse_versions_ignores_the_client() -> None:
    assert parse_versions(VERSION) == {"10.5.0.11": "v1.12.0", "10.5.0.12": "v1.12.11"}
    assert parse_versions("Client:\n\tTag: v1.12.11\nServer:\n\tTag:  v1.12.3\n") == {"": "v1.12.3"}
    assert parse_versions("Client:\n\tTag: v1.12.11\n") == {}


ETCD_MEMBERS = """\
NODE        ID                 HOSTNAME    PEER URLS                CLIENT URLS              LEARNER
10.5.0.11   3a5c0e5f0f3d6c1b   demo-cp-1   https://10.5.0.11:2380   https://10.5.0.11:2379   false
10.5.0.11   91bd0ad6c3e5f214   demo-cp-2   https://10.5.0.12:2380   https://10.5.0.12:2379   false
10.5.0.11   0e4f8d8a8f1b2c3d   demo-cp-3   https://10.5.0.13:2380   https://10.5.0.13:2379   true
"""

ETCD_STATUS = """\
NODE        MEMBER             DB SIZE   IN USE            LEADER             RAFT INDEX   RAFT TERM   RAFT APPLIED INDEX   LEARNER   ERRORS
10.5.0.11   3a5c0e5f0f3d6c1b   17 MB     4.7 MB (27.41%)   3a5c0e5f0f3d6c1b   53391        4           53391                false
10.5.0.12   91bd0ad6c3e5f214   17 MB     4.7 MB (27.41%)   3a5c0e5f0f3d6c1b   53391        4           53391                false     etcdserver: no leader
"""  # noqa: E501


def test_parse_etcd_members() -> None:
    members = parse_etcd_members(ETCD_MEMBERS)
    assert [m.hostname for m in members] == ["demo-cp-1", "demo-cp-2", "demo-cp-3"]
    assert [m.learner for m in members] == [False, False, True]
    assert members[1].peer_urls == ("https://10.5.0.12:2380",)


def test_parse_etcd_status_with_spaced_cells_and_empty_errors() -> None:
    got = parse_etcd_status(ETCD_STATUS)
    assert got["10.5.0.11"].healthy and got["10.5.0.11"].member == "3a5c0e5f0f3d6c1b"
    assert not got["10.5.0.12"].healthy and got["10.5.0.12"].errors == "etcdserver: no leader"
    assert parse_table(ETCD_STATUS)[0]["DB SIZE"] == "17 MB"


DRY = "Dry run summary:\n"


@pytest.mark.parametrize(
    ("text", "change", "reboots"),
    [
        (
            DRY + "Applied configuration without a reboot (skipped in dry-run).\n\nConfig diff:\n\nNo changes.\n",
            "none",
            False,
        ),
        (
            "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\n\n--- a\n+++ b\n",
            "live",
            False,
        ),
        (
            "Dry run summary:\nApplied configuration with a reboot (skipped in dry-run).\n\n--- a\n+++ b\n",
            "reboot",
            True,
        ),
        (
            "Dry run summary:\nStaged configuration to be applied after the next reboot (skipped in dry-run).\n",
            "staged",
            False,
        ),
        ("Node is running in maintenance mode and does not have a config yet.\n", "maintenance", True),
    ],
)
def test_parse_apply_preview(text: str, change: str, reboots: bool) -> None:
    preview = parse_apply_preview(text)
    assert (preview.change, preview.reboots) == (change, reboots)


def test_parse_apply_preview_refuses_to_guess() -> None:
    with pytest.raises(TalosctlOutputError):
        parse_apply_preview("something else entirely")


def test_last_error_line() -> None:
    from k8s_ops.core.errors import last_error_line

    r = Result(1, "", "error 1\nrpc error: code = Unavailable desc = connection refused\n")
    assert last_error_line(r) == "rpc error: code = Unavailable desc = connection refused"
    assert last_error_line(Result(3, "", "")) == "exit 3"
