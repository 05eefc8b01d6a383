"""Bootstrap building blocks without a cluster: charts + values, manifests, helm argv, credentials, stage steps."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from k8s_ops.bootstrap import charts as charts_mod
from k8s_ops.bootstrap import manifests, stages
from k8s_ops.bootstrap.credentials import load_git_credentials, repository_problems, validate_git_credentials
from k8s_ops.bootstrap.run import select_stages, settle
from k8s_ops.core.command import Command, Result, TempFile
from k8s_ops.core.errors import GateFailed, ProblemsError, ToolkitError
from k8s_ops.core.plan import Step
from k8s_ops.core.secret import Secret
from k8s_ops.core.testing import FakeRunner
from k8s_ops.talos.inventory import load_cluster
from k8s_ops.tools import helm
from k8s_ops.tools.flux import ROOT_KUSTOMIZATION
from k8s_ops.tools.kubectl import KubeTarget

REPO = Path(__file__).resolve().parent.parent
KUBE = KubeTarget(Path("/tmp/kc"), "demo")


@pytest.fixture(scope="module")
def demo():
    return load_cluster("demo", clusters_dir=REPO / "clusters")


@pytest.fixture(scope="module")
def pinned():
    return charts_mod.load_charts()


def _ctx(cluster, pinned, **kw):
    values = charts_mod.render_all_values(cluster, pinned)
    return stages.Context(cluster=cluster, charts=pinned, values=values, kube=KUBE, **kw)


# --------------------------------------------------------------------------- charts.yaml + values


def test_every_pinned_version_has_a_renovate_comment_and_one_source(pinned):
    text = charts_mod.CHARTS_FILE.read_text()
    lines = text.splitlines()
    versions = [i for i, line in enumerate(lines) if re.match(r"^\s*-?\s*version:", line)]
    assert len(versions) == len(pinned.releases) + len(pinned.crds) + 1
    for i in versions:
        assert lines[i - 1].strip().startswith("# renovate: datasource=")
    # the CRD URL takes its version from the one `version:` field
    assert all("{version}" in c.url and c.version in c.resolved_url for c in pinned.crds)
    assert {r.name for r in pinned.releases} == {"cilium", "coredns", "flux-operator", "flux-instance"}


def test_a_version_without_renovate_comment_is_a_problem_with_its_line(tmp_path):
    text = charts_mod.CHARTS_FILE.read_text()
    bad = text.replace("    # renovate: datasource=docker depName=quay.io/cilium/charts/cilium\n", "", 1)
    (tmp_path / "values").mkdir()
    for f in charts_mod.VALUES_DIR.iterdir():
        shutil.copy(f, tmp_path / "values" / f.name)
    (tmp_path / "charts.yaml").write_text(bad + "\nextra: 1\n")
    with pytest.raises(ProblemsError) as info:
        charts_mod.load_charts(tmp_path / "charts.yaml")
    problems = info.value.problems
    line = next(i for i, s in enumerate(bad.splitlines(), 1) if "version: 1.18" in s)
    assert any(p.field == "version" and p.line == line and "renovate" in p.message for p in problems)
    assert any(p.field == "extra" for p in problems)


@pytest.mark.parametrize("name", ["infra", "apps", "demo"])
def test_cilium_values_have_what_talos_requires(name, pinned):
    cluster = load_cluster(name, clusters_dir=REPO / "clusters")
    v = charts_mod.render_values(pinned.release("cilium"), cluster, pinned).data
    assert v["ipam"] == {"mode": "kubernetes"}
    assert v["kubeProxyReplacement"] is True
    assert (v["k8sServiceHost"], v["k8sServicePort"]) == ("localhost", 7445)
    caps = v["securityContext"]["capabilities"]
    assert caps["ciliumAgent"] == [
        "CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_ADMIN",
        "SYS_RESOURCE", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID",
    ]  # fmt: skip
    assert caps["cleanCiliumState"] == ["NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"]
    assert "SYS_MODULE" not in json.dumps(v)
    assert v["cgroup"] == {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"}
    assert v["cluster"] == {"name": cluster.name, "id": cluster.id}
    assert v["ipv4NativeRoutingCIDR"] == str(cluster.network.pod_cidr)


def test_coredns_and_flux_values(demo, pinned):
    values = charts_mod.render_all_values(demo, pinned)
    assert values["coredns"].data["service"]["clusterIP"] == "10.47.0.10"  # 10th address of 10.47.0.0/16
    instance = values["flux-instance"].data["instance"]
    assert "sync" not in instance  # the root sync objects are created by the bootstrap itself
    assert instance["distribution"]["version"] == pinned.flux_version


def test_undefined_template_variable_names_the_values_file(tmp_path, demo, pinned):
    (tmp_path / "cilium.yaml.j2").write_text("cluster:\n  name: {{ cluster.nope }}\n")
    with pytest.raises(ProblemsError) as info:
        charts_mod.render_values(pinned.release("cilium"), demo, pinned, values_dir=tmp_path)
    assert info.value.problems[0].file == str(tmp_path / "cilium.yaml.j2")


# --------------------------------------------------------------------------- manifests


def test_namespaces_are_never_pruned_by_flux():
    nss = manifests.bootstrap_namespaces(("kube-system", "flux-system", "cert-manager"))
    assert [n.name for n in nss] == ["flux-system", "cert-manager"]
    for ns in nss:
        assert ns.manifest["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/prune": "disabled"}


def test_sops_age_secret_reveals_its_value_only_on_stdin():
    key = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
    s = manifests.sops_age_secret(Secret(key))
    assert key not in repr(s) and key not in s.describe()
    doc = json.loads(s.to_stdin().reveal())
    assert doc["metadata"] == {"name": "sops-age", "namespace": "flux-system", "labels": manifests.MANAGED_BY}
    assert base64.b64decode(doc["data"]["age.agekey"]).decode() == key
    assert str(s.to_stdin()) == "***"


def test_cluster_vars_from_inventory(demo):
    cm = manifests.cluster_vars_configmap(demo)
    data = cm.manifest["data"]
    assert data["CLUSTER_NAME"] == "demo" and data["CLUSTER_ID"] == "3"
    assert data["CLUSTER_API_ENDPOINT"] == "https://10.5.0.10:6443"
    assert data["CLUSTER_POD_CIDR"] == "10.46.0.0/16" and data["CLUSTER_SVC_CIDR"] == "10.47.0.0/16"
    assert data["CLUSTER_CIDR"] == "10.5.0.0/24" and data["CLUSTER_DOMAIN"] == "demo.internal"
    assert data["ROUTER_BGP_ASN"] == "65000"
    assert all(isinstance(v, str) for v in data.values())


def test_cluster_vars_clash_and_bad_names_are_errors(demo):
    bad = demo.model_copy(update={"vars": {"CLUSTER_NAME": "x", "9LIVES": "y", "OK_1": "z"}})
    with pytest.raises(ProblemsError) as info:
        manifests.cluster_vars_data(bad)
    fields = {p.field for p in info.value.problems}
    assert fields == {"vars.CLUSTER_NAME", "vars.9LIVES"}


@pytest.mark.parametrize(("name", "branch"), [("infra", "main"), ("apps", "release")])
def test_git_repository_and_root_kustomization(name, branch):
    cluster = load_cluster(name, clusters_dir=REPO / "clusters")
    repo = manifests.git_repository(cluster, with_credentials=True)
    assert repo.manifest["spec"]["ref"] == {"branch": branch}
    assert repo.manifest["spec"]["secretRef"] == {"name": "git-credentials"}
    root = manifests.root_kustomization(cluster)
    spec = root.manifest["spec"]
    assert root.name == ROOT_KUSTOMIZATION
    assert spec["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}
    assert spec["postBuild"] == {"substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}]}
    assert spec["path"] == f"./clusters/{name}/flux"
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": repo.name}


# --------------------------------------------------------------------------- helm


def test_helm_upgrade_install_argv():
    cmd = helm.upgrade_install(KUBE, "cilium", "oci://quay.io/cilium/charts/cilium", version="1.18.5",
                               namespace="kube-system", values=b"a: 1\n")  # fmt: skip
    argv = cmd.display_argv()
    assert argv[:5] == ["helm", "upgrade", "cilium", "oci://quay.io/cilium/charts/cilium", "--install"]
    assert argv[argv.index("--version") + 1] == "1.18.5"
    assert argv[argv.index("--values") + 1] == "$TMP/cilium-values.yaml"
    assert argv[-4:] == ["--kubeconfig", "/tmp/kc", "--kube-context", "demo"]
    assert "--set" not in argv and "--wait" not in argv
    assert isinstance(cmd.argv[argv.index("--values") + 1], TempFile)


def test_helm_status_parser():
    answer = {"name": "cilium", "namespace": "kube-system", "version": 3, "info": {"status": "deployed"},
              "chart": {"metadata": {"name": "cilium", "version": "1.18.5"}},
              "config": {"ipam": {"mode": "kubernetes"}}}  # fmt: skip
    rel = helm.parse_status(Result(0, json.dumps(answer)))
    assert (rel.chart, rel.version, rel.revision, rel.deployed) == ("cilium", "1.18.5", 3, True)
    assert rel.values == {"ipam": {"mode": "kubernetes"}}
    assert helm.parse_status(Result(0, json.dumps({**answer, "config": None}))).values == {}
    with pytest.raises(helm.HelmOutputError):
        helm.parse_status(Result(0, "oops"))


# --------------------------------------------------------------------------- credentials


def test_repository_url_problems(demo):
    scp = demo.model_copy(update={"gitops": demo.gitops.model_copy(update={"repository": "git@github.com:o/r.git"})})
    (p,) = repository_problems(scp)
    assert p.field == "gitops.repository" and "ssh://git@github.com/o/r.git" in p.message
    assert repository_problems(demo) == []


def test_ssh_credentials_must_name_the_repository_host(demo, tmp_path):
    data = {
        "identity": Secret("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n"),
        "known_hosts": Secret("gitlab.com ssh-ed25519 AAAA\n"),
    }
    (p,) = validate_git_credentials(demo, data, tmp_path / "f")
    assert p.field == "known_hosts" and "github.com" in p.message


def test_missing_deploy_key_file_is_named(demo, tmp_path):
    moved = tmp_path / "demo"
    shutil.copytree(REPO / "clusters" / "demo", moved)
    shutil.rmtree(moved / "bootstrap")
    cluster = load_cluster("demo", clusters_dir=tmp_path)
    from k8s_ops.talos.secrets import age_key_for

    with pytest.raises(ProblemsError) as info:
        load_git_credentials(cluster, age_key_for(cluster))
    assert info.value.problems[0].file.endswith("demo/bootstrap/git-credentials.sops.yaml")


def test_demo_deploy_key_decrypts_and_is_labelled_test_only(demo):
    from k8s_ops.talos.secrets import age_key_for

    creds = load_git_credentials(demo, age_key_for(demo))
    assert creds is not None and creds.keys == ("identity", "identity.pub", "known_hosts")
    raw = yaml.safe_load(creds.source.read_text())
    assert "TEST-ONLY" in raw["note_unencrypted"]
    assert raw["identity"].startswith("ENC[AES256_GCM,")


# --------------------------------------------------------------------------- stage steps with a FakeRunner


def _helm_world(version: str, values: dict[str, object]):
    answer = {"name": "cilium", "namespace": "kube-system", "version": 2, "info": {"status": "deployed"},
              "chart": {"metadata": {"name": "cilium", "version": version}}, "config": values}  # fmt: skip
    return FakeRunner({re.compile(r"^helm status cilium"): Result(0, json.dumps(answer))})


def test_release_guard_needs_same_version_and_same_values(demo, pinned):
    ctx = _ctx(demo, pinned)
    step = stages.release_step(ctx, "cilium")
    same = json.loads(json.dumps(ctx.values["cilium"].data))
    assert step.guard is not None
    assert "deployed with the same values" in (step.guard(_helm_world("1.18.5", same)) or "")
    assert step.guard(_helm_world("1.18.4", same)) is None
    assert step.guard(_helm_world("1.18.5", {**same, "kubeProxyReplacement": False})) is None


def test_secret_step_keeps_the_key_off_argv_and_compares_content(demo, pinned):
    key = Secret("AGE-SECRET-KEY-1ABCDEFGHJKLMNPQRSTUVWXYZ")
    ctx = _ctx(demo, pinned, age_key=key)
    steps = stages.secrets_steps(ctx)
    sops_step = next(s for s in steps if "sops-age" in s.description)
    (cmd,) = sops_step.commands
    assert isinstance(cmd.stdin, Secret)
    assert key.reveal_text() not in " ".join(cmd.display_argv()) and key.reveal_text() not in cmd.display()
    live = {"metadata": {"labels": manifests.MANAGED_BY},
            "data": {"age.agekey": base64.b64encode(key.reveal()).decode()}}  # fmt: skip
    assert sops_step.guard is not None
    same = FakeRunner({re.compile("get secrets"): Result(0, json.dumps(live))})
    assert "same content" in (sops_step.guard(same) or "")
    other = {**live, "data": {"age.agekey": "b3RoZXI="}}
    assert sops_step.guard(FakeRunner({re.compile("get secrets"): Result(0, json.dumps(other))})) is None
    not_found = 'Error from server (NotFound): secrets "sops-age" not found'
    absent = FakeRunner({re.compile("get secrets"): Result(1, "", not_found)})
    assert sops_step.guard(absent) is None


def test_root_kustomization_is_gated_on_sops_age_and_cluster_vars(demo, pinned):
    ctx = _ctx(demo, pinned)
    root = next(s for s in stages.flux_steps(ctx) if s.description.startswith("root Kustomization"))
    missing = FakeRunner({re.compile("get secrets sops-age"): Result(1, "", "Error from server (NotFound): not found")})
    with pytest.raises(GateFailed) as info:
        root.before[0].run(missing)
    assert "Secret flux-system/sops-age is missing" in str(info.value)
    assert "--from secrets" in (info.value.hint or "")


def test_root_wait_names_the_git_repository_when_the_source_fails(demo, pinned, monkeypatch):
    monkeypatch.setenv("K8S_OPS_TIMEOUT_SCALE", "0.0001")
    monkeypatch.setenv("K8S_OPS_POLL_INTERVAL", "0.001")
    ctx = _ctx(demo, pinned)
    wait = next(s for s in stages.flux_steps(ctx) if s.description.startswith("wait for the root"))
    failing = {"type": "Ready", "status": "False", "reason": "GitOperationFailed", "message": "authentication required"}
    repo = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [failing]}}
    runner = FakeRunner({re.compile("get gitrepositories"): Result(0, json.dumps(repo))})
    with pytest.raises(GateFailed) as info:
        wait.after[0].run(runner)
    text = str(info.value)
    assert "GitRepository flux-system/flux-system not Ready (GitOperationFailed: authentication required)" in text
    assert "gitops.repository" in (info.value.hint or "")


def test_settle_resolves_leading_noops_and_stops_at_the_first_change():
    runner = FakeRunner()
    steps = [
        Step("a", commands=(Command(("true",), mutates=True),), guard=lambda r: "done"),
        Step("b", commands=(Command(("true",), mutates=True),), guard=lambda r: None),
        Step("c", commands=(Command(("true",), mutates=True),), guard=lambda r: "done"),
    ]
    out = settle(steps, runner)
    assert [s.noop for s in out] == ["done", None, None]
    assert out[2].guard is not None  # decided at execution, after b ran


def test_from_accepts_names_and_numbers():
    assert select_stages(stages.STAGES, "cni") == (("preflight", "cni", "flux", "onepassword"),
                                                   ("talos", "kubeconfig", "secrets"))  # fmt: skip
    assert select_stages(stages.STAGES, "6")[0] == ("preflight", "flux", "onepassword")
    with pytest.raises(ToolkitError, match="not a stage"):
        select_stages(("preflight", "talos", "kubeconfig"), "flux")


# --------------------------------------------------------------------------- the tasks


def test_tasks_have_help_and_reject_an_unknown_stage_without_a_traceback():
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "K8S_OPS_CLUSTERS_DIR"}
    invoke = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
    helped = subprocess.run([*invoke, "--help", "bootstrap.rebuild"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0
    for flag in ("--cluster", "--dry-run", "--json", "--yes", "--from", "--recover-from"):
        assert flag in helped.stdout
    assert "1Password" in helped.stdout
    bad = subprocess.run([*invoke, "bootstrap.talos", "--cluster", "demo", "--from", "flux", "--dry-run"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert bad.returncode == 1
    assert "--from 'flux' is not a stage of this task (stages: 1=preflight, 2=talos, 3=kubeconfig)" in bad.stderr
    assert "Traceback" not in bad.stderr


# --------------------------------------------------------------------------- rebuild, phase 1


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode) for p in root.rglob("*") if p.is_file()}


def test_rebuild_pull_is_a_planned_step_with_a_pull_effect_and_planning_writes_nothing(tmp_path, monkeypatch):
    from k8s_ops import onepassword as op
    from k8s_ops.bootstrap.run import material_plan
    from k8s_ops.core import paths
    from k8s_ops.onepassword import sdk as op_sdk
    from k8s_ops.onepassword.effects import Pull
    from k8s_ops.talos import secrets as talos_secrets
    from tests.op_fake import FakeOnePassword

    shutil.copytree(REPO / "clusters" / "demo", tmp_path / "clusters" / "demo")
    for k, v in {"K8S_OPS_CLUSTERS_DIR": "clusters", "K8S_OPS_BUILD_DIR": "build", "K8S_OPS_STATE_DIR": "state",
                 "HOME": "home", "XDG_CONFIG_HOME": "home/.config"}.items():  # fmt: skip
        monkeypatch.setenv(k, str(tmp_path / v))
    for k in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE"):
        monkeypatch.delenv(k, raising=False)
    fake = FakeOnePassword(vaults=("k8s-ops-demo",))
    monkeypatch.setattr(op_sdk, "client_class", lambda: fake.Client)
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", fake.token)
    talos_secrets.clear_cache()
    cluster = load_cluster("demo")
    op.push(cluster, "age-key,talos-secrets")
    (tmp_path / "clusters" / "demo" / "demo.agekey").unlink()
    cluster.secrets_file.unlink()
    talos_secrets.clear_cache()
    before, calls = _tree(tmp_path), len(fake.calls)

    plan = material_plan(cluster)

    assert _tree(tmp_path) == before  # no file written, none changed (not even the 1Password sync state)
    writes = ("create", "put", "update", "delete", "archive")
    assert not [c for c in fake.calls[calls:] if any(w in c.lower() for w in writes)], fake.calls[calls:]  # 1Password
    assert plan is not None
    assert [s.description for s in plan.steps] == [
        f"[preflight] pull sops-age-key-demo -> {paths.default_age_key_file()} (0600)",
        f"[preflight] pull talos-secrets-demo -> {cluster.secrets_file} (0600)",
    ]
    for step, what in zip(plan.steps, ("age-key", "talos-secrets"), strict=True):
        assert step.effects == (Pull(cluster, what, only_missing=True),) and step.mutates and step.noop is None
        assert step.to_json()["mutates"] is True
        assert step.to_json()["finish"] == [{"effect": "1password-pull", "cluster": "demo", "vault": "k8s-ops-demo",
                                             "what": what, "force": False, "only_missing": True}]  # fmt: skip
    assert f"rebuild: would pull sops-age-key-demo -> {paths.default_age_key_file()} (" in plan.to_text()
    assert "planned once the material exists locally" in plan.to_text()
    assert "AGE-SECRET-KEY" not in plan.to_text() + plan.to_json_text()

    # an item 1Password lacks: a step whose gate fails, placed first (a real run stops before writing anything)
    fake.items = {k: v for k, v in fake.items.items() if v.get("title") != "talos-secrets-demo"}
    gated = material_plan(cluster)
    assert gated is not None and gated.steps[0].before and not gated.steps[0].mutates
    assert "talos-secrets-demo" in gated.steps[0].description
    with pytest.raises(op.SyncRefused):
        gated.steps[0].before[0].run(FakeRunner())
    assert _tree(tmp_path) == before

    # nothing missing: no phase 1
    (tmp_path / "home" / ".config" / "k8s-ops").mkdir(parents=True)
    shutil.copy(REPO / "clusters" / "demo" / "demo.agekey", paths.default_age_key_file())
    shutil.copy(REPO / "clusters" / "demo" / "talos" / "secrets.sops.yaml", cluster.secrets_file)
    talos_secrets.clear_cache()
    assert material_plan(cluster) is None
    talos_secrets.clear_cache()
