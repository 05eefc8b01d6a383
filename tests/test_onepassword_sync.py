"""Pure parts of k8s_ops.onepassword: the push/pull/status decision rules, item titles, the field codec."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from onepassword import Secrets

from k8s_ops.core.errors import ProblemsError
from k8s_ops.onepassword.artefacts import KINDS, Kind, content_problem, item_title, parse_what
from k8s_ops.onepassword.store import decode_fields, encode_fields, sha256_hex
from k8s_ops.onepassword.sync import Action, Sides, Standing, compare, plan_pull, plan_push

A, B, C = "a" * 64, "b" * 64, "c" * 64


# ---------------------------------------------------------------- push


@pytest.mark.parametrize(
    ("sides", "force", "action"),
    [
        (Sides(local=None, remote=A, last=A), False, Action.MISSING),
        (Sides(local=A, remote=None, last=None), False, Action.CREATE),
        (Sides(local=A, remote=None, last=B), False, Action.CREATE),  # item deleted in 1Password: recreate
        (Sides(local=A, remote=A, last=None), False, Action.UNCHANGED),
        (Sides(local=A, remote=B, last=B), False, Action.UPDATE),  # local moved on from the last sync
        (Sides(local=A, remote=B, last=C), False, Action.REFUSE),  # 1Password moved on: someone else pushed
        (Sides(local=A, remote=B, last=None), False, Action.REFUSE),  # never synced here
        (Sides(local=A, remote=B, last=C), True, Action.UPDATE),
        (Sides(local=A, remote=B, last=None), True, Action.UPDATE),
        (Sides(local=A, remote=None, last=None, remote_exists=True, remote_problem="damaged"), False, Action.REFUSE),
        (Sides(local=A, remote=None, last=None, remote_exists=True, remote_problem="damaged"), True, Action.UPDATE),
    ],
)
def test_push_decisions(sides: Sides, force: bool, action: Action) -> None:
    assert plan_push(sides, force=force).action is action


def test_push_refusal_says_what_to_do() -> None:
    reason = plan_push(Sides(local=A, remote=B, last=C)).reason
    assert "changed since this machine last synced" in reason
    assert "--force" in reason and "op.pull" in reason


# ---------------------------------------------------------------- pull


@pytest.mark.parametrize(
    ("sides", "kw", "action"),
    [
        (Sides(local=A, remote=None, last=A), {}, Action.MISSING),
        (Sides(local=None, remote=A, last=None), {}, Action.WRITE),
        (Sides(local=A, remote=A, last=None), {}, Action.UNCHANGED),
        (Sides(local=A, remote=B, last=A), {}, Action.WRITE),  # 1Password is newer, local untouched
        (Sides(local=A, remote=B, last=C), {}, Action.REFUSE),  # local edited since the last sync
        (Sides(local=A, remote=B, last=None), {}, Action.REFUSE),
        (Sides(local=A, remote=B, last=C), {"force": True}, Action.WRITE),
        (Sides(local=A, remote=B, last=A), {"only_missing": True}, Action.KEEP),
        (Sides(local=None, remote=B, last=A), {"only_missing": True}, Action.WRITE),
        # the committed secrets bundle: restored only when missing, or with --force
        (Sides(local=A, remote=B, last=A), {"restore_only_if_missing": True}, Action.KEEP),
        (Sides(local=None, remote=B, last=A), {"restore_only_if_missing": True}, Action.WRITE),
        (Sides(local=A, remote=B, last=C), {"restore_only_if_missing": True, "force": True}, Action.WRITE),
        (Sides(local=A, remote=None, last=A, remote_exists=True, remote_problem="x"), {"force": True}, Action.REFUSE),
    ],
)
def test_pull_decisions(sides: Sides, kw: dict[str, bool], action: Action) -> None:
    assert plan_pull(sides, **kw).action is action


# ---------------------------------------------------------------- status

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sides", "state", "newer"),
    [
        (Sides(local=None, remote=None, last=None), Standing.ABSENT, "unknown"),
        (Sides(local=A, remote=None, last=None), Standing.LOCAL_ONLY, "local"),
        (Sides(local=None, remote=A, last=A), Standing.REMOTE_ONLY, "1password"),
        (Sides(local=A, remote=A, last=None), Standing.IN_SYNC, "same"),
        (Sides(local=A, remote=B, last=A), Standing.REMOTE_NEWER, "1password"),
        (Sides(local=A, remote=B, last=B), Standing.LOCAL_NEWER, "local"),
    ],
)
def test_status_from_digests(sides: Sides, state: Standing, newer: str) -> None:
    # Timestamps that say the opposite must not matter when the digests decide.
    cmp = compare(sides, local_mtime=T0, remote_updated=T0 + timedelta(days=1))
    assert (cmp.state, cmp.newer) == (state, newer)


def test_status_diverged_falls_back_to_timestamps() -> None:
    diverged = Sides(local=A, remote=B, last=C)
    later_local = compare(diverged, local_mtime=T0 + timedelta(hours=1), remote_updated=T0)
    later_remote = compare(diverged, local_mtime=T0, remote_updated=T0 + timedelta(hours=1))
    assert later_local.state is Standing.DIVERGED and later_local.newer == "local"
    assert later_remote.newer == "1password" and later_remote.basis == "timestamps"


# ---------------------------------------------------------------- titles and --what


@pytest.mark.parametrize("cluster", ["infra", "apps", "a-b-9"])
def test_titles_are_valid_op_references(cluster: str) -> None:
    titles = [item_title(k, cluster) for k in KINDS]
    assert titles == [
        f"kubeconfig-{cluster}",
        f"talosconfig-{cluster}",
        f"sops-age-key-{cluster}",
        f"talos-secrets-{cluster}",
    ]
    for title in titles:
        Secrets.validate_secret_reference(f"op://k8s/{title}/content")  # the real SDK's offline validator


def test_parse_what() -> None:
    assert parse_what("all") == KINDS
    assert parse_what("talos-secrets,kubeconfig") == (Kind.KUBECONFIG, Kind.TALOS_SECRETS)
    assert parse_what([Kind.AGE_KEY]) == (Kind.AGE_KEY,)
    with pytest.raises(ProblemsError) as err:
        parse_what("kubeconfig,talos,agekey")
    assert len(err.value.problems) == 2 and "'talos'" in str(err.value) and "'agekey'" in str(err.value)


# ---------------------------------------------------------------- field codec


def test_encoded_fields_are_single_line_and_decode_byte_exact() -> None:
    data = "line\r\n\nünï ✓\n\n".encode() + bytes(range(256))
    fields = encode_fields(data, {"kind": "kubeconfig", "pushed-from": "host\nname"})
    assert all("\n" not in v and "\r" not in v for v in fields.values())
    assert fields["sha256"] == sha256_hex(data) and fields["encoding"] == "base64"
    decoded = decode_fields(fields)
    assert decoded.problem is None and decoded.content is not None and decoded.content.reveal() == data


def test_decode_detects_damage_and_foreign_items() -> None:
    fields = encode_fields(b"kubeconfig\n", {})
    tampered = {**fields, "content": base64.b64encode(b"kubeconfig").decode()}  # a newline lost on the way
    assert "does not match its sha256" in (decode_fields(tampered).problem or "")
    assert decode_fields(tampered).content is None
    assert "not valid base64" in (decode_fields({**fields, "content": "%%%"}).problem or "")
    assert "not written by k8s-ops" in (decode_fields({"password": "x"}).problem or "")


def test_content_checks() -> None:
    assert content_problem(Kind.KUBECONFIG, b"\n \n") == "the file is empty"
    assert "not an age key" in (content_problem(Kind.AGE_KEY, b"# public key: age1xyz\n") or "")
    assert content_problem(Kind.AGE_KEY, b"AGE-SECRET-KEY-1QQQ\r\n") is None
    plain = b"cluster:\n  id: abc\n  secret: def\n"
    assert "not SOPS-encrypted" in (content_problem(Kind.TALOS_SECRETS, plain) or "")
    encrypted = b"cluster:\n    id: ENC[AES256_GCM,data:YQ==,iv:aXY=,tag:dGFn,type:str]\nsops:\n    version: 3.11.0\n"
    assert content_problem(Kind.TALOS_SECRETS, encrypted) is None
