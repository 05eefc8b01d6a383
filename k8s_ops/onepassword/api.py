"""push / pull / status: read both sides, decide every item (sync.py), then act — or refuse before acting.

Used by the op.* tasks and by bootstrap (push at the end of bootstrap.cluster, pull at the start of
bootstrap.rebuild):

    from k8s_ops import onepassword as op
    if op.is_configured(cluster):
        op.push(cluster, "all")                      # opens the cluster's vault with $OP_SERVICE_ACCOUNT_TOKEN
    op.pull(cluster, "age-key,talos-secrets", only_missing=True)

Refusals and missing files are found for every item before anything is written; then `SyncRefused` lists
them all and nothing has changed. A re-run after a failure mid-way resumes (done items count as unchanged).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from k8s_ops.core.errors import SecretError
from k8s_ops.core.files import write_private
from k8s_ops.core.secret import Secret
from k8s_ops.onepassword.artefacts import (
    Artefact,
    ClusterLike,
    Kind,
    artefacts,
    content_problem,
    parse_what,
    read_file,
)
from k8s_ops.onepassword.sdk import TOKEN_ENV, SdkStore, open_store
from k8s_ops.onepassword.state import SyncStateFile
from k8s_ops.onepassword.store import ItemStore, RemoteItem, sha256_hex
from k8s_ops.onepassword.sync import (
    Action,
    Decision,
    Sides,
    Standing,
    compare,
    plan_pull,
    plan_push,
)

__all__ = [
    "ItemResult",
    "ItemStatus",
    "SyncRefused",
    "is_configured",
    "open_cluster_store",
    "pull",
    "push",
    "status",
    "vault_of",
]

What = str | Iterable[Kind | str]


@dataclass(frozen=True)
class ItemResult:
    """One item of a push or pull: what was (or, in a dry run, would be) done. Never holds content."""

    kind: Kind
    title: str
    action: Action
    reason: str
    location: str  # the local file (push: read, pull: written), or "$SOPS_AGE_KEY"
    local_sha256: str | None
    remote_sha256: str | None
    reference: str | None
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "title": self.title,
            "action": self.action.value,
            "reason": self.reason,
            "location": self.location,
            "local_sha256": self.local_sha256,
            "remote_sha256": self.remote_sha256,
            "reference": self.reference,
            "done": self.done,
        }


@dataclass(frozen=True)
class ItemStatus:
    kind: Kind
    title: str
    location: str
    local_sha256: str | None
    remote_sha256: str | None
    last_sha256: str | None
    state: Standing
    newer: str
    basis: str
    hint: str
    local_mtime: datetime | None
    remote_updated: datetime | None
    reference: str | None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else None

        return {
            "kind": self.kind.value,
            "title": self.title,
            "location": self.location,
            "local_sha256": self.local_sha256,
            "remote_sha256": self.remote_sha256,
            "last_synced_sha256": self.last_sha256,
            "state": self.state.value,
            "newer": self.newer,
            "basis": self.basis,
            "hint": self.hint,
            "local_mtime": iso(self.local_mtime),
            "remote_updated": iso(self.remote_updated),
            "reference": self.reference,
            "problem": self.problem,
        }


class SyncRefused(SecretError):
    """Some items would clobber changes made elsewhere, are unusable or missing. Nothing was changed."""

    def __init__(self, operation: str, results: Iterable[ItemResult]) -> None:
        self.results = tuple(results)
        bad = [r for r in self.results if r.action in (Action.REFUSE, Action.MISSING)]
        lines = [f"{operation} refused for {len(bad)} item(s); nothing was changed:"]
        lines += [f"  - {r.title} ({r.location}): {r.reason}" for r in bad]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- the cluster, through a protocol


def vault_of(cluster: ClusterLike) -> str | None:
    """`onepassword.vault` from the inventory, if set."""
    vault = getattr(getattr(cluster, "onepassword", None), "vault", None)
    return vault if isinstance(vault, str) and vault else None


def is_configured(cluster: ClusterLike) -> bool:
    """True when the inventory names a 1Password vault and `$OP_SERVICE_ACCOUNT_TOKEN` is set."""
    return vault_of(cluster) is not None and bool(os.environ.get(TOKEN_ENV, "").strip())


def open_cluster_store(c: ClusterLike) -> SdkStore:
    """The real store for the cluster's vault. SecretError names what is missing."""
    vault = vault_of(c)
    if vault is None:
        raise SecretError(
            f"cluster {c.name!r} has no onepassword.vault in its cluster.yaml",
            hint="add `onepassword: {vault: <vault title>}` to the inventory",
        )
    return open_store(vault)


@contextlib.contextmanager
def _store_for(cluster: ClusterLike, store: ItemStore | None) -> Iterator[ItemStore]:
    if store is not None:
        yield store
        return
    opened = open_cluster_store(cluster)
    try:
        yield opened
    finally:
        close = getattr(opened, "close", None)
        if callable(close):
            close()


# --------------------------------------------------------------------------- helpers


def _sha(data: bytes | None) -> str | None:
    return sha256_hex(data) if data is not None else None


def _sides(local: bytes | None, remote: RemoteItem | None, last: str | None) -> Sides:
    return Sides(
        local=_sha(local),
        remote=remote.sha256 if remote is not None and remote.problem is None else None,
        last=last,
        remote_exists=remote is not None,
        remote_problem=remote.problem if remote is not None else None,
    )


def _missing_reason(a: Artefact, decision: Decision) -> str:
    if a.kind is Kind.AGE_KEY and decision.action is Action.MISSING:
        return f"{decision.reason} (looked at $SOPS_AGE_KEY, $SOPS_AGE_KEY_FILE, sops.ageKeyFile, {a.pull_path})"
    return decision.reason


def _blocking(results: Iterable[ItemResult], *, missing_ok: bool) -> bool:
    return any(r.action is Action.REFUSE or (r.action is Action.MISSING and not missing_ok) for r in results)


# --------------------------------------------------------------------------- push and pull: one body


@dataclass(frozen=True)
class _Direction:
    """What differs between push and pull beyond the decision: `read` gives an item's local bytes, `act` does
    the decided transfer of one item and records it in the sync state."""

    name: Literal["push", "pull"]
    read: Callable[[Artefact], bytes | None]
    act: Callable[[ItemStore, SyncStateFile, Artefact, bytes | None, RemoteItem | None, Decision], None]


def _result(
    direction: _Direction,
    st: ItemStore,
    a: Artefact,
    local: bytes | None,
    remote: RemoteItem | None,
    d: Decision,
    done: bool,
) -> ItemResult:
    """What is reported for one item; once written, the written side holds the other side's digest."""
    local_sha, remote_sha = _sha(local), remote.sha256 if remote is not None else None
    if done and d.action.changes:
        if direction.name == "push":
            remote_sha = local_sha
        else:
            local_sha = remote_sha
    return ItemResult(
        kind=a.kind,
        title=a.title,
        action=d.action,
        reason=d.reason,
        location=a.location if direction.name == "push" else str(a.pull_path),
        local_sha256=local_sha,
        remote_sha256=remote_sha,
        reference=st.reference(a.title) if remote is not None or d.action.changes else None,
        done=done,
    )


def _sync(
    direction: _Direction,
    cluster: ClusterLike,
    what: What,
    store: ItemStore | None,
    decide: Callable[[Artefact, bytes | None, Sides], Decision],
    *,
    dry_run: bool,
    missing_ok: bool,
) -> list[ItemResult]:
    """The shared body of push and pull: read both sides and `decide` every item under the state lock, refuse
    before acting (`SyncRefused`), then act item by item; with `dry_run`, the preview without raising or changing
    anything."""
    items = artefacts(cluster, parse_what(what))
    state = SyncStateFile(cluster.name)
    with _store_for(cluster, store) as st, contextlib.ExitStack() as stack:
        if not dry_run:
            stack.enter_context(state.locked())
        planned: list[tuple[Artefact, bytes | None, RemoteItem | None, Decision]] = []
        for a in items:
            local = direction.read(a)
            remote = st.get(a.title)
            planned.append((a, local, remote, decide(a, local, _sides(local, remote, state.last(st.vault, a.title)))))
        preview = [_result(direction, st, a, local, remote, d, False) for a, local, remote, d in planned]
        if dry_run:
            return preview
        if _blocking(preview, missing_ok=missing_ok):
            raise SyncRefused(f"op.{direction.name}", preview)
        out: list[ItemResult] = []
        for a, local, remote, d in planned:
            direction.act(st, state, a, local, remote, d)
            out.append(_result(direction, st, a, local, remote, d, d.action.changes))
        return out


def push(
    cluster: ClusterLike,
    what: What = "all",
    *,
    store: ItemStore | None = None,
    force: bool = False,
    dry_run: bool = False,
    missing_ok: bool = False,
) -> list[ItemResult]:
    """Store the local files in 1Password, byte for byte; unchanged items are skipped.

    Raises `SyncRefused` (nothing changed) if any item would overwrite a 1Password copy changed since this
    machine last synced it (unless `force`), or a local file is missing (unless `missing_ok`). With
    `dry_run`, returns the decisions without raising or changing anything.
    """

    def decide(a: Artefact, data: bytes | None, sides: Sides) -> Decision:
        decision = plan_push(sides, force=force)
        problem = content_problem(a.kind, data) if data is not None else None
        if problem is not None and decision.action.changes:
            return Decision(Action.REFUSE, f"not pushed: {problem}")
        return Decision(decision.action, _missing_reason(a, decision))

    return _sync(_PUSH, cluster, what, store, decide, dry_run=dry_run, missing_ok=missing_ok)


def _push_act(
    st: ItemStore, state: SyncStateFile, a: Artefact, data: bytes | None, remote: RemoteItem | None, d: Decision
) -> None:
    if data is not None and d.action.changes:
        stored = st.put(a.title, Secret(data), base=remote, meta=a.meta(data))
        state.record(st.vault, a.title, stored.sha256 or sha256_hex(data), "push")
    elif data is not None and d.action is Action.UNCHANGED:
        state.record(st.vault, a.title, sha256_hex(data), "push")


def pull(
    cluster: ClusterLike,
    what: What = "all",
    *,
    store: ItemStore | None = None,
    force: bool = False,
    only_missing: bool = False,
    dry_run: bool = False,
    missing_ok: bool = False,
) -> list[ItemResult]:
    """Restore the files from 1Password: atomic writes, mode 0600, content never printed.

    A local file that changed since this machine last synced it is not overwritten (unless `force`);
    `only_missing` writes only files that do not exist. The secrets bundle is restored only when missing
    (or with `force`). Raises `SyncRefused` (nothing written) for refusals, and for items missing in
    1Password unless `missing_ok`. With `dry_run`, returns the decisions without raising or writing.
    """

    def decide(a: Artefact, local: bytes | None, sides: Sides) -> Decision:
        return plan_pull(
            sides, force=force, only_missing=only_missing, restore_only_if_missing=a.restore_only_if_missing
        )

    return _sync(_PULL, cluster, what, store, decide, dry_run=dry_run, missing_ok=missing_ok)


def _pull_act(
    st: ItemStore, state: SyncStateFile, a: Artefact, local: bytes | None, remote: RemoteItem | None, d: Decision
) -> None:
    if remote is not None and remote.content is not None and remote.sha256 is not None:
        if d.action.changes:
            write_private(a.pull_path, remote.content.reveal(), mode=0o600)
            state.record(st.vault, a.title, remote.sha256, "pull")
        elif d.action is Action.UNCHANGED:
            state.record(st.vault, a.title, remote.sha256, "pull")


_PUSH = _Direction("push", read=Artefact.read, act=_push_act)
_PULL = _Direction("pull", read=lambda a: read_file(a.pull_path), act=_pull_act)


# --------------------------------------------------------------------------- status


def status(cluster: ClusterLike, what: What = "all", *, store: ItemStore | None = None) -> list[ItemStatus]:
    """Per item: local and 1Password digests, the digest last synced from here, and which side is newer."""
    c = cluster
    items = artefacts(c, parse_what(what))
    state = SyncStateFile(c.name)
    out: list[ItemStatus] = []
    with _store_for(c, store) as st:
        for a in items:
            data = a.read()
            remote = st.get(a.title)
            last = state.last(st.vault, a.title)
            sides = _sides(data, remote, last)
            local_mtime = a.mtime() if data is not None else None
            remote_updated = remote.updated_at if remote is not None else None
            cmp = compare(sides, local_mtime=local_mtime, remote_updated=remote_updated)
            out.append(
                ItemStatus(
                    kind=a.kind,
                    title=a.title,
                    location=a.location,
                    local_sha256=sides.local,
                    remote_sha256=remote.sha256 if remote is not None else None,
                    last_sha256=last,
                    state=cmp.state,
                    newer=cmp.newer,
                    basis=cmp.basis,
                    hint=cmp.hint,
                    local_mtime=local_mtime,
                    remote_updated=remote_updated,
                    reference=st.reference(a.title) if remote is not None else None,
                    problem=remote.problem if remote is not None else None,
                )
            )
    return out
