"""Patch templates render in a sandbox (issue #16 §1): one test per escape technique, each a Problem naming the patch.

Every case renders the worker group patch for one node; the renderer must return a ProblemsError (never a traceback,
never a hang) whose problem names `wk.yaml`. Budgets are deterministic (steps, sizes), so these run in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from k8s_ops.core.errors import ProblemsError
from k8s_ops.talos import sandbox
from k8s_ops.talos.inventory import Cluster, load_cluster
from k8s_ops.talos.render import RenderedConfig, render_cluster
from k8s_ops.talos.secrets import SecretsBundle, generate_bundle

CLUSTER_YAML = """\
name: lab
id: 7
domain: lab.example
talosVersion: v1.12.0
kubernetesVersion: v1.35.0
endpoint: 10.9.0.10
network:
  nodeCIDR: 10.9.0.0/24
  gateway: 10.9.0.1
  nameservers: [10.9.0.53]
  podCIDR: 10.60.0.0/16
  serviceCIDR: 10.61.0.0/16
schematic: {extensions: []}
gitops: {repository: "ssh://git@example.com/x.git", branch: main, path: clusters/lab/flux}
onepassword: {vault: lab}
vars:
  SITE: lab-site
patches: [cluster.yaml]
worker:
  patches: [wk.yaml]
nodes:
  - {hostname: lab-cp-1, address: 10.9.0.11, role: controlplane, installDisk: /dev/sda, interfaces: [{name: eth0}]}
  - {hostname: lab-wk-2, address: 10.9.0.15, role: worker, installDisk: /dev/sda, interfaces: [{name: eth0}]}
"""
PATCHES = {"cluster.yaml": "machine:\n  sysctls:\n    site: '{{ vars.SITE }}'\n", "wk.yaml": ""}


def make_cluster(root: Path, patches: dict[str, str] | None = None) -> Cluster:
    cdir = root / "lab"
    (cdir / "patches").mkdir(parents=True, exist_ok=True)
    (cdir / "cluster.yaml").write_text(CLUSTER_YAML)
    for name, text in (PATCHES if patches is None else patches).items():
        (cdir / "patches" / name).write_text(text)
    return load_cluster("lab", clusters_dir=root)


def rendered(cluster: Cluster, bundle: SecretsBundle) -> dict[str, RenderedConfig]:
    return {r.hostname: r for r in render_cluster(cluster, bundle)}


def main(cfg: RenderedConfig) -> dict[str, Any]:
    return next(d for d in cfg.documents if "machine" in d)


@pytest.fixture(autouse=True)
def _no_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # the step budget is what these tests pin: on a loaded machine the wall-clock backstop could fire first
    monkeypatch.setattr(sandbox, "MAX_SECONDS", 3600.0)


@pytest.fixture(scope="module")
def bundle() -> SecretsBundle:
    return generate_bundle()


def _render_wk(tmp_path: Path, bundle: SecretsBundle, source: str) -> list[str]:
    cluster = make_cluster(tmp_path, patches={**PATCHES, "wk.yaml": source})
    with pytest.raises(ProblemsError) as err:
        render_cluster(cluster, bundle, ["lab-wk-2"])
    problems = [str(p) for p in err.value.problems]
    assert problems and all(str(cluster.patches_dir / "wk.yaml") in p for p in problems), problems
    return problems


def _one(tmp_path: Path, bundle: SecretsBundle, source: str, *needles: str) -> str:
    (only,) = _render_wk(tmp_path, bundle, source)
    for needle in needles:
        assert needle in only, only
    assert "Traceback" not in only
    return only


ESCAPES = {
    "class/mro walking": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "class of the context": "{{ cluster.__class__.__init__.__globals__ }}",
    "dunder via subscript": "{{ cluster['__class__'] }}",
    "str.format attribute": "{{ 'x'.format }}",
    "str.format call": "{{ '{0.__class__}'.format(node) }}",
    "method on inventory object": "{{ cluster.file.read_text() }}",
    "method on a string": "{{ node.hostname.upper() }}",
    "filter attribute argument": '{{ cluster.nodes | map(attribute="__class__") | list }}',
    "bound method internals": "{{ vars.get.__self__ }}",
    "dict mutation": "{{ vars.update({'a': 1}) }}",
    "unsafe access tested silently": "{% if cluster.__class__ is defined %}x{% endif %}",
}


@pytest.mark.parametrize("source", ESCAPES.values(), ids=ESCAPES.keys())
def test_attribute_escapes_are_refused_naming_the_patch(tmp_path: Path, bundle: SecretsBundle, source: str) -> None:
    only = _one(tmp_path, bundle, f"machine:\n  sysctls:\n    a: '{source}'\n", "lab-wk-2")
    assert "not allowed in patches" in only or "unsafe" in only


@pytest.mark.parametrize("name", ["cycler", "joiner", "namespace", "lipsum", "dict", "config", "request"])
def test_jinja_globals_are_absent(tmp_path: Path, bundle: SecretsBundle, name: str) -> None:
    _one(tmp_path, bundle, f"machine:\n  sysctls:\n    a: '{{{{ {name} }}}}'\n", "undefined variable", name)


def test_self_reference_is_refused(tmp_path: Path, bundle: SecretsBundle) -> None:
    _one(tmp_path, bundle, "a: '{{ self.__class__ }}'\n", "not allowed in patches")


def test_cycler_cannot_reach_globals(tmp_path: Path, bundle: SecretsBundle) -> None:
    _one(tmp_path, bundle, "a: '{{ cycler.__init__.__globals__.os.system(\"id\") }}'\n", "undefined variable")


def test_lipsum_cannot_reach_globals(tmp_path: Path, bundle: SecretsBundle) -> None:
    _one(tmp_path, bundle, 'a: \'{{ lipsum.__globals__["os"].popen("id").read() }}\'\n', "undefined variable")


def test_huge_range_is_refused(tmp_path: Path, bundle: SecretsBundle) -> None:
    _one(tmp_path, bundle, "{% for i in range(10**9) %}{% endfor %}\n", "range()", "too large")


def test_nested_loops_run_out_of_budget(tmp_path: Path, bundle: SecretsBundle) -> None:
    loops = "".join(f"{{% for i{n} in range(1000) %}}" for n in range(4)) + "{% endfor %}" * 4
    _one(tmp_path, bundle, loops + "\n", "too much work")


def test_nested_loops_over_inventory_data_run_out_of_budget(tmp_path: Path, bundle: SecretsBundle) -> None:
    loops = "".join(f"{{% for n{n} in cluster.nodes %}}" for n in range(20)) + "{% endfor %}" * 20
    _one(tmp_path, bundle, loops + "\n", "too much work")


def test_recursive_macro_runs_out_of_budget(tmp_path: Path, bundle: SecretsBundle) -> None:
    source = "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}\n"
    _one(tmp_path, bundle, source, "too much work")


def test_unbounded_recursion_is_a_problem(tmp_path: Path, bundle: SecretsBundle) -> None:
    _one(tmp_path, bundle, "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}\n", "recursion")


def test_recursive_for_loop_runs_out_of_budget(tmp_path: Path, bundle: SecretsBundle) -> None:
    source = "{% for x in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}\n"
    _render_wk(tmp_path, bundle, source)


@pytest.mark.parametrize(
    "expr",
    [
        "'x' * 10**9",
        "[1] * 10**9",
        "10 ** 100000",
        "((10 ** 64) ** 64) ** 64",
        "('x' * 1000) | replace('x', 'y' * 100000)",
    ],
)
def test_huge_values_are_refused(tmp_path: Path, bundle: SecretsBundle, expr: str) -> None:
    _one(tmp_path, bundle, f"a: '{{{{ {expr} }}}}'\n", "too large")


def test_huge_indent_is_refused(tmp_path: Path, bundle: SecretsBundle) -> None:
    _one(tmp_path, bundle, "a: '{{ 'x' | indent(10**9) }}'\n", "indent width")


def test_doubling_concatenation_is_bounded(tmp_path: Path, bundle: SecretsBundle) -> None:
    sets = "{% set s0 = 'x' * 1000 %}" + "".join(f"{{% set s{i + 1} = s{i} ~ s{i} %}}" for i in range(40))
    _one(tmp_path, bundle, sets + "{{ s40 }}\n", "too large")


def test_large_output_is_refused(tmp_path: Path, bundle: SecretsBundle) -> None:
    source = "{% for i in range(5000) %}{{ 'x' * 999 }}{% endfor %}\n"
    _one(tmp_path, bundle, source, "rendered patch is too large")


def test_percent_formatting_is_refused(tmp_path: Path, bundle: SecretsBundle) -> None:
    _one(tmp_path, bundle, "a: '{{ \"%999999999d\" % 1 }}'\n", "string formatting")


def test_include_and_import_have_no_loader(tmp_path: Path, bundle: SecretsBundle) -> None:
    _render_wk(tmp_path, bundle, "{% include 'controlplane.yaml.j2' %}\n")


def test_every_problem_at_once(tmp_path: Path, bundle: SecretsBundle) -> None:
    cluster = make_cluster(
        tmp_path,
        patches={
            **PATCHES,
            "wk.yaml": "a: '{{ ''.__class__ }}'\n",
            "cluster.yaml": "{% for i in range(10**9) %}{% endfor %}\n",
        },
    )
    with pytest.raises(ProblemsError) as err:
        render_cluster(cluster, bundle, ["lab-wk-2"])
    text = "\n".join(str(p) for p in err.value.problems)
    assert "wk.yaml" in text and "cluster.yaml" in text


def test_the_wall_clock_backstop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bundle: SecretsBundle) -> None:
    monkeypatch.setattr(sandbox, "MAX_SECONDS", -1.0)
    _one(tmp_path, bundle, "{% for i in range(3) %}{% endfor %}\n", "longer than")


def test_ordinary_templates_still_work(tmp_path: Path, bundle: SecretsBundle) -> None:
    source = (
        "machine:\n  sysctls:\n"
        "    host: '{{ node.hostname | upper }}-{{ node.role }}'\n"
        "    site: {{ vars.SITE | y }}\n"
        "    n: '{{ range(3) | list | length }}'\n"
        '    names: \'{{ cluster.nodes | map(attribute="hostname") | join(",") }}\'\n'
        "{% for k, v in vars.items() %}{% if k == 'SITE' %}    loop: '{{ loop.index }}{{ k | lower }}'\n{% endif %}"
        "{% endfor %}"
    )
    out = rendered(make_cluster(tmp_path, patches={**PATCHES, "wk.yaml": source}), bundle)
    sysctls = main(out["lab-wk-2"])["machine"]["sysctls"]
    assert sysctls["host"] == "LAB-WK-2-worker" and sysctls["site"] == "lab-site" and sysctls["n"] == "3"
    assert sysctls["names"].startswith("lab-cp-1,") and sysctls["loop"].endswith("site")


def _bundle_file(tmp_path: Path) -> Path:
    cluster = make_cluster(tmp_path)
    secrets = cluster.secrets_file
    secrets.parent.mkdir(parents=True, exist_ok=True)
    secrets.write_text(
        "cluster:\n    id: ENC[AES256_GCM,data:abcd,iv:xx,tag:yy,type:str]\n"
        "sops:\n    age: []\n    mac: ENC[AES256_GCM,data:ef,iv:x,tag:y,type:str]\n    version: 3.9.0\n"
    )
    return secrets


def test_a_patch_that_is_a_symlink_to_the_bundle_is_refused(tmp_path: Path, bundle: SecretsBundle) -> None:
    secrets = _bundle_file(tmp_path)
    link = tmp_path / "lab" / "patches" / "wk.yaml"
    link.unlink()
    link.symlink_to(secrets)
    cluster = make_cluster(tmp_path, patches={k: v for k, v in PATCHES.items() if k != "wk.yaml"})
    with pytest.raises(ProblemsError) as err:
        render_cluster(cluster, bundle, ["lab-wk-2"])
    (only,) = [str(p) for p in err.value.problems]
    assert str(link) in only and "SOPS-encrypted secrets bundle" in only


def test_a_patch_holding_sops_ciphertext_is_refused(tmp_path: Path, bundle: SecretsBundle) -> None:
    secrets = _bundle_file(tmp_path)
    _one(tmp_path, bundle, secrets.read_text(), "SOPS-encrypted")
