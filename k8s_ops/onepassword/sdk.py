"""`ItemStore` over the official onepassword-sdk (async, native core): the only module that imports it.

Each store owns one event loop (`asyncio.Runner`), so the SDK client and every call share it while the rest
of the toolkit stays synchronous. SDK exceptions (mostly plain `Exception(message)`) become `SecretError`s
here, with the service-account token masked out of every message.

`client_class()` is the one seam for tests: they monkeypatch it to return the in-memory fake's `Client`,
which has the SDK's surface (`Client.authenticate`, `items.*`, `vaults.list`, `secrets.resolve`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from importlib import metadata
from types import TracebackType
from typing import Any, Final, TypeVar

from k8s_ops.core.errors import SecretError
from k8s_ops.core.secret import MASK, Secret
from k8s_ops.onepassword.store import (
    CONTENT_FIELD,
    ITEM_TAG,
    RemoteItem,
    decode_fields,
    encode_fields,
    sha256_hex,
)

__all__ = ["INTEGRATION_NAME", "TOKEN_ENV", "SdkStore", "client_class", "integration_version", "open_store"]

INTEGRATION_NAME: Final = "k8s-ops"
TOKEN_ENV: Final = "OP_SERVICE_ACCOUNT_TOKEN"
_META_FIELDS: Final = ("kind", "cluster", "pushed-from", "public-key")
_TOKEN_HINT: Final = f"export {TOKEN_ENV}=ops_… (a 1Password service-account token with read/write access to the vault)"

T = TypeVar("T")


def client_class() -> Any:
    """The SDK's `Client` class (imported here: it loads a native library)."""
    from onepassword import Client

    return Client


def integration_version() -> str:
    try:
        return metadata.version("k8s-ops")
    except metadata.PackageNotFoundError:
        return "0.0.0"  # a source tree without installed metadata; the SDK rejects an empty version


def _message(exc: BaseException, token: str | None = None) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    if token and len(token) >= 4:
        text = text.replace(token, MASK)
    return text


def open_store(vault: str, *, token: str | None = None) -> SdkStore:
    """Authenticate with the service-account token (default: `$OP_SERVICE_ACCOUNT_TOKEN`) and open `vault`.

    SecretError when the token is missing or rejected, or the vault is not visible to the service account
    (the message lists the vaults it can see).
    """
    token = os.environ.get(TOKEN_ENV, "") if token is None else token
    if not token.strip():
        raise SecretError(f"{TOKEN_ENV} is not set: 1Password sync needs a service-account token", hint=_TOKEN_HINT)
    token = token.strip()
    runner = asyncio.Runner()
    try:
        try:
            client = runner.run(
                client_class().authenticate(
                    auth=token, integration_name=INTEGRATION_NAME, integration_version=integration_version()
                )
            )
        except Exception as exc:
            text = _message(exc, token)
            # The SDK's messages name the token when it is the problem; anything else (network) is a sign-in failure.
            what = "rejected the token in" if "token" in text.lower() else "sign-in failed with the token in"
            raise SecretError(f"1Password {what} {TOKEN_ENV}: {text}", hint=_TOKEN_HINT) from None
        try:
            vaults = runner.run(client.vaults.list())
        except Exception as exc:
            raise SecretError(f"1Password: listing vaults failed: {_message(exc, token)}") from None
        matches = [v for v in vaults if v.title == vault or v.id == vault] or [
            v for v in vaults if v.title.casefold() == vault.casefold()
        ]
        if len(matches) != 1:
            seen = ", ".join(sorted(repr(v.title) for v in vaults)) or "none"
            problem = "not found" if not matches else f"is ambiguous ({len(matches)} vaults have that title)"
            raise SecretError(
                f"1Password vault {vault!r} {problem}; vaults this service account can access: {seen}",
                hint="set onepassword.vault in the cluster's cluster.yaml, or grant the service account access",
            )
        return SdkStore(client, vault_id=matches[0].id, vault_title=matches[0].title, runner=runner)
    except BaseException:
        runner.close()
        raise


class SdkStore:
    """k8s-ops items in one vault, through an authenticated SDK client. Close it (or use `with`)."""

    def __init__(self, client: Any, *, vault_id: str, vault_title: str, runner: asyncio.Runner) -> None:
        self._client = client
        self._vault_id = vault_id
        self._vault_title = vault_title
        self._runner = runner

    @property
    def vault(self) -> str:
        return self._vault_title

    def close(self) -> None:
        self._runner.close()

    def __enter__(self) -> SdkStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, what: str, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return self._runner.run(coro)
        except SecretError:
            raise
        except Exception as exc:
            hint = (
                "1Password rate-limited this service account; wait and re-run"
                if "RateLimit" in type(exc).__name__
                else None
            )
            raise SecretError(
                f"1Password: {what} in vault {self._vault_title!r} failed: {_message(exc)}", hint=hint
            ) from exc

    # ---- reads

    def _find(self, title: str) -> Any | None:
        overviews = self._call("listing items", self._client.items.list(self._vault_id))
        # op:// references match titles case-insensitively: two titles differing only in case are duplicates.
        hits = [o for o in overviews if o.title.casefold() == title.casefold() and o.state == "active"]
        if len(hits) > 1:
            ids = ", ".join(o.id for o in hits)
            raise SecretError(
                f"{len(hits)} items titled {title!r} in 1Password vault {self._vault_title!r} (ids {ids}): "
                "op:// references to it fail with tooManyItems",
                hint="delete or rename all but one of them in 1Password, then re-run",
            )
        return hits[0] if hits else None

    def get(self, title: str) -> RemoteItem | None:
        overview = self._find(title)
        if overview is None:
            return None
        return _remote(self._call(f"reading item {title!r}", self._client.items.get(self._vault_id, overview.id)))

    def reference(self, title: str, field: str = CONTENT_FIELD) -> str:
        from onepassword import Secrets

        ref = f"op://{self._vault_title}/{title}/{field}"
        try:
            Secrets.validate_secret_reference(ref)
        except Exception:
            # A vault title with characters op:// does not allow (e.g. ':'): IDs are always valid.
            ref = f"op://{self._vault_id}/{title}/{field}"
        return ref

    def field(self, title: str, field: str) -> Secret:
        """One field of any item in the vault (not only k8s-ops items), as a registered `Secret`; resolved through
        its op:// reference, so a missing item or field is a SecretError naming the reference, never the value."""
        ref = self.reference(title, field)
        value = self._call(f"resolving {ref}", self._client.secrets.resolve(ref))
        if not isinstance(value, str) or not value:
            raise SecretError(f"1Password: {ref} is empty", hint=f"fill the field {field!r} of item {title!r}")
        return Secret(value)

    # ---- writes

    def put(self, title: str, content: Secret, *, base: RemoteItem | None, meta: Mapping[str, str]) -> RemoteItem:
        data = content.reveal()
        values = encode_fields(data, meta)
        item = self._create(title, values, meta) if base is None else self._update(title, base, values)
        stored = _remote(item)
        if stored.content is None or stored.content.reveal() != data:
            raise SecretError(
                f"1Password did not keep {title!r} byte for byte ({stored.problem or 'content differs'})",
                hint="the item is left as 1Password stored it; `op.status` shows it, `op.push --force` rewrites it",
            )
        self._verify_reference(title, data)
        return stored

    def _create(self, title: str, values: Mapping[str, str], meta: Mapping[str, str]) -> Any:
        from onepassword import ItemCategory, ItemCreateParams, ItemSection

        if self._find(title) is not None:
            raise SecretError(
                f"item {title!r} appeared in vault {self._vault_title!r} while pushing; re-run to compare"
            )
        params = ItemCreateParams(
            category=ItemCategory.SECURENOTE,
            vault_id=self._vault_id,
            title=title,
            fields=[_field(k, v) for k, v in values.items()],
            sections=[ItemSection(id="", title="")],  # section-less fields, as the SDK examples do
            tags=[ITEM_TAG],
            notes=_notes(self._vault_title, title, meta),
        )
        return self._call(f"creating item {title!r}", self._client.items.create(params))

    def _update(self, title: str, base: RemoteItem, values: Mapping[str, str]) -> Any:
        from onepassword import ItemSection

        current = self._call(f"reading item {title!r}", self._client.items.get(self._vault_id, base.item_id))
        if current.version != base.version:
            raise SecretError(
                f"item {title!r} changed in 1Password while pushing (version {base.version} -> {current.version})",
                hint="re-run to compare against the new copy",
            )
        pending = dict(values)
        fields = []
        for f in current.fields:
            key = f.id if f.id in pending else f.title if f.title in pending else None
            if key is None:
                fields.append(f)
            else:
                fields.append(_field(key, pending.pop(key), section_id=f.section_id))
        fields.extend(_field(k, v) for k, v in pending.items())
        sections = list(current.sections)
        if any(f.section_id == "" for f in fields) and not any(s.id == "" for s in sections):
            sections.append(ItemSection(id="", title=""))
        tags = list(current.tags) if ITEM_TAG in current.tags else [*current.tags, ITEM_TAG]
        # put() carries the version we read: 1Password rejects it if the item moved on meanwhile.
        updated = current.model_copy(update={"fields": fields, "sections": sections, "tags": tags})
        return self._call(
            f"updating item {title!r} (another machine may have pushed; re-run)", self._client.items.put(updated)
        )

    def _verify_reference(self, title: str, data: bytes) -> None:
        ref = self.reference(title)
        resolved = self._call(f"resolving {ref}", self._client.secrets.resolve(ref))
        try:
            ok = sha256_hex(base64.b64decode(resolved, validate=True)) == sha256_hex(data)
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise SecretError(
                f"{ref} does not resolve to the content just pushed", hint="check the vault for duplicates"
            )


def _field(key: str, value: str, *, section_id: str | None = "") -> Any:
    from onepassword import ItemField, ItemFieldType

    kind = ItemFieldType.CONCEALED if key == CONTENT_FIELD else ItemFieldType.TEXT
    return ItemField(id=key, title=key, field_type=kind, value=value, section_id=section_id)


def _notes(vault: str, title: str, meta: Mapping[str, str]) -> str:
    cluster, kind = meta.get("cluster", "<cluster>"), meta.get("kind", "all")
    return (
        "Managed by k8s-ops (invoke op.push). Do not edit the fields: the sha256 field guards the content.\n"
        f"Restore: invoke op.pull --cluster {cluster} --what {kind}\n"
        f"Without k8s-ops: op read 'op://{vault}/{title}/{CONTENT_FIELD}' | base64 -d > FILE\n"
    )


def _remote(item: Any) -> RemoteItem:
    values: dict[str, str] = {}
    for f in item.fields:
        values.setdefault(f.id, f.value)
    for f in item.fields:
        values.setdefault(f.title, f.value)
    decoded = decode_fields(values)
    updated: datetime = item.updated_at
    updated = updated.replace(tzinfo=UTC) if updated.tzinfo is None else updated.astimezone(UTC)
    return RemoteItem(
        title=item.title,
        item_id=item.id,
        version=item.version,
        updated_at=updated,
        sha256=decoded.sha256,
        content=decoded.content,
        problem=decoded.problem,
        meta={k: values[k] for k in _META_FIELDS if k in values},
    )
