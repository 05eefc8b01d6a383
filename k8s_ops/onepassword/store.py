"""The boundary between the sync logic and 1Password: a small synchronous store of k8s-ops items.

The sync code never sees the onepassword-sdk. It talks to an `ItemStore` (real one: `sdk.SdkStore`) in terms
of artefact bytes. This module also fixes the item layout, so the SDK adapter and the docs agree on it.

Item layout (category Secure Note, tag `k8s-ops`, fields in the item's unnamed section):

    content     Concealed  base64 of the file, one line (1Password fields drop embedded newlines)
    sha256      Text       hex sha256 of the file bytes; checked on every read
    encoding    Text       "base64"
    kind        Text       kubeconfig | talosconfig | age-key | talos-secrets
    cluster     Text       the cluster name
    pushed-from Text       hostname of the machine that pushed it
    public-key  Text       age recipients of the key (age-key items only; public, not secret)

`op read op://<vault>/<title>/content | base64 -d > file` restores a file without k8s-ops.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

from k8s_ops.core.secret import Secret

__all__ = [
    "CONTENT_FIELD",
    "ENCODING",
    "ENCODING_FIELD",
    "ITEM_TAG",
    "SHA256_FIELD",
    "Decoded",
    "ItemStore",
    "RemoteItem",
    "decode_fields",
    "encode_fields",
    "sha256_hex",
]

CONTENT_FIELD: Final = "content"
SHA256_FIELD: Final = "sha256"
ENCODING_FIELD: Final = "encoding"
ENCODING: Final = "base64"
ITEM_TAG: Final = "k8s-ops"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RemoteItem:
    """What 1Password holds under one title.

    `content` is None when the item cannot be read back byte for byte: `problem` then says why (an item
    k8s-ops did not write, or content that no longer matches its sha256 field).
    """

    title: str
    item_id: str
    version: int  # 1Password's item version: an update must name the version it was based on
    updated_at: datetime  # timezone-aware UTC
    sha256: str | None
    content: Secret | None = field(default=None, repr=False)
    problem: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)


class ItemStore(Protocol):
    """k8s-ops items in one 1Password vault, synchronous. Errors are `SecretError`s."""

    @property
    def vault(self) -> str:
        """The vault's title."""
        ...

    def get(self, title: str) -> RemoteItem | None:
        """The item titled `title`, or None. SecretError if several items share the title."""
        ...

    def put(self, title: str, content: Secret, *, base: RemoteItem | None, meta: Mapping[str, str]) -> RemoteItem:
        """Create (`base` None) or update the item; refuses if 1Password changed it since `base` was read."""
        ...

    def reference(self, title: str, field: str = CONTENT_FIELD) -> str:
        """The op:// reference of one field of the item."""
        ...


def encode_fields(content: bytes, meta: Mapping[str, str]) -> dict[str, str]:
    """Field values for `content`: every value is a single line, so nothing is lost in 1Password."""
    values = {
        CONTENT_FIELD: base64.b64encode(content).decode("ascii"),
        SHA256_FIELD: sha256_hex(content),
        ENCODING_FIELD: ENCODING,
    }
    for key, value in meta.items():
        if key in values:
            raise ValueError(f"meta field {key!r} would overwrite a content field")
        values[key] = " ".join(value.split())
    return values


@dataclass(frozen=True)
class Decoded:
    sha256: str | None
    content: Secret | None
    problem: str | None


def decode_fields(fields: Mapping[str, str]) -> Decoded:
    """Read the content back from field values; the sha256 field guards against any change in transit."""
    recorded = fields.get(SHA256_FIELD)
    if CONTENT_FIELD not in fields or not recorded:
        return Decoded(None, None, "not written by k8s-ops (no content/sha256 fields)")
    encoding = fields.get(ENCODING_FIELD, ENCODING)
    if encoding != ENCODING:
        return Decoded(recorded, None, f"unsupported encoding {encoding!r}")
    try:
        data = base64.b64decode(fields[CONTENT_FIELD], validate=True)
    except (binascii.Error, ValueError):
        return Decoded(recorded, None, "the content field is not valid base64 (edited by hand?)")
    actual = sha256_hex(data)
    if actual != recorded:
        return Decoded(
            recorded,
            None,
            f"the content does not match its sha256 field (sha256 {actual[:12]}, recorded {recorded[:12]})",
        )
    return Decoded(recorded, Secret(data), None)
