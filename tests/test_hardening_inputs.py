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
from k8s_ops.talos import versions, yamlio
from k8s_ops.talos.inventory import load_cluster
from k8s_ops.tools.sops import lookup_config
from tests.test_inventory import bad, base, problems_of, write

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
    assert f"{value[:40]!r}... (300 characters)" in text
    assert value[:60] not in text


def _mutated(tmp_path: Path, mutate: Any) -> str:
    _, problems = bad(tmp_path, mutate)
    return "\n".join(str(p) for p in problems)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d.update(name=AGE_KEY), id="cluster-name"),  # "'AGE-…' must equal the directory"
        pytest.param(
            lambda d: [n.update(hostname=AGE_KEY.lower()[:63]) for n in d["nodes"][:2]], id="duplicate-hostname"
        ),
        pytest.param(lambda d: d.update(vars={AGE_KEY: "x"}), id="variable-name"),
        pytest.param(lambda d: d.update(schematic={"extensions": [AGE_KEY, AGE_KEY]}), id="duplicate-extension"),
        pytest.param(
            lambda d: d.update(upgrade={"healthChecks": [{"kind": "Node", "expr": AGE_KEY + " +"}]}), id="cel"
        ),
    ],
)
def test_semantic_checks_never_echo_key_material(tmp_path: Path, mutate: Any) -> None:
    # before: the cross-field checks quoted raw values with !r — the whole key (and the CEL parser echoed its text)
    text = _mutated(tmp_path, mutate)
    assert "AGE-SECRET" not in text.upper() and AGE_KEY[15:40].lower() not in text.lower()


def test_semantic_checks_echo_only_a_short_prefix(tmp_path: Path) -> None:
    long_name = "not-the-directory-name-" * 10
    text = _mutated(tmp_path, lambda d: d.update(name=long_name))
    assert "must equal the cluster directory name" in text and long_name[:60] not in text


# --------------------------------------------------------------------------- §5: bounded YAML


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    ("text", "says", "line"),
    [
        pytest.param(LAUGHS, "aliases expand this document", 6, id="billion-laughs"),
        pytest.param("a: 1\nb: &r [*r]\n", "recursive alias", 2, id="recursive-alias"),
        pytest.param("x: 1\na: " + "[" * 150 + "]" * 150 + "\n", "nested deeper than 100", 2, id="depth"),
        pytest.param("a: 1\nb: x\0y\n", "NUL byte", 2, id="nul"),
        pytest.param("a: 1\nb: " + "9" * 5000 + "\n", "integer of 5000 digits", 2, id="int-5000"),
        pytest.param("a: 1\nb: !!timestamp not-a-date\n", "cannot read the timestamp value", 2, id="timestamp"),
        pytest.param("a: 1\nb: \x07\n", "control characters are not allowed", 2, id="control-char"),
    ],
)
def test_yaml_loading_is_bounded(text: str, says: str, line: int) -> None:
    # before: ValueError/AttributeError tracebacks, a cyclic object, or a document that explodes downstream
    with pytest.raises(yamlio.YAMLError) as info:
        yamlio.load_documents(text)
    assert says in str(info.value) and info.value.line == line


@pytest.mark.parametrize("text", [LAUGHS, "a: 1\nb: &r [*r]\n", "a: " + "9" * 5000 + "\n", "x: \0\n"])
def test_inventory_with_hostile_yaml_is_a_problem_with_a_line(tmp_path: Path, text: str) -> None:
    f = write(tmp_path, "lab", text)
    problems = problems_of(tmp_path, "lab")
    assert len(problems) == 1 and problems[0].file == str(f) and problems[0].line is not None


def _finishes(fn: Any) -> Any:
    """`fn()` in a thread; the test fails (instead of hanging) if it blocks, e.g. reading a FIFO."""
    import threading

    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(_outcome(fn)), daemon=True)
    thread.start()
    thread.join(60)
    assert out, "blocked"
    return out[0]


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:
        return exc


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev-zero", "too-big", "latin-1"])
def test_only_bounded_regular_files_are_read(tmp_path: Path, kind: str) -> None:
    import os

    path = tmp_path / "cluster.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "too-big":
        with path.open("wb") as f:
            f.truncate(yamlio.MAX_FILE_BYTES + 1)
    else:
        path.write_bytes(b"a: 1\nb: caf\xe9\n")
    result = _finishes(lambda: yamlio.read_text(path))
    assert isinstance(result, yamlio.YAMLError), result
    says = {"fifo": "FIFO", "directory": "directory", "dev-zero": "character device", "too-big": "larger than"}
    assert says.get(kind, "not UTF-8 text (byte 0xe9)") in str(result)
    if kind == "latin-1":
        assert result.line == 2


def test_a_fifo_cluster_file_does_not_hang_the_load(tmp_path: Path) -> None:
    import os

    (tmp_path / "lab").mkdir()
    os.mkfifo(tmp_path / "lab" / "cluster.yaml")
    result = _finishes(lambda: problems_of(tmp_path, "lab"))
    assert "not a regular file (a FIFO (named pipe))" in str(result[0])


def test_a_sibling_cluster_file_with_a_billion_laughs_is_skipped_not_expanded(tmp_path: Path) -> None:
    # siblings are read for id/pod-CIDR uniqueness, now through the one bounded loader (a regression guard: the old
    # reader of their own did not expand the aliases either, but nothing stopped a later change from walking them)
    write(tmp_path, "other", LAUGHS)
    write(tmp_path, "lab", base("lab"))
    result = _finishes(lambda: load_cluster("lab", clusters_dir=tmp_path))
    assert not isinstance(result, BaseException), result


def test_a_fifo_patch_file_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    import os

    from k8s_ops.talos.render import _Renderer
    from k8s_ops.talos.secrets import generate_bundle

    cdir = write(tmp_path, "lab", {**base("lab"), "patches": ["p.yaml"]}, patches=("p.yaml",)).parent
    cluster = load_cluster("lab", clusters_dir=tmp_path)
    (cdir / "patches" / "p.yaml").unlink()
    os.mkfifo(cdir / "patches" / "p.yaml")  # swapped after the inventory check: the reader must not block
    renderer = _Renderer(cluster, generate_bundle())
    result = _finishes(lambda: renderer._template(cdir / "patches" / "p.yaml"))
    assert "not a regular file (a FIFO (named pipe))" in str(result)


# --------------------------------------------------------------------------- §5: gen-secrets recipients


def test_sops_config_lookup_walks_up_like_sops(tmp_path: Path) -> None:
    # sops config.LookupConfigFile: the directory, then each parent, first `.sops.yaml` wins; `.sops.yml` ignored
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (tmp_path / "a" / "b" / ".sops.yml").write_text("creation_rules: []\n")
    assert lookup_config(deep) is None or not str(lookup_config(deep)).startswith(str(tmp_path))
    (tmp_path / ".sops.yaml").write_text("creation_rules: []\n")
    assert lookup_config(deep) == tmp_path / ".sops.yaml"
    (tmp_path / "a" / ".sops.yaml").write_text("creation_rules: []\n")
    assert lookup_config(deep) == tmp_path / "a" / ".sops.yaml"


def test_gen_secrets_outside_the_repo_without_sops_yaml_refuses(dirs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: the repository's .sops.yaml was used, so the bundle was encrypted to the repo owner's recipient
    from k8s_ops.talos.tasks import gen_secrets

    with pytest.raises(Exit) as info:
        gen_secrets(Context(), cluster="infra", dry_run=True)
    err = capsys.readouterr().err
    assert info.value.code == 1 and "no .sops.yaml in" in err and "refusing" in err
    assert not (dirs / "clusters" / "infra" / "talos").exists()


def test_gen_secrets_plan_names_the_recipients_of_the_sops_yaml_found(
    dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from k8s_ops.talos.tasks import gen_secrets

    recipient = "age1" + "q" * 58
    (dirs / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: ^clusters/.*\\.sops\\.yaml$\n    age: {recipient}\n"
    )
    gen_secrets(Context(), cluster="infra", dry_run=True)
    out = capsys.readouterr().out
    assert f"encrypt with sops to: {recipient}" in out and str(dirs / ".sops.yaml") in out


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


def _option_tasks() -> list[Any]:
    """(task, option) for every task option the central table checks, except --cluster (tested above)."""
    found = []
    for module in ("talos", "day2", "bootstrap", "onepassword"):
        mod = importlib.import_module(f"k8s_ops.{module}.tasks")
        for name, obj in vars(mod).items():
            if isinstance(obj, Task):
                params = inspect.signature(obj.body).parameters
                for option in paths.OPTION_CHECKS:
                    if option != "cluster" and option in params:
                        found.append(pytest.param(obj, option, id=f"{module}.{name}--{option}"))
    return found


@pytest.mark.parametrize(("task", "option"), _option_tasks())
@pytest.mark.parametrize(
    ("value", "says"),
    [("", "is empty"), ("-A", "is not a valid"), ("--all", "is not a valid"), ("x" * 300, "too long")],
)
def test_every_task_checks_its_name_options_the_same_way(
    dirs: Path, task: Any, option: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: `talos.render --node ''` rendered every node; `--node -x` reached talosctl's argv as a flag
    params = inspect.signature(task.body).parameters
    kwargs = {k: "x" for k, p in params.items() if p.default is inspect.Parameter.empty and k not in ("c", "cluster")}
    kwargs[option] = value
    with pytest.raises(Exit) as info:
        task(Context(), cluster="infra", **kwargs)
    assert info.value.code == 1
    err = capsys.readouterr().err
    flag = "--" + option.replace("_", "-")
    assert err.startswith(f"error: {flag}") and says in err and "Traceback" not in err and len(err) < 400
    assert sorted(p.name for p in dirs.iterdir()) == ["clusters"]


def test_node_option_takes_a_hostname_or_an_address() -> None:
    assert paths.check_node_name("node", "cp-1") == "cp-1"
    assert paths.check_node_name("node", "10.0.0.11") == "10.0.0.11"
    assert paths.check_node_name("node", "fd00::11") == "fd00::11"
    for bad_value in ("CP1", "cp_1", "cp1.", "-cp1", "10.0.0.256x"):
        with pytest.raises(paths.InvalidName, match="is not a valid node"):
            paths.check_node_name("node", bad_value)


# --------------------------------------------------------------------------- §5: upgrade-k8s --to


@pytest.mark.parametrize(
    ("to", "says"),
    [
        ("v1.35", "is not a version like v1.2.3"),
        ("v1.35.0 --force", "is not a semantic version like v1.35.0"),  # before: searched, then accepted
        ("x v1.35.0", "is not a semantic version"),
        ("v01.35.0", "is not a semantic version"),
        ("v1." + "9" * 5000 + ".0", "is not a version like v1.2.3"),  # before: ValueError from int()
        ("v1.33.9", "would be a downgrade"),
        ("v1.34.1", "would be a downgrade"),
        ("v1.37.0", "v1.34.2 -> v1.35.x -> v1.36.x -> v1.37.0"),
    ],
)
def test_upgrade_k8s_target_is_a_semantic_version_one_minor_up(to: str, says: str) -> None:
    found = versions.check_kubernetes_upgrade("v1.34.2", to, {})
    assert len(found) == 1 and found[0].severity == "error" and says in found[0].message
    assert len(found[0].message) < 400


@pytest.mark.parametrize("to", ["v1.34.2", "v1.34.3", "v1.35.0", "1.35.0", "v1.35.0-rc.1"])
def test_upgrade_k8s_accepts_a_patch_or_the_next_minor(to: str) -> None:
    assert versions.check_kubernetes_upgrade("v1.34.2", to, {}) == []


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
