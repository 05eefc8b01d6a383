"""Every YAML read of a repository or user file goes through the bounded loader (k8s_ops.talos.yamlio): a FIFO, a
file past the size cap, an alias bomb ("billion laughs") or nesting past the bound is a clean error naming the file —
never a hang, a MemoryError or a traceback. One test per read site, each with the input that site can receive."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from k8s_ops.bootstrap import stages
from k8s_ops.bootstrap.charts import load_charts
from k8s_ops.core.errors import ProblemsError
from k8s_ops.gitops import validate
from k8s_ops.gitops.build import BuildError, flux_kustomization
from k8s_ops.gitops.substitute import SubstitutionError, substitute_object
from k8s_ops.talos import talosconfig, yamlio

# nine levels of nine aliases each: 9**9 (387 million) values once expanded; a few hundred bytes of text
BOMB_LINES = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"] + [
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)
]
BOMB = "\n".join(BOMB_LINES) + "\n"
BOMB_FLOW = (
    "[&a0 [x, x, x, x, x, x, x, x, x], "
    + ", ".join(f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10))
    + "]"
)
DEEP = "[" * (yamlio.MAX_DEPTH + 5) + "]" * (yamlio.MAX_DEPTH + 5) + "\n"


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)  # nobody ever writes: a blocking read would hang the test (and the task)
    return path


def huge(path: Path) -> Path:
    path.write_text("k: " + "x" * (yamlio.MAX_FILE_BYTES + 1) + "\n")
    return path


# --------------------------------------------------------------------------- gitops/build.py


@pytest.mark.parametrize(("text", "why"), [(BOMB, "alias"), (DEEP, "nested deeper"), ("a: 1\n---\nb: 2\n", "one")])
def test_kustomization_file_alias_bomb_depth_several_documents(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "kustomization.yaml").write_text(text)
    with pytest.raises(BuildError) as exc:
        flux_kustomization(tmp_path, {})
    assert str(tmp_path / "kustomization.yaml") in str(exc.value) and why in str(exc.value)


def test_kustomization_file_past_the_size_cap(tmp_path: Path) -> None:
    huge(tmp_path / "kustomization.yaml")
    with pytest.raises(BuildError, match="larger than"):
        flux_kustomization(tmp_path, {})


# --------------------------------------------------------------------------- gitops/substitute.py


def test_a_substituted_variable_holding_an_alias_bomb_is_a_substitution_error() -> None:
    # the values come from the repository's cluster-settings ConfigMap: Flux substitutes, then parses again
    with pytest.raises(SubstitutionError, match="alias"):
        substitute_object({"data": {"v": "${BOMB}"}}, {"BOMB": BOMB_FLOW}.get)


def test_substitution_keeps_yaml_1_1_scalars_as_flux_reads_them() -> None:
    # the bounded loader is given the site's own dialect: `on` after substitution is a boolean, as before
    data, _ = substitute_object({"spec": {"suspend": "${S}"}}, {"S": "on"}.get)
    assert data == {"spec": {"suspend": True}}


# --------------------------------------------------------------------------- gitops/validate.py


def test_validate_line_index_of_a_fifo_huge_or_bomb_file_is_empty_not_a_hang(tmp_path: Path, fifo: Path) -> None:
    huge(tmp_path / "big.yaml")
    (tmp_path / "bomb.yaml").write_text(BOMB)
    files = validate._Files(tmp_path)
    assert files.text(fifo.name) == [] and files.text("big.yaml") == []
    assert files.docs("bomb.yaml") == []  # refused before the line index walks the expanded graph


# --------------------------------------------------------------------------- bootstrap/charts.py, stages.py


def test_charts_file_fifo_huge_and_bomb_are_problems_naming_the_file(tmp_path: Path, fifo: Path) -> None:
    for path, why in ((fifo, "FIFO"), (huge(tmp_path / "big.yaml"), "larger than"), (tmp_path / "b.yaml", "alias")):
        if path.name == "b.yaml":
            path.write_text(BOMB)
        with pytest.raises(ProblemsError) as exc:
            load_charts(path)
        assert str(path) in str(exc.value) and why in str(exc.value), str(exc.value)


def test_kubeconfig_server_of_a_fifo_or_bomb_is_unknown_not_a_hang(tmp_path: Path, fifo: Path) -> None:
    (tmp_path / "bomb").write_text(BOMB)
    assert stages._kubeconfig_server(fifo, "demo") is None
    assert stages._kubeconfig_server(tmp_path / "bomb", "demo") is None
    good = tmp_path / "kubeconfig"
    good.write_text(yaml.safe_dump({"clusters": [{"name": "demo", "cluster": {"server": "https://10.5.0.10:6443"}}]}))
    assert stages._kubeconfig_server(good, "demo") == "https://10.5.0.10:6443"


# --------------------------------------------------------------------------- talos/talosconfig.py


def test_an_existing_talosconfig_that_is_an_alias_bomb_is_no_usable_entry() -> None:
    assert talosconfig._existing_entry(BOMB.encode(), "demo") is None
    assert talosconfig._existing_entry(b"contexts:\n  demo: {ca: Q0E=}\n", "demo") == {"ca": "Q0E="}


# --------------------------------------------------------------------------- bootstrap/credentials.py


def test_a_decrypted_secrets_file_that_is_an_alias_bomb_is_a_problem_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k8s_ops.bootstrap import credentials
    from k8s_ops.core.secret import Secret
    from k8s_ops.tools.sops import AgeKey, Sops

    path = tmp_path / "connect.sops.yaml"
    path.write_text("sops: {}\n")
    monkeypatch.setattr(Sops, "decrypt", lambda self, p, **kw: Secret(BOMB))  # what sops would print
    with pytest.raises(ProblemsError) as exc:
        credentials._sops_mapping(path, AgeKey(source="test", value=Secret("AGE-SECRET-KEY-1X")))
    assert str(path) in str(exc.value) and "not YAML" in str(exc.value)


# --------------------------------------------------------------------------- talosconfig, kubeconfig merges


def test_an_existing_talosconfig_that_is_a_fifo_or_huge_is_refused(fifo: Path, tmp_path: Path) -> None:
    from k8s_ops.core.errors import ToolkitError

    with pytest.raises(ToolkitError, match="FIFO") as exc:
        talosconfig.read_existing(fifo)
    assert str(fifo) in str(exc.value)
    with pytest.raises(ToolkitError, match="larger than"):
        talosconfig.read_existing(huge(tmp_path / "talosconfig"))
    assert talosconfig.read_existing(tmp_path / "absent") is None


def test_a_kubeconfig_to_merge_that_is_a_fifo_or_an_alias_bomb_is_refused(fifo: Path, tmp_path: Path) -> None:
    from k8s_ops.core.errors import ToolkitError
    from k8s_ops.fleet import configs

    with pytest.raises(ToolkitError, match="FIFO"):
        configs._load(fifo, "kubeconfig")
    bomb = tmp_path / "kubeconfig"
    bomb.write_text(BOMB)
    with pytest.raises(ToolkitError, match="alias") as exc:
        configs._load(bomb, "kubeconfig")
    assert str(bomb) in str(exc.value)


def test_every_kubeconfig_read_is_bounded_and_never_echoes_the_file(fifo: Path, tmp_path: Path) -> None:
    from k8s_ops.tools.kubectl import read_kubeconfig

    with pytest.raises(yamlio.YAMLError, match="FIFO"):
        read_kubeconfig(fifo)
    bad = tmp_path / "kubeconfig"
    bad.write_text("users:\n- name: a\n  user: {client-key-data: SECRETKEYMATERIAL\n")  # unclosed flow mapping
    with pytest.raises(yamlio.YAMLError) as exc:
        read_kubeconfig(bad)
    assert "SECRETKEYMATERIAL" not in str(exc.value)
    ok = tmp_path / "ok"
    ok.write_text("contexts:\n- name: demo\n  context: {cluster: demo}\n")
    assert read_kubeconfig(ok)["contexts"][0]["name"] == "demo"
