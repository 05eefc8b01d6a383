"""k8s_ops.tools.sops against the real sops binary: reference vectors, failure fixtures, key isolation, path_regex."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from k8s_ops.core import paths
from k8s_ops.core.errors import SecretError
from k8s_ops.core.secret import Secret
from k8s_ops.tools.sops import (
    AgeKey,
    AgeKeyNotFound,
    Sops,
    SopsAlreadyEncryptedError,
    SopsCorruptError,
    SopsError,
    SopsFileNotFound,
    SopsKeyError,
    SopsMacMismatchError,
    SopsNoRuleError,
    SopsNotEncryptedError,
    classify_error,
    clear_cache,
    generate_age_key,
    resolve_age_key,
    sops_env,
)

SHARED = paths.repo_root().parent / "shared"
REF = SHARED / "reference" / "sops"
GEN = REF / "generated"
TEST_RECIPIENT = "age1g768yjrwpa23u2k38793qvaen2cy7tm2tl7axkhkx88nstuk7f6qcsc7up"

needs_reference = pytest.mark.skipif(
    not GEN.is_dir(), reason=f"sops reference vectors not available ({GEN} is absent: ../shared not checked out)"
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No key reaches a test from the developer's environment or home directory."""
    home = tmp_path / "home"
    home.mkdir()
    for var in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD", "SOPS_AGE_SSH_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    clear_cache()
    return home


def good_key() -> AgeKey:
    return AgeKey(source="test", file=GEN / "test-key.agekey")


def wrong_key() -> AgeKey:
    return AgeKey(source="test", file=GEN / "wrong-key.agekey")


def new_key(tmp_path: Path, name: str = "k.agekey") -> tuple[AgeKey, str]:
    text, recipient = generate_age_key()
    path = tmp_path / name
    path.write_bytes(text.reveal())
    return AgeKey(source="test", file=path), recipient


# -- real vectors ----------------------------------------------------------------------------------------------


@needs_reference
def test_decrypts_the_kubernetes_secret_vector_to_its_plaintext() -> None:
    plain = Sops(key=good_key()).decrypt(GEN / "secret.sops.yaml")
    assert isinstance(plain, Secret) and str(plain) == "***"
    assert yaml.safe_load(plain.reveal()) == yaml.safe_load((GEN / "plain-not-encrypted.yaml").read_bytes())
    assert yaml.safe_load(plain.reveal())["stringData"] == {"password": "hunter2", "port": 5432, "enabled": True}


@needs_reference
def test_decrypts_json_and_extracts_a_leaf() -> None:
    sops = Sops(key=good_key())
    doc = json.loads(sops.decrypt(GEN / "plain-all.enc.json").reveal())
    assert doc == {"token": "abc", "nested": {"n": 1, "list": ["x", True]}}
    assert sops.decrypt(GEN / "plain-all.enc.json", extract='["token"]').reveal() == b"abc"


@needs_reference
def test_binary_round_trip_is_byte_exact() -> None:
    plain = Sops(key=good_key()).decrypt(GEN / "kubeconfig-binary.sops.yaml", output_type="binary").reveal()
    assert len(plain) == 159
    assert hashlib.sha256(plain).hexdigest() == "39040734dcc7c8f188945190193211628f44c619b1ef33aa0c3714fa0f681f21"


@needs_reference
def test_reads_upstream_3_7_files_with_a_commented_keys_txt() -> None:
    key = AgeKey(source="test", file=REF / "getsops-0b07dfbc5-age-keys.txt")
    doc = yaml.safe_load(Sops(key=key).decrypt(REF / "getsops-0b07dfbc5-example.yaml").reveal())
    assert doc["myapp1"] == "t00m4nys3cr3tzupdated"
    assert doc["app2"]["db"]["password"] == "c4r1b0u"
    assert key.recipients() == ("age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw",)


@needs_reference
def test_key_given_as_value_works_like_a_file() -> None:
    text = Secret((GEN / "test-key.agekey").read_bytes())
    plain = Sops(key=AgeKey(source="value", value=text)).decrypt(GEN / "secret.sops.yaml")
    assert b"hunter2" in plain.reveal()


# -- failure fixtures with their exit codes -------------------------------------------------------------------


@needs_reference
@pytest.mark.parametrize(
    ("name", "key", "error", "code"),
    [
        ("tampered-mac-mismatch.sops.yaml", "good", SopsMacMismatchError, 51),
        ("tampered-ciphertext.sops.yaml", "good", SopsCorruptError, 25),
        ("plain-not-encrypted.yaml", "good", SopsNotEncryptedError, 1),
        ("secret.sops.yaml", "wrong", SopsKeyError, 128),
        ("plain-all.enc.json", "wrong", SopsKeyError, 128),
        ("does-not-exist.sops.yaml", "good", SopsFileNotFound, 100),
    ],
)
def test_failures_are_classified_by_exit_code(name: str, key: str, error: type[SopsError], code: int) -> None:
    with pytest.raises(error) as info:
        Sops(key=good_key() if key == "good" else wrong_key()).decrypt(GEN / name)
    exc = info.value
    assert isinstance(exc, SecretError)
    assert exc.returncode == code
    assert exc.argv[1:4] == ("--config", "/dev/null", "decrypt")
    assert str(GEN / name) in exc.argv
    assert "AGE-SECRET-KEY" not in str(exc) and "hunter2" not in str(exc)


@needs_reference
def test_wrong_key_message_names_the_problem() -> None:
    with pytest.raises(SopsKeyError, match="wrong key") as info:
        Sops(key=wrong_key()).decrypt(GEN / "secret.sops.yaml")
    assert "did not match any of the recipients" in info.value.stderr


@needs_reference
def test_no_key_at_all_is_128_with_its_own_message() -> None:
    with pytest.raises(SopsKeyError, match="no age key available"):
        Sops(key=None).decrypt(GEN / "secret.sops.yaml")


def test_unparsable_key_is_a_key_error(tmp_path: Path) -> None:
    key_file = tmp_path / "garbage.agekey"
    key_file.write_text("not a key\n")
    cipher = Sops().encrypt(b"a: b\n", filename="x.yaml", recipients=[generate_age_key()[1]])
    with pytest.raises(SopsKeyError, match="could not be read or parsed") as info:
        Sops(key=AgeKey(source="t", file=key_file)).decrypt_bytes(cipher)
    assert info.value.returncode == 128


@needs_reference
def test_encrypting_an_encrypted_file_is_203() -> None:
    with pytest.raises(SopsAlreadyEncryptedError) as info:
        Sops().encrypt_file(GEN / "secret.sops.yaml", recipients=[TEST_RECIPIENT])
    assert info.value.returncode == 203


def test_no_matching_creation_rule_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / ".sops.yaml"
    config.write_text(f"creation_rules:\n  - path_regex: ^other/.*\\.sops\\.yaml$\n    age: {generate_age_key()[1]}\n")
    expected = re.escape("no .sops.yaml creation rule matches clusters/x/s.sops.yaml")
    with pytest.raises(SopsNoRuleError, match=expected) as info:
        Sops(config=config).encrypt(b"a: b\n", filename="clusters/x/s.sops.yaml")
    assert info.value.returncode == 1


def test_stdin_without_filename_is_classified_generically() -> None:
    exc = classify_error(8, "Error: must specify --filename-override when reading from stdin", ["sops"])
    assert type(exc) is SopsError and exc.returncode == 8


def test_stderr_is_redacted_of_age_secret_keys() -> None:
    secret_line = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
    exc = classify_error(128, f"failed to parse 'SOPS_AGE_KEY' age identities: {secret_line}", ["sops"])
    assert secret_line not in str(exc) and secret_line not in exc.stderr
    assert "AGE-SECRET-KEY-1***" in exc.stderr


# -- round trip, path_regex and key isolation -----------------------------------------------------------------


def test_round_trip_with_a_generated_key_through_path_regex(tmp_path: Path) -> None:
    key, recipient = new_key(tmp_path)
    _, other = generate_age_key()
    repo = tmp_path / "repo"
    (repo / "clusters" / "a").mkdir(parents=True)
    config = repo / ".sops.yaml"
    # Anchored rules only match the path relative to the config's directory (sopsy breaks exactly this).
    config.write_text(
        "creation_rules:\n"
        f"  - path_regex: ^clusters/a/.*\\.sops\\.yaml$\n    age: {recipient}\n"
        f"  - path_regex: ^clusters/.*\\.sops\\.yaml$\n    age: {other}\n"
    )
    sops = Sops(key=key, config=config)
    target = repo / "clusters" / "a" / "s.sops.yaml"
    cipher = sops.encrypt(Secret(b"token: abc\nn: 1\n"), filename=target)
    meta = yaml.safe_load(cipher)["sops"]
    assert [entry["recipient"] for entry in meta["age"]] == [recipient]
    assert b"abc" not in cipher
    assert not target.exists(), "encrypt must not write anything"
    target.write_bytes(cipher)
    assert yaml.safe_load(sops.decrypt(target).reveal()) == {"token": "abc", "n": 1}
    assert sops.is_encrypted(target)
    # The second rule applies to other clusters.
    cipher_b = sops.encrypt(b"x: y\n", filename="clusters/b/s.sops.yaml")
    assert [e["recipient"] for e in yaml.safe_load(cipher_b)["sops"]["age"]] == [other]


def test_file_outside_the_config_dir_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "repo" / ".sops.yaml"
    config.parent.mkdir()
    config.write_text("creation_rules: []\n")
    with pytest.raises(SecretError, match="outside"):
        Sops(config=config).encrypt(b"a: b\n", filename=tmp_path / "elsewhere" / "x.sops.yaml")


@needs_reference
def test_stray_default_keys_are_never_merged(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The right key sits in the places sops would look by default and in the parent's environment ...
    stray = isolated_env / ".config" / "sops" / "age" / "keys.txt"
    stray.parent.mkdir(parents=True)
    stray.write_bytes((GEN / "test-key.agekey").read_bytes())
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(GEN / "test-key.agekey"))
    # ... yet only the explicitly chosen (wrong) key is used.
    with pytest.raises(SopsKeyError):
        Sops(key=wrong_key()).decrypt(GEN / "secret.sops.yaml")


def test_environment_is_explicit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_CMD", "cat /somewhere")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    key, _ = new_key(tmp_path)
    env = sops_env(key, tmp_path / "h")
    assert env["HOME"] == str(tmp_path / "h") and env["XDG_CONFIG_HOME"] == str(tmp_path / "h" / ".config")
    assert env["SOPS_DISABLE_VERSION_CHECK"] == "1"
    assert env["SOPS_AGE_KEY_FILE"] == str(key.file)
    assert "SOPS_AGE_KEY_CMD" not in env and "AWS_SECRET_ACCESS_KEY" not in env and "SOPS_AGE_KEY" not in env
    value_env = sops_env(AgeKey(source="v", value=key.text()), tmp_path / "h")
    assert value_env["SOPS_AGE_KEY"] == key.text().reveal_text() and "SOPS_AGE_KEY_FILE" not in value_env


def test_argv_puts_config_before_the_subcommand_and_no_key_on_it(tmp_path: Path) -> None:
    key, _ = new_key(tmp_path)
    argv = Sops(key=AgeKey(source="v", value=key.text()), config=tmp_path / ".sops.yaml").argv("decrypt", "f")
    assert argv[1:4] == ["--config", str(tmp_path / ".sops.yaml"), "decrypt"]
    assert not any("AGE-SECRET-KEY" in a for a in argv)


# -- age key resolution ----------------------------------------------------------------------------------------


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = tmp_path / "home" / ".config" / "k8s-ops" / "age.agekey"
    default.parent.mkdir(parents=True)
    default.write_bytes(generate_age_key()[0].reveal())
    inventory, _ = new_key(tmp_path, "inv.agekey")
    env_file, _ = new_key(tmp_path, "env.agekey")
    assert resolve_age_key().source == "default key file"
    assert resolve_age_key(inventory_key_file=inventory.file).file == inventory.file
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(env_file.file))
    assert resolve_age_key(inventory_key_file=inventory.file).file == env_file.file
    text, recipient = generate_age_key()
    monkeypatch.setenv("SOPS_AGE_KEY", text.reveal_text())
    chosen = resolve_age_key(inventory_key_file=inventory.file)
    assert chosen.source == "env SOPS_AGE_KEY" and chosen.recipients() == (recipient,)


def test_missing_key_names_every_place_looked(tmp_path: Path) -> None:
    with pytest.raises(AgeKeyNotFound) as info:
        resolve_age_key(inventory_key_file=tmp_path / "c" / "x.agekey", cluster="c")
    msg = str(info.value)
    for place in ("SOPS_AGE_KEY (not set)", "SOPS_AGE_KEY_FILE (not set)", str(tmp_path / "c" / "x.agekey"),
                  str(paths.default_age_key_file())):
        assert place in msg
    assert "op.pull" in msg


def test_env_key_file_that_does_not_exist_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "nope.agekey"))
    with pytest.raises(SecretError, match="does not exist"):
        resolve_age_key()


def test_warns_about_an_unused_default_sops_keys_file(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stray = isolated_env / ".config" / "sops" / "age" / "keys.txt"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(generate_age_key()[0].reveal())
    inventory, _ = new_key(tmp_path, "inv2.agekey")
    assert resolve_age_key(inventory_key_file=inventory.file).file == inventory.file
    assert f"{stray} exists but is not used" in capsys.readouterr().err


def test_recipients_reject_a_non_key_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.agekey"
    bad.write_text("# public key: age1xyz\nhello\n")
    with pytest.raises(SecretError, match="not a valid age identity") as info:
        AgeKey(source="t", file=bad).recipients()
    assert "hello" not in str(info.value)


def test_decrypt_runs_sops_once_per_file_content_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, recipient = new_key(tmp_path)
    other_key, _ = new_key(tmp_path, "other.agekey")
    target = tmp_path / "s.sops.yaml"
    target.write_bytes(Sops().encrypt(b"a: 1\n", filename="s.sops.yaml", recipients=[recipient]))
    runs: list[list[str]] = []
    real_run = Sops._run

    def counting(self: Sops, argv: list[str], **kwargs: object) -> bytes:
        if "decrypt" in argv:
            runs.append(argv)
        return real_run(self, argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Sops, "_run", counting)
    first = Sops(key=key).decrypt(target)
    assert Sops(key=key).decrypt(target) is first and len(runs) == 1
    with pytest.raises(SopsKeyError):  # another key is not served from the cache
        Sops(key=other_key).decrypt(target)
    target.write_bytes(Sops().encrypt(b"a: 2\n", filename="s.sops.yaml", recipients=[recipient]))
    assert yaml.safe_load(Sops(key=key).decrypt(target).reveal()) == {"a": 2}
    assert len(runs) == 3
    Sops(key=key).decrypt(target, cache=False)
    assert len(runs) == 4


# -- through the Runner ----------------------------------------------------------------------------------------


def test_sops_runs_as_an_isolated_command_through_the_runner(tmp_path: Path) -> None:
    from k8s_ops.core.command import Command, Result
    from k8s_ops.core.testing import FakeRunner

    key, _ = new_key(tmp_path)
    seen: list[Command] = []

    def handler(command: Command) -> Result:
        seen.append(command)
        return Result(0, "a: 1\n")

    sops = Sops(key=AgeKey(source="v", value=key.text()), binary="sops", runner=FakeRunner(handler=handler))
    assert sops.encrypt(Secret("a: 1\n"), filename="x.sops.yaml", recipients=["age1x"]) == b"a: 1\n"
    (command,) = seen
    assert command.isolated and command.timeout == sops.timeout
    assert command.display_argv()[:4] == ["sops", "--config", os.devnull, "encrypt"]
    assert isinstance(command.stdin, Secret)  # plaintext is stdin, masked in displays and the audit log
    assert dict(command.env)["SOPS_DISABLE_VERSION_CHECK"] == "1"
    assert isinstance(dict(command.env)["SOPS_AGE_KEY"], Secret)
    assert "AGE-SECRET" not in command.display() and "a: 1" not in command.display()


def test_a_failed_sops_command_is_classified_and_a_timeout_is_a_secret_error(tmp_path: Path) -> None:
    from k8s_ops.core.command import Command, Result
    from k8s_ops.core.errors import CommandTimeout
    from k8s_ops.core.testing import FakeRunner

    failing = Sops(binary="sops", runner=FakeRunner(handler=lambda c: Result(51, "", "MAC mismatch")))
    with pytest.raises(SopsMacMismatchError):
        failing.decrypt(tmp_path / "f.sops.yaml", cache=False)

    def hang(c: Command) -> Result:
        raise CommandTimeout(c.display(), 60)

    with pytest.raises(SecretError, match="sops timed out after 60s"):
        Sops(binary="sops", runner=FakeRunner(handler=hang)).decrypt(tmp_path / "f.sops.yaml", cache=False)
