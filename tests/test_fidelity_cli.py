"""Fidelity pins for tests/sim/fidelity/cli.md: upstream CLI behaviours the product relies on that had no test.

Parser tests feed the product's parsers output shaped exactly as the upstream source prints it (the source is
named on each vector). Simulator tests check that the simulated tool answers like the upstream one — including the
two deviations this file first pinned as expected failures and the simulator (and product) now follow:
apply-config results on stderr, and `kubeconfig` into a new file keeping talosctl's `admin@<cluster>` context.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from k8s_ops.core.command import Result
from k8s_ops.tools.helm import parse_status
from k8s_ops.tools.kubectl import is_not_found
from k8s_ops.tools.talosctl import parse_etcd_status, parse_versions
from tests.sim.helpers import install_all, ok, run
from tests.sim.simlib.api import Sim

CP1 = "10.5.0.11"


def _tabwriter(rows: list[list[str]], padding: int = 3) -> str:
    """Go `text/tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)`: every cell followed by a tab is padded to its
    column's widest cell + 3 spaces; the text after a line's last tab is not a column and is written as is."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "".join(
        "".join(cell.ljust(widths[i] + padding) for i, cell in enumerate(r[:-1])) + r[-1] + "\n" for r in rows
    )


# --------------------------------------------------------------------------- talosctl parsers


def test_etcd_status_parser_reads_the_v1_12_11_table() -> None:
    # siderolabs/talos v1.12.11 cmd/talosctl/cmd/talos/etcd.go (etcdStatusCmd): header NODE + MEMBER … LEARNER
    # PROTOCOL STORAGE ERRORS, IN USE as "<bytes> (<ratio>%)", errors joined with ", ", tabwriter padding 3.
    header = [
        "NODE", "MEMBER", "DB SIZE", "IN USE", "LEADER", "RAFT INDEX", "RAFT TERM",
        "RAFT APPLIED INDEX", "LEARNER", "PROTOCOL", "STORAGE", "ERRORS",
    ]  # fmt: skip
    rows = [
        header,
        [CP1, "3a5c0e5f0f3d6c1b", "17 MB", "4.7 MB (27.41%)", "3a5c0e5f0f3d6c1b", "53391", "4", "53391",
         "false", "3.6.0", "3.6.0", ""],
        ["10.5.0.12", "91bd0ad6c3e5f214", "17 MB", "4.7 MB (27.41%)", "3a5c0e5f0f3d6c1b", "53391", "4",
         "53391", "false", "3.6.0", "3.6.0", "etcdserver: no leader, etcdserver: request timed out"],
        ["10.5.0.13", "0e4f8d8a8f1b2c3d", "17 MB", "4.7 MB (27.41%)", "3a5c0e5f0f3d6c1b", "53391", "4",
         "53391", "true", "3.6.0", "3.6.0", ""],
    ]  # fmt: skip
    got = parse_etcd_status(_tabwriter(rows))
    assert set(got) == {CP1, "10.5.0.12", "10.5.0.13"}
    assert got[CP1].healthy and got[CP1].member == "3a5c0e5f0f3d6c1b" and got[CP1].errors == ""
    assert got["10.5.0.12"].errors == "etcdserver: no leader, etcdserver: request timed out"
    assert not got["10.5.0.12"].healthy
    assert got["10.5.0.13"].learner and not got["10.5.0.13"].healthy


def test_version_parser_reads_the_upstream_long_template() -> None:
    # siderolabs/talos v1.12.11 cmd/talosctl/cmd/talos/version.go ("Client:", one "Server:", then per node
    # "\tNODE:        <node>" + pkg/machinery/version/version.go versionTemplate + "\tEnabled:     RBAC").
    template = (
        "\tTag:         {}\n\tSHA:         2e80771b\n\tBuilt:       \n\tGo version:  go1.25.5\n"
        "\tOS/Arch:     linux/amd64\n"
    )
    text = (
        "Client:\n"
        + template.format("v1.12.11")
        + "Server:\n"
        + f"\tNODE:        {CP1}\n"
        + template.format("v1.12.9")
        + "\tEnabled:     RBAC\n"
        + "\tNODE:        10.5.0.14\n"
        + template.format("v1.12.11")
        + "\tEnabled:     RBAC\n"
    )
    assert parse_versions(text) == {CP1: "v1.12.9", "10.5.0.14": "v1.12.11"}


# --------------------------------------------------------------------------- kubectl parsers


@pytest.mark.parametrize(
    "stderr",
    [
        # kubernetes/kubectl v0.35.7 pkg/cmd/util/helpers.go: StandardErrorMessage and the NoKindMatch forms
        'Error from server (NotFound): externalsecrets.external-secrets.io "plex" not found\n',
        'error: the server doesn\'t have a resource type "externalsecrets" in group "external-secrets.io"\n',
        'error: the server doesn\'t have a resource type "replicationsources"\n',
    ],
)
def test_is_not_found_recognises_kubectls_not_found_forms(stderr: str) -> None:
    assert is_not_found(Result(1, "", stderr))


def test_is_not_found_leaves_connection_errors_alone() -> None:
    err = 'error: context "demo" does not exist\n'
    assert not is_not_found(Result(1, "", err))
    assert not is_not_found(Result(0, "", 'Error from server (NotFound): x "y" not found'))


# --------------------------------------------------------------------------- helm against the simulator


def test_sim_helm_status_json_and_release_secrets(sim_demo: Sim, tmp_path: Path) -> None:
    # helm v3.19.5 pkg/release/release.go (JSON: name, info.status, chart.metadata, config, version, namespace),
    # cmd/helm/status.go (-o json = the release), pkg/storage/storage.go makeKey, pkg/storage/driver/secrets.go
    # (labels name/owner/status/version, type helm.sh/release.v1), pkg/action/upgrade.go (old deployed ->
    # superseded).
    sim_demo.make_ready()
    kc = str(sim_demo.root / "kubeconfig")
    ok(sim_demo, "helm", "repo", "add", "coredns", "https://coredns.github.io/helm")
    values = tmp_path / "coredns-values.yaml"
    values.write_text("k8sAppLabelOverride: kube-dns\nreplicaCount: 2\n")
    install = ["upgrade", "coredns", "coredns/coredns", "--install", "--version", "1.45.0",
               "--namespace", "kube-system", "--values", str(values), "--kubeconfig", kc]  # fmt: skip
    out = ok(sim_demo, "helm", *install)
    assert 'Release "coredns" does not exist. Installing it now.' in out
    status = ["status", "coredns", "--namespace", "kube-system", "--output", "json", "--kubeconfig", kc]
    rel = parse_status(Result(0, ok(sim_demo, "helm", *status), ""))
    assert (rel.name, rel.namespace, rel.chart, rel.version, rel.status, rel.revision) == (
        "coredns", "kube-system", "coredns", "1.45.0", "deployed", 1,
    )  # fmt: skip
    assert rel.values == {"k8sAppLabelOverride": "kube-dns", "replicaCount": 2}
    ok(sim_demo, "helm", *install)
    assert parse_status(Result(0, ok(sim_demo, "helm", *status), "")).revision == 2
    for rev, state in ((1, "superseded"), (2, "deployed")):
        secret = sim_demo.get_object("Secret", f"sh.helm.release.v1.coredns.v{rev}", "kube-system")
        assert secret is not None and secret["type"] == "helm.sh/release.v1"
        labels = secret["metadata"]["labels"]
        assert labels == {"name": "coredns", "owner": "helm", "status": state, "version": str(rev)}


# --------------------------------------------------------------------------- talosctl against the simulator


def _contexts(path: Path) -> tuple[list[str], str]:
    data = yaml.safe_load(path.read_text())
    return sorted(c["name"] for c in data["contexts"]), data["current-context"]


def test_sim_kubeconfig_merges_into_an_existing_file_under_the_forced_context_name(
    sim_demo: Sim, tmp_path: Path
) -> None:
    # siderolabs/talos v1.12.11 cmd/talosctl/cmd/talos/kubeconfig.go: --merge defaults to true and applies when
    # the target exists; siderolabs/go-kubeconfig v0.1.1 merge.go: ForceContextName names the merged context,
    # --force overwrites conflicts, the merged context becomes current.
    sim_demo.make_ready()
    tc = str(sim_demo.root / "talosconfig")
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "other", "cluster": {"server": "https://192.0.2.1:6443"}}],
                "users": [{"name": "other", "user": {}}],
                "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}],
                "current-context": "other",
            }
        )
    )
    argv = ["--talosconfig", tc, "-e", CP1, "-n", CP1, "kubeconfig", str(path),
            "--force", "--force-context-name", "demo"]  # fmt: skip
    ok(sim_demo, "talosctl", *argv)
    assert _contexts(path) == (["demo", "other"], "demo")
    ok(sim_demo, "talosctl", *argv)  # again: --force overwrites the same-named context, no "demo-1"
    assert _contexts(path) == (["demo", "other"], "demo")


def test_sim_kubeconfig_to_a_new_file_keeps_the_admin_context(sim_demo: Sim, tmp_path: Path) -> None:
    # siderolabs/talos v1.12.11 cmd/talosctl/cmd/talos/kubeconfig.go: a target that does not exist sets
    # merge=false, and without merge the tarball's kubeconfig is written as is (os.WriteFile(..., 0o600));
    # ForceContextName is only read by extractAndMerge.
    sim_demo.make_ready()
    path = tmp_path / "fresh" / "kubeconfig"
    tc = str(sim_demo.root / "talosconfig")
    ok(sim_demo, "talosctl", "--talosconfig", tc, "-e", CP1, "-n", CP1, "kubeconfig", str(path), "--force",
       "--force-context-name", "demo")  # fmt: skip
    assert _contexts(path) == (["admin@demo"], "admin@demo")


def test_sim_apply_config_dry_run_summary_is_on_stderr(sim_demo: Sim, tmp_path: Path) -> None:
    # siderolabs/talos v1.12.11 cmd/talosctl/pkg/talos/helpers/mode.go PrintApplyResults:
    # fmt.Fprintln(os.Stderr, m.ModeDetails); warnings via pkg/cli/output.go Warning (stderr, "WARNING: ").
    configs, tc = install_all(sim_demo, tmp_path)
    r = run(sim_demo, "talosctl", "--talosconfig", str(tc), "-e", CP1, "-n", CP1, "apply-config",
            "--file", str(configs[CP1]), "--mode", "auto", "--dry-run")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Dry run summary:" in r.stderr and "Dry run summary:" not in r.stdout


def test_apply_preview_skips_talosctl_warnings_on_stderr() -> None:
    # helpers/mode.go PrintApplyResults: warnings (`WARNING: …`) and the mode details share stderr
    from k8s_ops.tools.talosctl import parse_apply_preview

    text = (
        "WARNING: miimon was not specified for 802.3ad bond\n"
        "Dry run summary:\nApplied configuration with a reboot (skipped in dry-run).\n"
    )
    preview = parse_apply_preview(text)
    assert preview.change == "reboot"
    assert preview.summary == "Applied configuration with a reboot (skipped in dry-run)."
