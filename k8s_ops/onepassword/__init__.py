"""1Password sync of the four files a cluster cannot be recovered without.

kubeconfig, talosconfig, the SOPS age key and the SOPS-encrypted Talos secrets bundle are kept in the
inventory's vault (`onepassword.vault`), one Secure Note per file, byte for byte (base64 + sha256; see
`store` for the item layout and `artefacts` for titles and paths). A new laptop or a disaster rebuild needs
only `OP_SERVICE_ACCOUNT_TOKEN`.

Modules: `artefacts` (what and where), `store` (the `ItemStore` boundary + item layout), `sdk` (the real
onepassword-sdk adapter), `sync` (pure push/pull/status decisions), `state` (last-synced digests), `api`
(push/pull/status for tasks and bootstrap), `report` (output), `tasks` (op.push, op.pull, op.status).
"""

from __future__ import annotations

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
