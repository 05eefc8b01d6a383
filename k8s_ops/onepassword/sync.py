"""Pure decisions for op.push / op.pull / op.status, from three digests per item.

    local   sha256 of the local file (None: no file)
    remote  sha256 recorded in the 1Password item (None: no item)
    last    sha256 this machine last pushed or pulled (None: never synced), kept in the sync state file

The no-clobber rule: push refuses when remote != local and remote != last (1Password changed since this
machine last synced: another machine pushed, or this machine never synced); pull refuses when local != remote
and local != last (the local file changed since the last sync). `--force` overrides both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

__all__ = ["Action", "Comparison", "Decision", "Sides", "Standing", "compare", "plan_pull", "plan_push"]


class Action(StrEnum):
    CREATE = "create"  # push: a new item
    UPDATE = "update"  # push: new content in the existing item
    WRITE = "write"  # pull: (re)write the local file
    UNCHANGED = "unchanged"  # both sides already equal
    KEEP = "keep"  # pull: the local file stays as it is, by rule (not an error)
    REFUSE = "refuse"  # acting would clobber a change made elsewhere, or the item is unusable
    MISSING = "missing"  # push: no local file; pull: no item in 1Password

    @property
    def changes(self) -> bool:
        return self in (Action.CREATE, Action.UPDATE, Action.WRITE)


@dataclass(frozen=True)
class Sides:
    local: str | None
    remote: str | None
    last: str | None
    remote_exists: bool = False
    remote_problem: str | None = None

    def __post_init__(self) -> None:
        if self.remote is not None and not self.remote_exists:
            object.__setattr__(self, "remote_exists", True)


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def _clobber(s: Sides, *, never: str, changed: str, fix: str) -> Decision:
    """The no-clobber refusal: why (`never` synced from here, or `changed` since the last sync), then the `fix`."""
    return Decision(Action.REFUSE, f"{never if s.last is None else changed}; {fix}")


def plan_push(s: Sides, *, force: bool = False) -> Decision:
    if s.local is None:
        return Decision(Action.MISSING, "no local file to push")
    if not s.remote_exists:
        return Decision(Action.CREATE, "not in 1Password yet")
    if s.remote_problem is not None:
        if force:
            return Decision(Action.UPDATE, f"replacing an unusable item (--force): {s.remote_problem}")
        return Decision(
            Action.REFUSE, f"the 1Password item is unusable: {s.remote_problem}; push --force replaces its content"
        )
    if s.remote == s.local:
        return Decision(Action.UNCHANGED, "1Password already holds this content")
    if s.remote == s.last:
        return Decision(Action.UPDATE, "changed locally since the last sync")
    if force:
        return Decision(Action.UPDATE, "overwriting a different copy in 1Password (--force)")
    return _clobber(
        s,
        never="1Password holds a different copy that this machine never synced",
        changed="the 1Password copy changed since this machine last synced it (pushed from elsewhere?)",
        fix="pull it first (op.pull), or push --force to overwrite it",
    )


def plan_pull(
    s: Sides, *, force: bool = False, only_missing: bool = False, restore_only_if_missing: bool = False
) -> Decision:
    if not s.remote_exists:
        return Decision(Action.MISSING, "not in 1Password")
    if s.remote_problem is not None or s.remote is None:
        return Decision(Action.REFUSE, f"the 1Password item is unusable: {s.remote_problem or 'no sha256 field'}")
    if s.local is None:
        return Decision(Action.WRITE, "no local file")
    if s.local == s.remote:
        return Decision(Action.UNCHANGED, "the local file matches 1Password")
    if only_missing:
        return Decision(Action.KEEP, "the local file exists (only missing files are restored)")
    if restore_only_if_missing and not force:
        return Decision(
            Action.KEEP,
            "differs from 1Password; the secrets bundle is only restored when missing (--force replaces it)",
        )
    if force:
        return Decision(Action.WRITE, "overwriting a different local file (--force)")
    if s.local == s.last:
        return Decision(Action.WRITE, "1Password has a newer copy; the local file is unchanged since the last sync")
    return _clobber(
        s,
        never="the local file differs from 1Password and was never synced from this machine",
        changed="the local file changed since the last sync and differs from 1Password",
        fix="push it (op.push), or pull --force to overwrite it",
    )


class Standing(StrEnum):
    IN_SYNC = "in sync"
    LOCAL_ONLY = "only local"
    REMOTE_ONLY = "only in 1Password"
    ABSENT = "absent"
    LOCAL_NEWER = "local newer"
    REMOTE_NEWER = "1Password newer"
    DIVERGED = "diverged"
    UNUSABLE = "1Password item unusable"


Newer = Literal["local", "1password", "same", "unknown"]


@dataclass(frozen=True)
class Comparison:
    state: Standing
    newer: Newer
    basis: str  # how `newer` was decided: "content", "last sync", "timestamps"
    hint: str


def _by_time(local_mtime: datetime | None, remote_updated: datetime | None) -> Newer:
    if local_mtime is None or remote_updated is None:
        return "unknown"
    if local_mtime == remote_updated:
        return "same"
    return "local" if local_mtime > remote_updated else "1password"


def compare(s: Sides, *, local_mtime: datetime | None = None, remote_updated: datetime | None = None) -> Comparison:
    """Where an item stands; `newer` from the sync state when it decides, else from file/item timestamps."""
    if s.local is None and not s.remote_exists:
        return Comparison(Standing.ABSENT, "unknown", "content", "nothing to sync")
    if s.remote_problem is not None:
        return Comparison(
            Standing.UNUSABLE, _by_time(local_mtime, remote_updated), "timestamps", "push --force replaces it"
        )
    if s.local is None:
        return Comparison(Standing.REMOTE_ONLY, "1password", "content", "pull")
    if not s.remote_exists:
        return Comparison(Standing.LOCAL_ONLY, "local", "content", "push")
    if s.local == s.remote:
        return Comparison(Standing.IN_SYNC, "same", "content", "nothing to do")
    if s.last == s.local:
        return Comparison(Standing.REMOTE_NEWER, "1password", "last sync", "pull")
    if s.last == s.remote:
        return Comparison(Standing.LOCAL_NEWER, "local", "last sync", "push")
    return Comparison(
        Standing.DIVERGED,
        _by_time(local_mtime, remote_updated),
        "timestamps",
        "both changed since the last sync: keep one with push --force or pull --force",
    )
