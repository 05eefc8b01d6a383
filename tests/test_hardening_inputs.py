"""Issue #16 §4 and §5 (inputs): errors never echo secrets, every --cluster / --name / --namespace is checked the same
way, settings are validated. Each test names the defect it guards against; every one failed before the fix."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task

from k8s_ops.core import paths, settings
from k8s_ops.core.audit import AuditLog
from k8s_ops.core.command import Command
from k8s_ops.core.errors import CommandFailed, ToolkitError
from k8s_ops.core.runner import SubprocessRunner
from k8s_ops.core.secret import MASK, Secret, mask_text
from k8s_ops.day2 import tasks as day2_tasks
from k8s_ops.day2.common import require_target
from tests.test_inventory import bad

AGE_KEY = "AGE-SECRET-KEY-1H4RDEN1NGQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
PEM_BODY = "MHcCAQEEIHARDENINGxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
PEM = f"-----BEGIN EC PRIVATE KEY-----\n{PEM_BODY}\n-----END EC PRIVATE KEY-----\n"

# --------------------------------------------------------------------------- §4: failing tools never echo secrets


def _runner(tmp_path: Path) -> SubprocessRunner:
    return SubprocessRunner(audit=AuditLog(tmp_path / "audit.log"))


def _failing(script: str, **kw: Any) -> Command:
    return Command(argv=(sys.executable, "-c", script), **kw)


def test_stderr_echoing_a_stdin_secret_is_masked(tmp_path: Path) -> None:
    # before: CommandFailed printed the tool's stderr as-is — a tool echoing its input leaked the bundle value
    value = "bundle-token-0123456789abcdef"
    script = "import sys; sys.stderr.write('bad input: ' + sys.stdin.read()); sys.exit(3)"
    with pytest.raises(CommandFailed) as info:
        _runner(tmp_path).run(_failing(script, stdin=Secret(value)))
    assert value not in str(info.value) and value not in info.value.stderr
    assert f"bad input: {MASK}" in str(info.value)


def test_stderr_echoing_an_env_secret_and_pem_lines_is_masked(tmp_path: Path) -> None:
    # the age key (env) and one line of a PEM deploy key (known from a Secret created elsewhere in the run)
    Secret(PEM)
    script = f"import os, sys; sys.stderr.write(os.environ['SOPS_AGE_KEY'] + ' / {PEM_BODY}\\n'); sys.exit(1)"
    with pytest.raises(CommandFailed) as info:
        _runner(tmp_path).run(_failing(script, env=(("SOPS_AGE_KEY", Secret(AGE_KEY)),)))
    text = str(info.value)
    assert AGE_KEY not in text and PEM_BODY not in text
    assert f"{MASK} / {MASK}" in text


def test_kubeconfig_key_data_is_masked_in_any_toolkit_error() -> None:
    key_data = "LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk1IY0hardening"
    Secret(f"users:\n- name: admin\n  user:\n    client-key-data: {key_data}\n")
    err = ToolkitError(f"talosctl said: {key_data}", hint=f"try {key_data}")
    assert key_data not in str(err)
    assert mask_text(f"x {key_data} y") == f"x {MASK} y"


def test_audit_log_masks_a_known_secret_on_a_plain_argv(tmp_path: Path) -> None:
    # before: the audit log wrote the display form; a secret value that reached argv as plain text was logged
    value = "deploy-key-passphrase-9f8e7d"
    Secret(value)
    runner = _runner(tmp_path)
    with pytest.raises(CommandFailed) as info:
        runner.run(_failing(f"import sys; print('{value}', file=sys.stderr); sys.exit(2)"))
    assert value not in str(info.value)
    log = (tmp_path / "audit.log").read_text()
    assert value not in log and MASK in json.loads(log.splitlines()[-1])["cmd"]


def test_short_values_are_not_registered() -> None:
    Secret("1")
    Secret("true")
    assert mask_text("1 true") == "1 true"


# --------------------------------------------------------------------------- §4: inventory errors


def _messages(tmp_path: Path, key: str, value: Any) -> str:
    def mutate(d: dict[str, Any]) -> None:
        d[key] = value

    _, problems = bad(tmp_path, mutate)
    assert problems
    return "\n".join(str(p) for p in problems)


def test_expected_a_mapping_prints_the_type_not_the_content(tmp_path: Path) -> None:
    # before: "onepassword: expected a mapping, got 'AGE-SECRET-KEY-1…'" — the first 57 characters of the key
    text = _messages(tmp_path, "onepassword", AGE_KEY)
    assert "expected a mapping, got a string" in text
    assert "AGE-SECRET" not in text


@pytest.mark.parametrize("value", [PEM, AGE_KEY, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkwYWJjZGVm"])
def test_inventory_never_echoes_key_material(tmp_path: Path, value: str) -> None:
    text = _messages(tmp_path, "endpoint", value)
    assert "looks like key material (not shown)" in text
    assert value[:12] not in text and "BEGIN" not in text


def test_inventory_echoes_only_a_short_prefix(tmp_path: Path) -> None:
    # before: 57 characters of the value were printed (and a validator's own message quoted all of it)
    value = "not an address " * 20
    text = _messages(tmp_path, "endpoint", value)
    assert "'not an address n'... (300 characters)" in text
    assert value[:30] not in text


# --------------------------------------------------------------------------- §5: --cluster, the same in every task


def _cluster_tasks() -> list[Any]:
    found = []
    for module in ("talos", "day2", "bootstrap", "onepassword"):
        mod = importlib.import_module(f"k8s_ops.{module}.tasks")
        for name, obj in vars(mod).items():
            if isinstance(obj, Task) and "cluster" in inspect.signature(obj.body).parameters:
                found.append(pytest.param(obj, id=f"{module}.{name}"))
    return found


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "clusters" / "infra").mkdir(parents=True)
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(tmp_path / "clusters"))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("K8S_OPS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


@pytest.mark.parametrize("task", _cluster_tasks())
@pytest.mark.parametrize(
    ("cluster", "says"),
    [
        ("/tmp/x/evil", "is not a valid cluster name"),  # day-2 tasks used it as a path
        ("../infra", "is not a valid cluster name"),
        ("a" * 300, "too long"),  # a traceback (OSError: File name too long) in all tasks
        ("", "--cluster is empty"),
        ("-rf", "is not a valid cluster name"),
    ],
)
def test_every_task_refuses_a_bad_cluster_name_cleanly(
    dirs: Path, task: Any, cluster: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Exit) as info:
        task(Context(), cluster=cluster)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and "Traceback" not in err
    assert len(err) < 400  # a 300-character name is not echoed whole
    assert sorted(p.name for p in dirs.iterdir()) == ["clusters"]  # nothing written anywhere


def test_paths_refuse_a_path_as_cluster_name(dirs: Path) -> None:
    for fn in (paths.cluster_dir, paths.build_dir, paths.backups_dir, require_target):
        with pytest.raises(paths.InvalidName):
            fn("/tmp/x/evil")
    assert paths.cluster_dir("infra") == dirs / "clusters" / "infra"


# --------------------------------------------------------------------------- §5: --name / --namespace


@pytest.mark.parametrize(
    ("task", "kwargs", "says"),
    [
        (day2_tasks.hr_restart, {"name": "--all", "namespace": "x"}, "--name '--all' is not a valid"),
        (day2_tasks.hr_restart, {"name": "x", "namespace": "-A"}, "--namespace '-A' is not a valid namespace"),
        (day2_tasks.hr_restart, {"name": "", "namespace": "x"}, "--name is empty"),
        (day2_tasks.hr_restart, {"name": "x", "namespace": ""}, "--namespace is empty"),
        (day2_tasks.hr_restart, {"name": "x" * 254, "namespace": "x"}, "too long"),
        (day2_tasks.reconcile, {"namespace": "n" * 64}, "too long for a namespace"),
        (day2_tasks.reconcile, {"name": "Bad_Name"}, "--name 'Bad_Name' is not a valid"),
        (day2_tasks.sync_secrets, {"name": "a,,b"}, "--name is empty"),
        (day2_tasks.sync_secrets, {"name": "a,-o=json"}, "--name '-o=json' is not a valid"),
        (day2_tasks.sync_secrets, {"namespace": ""}, "--namespace is empty"),  # was "all namespaces"
        (day2_tasks.cleanse_pods, {"namespace": "--all-namespaces"}, "is not a valid namespace"),
        (day2_tasks.snapshot, {"app": "-x"}, "--app '-x' is not a valid"),
        (day2_tasks.unlock, {"app": "plex", "namespace": "kube system"}, "is not a valid namespace"),
        (day2_tasks.restore, {"app": "plex", "namespace": "-n", "yes": True}, "is not a valid namespace"),
    ],
)
def test_kube_names_are_validated_before_anything_runs(
    dirs: Path, task: Any, kwargs: dict[str, Any], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # no kubeconfig exists: the name check must come first (before: the value went to kubectl as a flag)
    with pytest.raises(Exit) as info:
        task(Context(), cluster="infra", **kwargs)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and "Traceback" not in err


def test_valid_kube_names_pass() -> None:
    assert paths.check_kube_name("name", "cert-manager.webhook") == "cert-manager.webhook"
    assert paths.check_kube_name("namespace", "flux-system", namespace=True) == "flux-system"
    with pytest.raises(paths.InvalidName):
        paths.check_kube_name("namespace", "a.b", namespace=True)


# --------------------------------------------------------------------------- §5: settings


@pytest.mark.parametrize(
    ("env", "value", "says"),
    [
        ("K8S_OPS_POLL_INTERVAL", "fast", "is not a number"),
        ("K8S_OPS_POLL_INTERVAL", "nan", "not a finite number"),
        ("K8S_OPS_TIMEOUT_SCALE", "inf", "not a finite number"),
        ("K8S_OPS_TIMEOUT_SCALE", "-1", "must be greater than 0"),
        ("K8S_OPS_COMMAND_TIMEOUT", "0", "must be greater than 0"),
        ("K8S_OPS_COMMAND_TIMEOUT", "", "is empty"),
        ("K8S_OPS_CONCURRENCY", "2.5", "is not a whole number"),
        ("K8S_OPS_CONCURRENCY", "0", "must be greater than 0"),
        ("K8S_OPS_CONCURRENCY", "-3", "must be greater than 0"),
    ],
)
def test_bad_environment_settings_fail_the_task_naming_the_setting(
    dirs: Path, monkeypatch: pytest.MonkeyPatch, env: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: every one of these fell back to the default silently (concurrency 0 became 1)
    monkeypatch.setenv(env, value)
    with pytest.raises(Exit) as info:
        day2_tasks.reconcile(Context(), cluster="infra")
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {env}=") or err.startswith(f"error: {env} is empty")
    assert says in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ({"poll_intervall": 1}, "unknown setting k8s_ops.poll_intervall"),
        ({"concurrency": True}, "k8s_ops.concurrency: expected a number, got bool"),
        ({"timeout_scale": [1]}, "k8s_ops.timeout_scale: expected a number, got list"),
        ({"command_timeout": "nan"}, "k8s_ops.command_timeout='nan' is not a finite number"),
        ({"poll_interval": -5}, "k8s_ops.poll_interval='-5' must be greater than 0"),
        ({"concurrency": 0}, "k8s_ops.concurrency='0' must be greater than 0"),
    ],
)
def test_bad_invoke_yaml_settings_are_errors_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, section: dict[str, Any], says: str
) -> None:
    for env in ("K8S_OPS_POLL_INTERVAL", "K8S_OPS_TIMEOUT_SCALE", "K8S_OPS_COMMAND_TIMEOUT", "K8S_OPS_CONCURRENCY"):
        monkeypatch.delenv(env, raising=False)
    with pytest.raises(settings.SettingError) as info:
        settings.apply_invoke_config(Config(overrides={"k8s_ops": section}))
    assert says in str(info.value)


def test_bad_invoke_yaml_section_fails_a_task_cleanly(
    dirs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: apply_invoke_config ran outside the task's error handling
    monkeypatch.delenv("K8S_OPS_CONCURRENCY", raising=False)
    ctx = Context(Config(overrides={"k8s_ops": {"concurrency": "many"}}))
    with pytest.raises(Exit) as info:
        day2_tasks.reconcile(ctx, cluster="infra")
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "k8s_ops.concurrency" in err and "Traceback" not in err


def test_good_settings_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("K8S_OPS_POLL_INTERVAL", raising=False)
    monkeypatch.setenv("K8S_OPS_CONCURRENCY", "3")
    settings.apply_invoke_config(Config(overrides={"k8s_ops": {"poll_interval": 0.5}}))
    assert (settings.poll_interval(), settings.concurrency(), settings.timeout_scale()) == (0.5, 3, 1.0)
