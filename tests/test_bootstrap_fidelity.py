"""Upstream facts the bootstrap's CNI/Flux/secrets stages rely on (ledger: tests/sim/fidelity/bootstrap.md).

* Gateway API CRDs: pinned to what Envoy Gateway 1.6.1 uses (v1.4.1, experimental channel); the guard reads the
  bundle-version/channel annotations, never downgrades, and switches channel only standard -> experimental;
* Cilium's own Gateway API off unless the inventory asks; CoreDNS system-cluster-critical;
* git credentials: GitHub App -> `spec.provider: github` (https only), SSH keys with a passphrase.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from k8s_ops.bootstrap import charts as charts_mod
from k8s_ops.bootstrap import manifests, stages
from k8s_ops.bootstrap.charts import CrdBundle, InstalledCrd, crd_verdict
from k8s_ops.bootstrap.credentials import GitCredentials, validate_git_credentials
from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import GateFailed, ProblemsError
from k8s_ops.core.execute import execute
from k8s_ops.core.plan import Plan
from k8s_ops.core.runner import SubprocessRunner
from k8s_ops.core.secret import Secret
from k8s_ops.core.testing import FakeRunner
from k8s_ops.talos.inventory import Cluster, load_cluster
from k8s_ops.tools.kubectl import KubeTarget
from tests.sim.simlib.api import Sim
from tests.sim.simlib.remote import gateway_api as sim_gateway_api

REPO = Path(__file__).resolve().parent.parent
KUBE = KubeTarget(Path("/tmp/kc"), "demo")
V = "gateway.networking.k8s.io/bundle-version"
C = "gateway.networking.k8s.io/channel"


@pytest.fixture(scope="module")
def demo() -> Cluster:
    return load_cluster("demo", clusters_dir=REPO / "clusters")


@pytest.fixture(scope="module")
def pinned() -> charts_mod.Charts:
    return charts_mod.load_charts()


@pytest.fixture(scope="module")
def gw(pinned: charts_mod.Charts) -> CrdBundle:
    return next(b for b in pinned.crds if b.name == "gateway-api")


def _with(cluster: Cluster, **gateway_api: Any) -> Cluster:
    return cluster.model_copy(update={"gateway_api": cluster.gateway_api.model_copy(update=gateway_api)})


# --------------------------------------------------------------------------- the pin


def test_gateway_api_pin_is_what_envoy_gateway_1_6_1_uses(gw: CrdBundle) -> None:
    # envoyproxy/gateway v1.6.1: go.mod sigs.k8s.io/gateway-api v1.4.1; charts/gateway-helm/crds/gatewayapi-crds.yaml
    # annotated bundle-version v1.4.1, channel experimental.
    assert (gw.version, gw.channel) == ("v1.4.1", "experimental")
    assert (gw.version_annotation, gw.channel_annotation) == (V, C)
    assert gw.resolved_url == (
        "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.4.1/experimental-install.yaml"
    )
    assert gw.with_channel("standard").resolved_url.endswith("/v1.4.1/standard-install.yaml")
    with pytest.raises(KeyError):
        gw.with_channel("beta")


@pytest.mark.parametrize("channel", ["standard", "experimental"])
def test_channel_crd_names_match_the_upstream_bundle(gw: CrdBundle, channel: str) -> None:
    # kubernetes-sigs/gateway-api v1.4.1 config/crd/<channel>/ (the simulator serves the same lists)
    served = {f"{plural}.{group}" for group, _, plural, _, _ in sim_gateway_api.kinds("v1.4.1", channel)}
    assert set(gw.with_channel(channel).crd_names) == served
    assert len(served) == {"standard": 6, "experimental": 12}[channel]


def test_the_inventory_picks_the_channel(demo: Cluster, pinned: charts_mod.Charts) -> None:
    assert [b.channel for b in charts_mod.crd_bundles(demo, pinned)] == ["experimental"]
    std = charts_mod.crd_bundles(_with(demo, channel="standard"), pinned)[0]
    assert std.channel == "standard" and len(std.crd_names) == 6


def test_inventory_gateway_api_keys_are_validated(tmp_path: Path) -> None:
    src = (REPO / "clusters" / "demo" / "cluster.yaml").read_text()
    d = tmp_path / "clusters" / "demo"
    d.mkdir(parents=True)
    for item in (REPO / "clusters" / "demo").iterdir():
        if item.is_dir():
            (d / item.name).symlink_to(item)
        elif item.name != "cluster.yaml":
            (d / item.name).write_bytes(item.read_bytes())
    (d / "cluster.yaml").write_text(src + "gatewayAPI:\n  channel: experimental\n  cilium: true\n")
    c = load_cluster("demo", clusters_dir=tmp_path / "clusters")
    assert (c.gateway_api.channel, c.gateway_api.cilium) == ("experimental", True)
    (d / "cluster.yaml").write_text(src + "gatewayAPI:\n  channel: beta\n")
    with pytest.raises(ProblemsError) as info:
        load_cluster("demo", clusters_dir=tmp_path / "clusters")
    assert any(p.field == "gatewayAPI.channel" for p in info.value.problems)


# --------------------------------------------------------------------------- the CRD guard (pure)


def _installed(bundle: CrdBundle, version: str | None, channel: str | None, **over: Any) -> dict[str, InstalledCrd]:
    out = {n: InstalledCrd(n, True, version, channel) for n in bundle.crd_names}
    for name, crd in over.items():
        if crd is None:
            out.pop(name)
        else:
            out[name] = crd
    return out


GWC = "gatewayclasses.gateway.networking.k8s.io"
TCP = "tcproutes.gateway.networking.k8s.io"


@pytest.mark.parametrize(
    ("case", "installed", "action", "words"),
    [
        ("nothing installed", lambda b: {}, "apply", ["missing"]),
        ("same channel, same version", lambda b: _installed(b, "v1.4.1", "experimental"), "done", []),
        ("same channel, newer", lambda b: _installed(b, "v1.5.0", "experimental"), "done", ["left alone"]),
        ("same channel, older", lambda b: _installed(b, "v1.3.0", "experimental"), "apply", ["older than v1.4.1"]),
        ("older pre-release", lambda b: _installed(b, "v1.4.1-rc.1", "experimental"), "apply", ["older"]),
        (
            "not Established",
            lambda b: _installed(
                b, "v1.4.1", "experimental", **{GWC: InstalledCrd(GWC, False, "v1.4.1", "experimental")}
            ),
            "apply",
            ["not Established"],
        ),
        (
            "newer and one missing: applying would downgrade",
            lambda b: _installed(b, "v1.5.0", "experimental", **{TCP: None}),
            "refuse",
            ["downgrade", TCP],
        ),
        ("standard -> experimental at <= pin", lambda b: _installed(b, "v1.4.1", "standard"), "apply", ["switching"]),
        ("standard, newer", lambda b: _installed(b, "v1.5.0", "standard"), "refuse", ["another channel"]),
        ("unannotated", lambda b: _installed(b, None, None), "refuse", ["no recognisable bundle version"]),
    ],
)
def test_crd_verdict_experimental(
    gw: CrdBundle,
    case: str,
    installed: Callable[[CrdBundle], dict[str, InstalledCrd]],
    action: str,
    words: list[str],
) -> None:
    v = crd_verdict(gw, installed(gw))
    assert v.action == action, (case, v)
    for word in words:
        assert word in v.reason, (case, v.reason)


def test_crd_verdict_never_switches_experimental_to_standard(gw: CrdBundle) -> None:
    std = gw.with_channel("standard")
    v = crd_verdict(std, _installed(std, "v1.4.1", "experimental"))
    assert v.action == "refuse" and "gatewayAPI.channel" in v.reason
    assert crd_verdict(std, _installed(std, "v1.4.1", "standard")).action == "done"


# --------------------------------------------------------------------------- the CRD step (read at execution)


def _crd_list(bundle: CrdBundle, version: str, channel: str) -> Result:
    items = [
        {
            "metadata": {"name": n, "annotations": {V: version, C: channel}},
            "status": {"conditions": [{"type": "Established", "status": "True"}]},
        }
        for n in bundle.crd_names
    ]
    return Result(0, json.dumps({"kind": "List", "items": items}))


def _ctx(cluster: Cluster, pinned: charts_mod.Charts) -> stages.Context:
    values = charts_mod.render_all_values(cluster, pinned)
    return stages.Context(cluster=cluster, charts=pinned, values=values, kube=KUBE)


def test_crd_step_skips_newer_and_refuses_before_applying(demo: Cluster, pinned: charts_mod.Charts) -> None:
    (step,) = stages.crd_steps(_ctx(demo, pinned))
    assert "experimental-install.yaml" in " ".join(step.commands[0].display_argv())
    bundle = charts_mod.crd_bundles(demo, pinned)[0]
    newer = FakeRunner(handler=lambda c: _crd_list(bundle, "v1.5.0", "experimental"))
    assert step.guard is not None and "left alone" in (step.guard(newer) or "")
    other = FakeRunner(handler=lambda c: _crd_list(bundle, "v1.5.0", "standard"))
    assert step.guard(other) is None
    with pytest.raises(GateFailed) as info:
        step.before[0].run(other)
    assert "another channel" in info.value.message and info.value.hint and "custom-columns" in info.value.hint
    # only reads: nothing was applied
    assert all("apply" not in c.display_argv() for c in newer.calls + other.calls)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("name", ["infra", "apps", "demo"])
def test_cilium_gateway_api_is_off_unless_the_inventory_asks(name: str, pinned: charts_mod.Charts) -> None:
    cluster = load_cluster(name, clusters_dir=REPO / "clusters")
    cilium = pinned.release("cilium")
    assert charts_mod.render_values(cilium, cluster, pinned).data["gatewayAPI"] == {"enabled": False}
    on = charts_mod.render_values(cilium, _with(cluster, cilium=True), pinned).data["gatewayAPI"]
    assert on["enabled"] is True


def test_coredns_runs_as_system_cluster_critical(demo: Cluster, pinned: charts_mod.Charts) -> None:
    values = charts_mod.render_values(pinned.release("coredns"), demo, pinned).data
    assert values["priorityClassName"] == "system-cluster-critical"


# --------------------------------------------------------------------------- git credentials


# An unencrypted and a passphrase-protected OpenSSH key body: only the header up to the cipher name matters.
def _openssh(cipher: bytes) -> bytes:
    body = b"openssh-key-v1\0" + len(cipher).to_bytes(4, "big") + cipher + b"\0" * 16
    b64 = base64.b64encode(body)
    return b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + b64 + b"\n-----END OPENSSH PRIVATE KEY-----\n"


KNOWN = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
APP = {"githubAppID": "1", "githubAppInstallationID": "3", "githubAppPrivateKey": "-----BEGIN RSA PRIVATE KEY-----"}


def _repo(cluster: Cluster, url: str) -> Cluster:
    return cluster.model_copy(update={"gitops": cluster.gitops.model_copy(update={"repository": url})})


def _problems(cluster: Cluster, data: Mapping[str, str | bytes], flux: str = "2.7.5") -> list[str]:
    secrets = {k: Secret(v) for k, v in data.items()}
    return [f"{p.field}: {p.message}" for p in validate_git_credentials(cluster, secrets, Path("f"), flux_version=flux)]


def test_github_app_sets_provider_github_on_an_https_repository(demo: Cluster) -> None:
    https = _repo(demo, "https://github.com/example/home-ops")
    assert _problems(https, dict(APP)) == []
    assert _problems(https, {**APP, "githubAppBaseURL": "https://ghe.example.com/api/v3"}) == []
    creds = GitCredentials({k: Secret(v) for k, v in APP.items()}, Path("f"))
    assert creds.provider == "github"
    repo = manifests.git_repository(https, with_credentials=True, provider=creds.provider)
    assert repo.manifest["spec"]["provider"] == "github" and repo.manifest["spec"]["secretRef"]
    ssh_creds = GitCredentials({"identity": Secret("k"), "known_hosts": Secret(KNOWN)}, Path("f"))
    assert ssh_creds.provider is None
    assert "provider" not in manifests.git_repository(https, with_credentials=True).manifest["spec"]


def test_github_app_is_rejected_where_flux_would_reject_it(demo: Cluster) -> None:
    ssh = _repo(demo, "ssh://git@github.com/example/home-ops")
    assert any("https://" in p for p in _problems(ssh, dict(APP)))
    https = _repo(demo, "https://github.com/example/home-ops")
    owner = {**{k: v for k, v in APP.items() if k != "githubAppInstallationID"}, "githubAppInstallationOwner": "me"}
    assert any(p.startswith("githubAppInstallationOwner:") and "v1.8.0" in p for p in _problems(https, owner))
    assert _problems(https, owner, flux="2.8.0") == []
    assert any("exactly one" in p for p in _problems(https, {**APP, "githubAppInstallationOwner": "me"}, "2.8.0"))
    assert any(
        "githubAppPrivateKey" in p for p in _problems(https, {"githubAppID": "1", "githubAppInstallationID": "3"})
    )


def test_ssh_key_with_a_passphrase_is_accepted(demo: Cluster) -> None:
    ssh = _repo(demo, "ssh://git@github.com/example/home-ops")
    plain: dict[str, str | bytes] = {"identity": _openssh(b"none"), "known_hosts": KNOWN}
    assert _problems(ssh, plain) == []
    locked: dict[str, str | bytes] = {"identity": _openssh(b"aes256-ctr"), "known_hosts": KNOWN}
    assert _problems(ssh, {**locked, "password": "hunter2"}) == []
    assert any(p.startswith("password:") for p in _problems(ssh, locked))
    legacy = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nx\n-----END RSA"
    assert any(p.startswith("password:") for p in _problems(ssh, {"identity": legacy, "known_hosts": KNOWN}))


# --------------------------------------------------------------------------- simulator: the guard against real state


def test_crd_step_against_the_simulator_upgrades_switches_and_never_downgrades(
    sim_demo: Sim, demo: Cluster, pinned: charts_mod.Charts
) -> None:
    sim_demo.make_ready(cni=False)
    kube = KubeTarget(sim_demo.root / "kubeconfig", "admin@demo")
    values = charts_mod.render_all_values(demo, pinned)
    ctx = stages.Context(cluster=demo, charts=pinned, values=values, kube=kube)
    runner = SubprocessRunner()
    url = "https://github.com/kubernetes-sigs/gateway-api/releases/download/{}/{}-install.yaml"

    def preinstall(version: str, channel: str) -> None:
        cmd = Command(("kubectl", "--kubeconfig", str(kube.kubeconfig), "apply", "--server-side",
                       "--force-conflicts", "-f", url.format(version, channel)))  # fmt: skip
        runner.run(cmd)

    def annotations() -> set[tuple[str, str]]:
        crds = [sim_demo.get_object("CustomResourceDefinition", n) for n in ctx_bundle.crd_names]
        return {(c["metadata"]["annotations"][V], c["metadata"]["annotations"][C]) for c in crds if c}

    ctx_bundle = charts_mod.crd_bundles(demo, pinned)[0]
    plan = Plan("crds", "demo", tuple(stages.crd_steps(ctx)))

    preinstall("v1.3.0", "standard")  # older and the standard channel: upgraded and switched
    report = execute(plan, runner, out=lambda _: None)
    assert report.changed == 1 and annotations() == {("v1.4.1", "experimental")}
    assert execute(plan, runner, out=lambda _: None).changed == 0  # same channel, same version: done

    preinstall("v1.5.0", "experimental")  # something else upgraded them: never downgraded
    report = execute(plan, runner, out=lambda _: None)
    assert report.changed == 0 and annotations() == {("v1.5.0", "experimental")}
    assert "left alone" in (report.outcomes[0].reason or "")


def test_a_channel_bundle_needs_its_url_placeholder_and_annotations(tmp_path: Path) -> None:
    text = charts_mod.CHARTS_FILE.read_text()
    bad = text.replace("{channel}-install.yaml", "standard-install.yaml").replace(
        "channel: experimental", "channel: beta"
    )
    (tmp_path / "values").symlink_to(charts_mod.VALUES_DIR)
    (tmp_path / "charts.yaml").write_text(bad)
    with pytest.raises(ProblemsError) as info:
        charts_mod.load_charts(tmp_path / "charts.yaml")
    assert {p.field for p in info.value.problems} >= {"crds[0].url", "crds[0].channel"}
