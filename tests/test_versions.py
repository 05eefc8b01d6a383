"""Version preflight rules (k8s_ops/talos/versions.py), table-driven; each table names the upstream rule it pins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from k8s_ops.bootstrap.charts import load_charts
from k8s_ops.core import preflight as tools
from k8s_ops.core.command import Result
from k8s_ops.core.errors import ProblemsError
from k8s_ops.core.preflight import format_version, parse_version
from k8s_ops.core.testing import FakeRunner
from k8s_ops.talos import versions
from k8s_ops.talos.inventory import load_cluster
from k8s_ops.talos.versions import Finding, Verdict

INSTALLER = "factory.talos.dev/metal-installer/abc123:v1.12.11"


def severities(found: list[Finding]) -> list[str]:
    return [f.severity for f in found]


# ------------------------------------------------------------------ parsing (one parser: k8s_ops.core.preflight)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("v1.12.11", (1, 12, 11)),
        ("1.35.0", (1, 35, 0)),
        ("Client v1.12.0\n", (1, 12, 0)),
        ("v1.35.0+k3s1", (1, 35, 0)),
        ("v1.12", None),
        ("", None),
    ],
)
def test_parse_version(text: str, parsed: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == parsed


def test_format_version() -> None:
    assert format_version((1, 12, 11)) == "v1.12.11"
    assert format_version((1, 12)) == "v1.12"


# --------------------------------------------------------------------------- data tables


def test_talos_table_spans_six_kubernetes_minors() -> None:
    """siderolabs/talos pkg/machinery/constants/constants.go: SupportedKubernetesVersions = 6 (going back from the
    default), and the table covers Talos 1.10–1.13."""
    assert set(versions.TALOS) >= {(1, 10), (1, 11), (1, 12), (1, 13)}
    for minor, release in versions.TALOS.items():
        lo, hi = release.kubernetes
        assert release.minor == minor and release.latest[:2] == minor
        assert hi[1] - lo[1] + 1 == 6, minor
        assert release.oldest_host == (1, minor[1] - 2) and release.newest_host == (1, minor[1] + 2)


# --------------------------------------------------------------------------- clients


@pytest.mark.parametrize(
    ("client", "talos", "expected"),
    [
        ((1, 12, 11), "v1.12.0", []),
        ((1, 12, 0), "v1.12.11", []),  # same minor, older patch: fine
        ((1, 11, 6), "v1.12.0", ["error"]),
        ((1, 13, 2), "v1.12.11", ["warning"]),
    ],
    ids=["same-minor", "same-minor-older-patch", "older-minor", "newer-minor"],
)
def test_talosctl_same_minor_or_newer(client: tuple[int, int, int], talos: str, expected: list[str]) -> None:
    assert severities(versions.check_talosctl(client, talos)) == expected


@pytest.mark.parametrize(
    ("client", "kubernetes", "expected"),
    [
        ((1, 35, 0), "v1.35.0", []),
        ((1, 34, 2), "v1.35.0", []),
        ((1, 36, 1), "v1.35.0", []),
        ((1, 33, 0), "v1.35.0", ["warning"]),
        ((1, 37, 0), "v1.35.0", ["warning"]),
    ],
    ids=["equal", "one-older", "one-newer", "two-older", "two-newer"],
)
def test_kubectl_within_one_minor(client: tuple[int, int, int], kubernetes: str, expected: list[str]) -> None:
    assert severities(versions.check_kubectl(client, kubernetes)) == expected


# --------------------------------------------------------------------------- Talos x Kubernetes


@pytest.mark.parametrize(
    ("talos", "kubernetes", "ok"),
    [
        ("v1.10.9", "v1.28.0", True),
        ("v1.10.9", "v1.33.6", True),
        ("v1.10.9", "v1.34.0", False),
        ("v1.11.6", "v1.29.0", True),
        ("v1.11.6", "v1.34.1", True),
        ("v1.11.6", "v1.35.0", False),
        ("v1.12.0", "v1.29.9", False),
        ("v1.12.0", "v1.30.0", True),
        ("v1.12.11", "v1.35.4", True),
        ("v1.12.11", "v1.36.0", False),
        ("v1.13.0", "v1.30.9", False),
        ("v1.13.9", "v1.31.0", True),
        ("v1.13.9", "v1.36.3", True),
    ],
)
def test_kubernetes_within_talos_range(talos: str, kubernetes: str, ok: bool) -> None:
    found = versions.check_kubernetes_supported(talos, kubernetes)
    assert (found == []) is ok, found
    if not ok:
        assert found[0].field == "kubernetesVersion" and "is not supported by Talos" in found[0].message


def test_unknown_talos_minor_is_an_error() -> None:
    (found,) = versions.check_kubernetes_supported("v1.14.0", "v1.35.0")
    assert found.severity == "error" and "no version data for Talos v1.14" in found.message


# --------------------------------------------------------------------------- Talos upgrade path


@pytest.mark.parametrize(
    ("current", "target", "path"),
    [
        ("v1.12.0", "v1.12.11", ("v1.12.11",)),
        ("v1.11.6", "v1.12.11", ("v1.12.11",)),
        ("v1.11.3", "v1.12.11", ("v1.11.6", "v1.12.11")),
        ("v1.10.2", "v1.12.11", ("v1.10.9", "v1.11.6", "v1.12.11")),
        ("v1.10.9", "v1.13.0", ("v1.11.6", "v1.12.11", "v1.13.0")),
        ("v1.9.5", "v1.11.6", ("the latest v1.9.x", "v1.10.9", "v1.11.6")),
        ("v1.12.11", "v1.12.0", ()),
        ("v1.12.11", "v1.12.11", ()),
    ],
)
def test_talos_upgrade_path(current: str, target: str, path: tuple[str, ...]) -> None:
    """upgrading-talos.md: "upgrade to the latest patch release of all intermediate minor releases"; its example
    (1.0 -> 1.2.4) starts with the latest patch of the current minor."""
    cv, tv = parse_version(current), parse_version(target)
    assert cv is not None and tv is not None
    assert versions.talos_upgrade_path(cv, tv) == path


@pytest.mark.parametrize(
    ("running", "target", "expected"),
    [
        ({"cp-1": "v1.12.0"}, "v1.12.11", []),
        ({"cp-1": "v1.11.6"}, "v1.12.11", []),
        ({"cp-1": "v1.11.3"}, "v1.12.11", ["warning"]),
        ({"cp-1": "v1.10.9"}, "v1.12.11", ["error"]),
        ({"cp-1": "v1.12.11"}, "v1.12.0", ["warning"]),
        ({"cp-1": "v1.13.9"}, "v1.12.11", ["warning"]),
        ({"cp-1": "v1.14.0"}, "v1.12.11", ["error"]),
        ({"cp-1": None}, "v1.12.11", []),
        ({"cp-1": "v1.10.9", "wk-1": "v1.10.9", "wk-2": "v1.11.3"}, "v1.12.11", ["error", "warning"]),
    ],
    ids=[
        "patch",
        "adjacent-from-latest",
        "adjacent-from-older-patch",
        "skips-a-minor",
        "patch-downgrade",
        "minor-downgrade-installer-accepts",
        "downgrade-installer-refuses",
        "unknown-version",
        "grouped-by-version",
    ],
)
def test_talos_upgrade_rules(running: dict[str, str | None], target: str, expected: list[str]) -> None:
    assert severities(versions.check_talos_upgrade(running, target)) == expected


def test_skipped_minor_names_the_path_and_the_installer() -> None:
    (found,) = versions.check_talos_upgrade({"wk-1": "v1.10.2", "cp-1": "v1.10.2"}, "v1.12.11", installer=INSTALLER)
    assert found.field == "nodes cp-1, wk-1"
    assert "skips Talos v1.11" in found.message
    assert "v1.10.2 -> v1.10.9 -> v1.11.6 -> v1.12.11" in found.message
    assert "talosctl upgrade --image factory.talos.dev/metal-installer/abc123:<version>" in found.message


# --------------------------------------------------------------------------- Kubernetes upgrade


@pytest.mark.parametrize(
    ("current", "target", "kubelets", "expected"),
    [
        ("v1.34.2", "v1.35.0", {"cp-1": "v1.34.2"}, []),
        ("v1.35.0", "v1.35.0", {"cp-1": "v1.35.0"}, []),
        ("v1.35.0", "v1.35.4", None, []),
        ("v1.35.1", "v1.35.0", None, ["error"]),
        ("v1.35.0", "v1.34.9", {"cp-1": "v1.35.0"}, ["error"]),
        ("v1.33.5", "v1.35.0", None, ["error"]),
        (None, "v1.35.0", {"cp-1": "v1.34.0"}, []),
        (None, "v1.34.0", {"cp-1": "v1.35.0"}, ["error"]),
    ],
    ids=[
        "next-minor",
        "same",
        "patch",
        "patch-downgrade",
        "minor-downgrade",
        "skips-a-minor",
        "api-unknown",
        "kubelet-newer-than-target",
    ],
)
def test_kubernetes_upgrade_rules(
    current: str | None, target: str, kubelets: dict[str, str] | None, expected: list[str]
) -> None:
    """version-skew-policy.md: kube-apiserver must not skip minors; talosctl upgrade-k8s accepts 1.N->1.N and
    1.N->1.N+1 only (siderolabs/go-kubernetes kubernetes/upgrade/path.go)."""
    assert severities(versions.check_kubernetes_upgrade(current, target, kubelets)) == expected


def test_kubernetes_skip_names_each_minor() -> None:
    (found,) = versions.check_kubernetes_upgrade("v1.32.3", "v1.35.0", None)
    assert "v1.32.3 -> v1.33.x -> v1.34.x -> v1.35.0" in found.message


# --------------------------------------------------------------------------- charts


@pytest.mark.parametrize(
    ("kubernetes", "pinned", "expected"),
    [
        ("v1.33.4", [("cilium", "1.18.5")], []),
        ("v1.35.0", [("cilium", "1.18.5")], ["warning"]),
        ("v1.29.0", [("cilium", "1.18.5")], ["warning"]),
        ("v1.34.1", [("flux", "v2.7.5")], []),
        ("v1.35.0", [("flux", "v2.7.5")], ["warning"]),
        ("v1.31.0", [("flux", "2.7.0")], ["warning"]),
        ("v1.35.0", [("cilium", "1.19.0")], ["warning"]),
        ("v1.35.0", [("flux-operator", "0.58.1"), ("coredns", "1.45.0")], []),
    ],
    ids=[
        "cilium-inside",
        "cilium-above",
        "cilium-below",
        "flux-inside",
        "flux-above",
        "flux-below",
        "cilium-unrecorded-minor",
        "unlisted-components",
    ],
)
def test_chart_tested_ranges_warn(kubernetes: str, pinned: list[tuple[str, str]], expected: list[str]) -> None:
    assert severities(versions.check_charts(kubernetes, pinned)) == expected


# --------------------------------------------------------------------------- together


def test_every_error_at_once_and_warnings_as_notes() -> None:
    verdict = versions.evaluate(
        talos="v1.12.11",
        kubernetes="v1.36.0",
        talosctl=(1, 11, 6),
        kubectl=(1, 33, 0),
        nodes={"cp-1": "v1.10.9"},
        charts=[("cilium", "1.18.5")],
    )
    assert [f.field for f in verdict.errors] == ["talosVersion", "nodes cp-1", "kubernetesVersion"]
    assert len(verdict.warnings) == 2  # kubectl skew, cilium range
    with pytest.raises(ProblemsError) as info:
        verdict.enforce("clusters/infra/cluster.yaml")
    assert len(info.value.problems) == 3
    text = str(info.value)
    assert text.startswith("3 problems found:")
    assert "clusters/infra/cluster.yaml: talosVersion: talosctl v1.11.6 is older" in text
    assert "README" in (info.value.hint or "")


def test_warnings_only_become_notes() -> None:
    verdict = versions.evaluate(talos="v1.12.0", kubernetes="v1.35.0", charts=[("cilium", "1.18.5")])
    notes = verdict.enforce("cluster.yaml")
    assert notes == (verdict.notes()[0],)
    assert notes[0].startswith("version warning: charts: cilium 1.18.5 is tested with Kubernetes v1.30–v1.33")


def test_a_healthy_combination_says_nothing() -> None:
    verdict = versions.evaluate(
        talos="v1.12.11",
        kubernetes="v1.35.0",
        talosctl=(1, 12, 11),
        kubectl=(1, 35, 0),
        nodes={"cp-1": "v1.12.0", "wk-1": "v1.12.11"},
        k8s_from="v1.34.3",
        kubelets={"cp-1": "v1.34.3"},
        upgrade_k8s=True,
    )
    assert verdict == Verdict(())


def test_a_bad_version_is_reported_once() -> None:
    verdict = versions.evaluate(talos="v1.12.0", kubernetes="latest", upgrade_k8s=True, charts=[("cilium", "1.18.5")])
    (error,) = verdict.errors  # the range rule and the upgrade rule both saw it
    assert error == Finding("error", "kubernetesVersion", "'latest' is not a version like v1.2.3")


def test_reboot_and_reset_check_the_clients_only() -> None:
    """Nothing is installed: an inventory kubernetesVersion out of range must not block recovering a node."""
    verdict = versions.evaluate(talos="v1.12.0", kubernetes=None, talosctl=(1, 12, 11), kubectl=(1, 20, 0))
    assert verdict.findings == ()
    assert [f.field for f in versions.evaluate(talos="v1.12.0", kubernetes=None, talosctl=(1, 11, 0)).errors] == [
        "talosVersion"
    ]


# --------------------------------------------------------------------------- the hooks (bootstrap and talos tasks)


@pytest.fixture
def clients() -> Iterator[FakeRunner]:
    """Tool versions as the simulator's tools report them; the preflight cache is private to the test."""
    tools.reset_cache()
    yield FakeRunner(
        {
            ("talosctl", "version", "--client", "--short"): Result(0, "Client v1.12.11\n"),
            ("kubectl", "version", "--client", "-o", "json"): Result(0, '{"clientVersion": {"gitVersion": "v1.35.0"}}'),
            ("helm", "version", "--short"): Result(0, "v3.19.0+g3d8990f\n"),
        }
    )
    tools.reset_cache()


def test_bootstrap_preflight_lists_tools_then_version_warnings(clients: FakeRunner) -> None:
    from k8s_ops.bootstrap import run

    cluster = load_cluster("demo")
    notes: list[str] = []
    run._tools(clients, notes, cluster, load_charts())
    assert notes[0] == "tools: talosctl v1.12.11, kubectl v1.35.0, helm v3.19.0"
    assert all(n.startswith("version warning: charts: ") for n in notes[1:])


def test_bootstrap_preflight_refuses_an_unsupported_kubernetes(clients: FakeRunner) -> None:
    from k8s_ops.bootstrap import run

    cluster = load_cluster("demo").model_copy(update={"kubernetes_version": "v1.29.4"})
    with pytest.raises(ProblemsError) as info:
        run._tools(clients, [], cluster, load_charts())
    (problem,) = info.value.problems
    assert (problem.file, problem.field) == (str(cluster.file), "kubernetesVersion")
    assert "Kubernetes v1.29.4 is not supported by Talos v1.12 (supports v1.30–v1.35" in problem.message


def test_task_hook_adds_warnings_as_notes_and_refuses_errors(clients: FakeRunner) -> None:
    from k8s_ops.core.plan import Plan
    from k8s_ops.talos.tasks import _versions

    tools.preflight(clients, ["talosctl", "kubectl"])
    cluster = load_cluster("demo")  # talosVersion v1.12.0, kubernetesVersion v1.35.0
    plan = Plan("upgrade", "demo", (), notes=("installer image: x",))
    noted = _versions(plan, cluster, nodes={"demo-cp-1": "v1.12.11", "demo-wk-1": "v1.12.0"})
    assert noted.notes[0] == "installer image: x"
    assert noted.notes[1].startswith("version warning: nodes demo-cp-1: run v1.12.11: going to v1.12.0 is a downgrade")
    assert len(noted.notes) == 2
    with pytest.raises(ProblemsError) as info:
        _versions(plan, cluster, kubernetes="v1.33.0", k8s_from="v1.35.0", kubelets={}, upgrade_k8s=True)
    assert [p.field for p in info.value.problems] == ["kubernetesVersion"]
    assert "downgrade" in info.value.problems[0].message
