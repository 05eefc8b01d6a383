"""An in-memory 1Password account with the onepassword-sdk 0.4.2 surface, for tests.

    fake = FakeOnePassword(vaults=("k8s",))
    client = await fake.Client.authenticate(auth=fake.token, integration_name="x", integration_version="1")
    client.items.create/get/put/list/delete/archive, client.vaults.list, client.secrets.resolve

Arguments and results are the real SDK's pydantic types (ItemCreateParams, Item, ItemOverview, VaultOverview),
and every payload goes through `model_dump(by_alias=True)` + JSON, as the SDK sends it to its native core, so
what the code under test builds must be what the real SDK would accept.

Constraints modelled on the real service:
* Tokens: empty, not `ops_…`, not strict unpadded base64, or not this account's token fail with the real SDK's
  offline messages (tests compare them with the real `Client.authenticate`). Empty integration name/version
  fail with the texts of the SDK's own tests.
* op:// references are checked with the real offline `Secrets.validate_secret_reference`; vault, item, section
  and field names match case-insensitively (or by ID); two matching items fail with `tooManyItems`.
* Duplicate item titles can be created (1Password allows them); only resolution trips over them.
* Field values lose embedded newlines (1Password fields are single-line): "\\r" and "\\n" are dropped.
* `items.put` must carry the item's current `version` (the SDK's `itemStatusIncorrectItemVersion`).
* A field's `sectionId` must name a section of the item; `""` gets the unnamed section the SDK creates.
Texts for not-found / version / resolution errors are not verified against the live service; they carry the
SDK's error kind names (`vaultNotFound`, `itemNotFound`, `tooManyItems`, `itemStatusIncorrectItemVersion`, …).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import copy
import itertools
import json
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from onepassword import (
    Item,
    ItemCreateParams,
    ItemListFilter,
    ItemOverview,
    Secrets,
    VaultListParams,
    VaultOverview,
)

# The real SDK's offline messages (onepassword-sdk 0.4.2), see test_onepassword_sdk.py.
TOKEN_NOT_SPECIFIED = "invalid user input: encountered the following errors: service account token was not specified"
TOKEN_INVALID_FORMAT = "invalid user input: encountered the following errors: service account token had invalid format"
_INVALID_TOKEN = (
    "invalid service account token, please make sure you provide a valid service account token as parameter: "
)
TOKEN_BASE64_FAILED = f"{_INVALID_TOKEN} service account token base64 decoding failed, please create another token"
TOKEN_DESERIALIZATION_FAILED = f"{_INVALID_TOKEN} service account deserialization failed, please create another token"
NAME_NOT_SPECIFIED = "invalid user input: encountered the following errors: integration name was not specified"
VERSION_NOT_SPECIFIED = "invalid user input: encountered the following errors: integration version was not specified"

_B64URL = set(string.ascii_letters + string.digits + "-_")


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_token(account: str) -> str:
    payload = json.dumps({"signInAddress": "fake.1password.test", "account": account}).encode()
    return "ops_" + base64.urlsafe_b64encode(payload).decode().rstrip("=")


def _strict_unpadded_b64(text: str) -> bytes | None:
    if not text or set(text) - _B64URL or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    # Strict decoders reject non-zero trailing bits: re-encoding must give the same text.
    return data if base64.urlsafe_b64encode(data).decode().rstrip("=") == text else None


class FakeOnePassword:
    """One account: vaults, items, the token that authenticates, and a log of calls."""

    def __init__(self, vaults: tuple[str, ...] = ("k8s",), *, account: str = "tests") -> None:
        self.token = make_token(account)
        self._ids = (f"{n:026d}"[-26:] for n in itertools.count(1))
        self.vaults: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}  # item id -> stored JSON (by alias) + "state"
        self.calls: list[str] = []
        # Called with the method name before each call runs: lets a test act as another machine mid-push.
        self.on_call: Callable[[str], None] | None = None
        self._last_time = datetime(2020, 1, 1, tzinfo=UTC)
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        for title in vaults:
            self.add_vault(title)
        server = self
        self.Client: Any = type("Client", (FakeClient,), {"server": server})

    # ---- test helpers

    def add_vault(self, title: str) -> str:
        vid = "v" + next(self._ids)[1:]
        now = _fmt(self._tick())
        self.vaults[vid] = {
            "id": vid,
            "title": title,
            "description": "",
            "vaultType": "userCreated",
            "activeItemCount": 0,
            "contentVersion": 1,
            "attributeVersion": 1,
            "createdAt": now,
            "updatedAt": now,
        }
        return vid

    def vault_id(self, title: str) -> str:
        return next(v for v, data in self.vaults.items() if data["title"] == title)

    def items_titled(self, title: str) -> list[dict[str, Any]]:
        return [i for i in self.items.values() if i["title"] == title and i["state"] == "active"]

    def field_value(self, title: str, field_id: str) -> str:
        (item,) = self.items_titled(title)
        return str(next(f["value"] for f in item["fields"] if f["id"] == field_id))

    def set_field(self, title: str, field_id: str, value: str) -> None:
        """Edit a field behind the SDK's back (a hand edit in the 1Password app)."""
        (item,) = self.items_titled(title)
        for f in item["fields"]:
            if f["id"] == field_id:
                f["value"] = value
        item["version"] += 1
        item["updatedAt"] = _fmt(self._tick())

    # ---- internals

    def _tick(self) -> datetime:
        t = self.now()
        if t <= self._last_time:
            t = self._last_time + timedelta(microseconds=1)
        self._last_time = t
        return t

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.on_call is not None:
            self.on_call(name)

    def authenticate(self, auth: Any, integration_name: str, integration_version: str) -> None:
        if not isinstance(auth, str):
            raise Exception("fake: desktop app authentication is not modelled")
        if not auth:
            raise Exception(TOKEN_NOT_SPECIFIED)
        if not integration_name:
            raise Exception(NAME_NOT_SPECIFIED)
        if not integration_version:
            raise Exception(VERSION_NOT_SPECIFIED)
        if not auth.startswith("ops_"):
            raise Exception(TOKEN_INVALID_FORMAT)
        decoded = _strict_unpadded_b64(auth[len("ops_") :])
        if decoded is None:
            raise Exception(TOKEN_BASE64_FAILED)
        if auth != self.token:
            raise Exception(TOKEN_DESERIALIZATION_FAILED)

    def _vault(self, vault_id: str, verb: str) -> dict[str, Any]:
        if vault_id not in self.vaults:
            raise Exception(f"error {verb}: vaultNotFound: no vault with ID {vault_id!r}")
        return self.vaults[vault_id]

    def _item(self, vault_id: str, item_id: str, verb: str) -> dict[str, Any]:
        self._vault(vault_id, verb)
        item = self.items.get(item_id)
        if item is None or item["vaultId"] != vault_id:
            raise Exception(f"error {verb}: itemNotFound: no item with ID {item_id!r} in vault {vault_id!r}")
        return item

    @staticmethod
    def _normalise(payload: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Validate sections/fields like the service does; drop newlines from field values."""
        sections = [dict(s) for s in payload.get("sections") or []]
        section_ids = {s["id"] for s in sections}
        fields: list[dict[str, Any]] = []
        seen: set[str] = set()
        for f in payload.get("fields") or []:
            f = dict(f)
            if f["id"] in seen:
                raise Exception(f"error saving item: itemValidationError: duplicate field ID {f['id']!r}")
            seen.add(f["id"])
            sid = f.get("sectionId")
            if sid == "" and "" not in section_ids:
                sections.append({"id": "", "title": ""})
                section_ids.add("")
            elif sid is not None and sid not in section_ids:
                raise Exception(
                    f"error saving item: itemValidationError: field {f['id']!r} names unknown section {sid!r}"
                )
            f["value"] = str(f["value"]).replace("\r", "").replace("\n", "")
            fields.append(f)
        return sections, fields

    def _as_item(self, stored: dict[str, Any]) -> Item:
        data = {k: v for k, v in stored.items() if k != "state"}
        return Item.model_validate_json(json.dumps(data))

    # ---- SDK operations

    def create(self, params: ItemCreateParams) -> Item:
        self._call("items.create")
        payload = json.loads(json.dumps(params.model_dump(by_alias=True)))
        self._vault(payload["vaultId"], "creating item")
        if not payload["title"]:
            raise Exception("error creating item: itemValidationError: the title is empty")
        if payload.get("files") or payload.get("document"):
            raise Exception("fake: file and document items are not modelled")
        sections, fields = self._normalise(payload)
        now = _fmt(self._tick())
        item = {
            "id": next(self._ids),
            "title": payload["title"],
            "category": payload["category"],
            "vaultId": payload["vaultId"],
            "fields": fields,
            "sections": sections,
            "notes": payload.get("notes") or "",
            "tags": payload.get("tags") or [],
            "websites": payload.get("websites") or [],
            "version": 1,
            "files": [],
            "document": None,
            "createdAt": now,
            "updatedAt": now,
            "state": "active",
        }
        self.items[item["id"]] = item
        return self._as_item(item)

    def get(self, vault_id: str, item_id: str) -> Item:
        self._call("items.get")
        return self._as_item(self._item(vault_id, item_id, "getting item"))

    def put(self, item: Item) -> Item:
        self._call("items.put")
        payload = json.loads(json.dumps(item.model_dump(by_alias=True)))
        stored = self._item(payload["vaultId"], payload["id"], "updating item")
        if payload["version"] != stored["version"]:
            raise Exception(
                "error updating item: itemStatusIncorrectItemVersion: the item changed since it was read "
                f"(sent version {payload['version']}, current {stored['version']})"
            )
        sections, fields = self._normalise(payload)
        stored.update(
            title=payload["title"],
            fields=fields,
            sections=sections,
            notes=payload.get("notes") or "",
            tags=payload.get("tags") or [],
            websites=payload.get("websites") or [],
            version=stored["version"] + 1,
            updatedAt=_fmt(self._tick()),
        )
        return self._as_item(stored)

    def list_items(self, vault_id: str, *filters: ItemListFilter) -> list[ItemOverview]:
        self._call("items.list")
        self._vault(vault_id, "listing items")
        states = {"active"}
        for flt in filters:
            inner = flt.content
            states = {s for s, on in (("active", inner.active), ("archived", inner.archived)) if on}
        out = []
        for i in self.items.values():
            if i["vaultId"] == vault_id and i["state"] in states:
                keys = ("id", "title", "category", "vaultId", "websites", "tags", "createdAt", "updatedAt", "state")
                out.append(ItemOverview.model_validate_json(json.dumps({k: i[k] for k in keys})))
        return out

    def delete(self, vault_id: str, item_id: str) -> None:
        self._call("items.delete")
        self._item(vault_id, item_id, "deleting item")
        del self.items[item_id]

    def archive(self, vault_id: str, item_id: str) -> None:
        self._call("items.archive")
        self._item(vault_id, item_id, "archiving item")["state"] = "archived"

    def vaults_list(self, params: VaultListParams | None = None) -> list[VaultOverview]:
        self._call("vaults.list")
        return [VaultOverview.model_validate_json(json.dumps(v)) for v in self.vaults.values()]

    def resolve(self, secret_reference: str) -> str:
        self._call("secrets.resolve")
        try:
            Secrets.validate_secret_reference(secret_reference)
        except Exception as exc:
            raise Exception(f"error resolving secret reference: {exc}") from None
        path = secret_reference[len("op://") :].split("?", 1)[0]
        parts = path.split("/")
        vault_q, item_q, field_q = parts[0], parts[1], parts[-1]
        section_q = parts[2] if len(parts) == 4 else None

        def matches(obj: dict[str, Any], query: str) -> bool:
            return bool(obj["id"] == query or obj["title"].casefold() == query.casefold())

        vaults = [v for v in self.vaults.values() if matches(v, vault_q)]
        if len(vaults) != 1:
            kind = "vaultNotFound" if not vaults else "tooManyVaults"
            raise Exception(f"error resolving secret reference: {kind}: {vault_q!r}")
        items = [
            i
            for i in self.items.values()
            if i["vaultId"] == vaults[0]["id"] and i["state"] == "active" and matches(i, item_q)
        ]
        if len(items) != 1:
            kind = "itemNotFound" if not items else "tooManyItems"
            raise Exception(f"error resolving secret reference: {kind}: {item_q!r}")
        fields = items[0]["fields"]
        if section_q is not None:
            sections = {s["id"] for s in items[0]["sections"] if matches(s, section_q)}
            if not sections:
                raise Exception(f"error resolving secret reference: noMatchingSections: {section_q!r}")
            fields = [f for f in fields if f.get("sectionId") in sections]
        hits = [f for f in fields if matches(f, field_q)]
        if len(hits) != 1:
            kind = "fieldNotFound" if not hits else "tooManyMatchingFields"
            raise Exception(f"error resolving secret reference: {kind}: {field_q!r}")
        return str(hits[0]["value"])

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.items)


class _Items:
    def __init__(self, server: FakeOnePassword) -> None:
        self._s = server

    async def create(self, params: ItemCreateParams) -> Item:
        return self._s.create(params)

    async def get(self, vault_id: str, item_id: str) -> Item:
        return self._s.get(vault_id, item_id)

    async def put(self, item: Item) -> Item:
        return self._s.put(item)

    async def list(self, vault_id: str, *filters: ItemListFilter) -> builtins.list[ItemOverview]:
        return self._s.list_items(vault_id, *filters)

    async def delete(self, vault_id: str, item_id: str) -> None:
        self._s.delete(vault_id, item_id)

    async def archive(self, vault_id: str, item_id: str) -> None:
        self._s.archive(vault_id, item_id)


class _Vaults:
    def __init__(self, server: FakeOnePassword) -> None:
        self._s = server

    async def list(self, params: VaultListParams | None = None) -> builtins.list[VaultOverview]:
        return self._s.vaults_list(params)


class _Secrets:
    def __init__(self, server: FakeOnePassword) -> None:
        self._s = server

    async def resolve(self, secret_reference: str) -> str:
        return self._s.resolve(secret_reference)

    validate_secret_reference = staticmethod(Secrets.validate_secret_reference)


class FakeClient:
    """`onepassword.Client` look-alike; `FakeOnePassword.Client` is a subclass bound to one account."""

    server: FakeOnePassword
    items: _Items
    vaults: _Vaults
    secrets: _Secrets

    @classmethod
    async def authenticate(cls, auth: Any, integration_name: str, integration_version: str) -> FakeClient:
        cls.server._call("Client.authenticate")
        cls.server.authenticate(auth, integration_name, integration_version)
        client = cls()
        client.items = _Items(cls.server)
        client.vaults = _Vaults(cls.server)
        client.secrets = _Secrets(cls.server)
        return client
