"""k8s_ops.talos.secrets: the generated bundle against the Talos v1.12 golden, sops round trips, gen-secrets refusal."""

from __future__ import annotations

import base64
import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.core import paths
from k8s_ops.core.errors import ProblemsError, SecretError
from k8s_ops.core.secret import Secret
from k8s_ops.talos import secrets as bundle_mod
from k8s_ops.talos.inventory import Cluster, load_cluster
from k8s_ops.talos.pki import load_private_key
from k8s_ops.talos.secrets import (
    CA_NAMES,
    SecretsBundle,
    find_sops_config,
    generate_bundle,
    load_bundle,
    load_bundle_file,
    new_bundle_target,
)
from k8s_ops.talos.tasks import gen_secrets
from k8s_ops.tools.sops import AgeKey, Sops, generate_age_key, matching_rule

GOLDEN = paths.repo_root().parent / "shared" / "reference" / "talos" / "stability-v1.12" / "secrets.yaml"
needs_golden = pytest.mark.skipif(
    not GOLDEN.is_file(), reason=f"Talos golden bundle not available ({GOLDEN} is absent: ../shared not checked out)"
)
OWNER_RECIPIENT = "age1j3hsfptdfsfwvkf504etjkrtmajny9csrfh5s24uqh6fchmg5dgqg087ek"
TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for var in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "K8S_OPS_CLUSTERS_DIR", "K8S_OPS_BUILD_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    bundle_mod.clear_cache()


def key_paths(data: Any, prefix: str = "") -> set[str]:
    if not isinstance(data, dict):
        return set()
    out = set()
    for key, value in data.items():
        out.add(prefix + key)
        out |= key_paths(value, f"{prefix}{key}.")
    return out


def cert(b64: str) -> Any:
    from cryptography import x509

    return x509.load_pem_x509_certificate(base64.b64decode(b64))


def golden() -> SecretsBundle:
    return SecretsBundle.from_yaml(GOLDEN.read_bytes(), source=str(GOLDEN))


# -- shape and crypto against the golden -----------------------------------------------------------------------


@needs_golden
def test_generated_bundle_has_exactly_the_golden_shape() -> None:
    assert key_paths(dict(generate_bundle().data)) == key_paths(dict(golden().data))
    # talosctl's order and indentation
    text = generate_bundle().to_yaml().decode()
    assert [line for line in text.splitlines() if not line.startswith(" ")] == [
        "cluster:", "secrets:", "trustdinfo:", "certs:"
    ]
    assert "\n    id: " in text


@needs_golden
@pytest.mark.parametrize("name", [*CA_NAMES, "k8sserviceaccount"])
def test_key_types_and_pem_labels_match_the_golden(name: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ours_b64 = generate_bundle().data["certs"][name]["key"]
    gold_b64 = golden().data["certs"][name]["key"]
    ours, gold = (load_private_key(base64.b64decode(b)) for b in (ours_b64, gold_b64))
    assert type(ours) is type(gold)
    if isinstance(gold, ec.EllipticCurvePrivateKey):
        assert isinstance(ours, ec.EllipticCurvePrivateKey) and ours.curve.name == gold.curve.name == "secp256r1"
    assert _pem_label(ours_b64) == _pem_label(gold_b64)


def _pem_label(b64: str) -> bytes:
    return base64.b64decode(b64).split(b"\n", 1)[0]


@needs_golden
@pytest.mark.parametrize("name", CA_NAMES)
def test_ca_certificates_mirror_the_golden(name: str) -> None:
    from cryptography import x509

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    bundle = generate_bundle(now=now)
    ours, gold = cert(bundle.data["certs"][name]["crt"]), cert(golden().data["certs"][name]["crt"])
    assert ours.subject == gold.subject and ours.issuer == ours.subject
    assert ours.signature_algorithm_oid == gold.signature_algorithm_oid
    assert ours.not_valid_before_utc == now
    assert ours.not_valid_after_utc - ours.not_valid_before_utc == timedelta(days=3650)
    assert gold.not_valid_after_utc - gold.not_valid_before_utc == timedelta(days=3650)
    for ext in (x509.BasicConstraints, x509.KeyUsage, x509.ExtendedKeyUsage):
        ours_ext, gold_ext = ours.extensions.get_extension_for_class(ext), gold.extensions.get_extension_for_class(ext)
        assert (ours_ext.value, ours_ext.critical) == (gold_ext.value, gold_ext.critical)
    assert ours.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert {e.oid for e in ours.extensions} == {e.oid for e in gold.extensions}
    ours.verify_directly_issued_by(ours)  # self-signed: the signature checks out with its own key
    key = load_private_key(base64.b64decode(bundle.data["certs"][name]["key"]))
    pub = ours.public_key().public_bytes(*_spki())
    assert key.public_key().public_bytes(*_spki()) == pub
    assert 0 < ours.serial_number < 2**128


def _spki() -> tuple[Any, Any]:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


def test_tokens_and_random_secrets_have_talos_formats() -> None:
    bundles = [generate_bundle() for _ in range(2)]
    for b in bundles:
        assert TOKEN_RE.match(b.data["secrets"]["bootstraptoken"])
        assert TOKEN_RE.match(b.data["trustdinfo"]["token"])
        assert len(base64.urlsafe_b64decode(b.data["cluster"]["id"])) == 32
        assert len(base64.b64decode(b.data["cluster"]["secret"], validate=True)) == 32
        assert len(base64.b64decode(b.data["secrets"]["secretboxencryptionsecret"], validate=True)) == 32
    assert bundles[0].data["cluster"]["secret"] != bundles[1].data["cluster"]["secret"]
    assert bundles[0].data["certs"]["os"]["crt"] != bundles[1].data["certs"]["os"]["crt"]


@needs_golden
def test_golden_parses_and_accessors_map_to_machine_config_fields() -> None:
    g = golden()
    assert g.bootstrap_token.reveal_text() == "inn7ol.u4ehnti8qyls9ymo"
    assert g.trustd_token.reveal_text() == "d8cwfa.eyvpi0xwxyarbfid"
    assert g.ca("k8s").crt == g.data["certs"]["k8s"]["crt"]
    assert g.os_ca.key_pem().reveal().startswith(b"-----BEGIN ED25519 PRIVATE KEY-----")
    assert g.aescbc_encryption_secret is None
    assert SecretsBundle.from_yaml(g.to_yaml()).data == g.data


def test_yaml_round_trip_of_a_generated_bundle() -> None:
    b = generate_bundle()
    assert SecretsBundle.from_yaml(b.to_yaml()) == b


# -- masking ---------------------------------------------------------------------------------------------------


def test_mask_values_cover_every_secret_and_no_certificate() -> None:
    b = generate_bundle()
    masks = {m.reveal() for m in b.mask_values()}
    assert all(isinstance(m, Secret) for m in b.mask_values())
    for value in (
        b.data["cluster"]["id"],
        b.data["cluster"]["secret"],
        b.data["secrets"]["bootstraptoken"],
        b.data["secrets"]["secretboxencryptionsecret"],
        b.data["trustdinfo"]["token"],
        b.data["trustdinfo"]["token"].split(".")[1],
        *(b.data["certs"][n]["key"] for n in (*CA_NAMES, "k8sserviceaccount")),
    ):
        assert value.encode() in masks
    for name in (*CA_NAMES, "k8sserviceaccount"):
        assert base64.b64decode(b.data["certs"][name]["key"]) in masks  # decoded PEM form too
    for name in CA_NAMES:
        assert b.data["certs"][name]["crt"].encode() not in masks
    lengths = [len(m) for m in b.mask_values()]
    assert lengths == sorted(lengths, reverse=True)  # longest first, so maskers replace whole values first


def test_bundle_repr_and_accessors_do_not_leak() -> None:
    b = generate_bundle()
    shown = f"{b!r} {b} {b.bootstrap_token} {b.ca('os')}"
    for m in b.mask_values():
        assert m.reveal_text() not in shown


# -- validation ------------------------------------------------------------------------------------------------


def test_invalid_bundle_reports_every_problem_without_values() -> None:
    data = yaml.safe_load(generate_bundle().to_yaml())
    data["secrets"]["bootstraptoken"] = "NOT-A-TOKEN-super-secret"
    del data["trustdinfo"]["token"]
    data["certs"]["os"]["crt"] = base64.b64encode(b"hello").decode()
    data["extra"] = {"x": "y"}
    with pytest.raises(ProblemsError) as info:
        SecretsBundle.from_yaml(yaml.safe_dump(data), source="b.yaml")
    fields = {p.field for p in info.value.problems}
    assert {"trustdinfo.token", "extra"} <= fields
    # token/PEM checks run once the shape is complete; fix the shape and they are reported together
    data["trustdinfo"]["token"] = "abcdef.0123456789abcdef"
    del data["extra"]
    with pytest.raises(ProblemsError) as info:
        SecretsBundle.from_yaml(yaml.safe_dump(data), source="b.yaml")
    assert {p.field for p in info.value.problems} == {"secrets.bootstraptoken", "certs.os.crt"}
    assert "super-secret" not in str(info.value)


def test_not_yaml_is_a_problem() -> None:
    with pytest.raises(ProblemsError, match="not valid YAML"):
        SecretsBundle.from_yaml("a: [b", source="x")


# -- the repository's .sops.yaml and demo bundle ---------------------------------------------------------------


def test_repo_sops_rules_route_demo_and_owner_clusters() -> None:
    config = paths.repo_root() / ".sops.yaml"
    demo_recipient = AgeKey(source="demo", file=paths.repo_root() / "clusters" / "demo" / "demo.agekey").recipients()
    assert matching_rule(config, "clusters/demo/talos/secrets.sops.yaml")[1] == demo_recipient
    assert matching_rule(config, "clusters/infra/talos/secrets.sops.yaml")[1] == (OWNER_RECIPIENT,)
    assert matching_rule(config, "kubernetes/x.sops.yaml") == (None, ())
    # ... and the real sops agrees
    sops = Sops(config=config)
    for rel, expected in (("clusters/demo/talos/x.sops.yaml", demo_recipient), ("clusters/apps/x.sops.yaml",
                                                                                 (OWNER_RECIPIENT,))):
        meta = yaml.safe_load(sops.encrypt(b"a: b\n", filename=rel))["sops"]
        assert tuple(e["recipient"] for e in meta["age"]) == expected


def test_demo_key_is_labelled_test_only_and_decrypts_the_committed_demo_bundle() -> None:
    demo = paths.repo_root() / "clusters" / "demo"
    assert "TEST-ONLY" in (demo / "demo.agekey").read_text().splitlines()[0]
    assert "TEST-ONLY" in (paths.repo_root() / ".sops.yaml").read_text()
    bundle = load_bundle_file(demo / "talos" / "secrets.sops.yaml", key=AgeKey(source="t", file=demo / "demo.agekey"))
    assert TOKEN_RE.match(bundle.bootstrap_token.reveal_text())
    raw = (demo / "talos" / "secrets.sops.yaml").read_bytes()
    for m in bundle.mask_values():
        if len(m) >= 16:
            assert m.reveal() not in raw


# -- gen-secrets: clusters dir outside the repo, refusal, dry-run ----------------------------------------------


CLUSTER_YAML = """\
name: {name}
id: 7
domain: {name}.example.com
talosVersion: v1.12.0
kubernetesVersion: v1.34.1
endpoint: 10.9.0.10
network:
  nodeCIDR: 10.9.0.0/24
  gateway: 10.9.0.1
  nameservers: [10.9.0.1]
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/12
gitops: {{repository: "ssh://git@example.com/x.git", branch: main, path: kubernetes/flux}}
onepassword: {{vault: k8s}}
sops: {{ageKeyFile: {name}.agekey}}
nodes:
  - {{hostname: cp1, address: 10.9.0.11, role: controlplane, installDisk: /dev/sda}}
  - {{hostname: cp2, address: 10.9.0.12, role: controlplane, installDisk: /dev/sda}}
  - {{hostname: cp3, address: 10.9.0.13, role: controlplane, installDisk: /dev/sda}}
  - {{hostname: w1, address: 10.9.0.21, role: worker, installDisk: /dev/sda}}
"""


def make_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "c1") -> tuple[Path, str]:
    """An operator's checkout outside the repo: <site>/.sops.yaml + <site>/clusters/<name>/cluster.yaml + key."""
    site = tmp_path / "site"
    cdir = site / "clusters" / name
    cdir.mkdir(parents=True)
    (cdir / "cluster.yaml").write_text(CLUSTER_YAML.format(name=name))
    text, recipient = generate_age_key()
    (cdir / f"{name}.agekey").write_bytes(text.reveal())
    (site / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: ^clusters/{name}/.*\\.sops\\.yaml$\n    age: {recipient}\n"
    )
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(site / "clusters"))
    return site, recipient


def cluster(name: str = "c1") -> Cluster:
    return load_cluster(name)


def test_gen_secrets_outside_the_repo_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    site, recipient = make_site(tmp_path, monkeypatch)
    assert find_sops_config() == site / ".sops.yaml"
    gen_secrets(Context(), cluster="c1", yes=True)
    target = site / "clusters" / "c1" / "talos" / "secrets.sops.yaml"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["secrets.sops.yaml"]  # no temp or plaintext left
    doc = yaml.safe_load(target.read_bytes())
    assert [e["recipient"] for e in doc["sops"]["age"]] == [recipient]
    assert doc["secrets"]["bootstraptoken"].startswith("ENC[AES256_GCM,")
    bundle = load_bundle(cluster())  # key from the inventory's sops.ageKeyFile
    assert TOKEN_RE.match(bundle.bootstrap_token.reveal_text())
    raw = target.read_bytes()
    assert all(m.reveal() not in raw for m in bundle.mask_values() if len(m) >= 16)
    assert "wrote" in capsys.readouterr().out


class _Terminal:
    """stdin of an operator at a terminal (for the typed confirmation)."""

    def isatty(self) -> bool:
        return True


def test_gen_secrets_asks_to_type_the_cluster_showing_the_recipients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site, recipient = make_site(tmp_path, monkeypatch)
    target = site / "clusters" / "c1" / "talos" / "secrets.sops.yaml"
    with pytest.raises(Exit) as info:  # no terminal and no --yes: refused
        gen_secrets(Context(), cluster="c1")
    err = capsys.readouterr().err
    assert info.value.code != 0 and "without confirmation" in err and "--yes" in err
    assert not target.exists()
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin", _Terminal())

    def wrong_name(question: str) -> str:  # a wrong name: nothing written
        asked.append(question)
        return "c2"

    monkeypatch.setattr("builtins.input", wrong_name)
    with pytest.raises(Exit):
        gen_secrets(Context(), cluster="c1")
    assert asked == ["Type 'c1' to continue: "] and not target.exists()
    err = capsys.readouterr().err
    assert f"This will generate the Talos secrets bundle (generate, encrypt to {recipient} and create" in err
    monkeypatch.setattr("builtins.input", lambda q: "c1")
    gen_secrets(Context(), cluster="c1")
    assert [e["recipient"] for e in yaml.safe_load(target.read_bytes())["sops"]["age"]] == [recipient]


def test_gen_secrets_refuses_to_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    site, _ = make_site(tmp_path, monkeypatch)
    gen_secrets(Context(), cluster="c1", yes=True)
    target = site / "clusters" / "c1" / "talos" / "secrets.sops.yaml"
    before = target.read_bytes()
    capsys.readouterr()
    with pytest.raises(Exit) as info:
        gen_secrets(Context(), cluster="c1", yes=True)
    assert info.value.code != 0
    assert "refusing to overwrite" in capsys.readouterr().err
    assert target.read_bytes() == before
    with pytest.raises(Exit):
        gen_secrets(Context(), cluster="c1", dry_run=True)  # the dry run says so too


def test_gen_secrets_dry_run_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    site, recipient = make_site(tmp_path, monkeypatch)
    gen_secrets(Context(), cluster="c1", dry_run=True)
    out = capsys.readouterr().out
    target = site / "clusters" / "c1" / "talos" / "secrets.sops.yaml"
    assert str(target) in out and recipient in out
    assert not target.parent.exists()
    gen_secrets(Context(), cluster="c1", dry_run=True, json=True)
    import json

    plan = json.loads(capsys.readouterr().out)
    effect = plan["steps"][0]["prepare"][0]
    assert effect["filename_override"] == "clusters/c1/talos/secrets.sops.yaml" and effect["recipients"] == recipient
    assert effect["target"] == str(target)


def test_gen_secrets_without_a_matching_rule_fails_before_anything(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    site, _ = make_site(tmp_path, monkeypatch)
    (site / ".sops.yaml").write_text(f"creation_rules:\n  - path_regex: ^elsewhere/.*$\n    age: {OWNER_RECIPIENT}\n")
    with pytest.raises(SecretError, match="no creation rule"):
        new_bundle_target("c1")
    assert not (site / "clusters" / "c1" / "talos").exists()


def test_gen_secrets_unknown_cluster_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_site(tmp_path, monkeypatch)
    with pytest.raises(SecretError, match="does not exist"):
        new_bundle_target("c2")
    with pytest.raises(SecretError, match="not a cluster name"):
        new_bundle_target("../c1")


def test_load_bundle_decrypts_once_per_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site, _ = make_site(tmp_path, monkeypatch)
    gen_secrets(Context(), cluster="c1", yes=True)
    calls: list[object] = []
    real = Sops.decrypt

    def counting(self: Sops, *args: Any, **kwargs: Any) -> Secret:
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Sops, "decrypt", counting)
    first = load_bundle(cluster())
    assert load_bundle(cluster()) is first and len(calls) == 1
    # a different file content (e.g. after a git checkout) is decrypted again
    target = site / "clusters" / "c1" / "talos" / "secrets.sops.yaml"
    os.unlink(target)
    gen_secrets(Context(), cluster="c1", yes=True)
    second = load_bundle(cluster())
    assert len(calls) == 2 and second.data != first.data


def test_load_bundle_missing_file_says_how_to_create_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_site(tmp_path, monkeypatch)
    with pytest.raises(SecretError, match=re.escape("talos.gen-secrets --cluster c1")):
        load_bundle(cluster())


def test_clusters_dir_without_its_own_sops_yaml_refuses_instead_of_using_the_repo_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 16 §5: the repo's rules would encrypt another owner's CAs to this repo owner's key
    site, _ = make_site(tmp_path, monkeypatch, name="apps")
    (site / ".sops.yaml").unlink()
    with pytest.raises(SecretError, match=r"no \.sops\.yaml in"):
        find_sops_config()
    with pytest.raises(Exit):
        gen_secrets(Context(), cluster="apps", dry_run=True)
    assert OWNER_RECIPIENT not in capsys.readouterr().out
    assert not (site / "clusters" / "apps" / "talos").exists()


def test_write_bundle_never_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "talos" / "secrets.sops.yaml"
    bundle_mod.write_bundle(path, b"first")
    assert path.read_bytes() == b"first" and path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(SecretError, match="refusing to overwrite"):
        bundle_mod.write_bundle(path, b"second")
    assert path.read_bytes() == b"first"
    assert [p.name for p in path.parent.iterdir()] == ["secrets.sops.yaml"]  # no temp file left behind
