"""1Password sync of the four files a cluster cannot be recovered without.

kubeconfig, talosconfig, the SOPS age key and the SOPS-encrypted Talos secrets bundle are kept in the
inventory's vault (`onepassword.vault`), one Secure Note per file, byte for byte (base64 + sha256; see
`store` for the item layout and `artefacts` for titles and paths). A new laptop or a disaster rebuild needs
only `OP_SERVICE_ACCOUNT_TOKEN`.

Modules: `artefacts` (what and where), `store` (the `ItemStore` boundary + item layout), `sdk` (the real
onepassword-sdk adapter), `sync` (pure push/pull/status decisions), `state` (last-synced digests), `api`
(push/pull/status for tasks and bootstrap), `effects` (push/pull as plan effects), `report` (output), `tasks`
(op.push, op.pull, op.status).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from k8s_ops.onepassword.api import (
        ItemResult,
        ItemStatus,
        SyncRefused,
        is_configured,
        open_cluster_store,
        pull,
        push,
        status,
        vault_of,
    )
    from k8s_ops.onepassword.artefacts import Kind, item_title
    from k8s_ops.onepassword.store import ItemStore
    from k8s_ops.onepassword.sync import Action

# Re-exported lazily: importing the package (every `invoke` run does, for the `op` namespace) loads none of
# these modules until a name is used.
_EXPORTS = {
    "Action": "sync",
    "ItemResult": "api",
    "ItemStatus": "api",
    "ItemStore": "store",
    "Kind": "artefacts",
    "SyncRefused": "api",
    "is_configured": "api",
    "item_title": "artefacts",
    "open_cluster_store": "api",
    "pull": "api",
    "push": "api",
    "status": "api",
    "vault_of": "api",
}

__all__ = [
    "Action",
    "ItemResult",
    "ItemStatus",
    "ItemStore",
    "Kind",
    "SyncRefused",
    "is_configured",
    "item_title",
    "open_cluster_store",
    "pull",
    "push",
    "status",
    "vault_of",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
