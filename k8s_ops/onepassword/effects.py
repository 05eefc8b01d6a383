"""1Password push and pull as plan effects (k8s_ops.core.plan.Effect): shown by --dry-run, applied by execute.

A step that stores files in 1Password or restores them from it carries one of these in `Step.prepare`/`finish`
(never a `Check` callback), so `Step.mutates` is true, the dry run prints `op push …`/`op pull …` and the JSON
plan has the effect as data. The decisions stay in `api` (which reads both sides and refuses before acting);
`pending()` is the dry-run half of the same call, for guards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from k8s_ops.onepassword import api
from k8s_ops.onepassword.artefacts import ClusterLike
from k8s_ops.onepassword.store import ItemStore
from k8s_ops.onepassword.sync import Action

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner

__all__ = ["Pull", "Push"]


def _flags(force: bool, only_missing: bool = False) -> str:
    return "".join((", --force" if force else "", ", --only-missing" if only_missing else ""))


@dataclass(frozen=True)
class Push:
    """`op.push` of `what` (e.g. "kubeconfig,talosconfig") to the cluster's vault."""

    cluster: ClusterLike = field(compare=False)
    what: str
    force: bool = False
    store: ItemStore | None = field(default=None, compare=False, repr=False)
    mutates = True

    def display(self) -> str:
        return f"op push {self.what} (vault {api.vault_of(self.cluster)}{_flags(self.force)})"

    def to_json(self) -> dict[str, Any]:
        return {
            "effect": "1password-push",
            "cluster": self.cluster.name,
            "vault": api.vault_of(self.cluster),
            "what": self.what,
            "force": self.force,
        }

    def pending(self) -> str | None:
        """None when the push would change something, else why not (for a step's guard)."""
        results = api.push(self.cluster, self.what, store=self.store, force=self.force, dry_run=True)
        if all(r.action is Action.UNCHANGED for r in results):
            return "1Password already holds these files"
        return None

    def apply(self, runner: Runner) -> list[api.ItemResult]:
        return api.push(self.cluster, self.what, store=self.store, force=self.force)


@dataclass(frozen=True)
class Pull:
    """`op.pull` of `what` from the cluster's vault (files written 0600, atomically)."""

    cluster: ClusterLike = field(compare=False)
    what: str
    force: bool = False
    only_missing: bool = False
    missing_ok: bool = False
    store: ItemStore | None = field(default=None, compare=False, repr=False)
    mutates = True

    def display(self) -> str:
        return f"op pull {self.what} (vault {api.vault_of(self.cluster)}{_flags(self.force, self.only_missing)})"

    def to_json(self) -> dict[str, Any]:
        return {
            "effect": "1password-pull",
            "cluster": self.cluster.name,
            "vault": api.vault_of(self.cluster),
            "what": self.what,
            "force": self.force,
            "only_missing": self.only_missing,
        }

    def pending(self) -> str | None:
        """None when the pull would write something, else why not."""
        results = api.pull(
            self.cluster,
            self.what,
            store=self.store,
            force=self.force,
            only_missing=self.only_missing,
            missing_ok=self.missing_ok,
            dry_run=True,
        )
        if not any(r.action.changes for r in results):
            return "the local files already match 1Password"
        return None

    def apply(self, runner: Runner) -> list[api.ItemResult]:
        return api.pull(
            self.cluster,
            self.what,
            store=self.store,
            force=self.force,
            only_missing=self.only_missing,
            missing_ok=self.missing_ok,
        )
