"""gitops.lint on the synthetic monorepo tests/fixtures/gitops/lint-repo: every rule fires on the app planted to
break it (and only that rule there), never on the good apps; opt-outs, configuration, --cluster, output formats,
--list-rules and the task's exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.core.errors import ProblemsError
from k8s_ops.gitops import tasks as gitops_tasks
from k8s_ops.gitops.lint import RULES, LintConfig, lint, load_config
from k8s_ops.gitops.lint.engine import LintResult, enabled_rules, glob_regex, opt_outs
from k8s_ops.gitops.lint.model import ClusterFacts
from k8s_ops.gitops.lint.output import render

REPO = Path(__file__).parent / "fixtures" / "gitops" / "lint-repo"
BAD = "kubernetes/apps/bad"

#: rule id -> the app planted to break it (each bad app breaks exactly one rule)
PLANTED = {r.id: f"{BAD}/{r.name}" for r in RULES.values() if r.id != "GL035"}
PLANTED["GL012"] = f"{BAD}/operator-crds"

GOOD_APPS = (
    "kubernetes/apps/databases/cloudnative-pg",
    "kubernetes/apps/databases/cloudnative-pg-cluster",
    "kubernetes/apps/business/odoo",
    "kubernetes/components/cnpg",
    "clusters/infra/apps/observability/grafana",
    "clusters/apps/apps/business/shop",
    "clusters/infra/flux",
    "clusters/apps/flux",
)


@pytest.fixture(scope="module")
def result() -> LintResult:
    enabled_rules(LintConfig())  # registers the rules
    return lint(REPO, LintConfig())


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base + "/")


def test_every_rule_has_a_planted_app() -> None:
    enabled_rules(LintConfig())
    assert set(PLANTED) | {"GL035"} == set(RULES)
    for rule_id, app in PLANTED.items():
        assert (REPO / app).is_dir(), f"{rule_id}: no planted app {app}"


@pytest.mark.parametrize("rule_id", sorted(PLANTED))
def test_rule_fires_on_its_planted_app_only(result: LintResult, rule_id: str) -> None:
    app = PLANTED[rule_id]
    here = [f for f in result.findings if _under(f.file, app)]
    assert any(f.rule == rule_id for f in here), f"{rule_id} did not fire on {app}"
    assert {f.rule for f in here} == {rule_id}, f"{app} also broke {sorted({f.rule for f in here} - {rule_id})}"
    for f in here:
        assert f.message and f.hint and f.name == RULES[rule_id].name


@pytest.mark.parametrize("rule_id", sorted(PLANTED))
def test_rule_does_not_fire_anywhere_else(result: LintResult, rule_id: str) -> None:
    elsewhere = [str(f) for f in result.findings if f.rule == rule_id and not _under(f.file, PLANTED[rule_id])]
    assert elsewhere == []


@pytest.mark.parametrize("good", GOOD_APPS)
def test_rules_do_not_fire_on_good_apps(result: LintResult, good: str) -> None:
    assert (REPO / good).is_dir()
    assert [str(f) for f in result.findings if _under(f.file, good)] == []


def _line_of(path: str, needle: str) -> int:
    lines = (REPO / path).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


@pytest.mark.parametrize(
    ("rule_id", "file", "needle"),
    [
        ("GL001", f"{BAD}/yaml-syntax/app/broken.yaml", "key: two"),
        ("GL011", f"{BAD}/helmrelease-remediation/app/helmrelease.yaml", "retries: 5"),
        ("GL014", f"{BAD}/ks-standards/ks.yaml", "interval: 10m"),
        ("GL018", f"{BAD}/substitution-syntax/app/configmap.yaml", "$CLUSTER_DOMAIN"),
        ("GL020", f"{BAD}/hardcoded-cluster-value/app/helmrelease.yaml", "monosense.io"),
        ("GL028", f"{BAD}/httproute-gateway/app/httproute.yaml", "name: envoy-external"),
        ("GL030", f"{BAD}/image-digest/app/helmrelease.yaml", "tag: 1.2.3"),
        ("GL029", f"{BAD}/tier2-network-policy/ks.yaml", "monosense.dev/tier"),
        ("GL012", f"{BAD}/operator-crds/app/helmrelease.yaml", "install:"),
    ],
)
def test_findings_point_at_the_offending_line(result: LintResult, rule_id: str, file: str, needle: str) -> None:
    lines = {f.line for f in result.findings if f.rule == rule_id and f.file == file}
    assert _line_of(file, needle) in lines


def test_summary_counts(result: LintResult) -> None:
    assert result.errors == sum(f.severity == "error" for f in result.findings) > 0
    assert {f.rule for f in result.findings if f.severity == "warning"} == {"GL007", "GL015", "GL016", "GL033"}


# ---------------------------------------------------------------- opt-outs


def test_opt_out_with_a_reason_silences_the_rule(result: LintResult) -> None:
    grafana = "clusters/infra/apps/observability/grafana/app/deployment.yaml"
    assert "readOnlyRootFilesystem: false" in (REPO / grafana).read_text()
    assert not [f for f in result.findings if f.file == grafana]


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO, root)
    return root


def test_opt_out_without_a_reason_is_a_finding_and_opts_out_of_nothing(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    dep = root / "clusters/infra/apps/observability/grafana/app/deployment.yaml"
    dep.write_text(dep.read_text().replace("GL033 grafana writes its plugin cache to the root filesystem", "GL033"))
    found = {f.rule for f in lint(root, LintConfig(), scope=["clusters/infra/apps/observability/grafana"]).findings}
    assert found == {"GL008", "GL033"}


def test_links_out_of_the_repository_are_not_read(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    outside = tmp_path / "secret.yaml"
    outside.write_text("password: hunter2\npassword: hunter3\n")
    (root / f"{BAD}/yaml-syntax/app/link.yaml").symlink_to(outside)
    found = [f for f in lint(root, LintConfig(), scope=[f"{BAD}/yaml-syntax/app/link.yaml"]).findings]
    assert [(f.rule, f.line) for f in found] == [("GL001", None)]
    assert "outside the repository" in found[0].message and "password" not in found[0].message


@pytest.mark.parametrize(
    ("value", "rules", "problem"),
    [
        ("GL012 operator CRDs come from the bootstrap", ("GL012",), None),
        ("GL012,GL030: vendor image has no digest", ("GL012", "GL030"), None),
        ("image-digest upstream publishes no digests", ("GL030",), None),
        ("GL012", ("GL012",), "without a reason"),
        ("GL999 because", (), "unknown rule"),
        ("just because", (), "names no rule"),
    ],
)
def test_opt_out_parsing(value: str, rules: tuple[str, ...], problem: str | None) -> None:
    from k8s_ops.gitops.lint.model import Doc
    from k8s_ops.talos.yamlio import load_located_documents

    enabled_rules(LintConfig())
    annotation = f"monosense.dev/lint-ignore: {json.dumps(value)}"
    text = f"kind: ConfigMap\nmetadata:\n  name: x\n  annotations:\n    {annotation}\n"
    (o,) = opt_outs(Doc("x.yaml", 0, load_located_documents(text)[0]), LintConfig())
    assert o.rules == rules
    assert (o.problem is None) if problem is None else (o.problem is not None and problem in o.problem)


# ---------------------------------------------------------------- configuration, clusters, scope


def test_shipped_config_documents_the_defaults() -> None:
    shipped = load_config(Path(__file__).parent.parent)
    assert shipped.model_copy(update={"commits": LintConfig().commits}) == LintConfig()
    # the repository also holds the toolkit: its commit types and scopes are added to the rulebook's
    assert set(LintConfig().commits.scopes) < set(shipped.commits.scopes)
    assert set(LintConfig().commits.types) < set(shipped.commits.types)


def test_config_changes_severity_and_turns_rules_off(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / ".k8s-ops-lint.yaml").write_text("rules:\n  GL015: off\n  read-only-root-filesystem: error\n")
    cfg = load_config(root)
    res = lint(root, cfg, scope=[BAD])
    assert not [f for f in res.findings if f.rule == "GL015"]
    assert {f.severity for f in res.findings if f.rule == "GL033"} == {"error"}


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("rules:\n  GL999: off\n", "unknown rule 'GL999'", 2),
        ("gateways:\n  namespace: networking\n  colour: blue\n", "colour", 3),
        ("rules:\n  GL015: loud\n", "GL015", 2),
        ("cnpg:\n  markers: ['postgres-rw(']\n", "not a regular expression", 2),
    ],
)
def test_bad_config_names_key_and_line(tmp_path: Path, text: str, message: str, line: int) -> None:
    (tmp_path / ".k8s-ops-lint.yaml").write_text(text)
    with pytest.raises(ProblemsError) as err:
        load_config(tmp_path)
    assert any(message in str(p) and p.line == line for p in err.value.problems), err.value.problems


def test_gateway_is_checked_per_cluster() -> None:
    app = f"{BAD}/httproute-gateway"
    infra = lint(REPO, LintConfig(), scope=[app], cluster="infra")
    apps = lint(REPO, LintConfig(), scope=[app], cluster="apps")
    assert not [f for f in infra.findings if f.rule == "GL028"]  # envoy-external is infra's gateway
    assert [f.message for f in apps.findings if f.rule == "GL028"] != []


def test_cluster_skips_other_clusters_trees() -> None:
    res = lint(REPO, LintConfig(), cluster="apps")
    assert res.findings and not [f for f in res.findings if f.file.startswith("clusters/infra/")]


def test_literals_come_from_the_inventory() -> None:
    app = f"{BAD}/hardcoded-cluster-value"
    none = lint(REPO, LintConfig(), scope=[app], clusters={})
    assert not none.findings and any("GL020" in n for n in none.notes)
    other = {"lab": ClusterFacts("lab", "lab.example", ("10.9.0.0/24",), ("10.9.0.10",))}
    assert not lint(REPO, LintConfig(), scope=[app], clusters=other).findings
    mine = {"apps": ClusterFacts("apps", "monosense.io", ("10.9.0.0/24",), ("10.9.0.10",))}
    assert {f.rule for f in lint(REPO, LintConfig(), scope=[app], clusters=mine).findings} == {"GL020"}


def test_scope_limits_the_report_not_the_context() -> None:
    # the chart's OCIRepository is judged by the HelmRelease that references it, even when only the source is linted
    file = f"{BAD}/oci-layer-selector/app/ocirepository.yaml"
    res = lint(REPO, LintConfig(), scope=[file])
    assert {(f.rule, f.file) for f in res.findings} == {("GL017", file)}


@pytest.mark.parametrize(
    ("pattern", "path", "match"),
    [
        ("kubernetes/**", "kubernetes/apps/a/b/ks.yaml", True),
        ("clusters/*/flux/**", "clusters/infra/flux/apps.yaml", True),
        ("clusters/*/flux/**", "clusters/infra/patches/x.yaml", False),
        ("**/*.sops.yaml", "a/b/c.sops.yaml", True),
        ("**/*.sops.yaml", "c.sops.yaml", True),
    ],
)
def test_glob(pattern: str, path: str, match: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is match


# ---------------------------------------------------------------- output and the task


def test_json_and_github_output(result: LintResult) -> None:
    data = json.loads(render(result, "json"))
    assert data["ok"] is False and data["errors"] == result.errors
    assert {"rule", "name", "severity", "file", "line", "object", "message", "hint"} <= set(data["findings"][0])
    lines = render(result, "github").splitlines()
    assert len(lines) == len(result.findings)
    f = next(f for f in result.findings if f.rule == "GL011")
    assert f"::error file={f.file},line={f.line},title=GL011 helmrelease-remediation::" in "\n".join(lines)
    assert all(line.startswith(("::error ", "::warning ")) for line in lines)
    assert all("\n" not in line for line in lines)


def _ctx() -> Context:
    return Context(Config())


def test_task_exits_1_on_errors_and_prints_findings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exit) as exc:
        gitops_tasks.lint(_ctx(), repo=str(REPO), path=[f"{BAD}/image-digest"], format="github")
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert out.startswith("::error file=kubernetes/apps/bad/image-digest/app/helmrelease.yaml,line=")


def test_task_clean_path_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    gitops_tasks.lint(_ctx(), repo=str(REPO), path=["kubernetes/apps/business"], json=True)
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_task_warnings_only_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    gitops_tasks.lint(_ctx(), repo=str(REPO), path=[f"{BAD}/flux-interval"])  # no Exit: warnings do not fail
    out = capsys.readouterr().out
    assert ": warning: " in out and "[GL015 flux-interval]" in out and "0 error(s), 1 warning(s)" in out


def test_list_rules(capsys: pytest.CaptureFixture[str]) -> None:
    gitops_tasks.lint(_ctx(), repo=str(REPO), list_rules=True)
    out = capsys.readouterr().out
    for r in RULES.values():
        assert f"{r.id} {r.name} [{r.severity}]" in out
    gitops_tasks.lint(_ctx(), repo=str(REPO), list_rules=True, json=True)
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed] == sorted(RULES)


def test_dry_run_lints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    gitops_tasks.lint(_ctx(), repo=str(REPO), dry_run=True, json=True)
    plan = json.loads(capsys.readouterr().out)
    assert plan["title"] == "lint the GitOps repository"


def test_path_outside_the_repository_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exit):
        gitops_tasks.lint(_ctx(), repo=str(REPO), path=[str(tmp_path)])
    assert "not inside the repository" in capsys.readouterr().err


def test_helm_chart_layer_selector() -> None:
    """GL017's expected selector: Helm's chart-content layer media type, copied as-is by source-controller."""
    from k8s_ops.gitops.lint.rules.flux import HELM_CHART_MEDIA_TYPE

    assert HELM_CHART_MEDIA_TYPE == "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    good = (REPO / "kubernetes/apps/databases/cloudnative-pg/app/ocirepository.yaml").read_text()
    assert f"mediaType: {HELM_CHART_MEDIA_TYPE}\n    operation: copy" in good
    res = lint(REPO, LintConfig(), scope=[f"{BAD}/oci-layer-selector"])
    assert [f.rule for f in res.findings] == ["GL017"]


def test_located_documents_keep_lines_and_refuse_duplicate_keys() -> None:
    from k8s_ops.talos.yamlio import YAMLError, load_located_documents

    docs = load_located_documents("a: 1\n---\n# only a comment\n---\nkind: X\nspec:\n  items:\n    - x: 1\n    - y\n")
    assert [d.data for d in docs] == [{"a": 1}, {"kind": "X", "spec": {"items": [{"x": 1}, "y"]}}]
    assert docs[1].line(("spec", "items", 1)) == 9 and docs[1].line(("spec", "items", 0, "x")) == 8
    assert docs[1].line(("spec", "missing")) == 6  # a missing key is reported at its parent
    with pytest.raises(YAMLError) as err:
        load_located_documents("a: 1\nb: 2\na: 3\n")
    assert err.value.line == 3


ODOO = "kubernetes/apps/business/odoo"
_SELECTOR = (
    "name: odoo\nspec:\n  interval: 5m\n  layerSelector:\n"
    "    mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip\n    operation: copy\n"
)
GRAFANA = "clusters/infra/apps/observability/grafana"


@pytest.mark.parametrize(
    ("file", "old", "new", "rule", "message"),
    [
        (f"{ODOO}/ks.yaml", "path: ./kubernetes/apps/business/odoo/app", "path: ./kubernetes/apps/other/app",
         "GL004", "outside the app directory"),
        (f"{ODOO}/app/helmrelease.yaml", "runAsUser: 65534", "runAsUser: 0", "GL032", "runs as root"),
        (f"{ODOO}/app/helmrelease.yaml", "kind: OCIRepository", "kind: HelmChart", "GL016", "chartRef.kind"),
        (f"{ODOO}/app/helmrelease.yaml", "retries: 3\n  upgrade", "retries: -1\n  upgrade", "GL011", "want 3\n"),
        (f"{ODOO}/ks.yaml", "wait: false", "wait: true", None, ""),  # accepted: the app has healthCheckExprs
        (f"{ODOO}/app/httproute.yaml", "sectionName: https", "sectionName: http", "GL028", "sectionName"),
        (f"{ODOO}/app/httproute.yaml", "name: envoy-internal", "name: ${GATEWAY}", None, ""),
        (f"{GRAFANA}/app/secret.sops.yaml", "sops:", "notsops:", "GL034", "not encrypted"),
        (f"{ODOO}/app/ocirepository.yaml", _SELECTOR, "name: odoo\n  namespace: flux-system\nspec:\n  interval: 5m\n",
         "GL017", "layerSelector"),
        (f"{GRAFANA}/app/deployment.yaml", "name: grafana\n  annotations", "name: grafana\n  namespace: ${CLUSTER_NAME}"
         "\n  annotations", None, ""),
        (f"{GRAFANA}/app/httproute.yaml", "- grafana.${CLUSTER_DOMAIN}", "- grafana.10.25.11.10.nip.io", "GL020",
         "10.25.11.10"),
        (f"{GRAFANA}/app/httproute.yaml", "spec:\n", "spec:\n  clusterName: infra\n", "GL020", "cluster name"),
    ],
)
def test_rule_branches(tmp_path: Path, file: str, old: str, new: str, rule: str | None, message: str) -> None:
    root = _copy(tmp_path)
    path = root / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    app = file.split("/app/")[0].removesuffix("/ks.yaml")
    found = lint(root, LintConfig(), scope=[app]).findings
    if rule is None:
        assert [str(f) for f in found] == []
    else:
        assert {f.rule for f in found} == {rule}, [str(f) for f in found]
        assert any(message in f.message + "\n" for f in found), [f.message for f in found]


def test_kustomization_file_name_case(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    app = root / ODOO / "app"
    (app / "kustomization.yaml").rename(app / "Kustomization.yaml")
    found = {(f.rule, f.file.rpartition("/")[2]) for f in lint(root, LintConfig(), scope=[ODOO]).findings}
    assert ("GL003", "Kustomization.yaml") in found and ("GL004", "ks.yaml") in found


def test_this_repository_obeys_its_rulebook() -> None:
    """The GitOps tree shipped here (clusters/demo/flux …) passes the lint it ships, as the README's CI job runs it."""
    root = Path(__file__).parent.parent
    res = lint(root, load_config(root))
    assert res.files > 0
    assert [str(f) for f in res.findings if f.severity == "error"] == []
