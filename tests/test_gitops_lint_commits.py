"""gitops.lint --commits RANGE: commit subjects against `<type>(<scope>): <description>` (GL035), read with git."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.core.command import Result
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.testing import FakeRunner
from k8s_ops.gitops import tasks as gitops_tasks
from k8s_ops.gitops.lint.commits import check_subject
from k8s_ops.gitops.lint.config import Commits
from k8s_ops.tools import git

GOOD_REPO = Path(__file__).parent / "fixtures" / "gitops" / "lint-repo"


@pytest.mark.parametrize(
    ("subject", "problem"),
    [
        ("feat(apps): add the odoo deployment", None),
        ("fix(infra)!: move the CNPG backups to R2", None),
        ("chore(renovate): update cilium to v1.18.5", None),
        ("update cilium", "is not `<type>(<scope>): <description>`"),
        ("feature(apps): add odoo", "type 'feature' is not one of"),
        ("feat(odoo): add odoo", "scope 'odoo' is not one of"),
        ("feat: add odoo", "no (scope)"),
        ("feat(apps):add odoo", "is not `<type>(<scope>): <description>`"),
        ("feat(apps): " + "x" * 100, "at most 72"),
    ],
)
def test_subject_rules(subject: str, problem: str | None) -> None:
    problems = check_subject(subject, Commits(max_length=72))
    assert problems == [] if problem is None else any(problem in p for p in problems), problems


def test_no_length_limit_by_default() -> None:
    assert check_subject("feat(apps): " + "x" * 200, Commits()) == []


def test_any_kebab_scope_when_scopes_are_not_listed() -> None:
    cfg = Commits(scopes=(), scope_required=False)
    assert check_subject("docs: tidy the README", cfg) == []
    assert check_subject("feat(odoo-web): add odoo", cfg) == []
    assert check_subject("feat(Odoo_Web): add odoo", cfg) == ["scope 'Odoo_Web' is not kebab-case"]


def test_git_log_command_and_parser() -> None:
    cmd = git.log_subjects(Path("/repo"), "origin/main..HEAD")
    assert cmd.argv == ("git", "-C", "/repo", "log", "--no-merges", "--format=%H%x1f%s", "origin/main..HEAD", "--")
    assert not cmd.mutates
    with pytest.raises(ToolkitError):
        git.log_subjects(Path("/repo"), "--output=/tmp/x")
    entries = git.parse_log_subjects("a" * 40 + "\x1ffeat(apps): x\n" + "b" * 40 + "\x1fwip\n")
    assert [(e.commit[:1], e.subject) for e in entries] == [("a", "feat(apps): x"), ("b", "wip")]


def test_task_reads_commits_through_the_runner(capsys: pytest.CaptureFixture[str]) -> None:
    log = "c" * 40 + "\x1ffeat(apps): add odoo\n" + "d" * 40 + "\x1fwip: stuff\n"
    fake = FakeRunner({("git", "-C", str(GOOD_REPO.resolve()), "log", "--no-merges", "--format=%H%x1f%s",
                        "main..topic", "--"): Result(0, log)})  # fmt: skip
    ctx = Context(Config(overrides={"k8s_ops": {"runner": lambda: fake}}))
    with pytest.raises(Exit) as exc:
        gitops_tasks.lint(ctx, repo=str(GOOD_REPO), path=["kubernetes/apps/business"], commits="main..topic",
                          json=True)  # fmt: skip
    assert exc.value.code == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert [(f["rule"], f["file"]) for f in findings] == [("GL035", "commit dddddddddddd")] * len(findings)
    assert any("type 'wip'" in f["message"] for f in findings)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_commits_of_a_real_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the developer's git configuration (signing, hooks, default branch) must not change the outcome
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")

    def run(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    run("init", "-q", "-b", "main")
    run("config", "user.email", "dev@example.com")
    run("config", "user.name", "dev")
    run("commit", "-q", "--allow-empty", "-m", "chore(flux): start")
    run("commit", "-q", "--allow-empty", "-m", "fix(apps): correct the odoo route")
    ctx = Context(Config())
    gitops_tasks.lint(ctx, repo=str(tmp_path), commits="HEAD~1..HEAD", json=True)
    assert json.loads(capsys.readouterr().out)["ok"] is True
    run("commit", "-q", "--allow-empty", "-m", "Fixed stuff")
    with pytest.raises(Exit):
        gitops_tasks.lint(ctx, repo=str(tmp_path), commits="HEAD~2..HEAD", format="github")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("::error title=GL035 commit-message::Fixed stuff")
