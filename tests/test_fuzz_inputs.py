"""Issue #16 §6: property-based fuzzing of every input boundary — the inventory loader, the patch renderer, task
option parsing and the settings. For any input: success, or a clean ToolkitError with a message; never another
exception, never a hang past `BOUND` seconds, never a planted secret (an age key) in what is printed.

Deterministic (`derandomize=True`, no example database) and bounded (`max_examples` per target, tuned so the module
runs well under a minute on a loaded 2-core machine). benchmarks/fuzz_report.py runs the same targets with more
examples and prints how many distinct bad inputs each rejected cleanly.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invoke.config import Config
from invoke.exceptions import Exit, ParseError
from invoke.program import Program

from k8s_ops.core import settings as toolkit_settings
from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.testing import FakeRunner
from k8s_ops.talos.inventory import load_cluster
from k8s_ops.talos.render import render_cluster
from k8s_ops.talos.secrets import SecretsBundle, generate_bundle
from tests.test_inventory import base
from tests.test_patch_sandbox import CLUSTER_YAML, PATCHES

#: The planted secret: it may be anywhere in an input, it must be nowhere in an output.
AGE_KEY = "AGE-SECRET-KEY-1FUZZQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
#: No single input may take longer than this (a hang is a failure, not a slow test).
BOUND = 60.0


def fuzz(max_examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings of this suite: deterministic, no database, no wall-clock deadline (a loaded machine)."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    )


# --------------------------------------------------------------------------- outcome of one input


class Unclean(AssertionError):
    """An input that was neither accepted nor rejected with a clean ToolkitError."""


def bounded(fn: Callable[[], Any]) -> Any:
    """`fn()` in a worker thread joined for at most BOUND seconds; its exception is re-raised here."""
    box: list[tuple[bool, Any]] = []

    def work() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(BOUND)
    if not box:
        raise Unclean(f"no answer within {BOUND:g} s (a hang)")
    ok, value = box[0]
    if not ok:
        raise value
    return value


def leaks(text: str) -> bool:
    return AGE_KEY in text or AGE_KEY[15:35] in text or "AGE-SECRET-KEY-1FUZZ" in text.upper()


def outcome(fn: Callable[[], Any], *, secrets: tuple[str, ...] = ()) -> str:
    """ "accepted" or "rejected" (a ToolkitError with a message, no secret); Unclean for anything else."""
    try:
        bounded(fn)
    except ToolkitError as exc:
        text = str(exc)
        if not text.strip():
            raise Unclean(f"{type(exc).__name__} without a message") from None
        if leaks(text) or any(s in text for s in secrets):
            raise Unclean(f"secret in the error: {text[:300]}") from None
        return "rejected"
    except Unclean:
        raise
    except Exception as exc:
        raise Unclean(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    return "accepted"


# --------------------------------------------------------------------------- target 1: the inventory loader

_KEYS = [*base("lab"), "hostname", "address", "role", "installDisk", "interfaces", "podCIDR", "<<", "vars"]
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=24)
    | st.sampled_from([AGE_KEY, "10.9.0.11", "controlplane", "/dev/sda", "v1.35.0", "-A", "x" * 300, "0644", "off"])
)
yaml_values = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=24,
)
_PATHS = st.lists(st.sampled_from(_KEYS) | st.integers(0, 4), min_size=1, max_size=4)
_SNIPPETS = st.sampled_from(
    [
        "&a ",
        "*a",
        "*b",
        "<<: *a\n",
        "\0",
        "!!int ",
        "!!timestamp ",
        "!!binary ",
        "!!python/object ",
        "{",
        "[",
        "]",
        "9" * 5000,
        AGE_KEY,
        "\t",
        "\x07",
        "\ufeff",
        "---\n",
        "...\n",
        ": ",
        "- ",
        "'",
        '"',
        "#",
        "%YAML 1.1\n",
        "? ",
    ]
)


def _set(doc: Any, path: list[Any], value: Any) -> Any:
    """`doc` with the value at `path` replaced (created where missing; a wrong shape is replaced whole)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict) and isinstance(head, str):
        return {**doc, head: _set(doc.get(head), rest, value)}
    if isinstance(doc, list) and isinstance(head, int) and head < len(doc):
        return [*doc[:head], _set(doc[head], rest, value), *doc[head + 1 :]]
    return {str(head): _set(None, rest, value)}


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    for at, drop, insert in edits:
        at %= len(text) + 1
        text = text[:at] + insert + text[at + drop :]
    return text


_VALID = yaml.safe_dump(base("lab"), sort_keys=False)
inventory_inputs = st.one_of(
    st.builds(lambda doc: yaml.safe_dump(doc, sort_keys=False).encode(), yaml_values),
    st.builds(
        lambda muts: yaml.safe_dump(_mutate_all(muts), sort_keys=False).encode(),
        st.lists(st.tuples(_PATHS, yaml_values), min_size=1, max_size=3),
    ),
    st.builds(
        lambda edits: _splice(_VALID, edits).encode("utf-8", "surrogatepass"),
        st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 8), _SNIPPETS | st.text(max_size=8)), max_size=4),
    ),
    st.binary(max_size=256),
)


def _mutate_all(mutations: list[tuple[list[Any], Any]]) -> Any:
    doc: Any = base("lab")
    for path, value in mutations:
        doc = _set(doc, path, value)
    return doc


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="k8s-ops-fuzz-") as tmp:
        root = Path(tmp)
        (root / "lab" / "patches").mkdir(parents=True)
        yield root


def inventory_outcome(root: Path, data: bytes) -> str:
    (root / "lab" / "cluster.yaml").write_bytes(data)
    return outcome(lambda: load_cluster("lab", clusters_dir=root))


@fuzz(max_examples=200)
@given(data=inventory_inputs)
def test_inventory_loader_never_crashes_hangs_or_leaks(data: bytes) -> None:
    with scratch() as root:
        inventory_outcome(root, data)


# --------------------------------------------------------------------------- target 2: the patch renderer

_ESCAPES = st.sampled_from(
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.system('id') }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ node.__class__.__init__.__globals__ }}",
        "{{ cluster.file.read_text() }}",
        "{{ cluster.__dict__ }}",
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
        "{{ 'x' * 10**9 }}",
        "{{ vars.SITE.format.__globals__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ config }}",
        "{{ undefined_name.attr }}",
        "{% raw %}{{ .MachineConfig }}{% endraw %}",
        "{{ .MachineConfig.Version }}",
        "{{ node.hostname }}",
        "{{ vars.SITE | upper }}",
        "{% for k, v in vars.items() %}{{ k }}: {{ v }}\n{% endfor %}",
        "machine:\n  sysctls:\n    a: '{{ node.address }}'\n",
        "- op: add\n  path: /machine/sysctls/x\n  value: '1'\n",
        "- op: remove\n  path: /nope\n",
        "machine: {install: {disk: '{{ 1/0 }}'}}\n",
        "sops:\n  age: []\nsecret: ENC[AES256_GCM,data:abc]\n",
        f"machine:\n  sysctls:\n    k: {AGE_KEY}\n",
        "{{",
        "{% if %}",
        "a: &a [*a]\n",
    ]
)
patch_sources = st.lists(_ESCAPES | st.text(max_size=40), min_size=1, max_size=3).map("".join)

_BUNDLE: list[SecretsBundle] = []


def bundle() -> SecretsBundle:
    if not _BUNDLE:
        _BUNDLE.append(generate_bundle())
    return _BUNDLE[0]


def patch_outcome(root: Path, source: str) -> str:
    cdir = root / "lab"
    (cdir / "cluster.yaml").write_text(CLUSTER_YAML)
    for name, text in {**PATCHES, "wk.yaml": source}.items():
        (cdir / "patches" / name).write_text(text, encoding="utf-8", errors="surrogatepass")
    secrets = tuple(s.reveal_text() for s in bundle().mask_values() if len(s) >= 16)
    return outcome(
        lambda: render_cluster(load_cluster("lab", clusters_dir=root), bundle(), ["lab-wk-2"]), secrets=secrets
    )


@fuzz(max_examples=60)
@given(source=patch_sources)
def test_patch_renderer_never_crashes_hangs_or_leaks(source: str) -> None:
    with scratch() as root:
        patch_outcome(root, source)


# --------------------------------------------------------------------------- target 3: task option parsing


_VERSIONS = {
    "talosctl": "Client:\n\tTag:         v1.12.11\n",
    "kubectl": '{"clientVersion": {"gitVersion": "v1.35.0"}}',
    "helm": "v3.19.0+g3d8990f\n",
    "flux": "flux: v2.7.5\n",
}


def _refuse(command: Command) -> Result:
    """Tools answer their version (so preflight passes and the task goes on to plan); every other command fails
    cleanly, as an unreachable cluster would."""
    tool = Path(str(command.argv[0])).name if command.argv else ""
    if "version" in command.argv[1:3] and tool in _VERSIONS:
        return Result(0, _VERSIONS[tool], "")
    return Result(1, "", "fuzz: no tool in this test\n")


class FuzzConfig(Config):
    """invoke's config with the fake runner factory (the simulator is not needed: every run is a dry run)."""

    @staticmethod
    def global_defaults() -> dict[str, Any]:
        defaults: dict[str, Any] = Config.global_defaults()
        defaults["k8s_ops"] = {"runner": lambda: FakeRunner(handler=_refuse)}
        return defaults


_VALUES = st.sampled_from(
    [
        "",
        "-A",
        "--all",
        "-",
        "x" * 300,
        AGE_KEY,
        "lab",
        "infra",
        "../lab",
        "/tmp/x/evil",
        "a,b",
        "a,,b",
        "Lab",
        "lab-wk-2",
        "10.9.0.15",
        "v1.35.0",
        "v1.35.2",
        "v1.34.0",
        "v1.35",
        "1.35.0 --force",
        "kube-system",
        "a.b",
        "é",
        " ",
        "\t",
    ]
) | st.text(max_size=20)
_TASKS: dict[str, tuple[str, ...]] = {
    "talos.render": ("--cluster", "--node"),
    "talos.gen-secrets": ("--cluster",),
    "talos.upgrade-k8s": ("--cluster", "--to"),
    "talos.reboot-node": ("--cluster", "--node"),
    "kubernetes.hr-restart": ("--cluster", "--name", "--namespace"),
    "kubernetes.sync-secrets": ("--cluster", "--name", "--namespace"),
    "volsync.snapshot": ("--cluster", "--app", "--namespace"),
}
_GOOD: dict[str, tuple[str, ...]] = {
    "--cluster": ("lab",),
    "--node": ("lab-wk-2", "lab-cp-1", "10.9.0.15"),
    "--to": ("v1.35.2", "v1.35.0", "v1.34.0"),
    "--name": ("podinfo",),
    "--namespace": ("default", "flux-system"),
    "--app": ("podinfo",),
}
"""Values each option accepts for the fixture cluster: mixed with the bad ones, so inputs also reach the plans."""


def _option(flag: str) -> st.SearchStrategy[str]:
    """`--flag=value`, the value good for the fixture cluster two times in three, else one of the bad ones."""
    good, bad = st.sampled_from(_GOOD[flag]), _VALUES
    return st.integers(0, 2).flatmap(lambda i: good if i else bad).map(lambda value: f"{flag}={value}")


def _argvs(task: str) -> st.SearchStrategy[list[str]]:
    """Every option of `task` once, then up to two repeated ones (invoke keeps the last), then --dry-run."""
    every = st.tuples(*(_option(flag) for flag in _TASKS[task]))
    again = st.lists(st.sampled_from(_TASKS[task]).flatmap(_option), max_size=2)
    return st.tuples(every, again).map(lambda parts: [task, *parts[0], *parts[1], "--dry-run"])


argvs = st.sampled_from(sorted(_TASKS)).flatmap(_argvs)


def _invoke(program: Program, argv: list[str]) -> None:
    """`Program.run` without its catch-all, so invoke's own parse errors stay apart from the toolkit's output."""
    program.create_config()
    program.parse_core(["invoke", *argv])
    program.parse_collection()
    program.parse_tasks()
    program.parse_cleanup()
    program.update_config()
    program.execute()


def cli_outcome(argv: list[str]) -> str:
    """Run `invoke <argv>` in-process: "rejected" when invoke's parser or a task refused it with a clean error,
    "accepted" when it ran. invoke's own parse error ("No idea what '<token>' is!") quotes the argv token it could
    not place — text the operator typed, before any toolkit code runs — so only the toolkit's output is checked
    for the planted secret."""
    out, err = io.StringIO(), io.StringIO()
    program = Program(namespace=importlib.import_module("tasks").ns, config_class=FuzzConfig, name="k8s-ops")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            bounded(lambda: _invoke(program, argv))
        except ParseError:
            return "rejected"
        except Exit as exc:  # the toolkit's `guarded` printed `error: …` and exits non-zero
            if not exc.code:
                raise Unclean("Exit 0 from an error path") from None
        except Exception as exc:
            raise Unclean(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    printed = out.getvalue() + err.getvalue()
    if "Traceback" in printed:
        raise Unclean(f"a traceback was printed: {printed[-300:]}")
    if leaks(printed):
        raise Unclean(f"secret printed: {printed[:300]}")
    return "rejected" if err.getvalue().strip() else "accepted"


def make_cli_site(root: Path) -> dict[str, str]:
    """A cluster `lab` the CLI target's tasks can plan for: inventory and patches, a sops-encrypted secrets bundle
    with its age key and .sops.yaml, a kubeconfig and talosconfig — so inputs get past the early checks to `--to`
    parsing, rendering and dry-run plans. Returns the environment that points the toolkit at it."""
    from k8s_ops.talos.secrets import encrypt_bundle, new_bundle_target, write_bundle
    from k8s_ops.tools.sops import generate_age_key

    lab = root / "clusters" / "lab"
    (lab / "patches").mkdir(parents=True)
    (lab / "cluster.yaml").write_text(CLUSTER_YAML)
    for name, text in PATCHES.items():
        (lab / "patches" / name).write_text(text)
    key, recipient = generate_age_key()
    (root / "lab.agekey").write_bytes(key.reveal())
    (root / "lab.agekey").chmod(0o600)
    (root / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: ^clusters/.*\\.sops\\.yaml$\n    age: {recipient}\n"
    )
    target = new_bundle_target("lab", clusters_root=root / "clusters")
    write_bundle(target.path, encrypt_bundle(target, generate_bundle()))
    build = root / "build" / "lab"
    build.mkdir(parents=True)
    (build / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: lab, cluster: {server: 'https://10.9.0.10:6443'}}]\n"
        "contexts: [{name: lab, context: {cluster: lab, user: admin@lab}}]\ncurrent-context: lab\n"
        "users: [{name: admin@lab, user: {}}]\n"
    )
    (build / "talosconfig").write_text("context: lab\ncontexts:\n  lab:\n    endpoints: [10.9.0.11]\n")
    for owned in (build / "kubeconfig", build / "talosconfig"):
        owned.chmod(0o600)  # as the toolkit writes them (a wider file is repaired: a write even in a dry run)
    return {
        "K8S_OPS_CLUSTERS_DIR": str(root / "clusters"),
        "K8S_OPS_BUILD_DIR": str(root / "build"),
        "K8S_OPS_STATE_DIR": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "SOPS_AGE_KEY_FILE": str(root / "lab.agekey"),
    }


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the clusters and build dirs under `root`, content and mode (a dry run leaves them as they were;
    the state dir's audit log records the reads)."""
    files = [p for sub in ("clusters", "build") for p in sorted((root / sub).rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode) for p in files}


@pytest.fixture(scope="module")
def cli_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("fuzz-site")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SOPS_AGE_KEY", raising=False)
        env = make_cli_site(root)
    return root, env


@pytest.fixture
def fuzz_dirs(cli_site: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> Path:
    root, env = cli_site
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    return root


def test_the_cli_target_gets_past_the_early_checks(fuzz_dirs: Path) -> None:
    # the fixture cluster is complete enough that inputs reach what the fuzzing is for: rendering, --to parsing
    # and dry-run plans (before: every input stopped at "no Talos secrets bundle" or "no kubeconfig")
    before = tree(fuzz_dirs)
    accepted = [
        ["talos.render", "--cluster=lab", "--dry-run"],  # the bundle decrypts, every patch renders
        ["talos.render", "--cluster=lab", "--node=lab-wk-2", "--dry-run"],
        ["talos.upgrade-k8s", "--cluster=lab", "--to=v1.35.2", "--dry-run"],  # --to parsed, the plan printed
        ["talos.reboot-node", "--cluster=lab", "--node=lab-wk-2", "--dry-run"],
    ]
    for argv in accepted:
        assert cli_outcome(argv) == "accepted", argv
    for to in ("1.35.0 --force", "v1.36", "latest"):  # --to itself is refused, before any fact is gathered
        assert cli_outcome(["talos.upgrade-k8s", "--cluster=lab", f"--to={to}", "--dry-run"]) == "rejected", to
    assert tree(fuzz_dirs) == before


@fuzz(max_examples=100)
@given(argv=argvs)
def test_task_options_never_crash_hang_or_leak(fuzz_dirs: Path, argv: list[str]) -> None:
    before = tree(fuzz_dirs)
    cli_outcome(argv)
    assert tree(fuzz_dirs) == before  # a dry run writes nothing


# --------------------------------------------------------------------------- target 4: settings

_ENV = ("K8S_OPS_POLL_INTERVAL", "K8S_OPS_TIMEOUT_SCALE", "K8S_OPS_COMMAND_TIMEOUT", "K8S_OPS_CONCURRENCY")
_ENV_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=12
) | st.sampled_from(
    ["nan", "inf", "-inf", "0", "-1", "1e309", "9" * 5000, "0x10", "1_000", " 3 ", "2.5", AGE_KEY, "1e-320"]
)
env_inputs = st.fixed_dictionaries({}, optional={k: _ENV_TEXT for k in _ENV})
section_inputs = st.dictionaries(
    st.sampled_from(["poll_interval", "timeout_scale", "command_timeout", "concurrency", "pol_interval", AGE_KEY])
    | st.text(max_size=10),
    yaml_values,
    max_size=4,
)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _ENV}
    try:
        for k in _ENV:
            os.environ.pop(k, None)
        os.environ.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def settings_outcome(env: dict[str, str], section: dict[Any, Any]) -> str:
    with environment(env):
        return outcome(lambda: toolkit_settings.apply_invoke_config(Config(overrides={"k8s_ops": section})))


@fuzz(max_examples=200)
@given(env=env_inputs, section=section_inputs)
def test_settings_never_crash_or_leak(env: dict[str, str], section: dict[Any, Any]) -> None:
    settings_outcome(env, section)


# --------------------------------------------------------------------------- the harness itself


def test_the_harness_tells_clean_from_unclean() -> None:
    def boom() -> None:
        raise KeyError("x")

    def leak() -> None:
        raise ToolkitError(f"bad value {AGE_KEY}")

    assert outcome(lambda: None) == "accepted"
    assert outcome(lambda: (_ for _ in ()).throw(ToolkitError("no"))) == "rejected"
    with pytest.raises(Unclean, match="KeyError"):
        outcome(boom)
    with pytest.raises(Unclean, match="secret"):
        outcome(leak)


def test_invoke_echoes_a_token_it_cannot_place_before_any_toolkit_code(
    fuzz_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the known limit README's Secrets section documents: invoke's Program.run prints its own parse errors, token
    # included, and offers no hook short of replacing the `invoke` entry point. If this ever fails, invoke changed:
    # drop the limit from the README.
    program = Program(namespace=importlib.import_module("tasks").ns, config_class=FuzzConfig, name="k8s-ops")
    with pytest.raises(SystemExit) as exc:
        program.run(["invoke", "talos.render", "--cluster=lab", "pasted-by-mistake", "--dry-run"])
    assert exc.value.code == 1
    assert "No idea what 'pasted-by-mistake' is!" in capsys.readouterr().err
