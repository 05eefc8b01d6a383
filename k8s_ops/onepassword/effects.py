"""1Password push and pull as plan effects (k8s_ops.core.plan.Effect): shown by --dry-run, applied by execute.

A step that stores files in 1Password or restores them from it carries one of these in `Step.prepare`/`finish`
(never a `Check` callback), so `Step.mutates` is true, the dry run prints `op push …`/`op pull …` and the JSON
plan has the effect as data. The decisions stay in `api` (which reads both sides and refuses before acting);
`pending()` is the dry-run half of the same call, for guards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from k8s_ops.onepassword import api
from k8s_ops.onepassword.artefacts import ClusterLike
from k8s_ops.onepassword.store import ItemStore
from k8s_ops.onepassword.sync import Action

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner

__all__ = ["Pull", "Push"]


@dataclass(frozen=True)
class _Transfer:
    """The shared body of `Push` and `Pull`: one call to `api.push`/`api.pull` (`_call`), shown as `op <verb> …`
    and as the `1password-<verb>` effect; `pending()` is the same call with `dry_run=True`."""

    cluster: ClusterLike = field(compare=False)
    what: str
    force: bool = False
    store: ItemStore | None = field(default=None, compare=False, repr=False)
    mutates = True
    verb: ClassVar[str]
    up_to_date: ClassVar[str]  # pending()'s reason when nothing would change

    def _flags(self) -> dict[str, bool]:
        return {"force": self.force}

    def _call(self, *, dry_run: bool = False) -> list[api.ItemResult]:
        raise NotImplementedError

    def display(self) -> str:
        flags = "".join(f", --{k.replace('_', '-')}" for k, v in self._flags().items() if v)
        return f"op {self.verb} {self.what} (vault {api.vault_of(self.cluster)}{flags})"

    def to_json(self) -> dict[str, Any]:
        return {
            "effect": f"1password-{self.verb}",
            "cluster": self.cluster.name,
            "vault": api.vault_of(self.cluster),
            "what": self.what,
            **self._flags(),
        }

    def _settled(self, results: list[api.ItemResult]) -> bool:
        """True when the dry-run `results` leave nothing to do (`pending()` then skips the step)."""
        return not any(r.action.changes for r in results)

    def pending(self) -> str | None:
        """None when the transfer would change something, else why not (for a step's guard)."""
        return self.up_to_date if self._settled(self._call(dry_run=True)) else None

    def apply(self, runner: Runner) -> list[api.ItemResult]:
        return self._call()


@dataclass(frozen=True)
class Push(_Transfer):
    """`op.push` of `what` (e.g. "kubeconfig,talosconfig") to the cluster's vault."""

    verb: ClassVar[str] = "push"
    up_to_date: ClassVar[str] = "1Password already holds these files"

    def _settled(self, results: list[api.ItemResult]) -> bool:
        # every item unchanged: a refused or missing item still runs the push, which then says why it refuses
        return all(r.action is Action.UNCHANGED for r in results)

    def _call(self, *, dry_run: bool = False) -> list[api.ItemResult]:
        return api.push(self.cluster, self.what, store=self.store, force=self.force, dry_run=dry_run)


@dataclass(frozen=True)
class Pull(_Transfer):
    """`op.pull` of `what` from the cluster's vault (files written 0600, atomically)."""

    only_missing: bool = False
    missing_ok: bool = False
    verb: ClassVar[str] = "pull"
    up_to_date: ClassVar[str] = "the local files already match 1Password"

    def _flags(self) -> dict[str, bool]:
        return {"force": self.force, "only_missing": self.only_missing}

    def _call(self, *, dry_run: bool = False) -> list[api.ItemResult]:
        return api.pull(
            self.cluster,
            self.what,
            store=self.store,
            force=self.force,
            only_missing=self.only_missing,
            missing_ok=self.missing_ok,
            dry_run=dry_run,
        )
