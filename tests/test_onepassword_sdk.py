"""The onepassword-sdk adapter (k8s_ops.onepassword.sdk) and the fidelity of the in-memory fake to the real SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from onepassword import Client, ItemCategory, ItemCreateParams, ItemField, ItemFieldType, ItemSection

from k8s_ops.core.errors import SecretError
from k8s_ops.core.secret import Secret
from k8s_ops.onepassword import sdk
from k8s_ops.onepassword.sdk import SdkStore, open_store
from tests.op_fake import (
    TOKEN_BASE64_FAILED,
    TOKEN_DESERIALIZATION_FAILED,
    TOKEN_INVALID_FORMAT,
    TOKEN_NOT_SPECIFIED,
    FakeOnePassword,
)

# Tokens the real SDK rejects offline, before any network access.
GARBAGE_TOKENS = {
    "": TOKEN_NOT_SPECIFIED,
    "garbage": TOKEN_INVALID_FORMAT,
    "ops_garbage": TOKEN_BASE64_FAILED,
    "ops_eyJhIjoxfQ==": TOKEN_BASE64_FAILED,
    "ops_" + "A" * 40: TOKEN_DESERIALIZATION_FAILED,
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeOnePassword:
    fake = FakeOnePassword(vaults=("k8s", "Private"))
    monkeypatch.setattr(sdk, "client_class", lambda: fake.Client)
    monkeypatch.delenv("OP_SERVICE_ACCOUNT_TOKEN", raising=False)
    return fake


@pytest.fixture
def store(fake: FakeOnePassword) -> Iterator[SdkStore]:
    with open_store("k8s", token=fake.token) as st:
        yield st


async def _real_auth_error(token: str) -> str:
    try:
        await asyncio.wait_for(Client.authenticate(token, "k8s-ops-tests", "0.0.0"), timeout=30)
    except Exception as exc:
        return str(exc)
    raise AssertionError("the real SDK accepted a garbage token")


async def _fake_auth_error(fake: FakeOnePassword, token: str) -> str:
    try:
        await fake.Client.authenticate(token, "k8s-ops-tests", "0.0.0")
    except Exception as exc:
        return str(exc)
    raise AssertionError("the fake accepted a garbage token")


# ---------------------------------------------------------------- fake fidelity


@pytest.mark.parametrize("token", list(GARBAGE_TOKENS))
def test_fake_rejects_tokens_with_the_real_sdk_messages(token: str) -> None:
    fake = FakeOnePassword()
    real = asyncio.run(_real_auth_error(token))
    assert real == GARBAGE_TOKENS[token]
    assert asyncio.run(_fake_auth_error(fake, token)) == real


def test_fake_accepts_only_its_own_token() -> None:
    fake, other = FakeOnePassword(account="a"), FakeOnePassword(account="b")
    assert asyncio.run(_fake_auth_error(fake, other.token)) == TOKEN_DESERIALIZATION_FAILED
    client = asyncio.run(fake.Client.authenticate(fake.token, "k8s-ops", "1"))
    assert [v.title for v in asyncio.run(client.vaults.list())] == ["k8s"]


def _note(fake: FakeOnePassword, title: str, value: str) -> ItemCreateParams:
    return ItemCreateParams(
        category=ItemCategory.SECURENOTE,
        vault_id=fake.vault_id("k8s"),
        title=title,
        fields=[ItemField(id="f", title="f", field_type=ItemFieldType.CONCEALED, value=value, section_id="")],
        sections=[ItemSection(id="", title="")],
    )


def _client(fake: FakeOnePassword) -> Any:
    return asyncio.run(fake.Client.authenticate(fake.token, "k8s-ops", "1"))


def test_fake_fields_lose_newlines_and_duplicates_break_resolution() -> None:
    fake = FakeOnePassword()
    client = _client(fake)
    item = asyncio.run(client.items.create(_note(fake, "kubeconfig-x", "a: 1\r\nb: 2\n")))
    assert item.fields[0].value == "a: 1b: 2"  # what a naive "store the text in a field" gets back
    assert asyncio.run(client.secrets.resolve("op://K8S/KUBECONFIG-X/f")) == "a: 1b: 2"  # case-insensitive
    asyncio.run(client.items.create(_note(fake, "kubeconfig-x", "other")))  # 1Password allows duplicate titles
    with pytest.raises(Exception, match="tooManyItems"):
        asyncio.run(client.secrets.resolve("op://k8s/kubeconfig-x/f"))
    with pytest.raises(Exception, match="invalid character in secret reference"):
        asyncio.run(client.secrets.resolve("op://k8s/kubeconfig:x/f"))  # the real offline validator


def test_fake_put_needs_the_current_version() -> None:
    fake = FakeOnePassword()
    client = _client(fake)
    item = asyncio.run(client.items.create(_note(fake, "t", "v1")))
    stale = item.model_copy()
    asyncio.run(client.items.put(item.model_copy(update={"notes": "edited"})))
    with pytest.raises(Exception, match="itemStatusIncorrectItemVersion"):
        asyncio.run(client.items.put(stale))


# ---------------------------------------------------------------- authentication and vaults


def test_missing_token(fake: FakeOnePassword) -> None:
    with pytest.raises(SecretError) as err:
        open_store("k8s")
    assert "OP_SERVICE_ACCOUNT_TOKEN is not set" in str(err.value)
    assert fake.calls == []  # nothing sent to 1Password


@pytest.mark.parametrize("token", ["garbage", "ops_garbage"])
def test_rejected_token(fake: FakeOnePassword, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", token)
    with pytest.raises(SecretError) as err:
        open_store("k8s")
    assert f"1Password rejected the token in OP_SERVICE_ACCOUNT_TOKEN: {GARBAGE_TOKENS[token]}" in str(err.value)


def test_rejected_token_is_never_echoed(fake: FakeOnePassword, monkeypatch: pytest.MonkeyPatch) -> None:
    token = FakeOnePassword(account="someone-else").token

    def leaky(*_: Any, **__: Any) -> Any:
        raise Exception(f"token {token} revoked")

    fake.Client.authenticate = leaky
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", token)
    with pytest.raises(SecretError) as err:
        open_store("k8s")
    assert token not in str(err.value) and "token *** revoked" in str(err.value)


def test_real_sdk_behind_the_adapter_rejects_a_garbage_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", "ops_" + "A" * 40)  # fails offline inside the real SDK
    assert sdk.client_class() is Client
    with pytest.raises(SecretError, match="service account deserialization failed"):
        open_store("k8s")


def test_vault_not_found_lists_the_vaults(fake: FakeOnePassword) -> None:
    with pytest.raises(SecretError) as err:
        open_store("homelab", token=fake.token)
    assert "1Password vault 'homelab' not found" in str(err.value)
    assert "'Private', 'k8s'" in str(err.value)


def test_vault_by_title_case_insensitive_or_id(fake: FakeOnePassword) -> None:
    with open_store("K8S", token=fake.token) as st:
        assert st.vault == "k8s"
    with open_store(fake.vault_id("Private"), token=fake.token) as st:
        assert st.vault == "Private"


def test_integration_name_and_version(fake: FakeOnePassword) -> None:
    seen: dict[str, str] = {}
    real_auth = fake.Client.authenticate

    async def spy(auth: str, integration_name: str, integration_version: str) -> Any:
        seen.update(name=integration_name, version=integration_version)
        return await real_auth(auth, integration_name, integration_version)

    fake.Client.authenticate = spy
    open_store("k8s", token=fake.token).close()
    assert seen == {"name": "k8s-ops", "version": sdk.integration_version()}
    assert seen["version"] not in ("", "0.0.0")


# ---------------------------------------------------------------- items


def test_put_round_trips_through_field_newline_loss(store: SdkStore, fake: FakeOnePassword) -> None:
    data = b"a\r\nb\n\n\xe2\x9c\x93 no newline at end"
    stored = store.put("kubeconfig-infra", Secret(data), base=None, meta={"kind": "kubeconfig"})
    assert stored.content is not None and stored.content.reveal() == data and stored.version == 1
    assert "\n" not in fake.field_value("kubeconfig-infra", "content")
    got = store.get("kubeconfig-infra")
    assert got is not None and got.content == Secret(data) and got.meta["kind"] == "kubeconfig"
    assert store.reference("kubeconfig-infra") == "op://k8s/kubeconfig-infra/content"
    (item,) = fake.items_titled("kubeconfig-infra")
    assert item["category"] == "SecureNote" and "k8s-ops" in item["tags"]
    assert {f["id"]: f["fieldType"] for f in item["fields"]}["content"] == "Concealed"


def test_update_keeps_foreign_fields_and_bumps_version(store: SdkStore, fake: FakeOnePassword) -> None:
    first = store.put("talosconfig-infra", Secret(b"v1"), base=None, meta={})
    (item,) = fake.items_titled("talosconfig-infra")
    item["fields"].append({"id": "note", "title": "note", "fieldType": "Text", "value": "keep me", "sectionId": ""})
    second = store.put("talosconfig-infra", Secret(b"v2"), base=first, meta={})
    assert second.version == first.version + 1 and second.content == Secret(b"v2")
    assert fake.field_value("talosconfig-infra", "note") == "keep me"


def test_update_refuses_when_the_item_moved_on(store: SdkStore, fake: FakeOnePassword) -> None:
    first = store.put("x-infra", Secret(b"v1"), base=None, meta={})
    fake.set_field("x-infra", "pushed-from", "elsewhere")  # someone edits the item meanwhile
    with pytest.raises(SecretError, match="changed in 1Password while pushing"):
        store.put("x-infra", Secret(b"v2"), base=first, meta={})


def test_put_race_between_read_and_write_is_caught_by_the_version(store: SdkStore, fake: FakeOnePassword) -> None:
    first = store.put("x-infra", Secret(b"v1"), base=None, meta={})

    def other_machine(call: str) -> None:
        if call == "items.put":
            fake.on_call = None
            fake.set_field("x-infra", "content", "djM=")  # lands between our get and our put

    fake.on_call = other_machine
    with pytest.raises(SecretError, match="itemStatusIncorrectItemVersion"):
        store.put("x-infra", Secret(b"v2"), base=first, meta={})
    assert fake.field_value("x-infra", "content") == "djM="


def test_duplicate_titles_are_an_error(store: SdkStore, fake: FakeOnePassword) -> None:
    client = _client(fake)
    asyncio.run(client.items.create(_note(fake, "kubeconfig-infra", "a")))
    asyncio.run(client.items.create(_note(fake, "Kubeconfig-Infra", "b")))
    with pytest.raises(SecretError) as err:
        store.get("kubeconfig-infra")
    assert "2 items titled 'kubeconfig-infra'" in str(err.value) and "tooManyItems" in str(err.value)


def test_foreign_and_damaged_items_are_reported_not_trusted(store: SdkStore, fake: FakeOnePassword) -> None:
    asyncio.run(_client(fake).items.create(_note(fake, "kubeconfig-infra", "hand made")))
    foreign = store.get("kubeconfig-infra")
    assert foreign is not None and foreign.content is None and "not written by k8s-ops" in (foreign.problem or "")
    store.put("talosconfig-infra", Secret(b"abc\n"), base=None, meta={})
    fake.set_field("talosconfig-infra", "content", "YWJj")  # "abc": the newline lost by a hand edit
    damaged = store.get("talosconfig-infra")
    assert damaged is not None and damaged.content is None and "sha256" in (damaged.problem or "")


def test_archived_items_are_ignored(store: SdkStore, fake: FakeOnePassword) -> None:
    old = store.put("kubeconfig-infra", Secret(b"old"), base=None, meta={})
    fake.archive(fake.vault_id("k8s"), old.item_id)
    assert store.get("kubeconfig-infra") is None


def test_reference_falls_back_to_the_vault_id(fake: FakeOnePassword) -> None:
    vid = fake.add_vault("Home: k8s")
    with open_store("Home: k8s", token=fake.token) as st:
        assert st.reference("kubeconfig-infra") == f"op://{vid}/kubeconfig-infra/content"
        st.put("kubeconfig-infra", Secret(b"x"), base=None, meta={})  # verifies by resolving that reference
