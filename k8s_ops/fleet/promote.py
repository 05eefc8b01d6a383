"""`gitops.promote`: fast-forward the downstream cluster's branch to a commit the upstream cluster has applied and
kept Ready for the soak time — pure decisions plus the git reads behind them, then a Plan.

Flux facts relied on (tests/sim/FIDELITY.md, "The fleet"):

* the root Kustomization's `status.lastAppliedRevision` is the source artifact revision it applied last,
  `<branch>@sha1:<hex>` (`k8s_ops.fleet.revision`);
* kustomize-controller marks Ready `Unknown` ("Reconciliation in progress") at the start of every reconciliation and
  `True` ("Applied revision: …") at its end, and a condition's `lastTransitionTime` moves whenever its status, reason
  or message changes — so Ready's `lastTransitionTime` is the end of the latest reconciliation (at most one
  `interval` ago), not when the revision was first applied;
* `status.history` (Flux ≥ 2.7) keeps a snapshot per applied build: `firstReconciled`, `lastReconciled`,
  `lastReconciledStatus` and `metadata.revision`.

So the soak is measured from the history (the first successful reconciliation of the revision, after the last
failed one of it); without a history it falls back to Ready's `lastTransitionTime`, which can only under-state the
soak (the promotion then waits longer, never less).

Git: the candidate must be on the upstream branch (`merge-base --is-ancestor C <upstream head>`), the downstream
branch's remote head must be an ancestor of it (a fast-forward; anything else is refused as diverged), and the push
never uses `--force`, so the remote refuses a non-fast-forward as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k8s_ops.core.command import Command
from k8s_ops.core.errors import CommandFailed, GateFailed, ToolkitError, last_error_line
from k8s_ops.core.plan import Check, Plan, Step
from k8s_ops.core.units import age_text
from k8s_ops.fleet.revision import Revision, parse_revision
from k8s_ops.tools import git
from k8s_ops.tools.kubectl import Obj, parse_time

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner

__all__ = [
    "SUCCEEDED",
    "Applied",
    "GitState",
    "PromotionRefused",
    "applied_revision",
    "check_soak",
    "git_state",
    "plan_promote",
    "soak_remaining",
]

SUCCEEDED = "ReconciliationSucceeded"
"""The Ready reason (and history status) of a successful Kustomization reconciliation (fluxcd/pkg apis/meta)."""


class PromotionRefused(ToolkitError):
    """The promotion cannot go ahead (soak not reached, not Ready, diverged branches …); nothing was changed."""


@dataclass(frozen=True)
class Applied:
    """The revision the upstream cluster applied, and since when it has been applied and Ready (`evidence` says
    which status field told)."""

    revision: Revision
    since: datetime
    evidence: str


def _history_since(history: Sequence[Mapping[str, Any]], revision: str) -> datetime | None:
    """First successful reconciliation of `revision` after its last failed one, from `status.history`."""
    ok: list[datetime] = []
    failed: list[datetime] = []
    for snap in history:
        if not isinstance(snap, Mapping) or (snap.get("metadata") or {}).get("revision") != revision:
            continue
        if snap.get("lastReconciledStatus") == SUCCEEDED:
            first = parse_time(snap.get("firstReconciled"))
            if first is not None:
                ok.append(first)
        else:
            last = parse_time(snap.get("lastReconciled"))
            if last is not None:
                failed.append(last)
    if not ok:
        return None
    return max([min(ok), *failed])


def applied_revision(cluster: str, branch: str, kustomization: Mapping[str, Any] | None) -> Applied:
    """What `cluster`'s root Kustomization applied from `branch` and since when it is Ready with it; refuses when it
    is missing, not Ready, or applied something that is not a commit of `branch`."""
    if kustomization is None:
        raise PromotionRefused(f"cluster {cluster} has no Kustomization flux-system/flux-system")
    o = Obj(kustomization)
    ready = o.condition("Ready") or {}
    if ready.get("status") != "True":
        what = f"{ready.get('reason') or 'no Ready condition'}: {ready.get('message') or ''}".rstrip(": ")
        raise PromotionRefused(f"cluster {cluster}: Kustomization flux-system is not Ready ({what})")
    if o.observed_generation < o.generation:
        raise PromotionRefused(f"cluster {cluster}: Kustomization flux-system has not reconciled its current spec yet")
    raw = o.status("lastAppliedRevision")
    rev = parse_revision(raw)
    if rev is None:
        raise PromotionRefused(f"cluster {cluster}: no Git revision applied (lastAppliedRevision {raw!r})")
    if rev.ref is not None and rev.ref != branch:
        raise PromotionRefused(f"cluster {cluster} applied {rev}, not a commit of its branch {branch}")
    since = _history_since(o.status("history", default=[]) or [], str(raw))
    if since is not None:
        return Applied(rev, since, "status.history firstReconciled")
    transition = parse_time(ready.get("lastTransitionTime"))
    if transition is None:
        raise PromotionRefused(f"cluster {cluster}: Ready has no lastTransitionTime to measure the soak from")
    return Applied(rev, transition, "the Ready condition's lastTransitionTime (no status.history)")


def soak_remaining(applied: Applied, soak_seconds: float, now: datetime) -> float:
    """Seconds still to wait (0 when the soak is reached)."""
    return max(0.0, soak_seconds - (now - applied.since).total_seconds())


def check_soak(source: str, applied: Applied, soak: str, soak_seconds: float, now: datetime) -> None:
    """Refuse, naming the time still to wait, while `applied` has been Ready on `source` for less than the soak."""
    left = soak_remaining(applied, soak_seconds, now)
    if left > 0:
        kept = max(0.0, (now - applied.since).total_seconds())
        raise PromotionRefused(
            f"soak not reached: {source} has kept {applied.revision} Ready for {age_text(kept)} of {soak}; "
            f"{age_text(left)} to go (measured from {applied.evidence}, {applied.since:%Y-%m-%d %H:%M:%S}Z)",
            hint="run again later, or lower gitops.promote.soak in the target cluster's cluster.yaml",
        )


@dataclass(frozen=True)
class GitState:
    """The local clone and the remote as a promotion sees them (read with `git_state`)."""

    repo: Path
    remote: str
    upstream_branch: str
    downstream_branch: str
    upstream_head: str
    downstream_head: str
    local_head: str | None  # the local downstream branch, None when it does not exist
    checked_out: bool  # the local downstream branch is the checked-out one
    commits: tuple[git.LogEntry, ...]  # downstream_head..candidate, newest first
    local_ahead: bool = False  # the local branch has commits the candidate lacks (left alone: never moved back)


def _run(runner: Runner, command: Command) -> str:
    return runner.run(command).stdout.strip()


def _ok(runner: Runner, command: Command) -> bool:
    """Exit 0 → True, 1 → False; anything else is an error (a bad revision, not a repository)."""
    result = runner.run(command, check=False)
    if result.returncode in (0, 1):
        return result.ok
    raise CommandFailed(command.display(), result.returncode, result.stderr or result.stdout)


def git_state(
    runner: Runner, repo: Path, remote: str, upstream_branch: str, downstream_branch: str, candidate: str
) -> GitState:
    """Read the remote heads and the local clone; refuse (PromotionRefused) anything that is not a fast-forward of
    the downstream branch to a commit of the upstream branch. Only reads."""
    heads = git.parse_ls_remote(_run(runner, git.ls_remote(remote, [upstream_branch, downstream_branch], repo=repo)))
    for branch in (upstream_branch, downstream_branch):
        if branch not in heads:
            raise PromotionRefused(f"remote {remote} has no branch {branch}")
    up, down = heads[upstream_branch], heads[downstream_branch]
    for commit, what in ((candidate, "the applied commit"), (up, upstream_branch), (down, downstream_branch)):
        if not _ok(runner, git.cat_commit(repo, commit)):
            raise PromotionRefused(
                f"the clone {repo} lacks {what} ({commit[:12]})", hint=f"git -C {repo} fetch {remote} and run again"
            )
    if not _ok(runner, git.is_ancestor(repo, candidate, up)):
        raise PromotionRefused(f"{candidate[:12]} is not on {remote}/{upstream_branch} ({up[:12]})")
    if not _ok(runner, git.is_ancestor(repo, down, candidate)):
        if _ok(runner, git.is_ancestor(repo, candidate, down)):
            commits: tuple[git.LogEntry, ...] = ()  # already promoted (or further): nothing to do
        else:
            raise PromotionRefused(
                f"{remote}/{downstream_branch} ({down[:12]}) and {candidate[:12]} have diverged: "
                f"{downstream_branch} has commits that are not on {upstream_branch}; a promotion only fast-forwards",
                hint=f"bring {downstream_branch} back onto {upstream_branch} by hand (never forced by this task)",
            )
    else:
        commits = tuple(git.parse_log_subjects(_run(runner, git.log_commits(repo, f"{down}..{candidate}"))))
    local = runner.run(git.rev_parse(repo, f"refs/heads/{downstream_branch}"), check=False)
    local_head = local.stdout.strip() if local.ok and local.stdout.strip() else None
    current = runner.run(git.current_branch(repo), check=False)
    checked_out = current.ok and current.stdout.strip() == downstream_branch
    local_ahead = local_head is not None and not _ok(runner, git.is_ancestor(repo, local_head, candidate))
    if local_ahead and commits:
        raise PromotionRefused(
            f"local branch {downstream_branch} ({(local_head or '')[:12]}) has commits not in {candidate[:12]}",
            hint=f"reset or push local {downstream_branch} first; a promotion only fast-forwards",
        )
    return GitState(
        repo, remote, upstream_branch, downstream_branch, up, down, local_head, checked_out, commits, local_ahead
    )


def _remote_unchanged(state: GitState) -> Check:
    def run(runner: Runner) -> None:
        try:
            heads = git.parse_ls_remote(
                _run(runner, git.ls_remote(state.remote, [state.downstream_branch], repo=state.repo))
            )
        except ToolkitError as exc:
            raise GateFailed(f"{state.remote}/{state.downstream_branch}", last_error_line(exc)) from None
        now = heads.get(state.downstream_branch)
        if now != state.downstream_head:
            raise GateFailed(
                f"{state.remote}/{state.downstream_branch}",
                f"moved from {state.downstream_head[:12]} to {(now or 'nothing')[:12]} since the plan was made",
            )

    return Check(f"{state.remote}/{state.downstream_branch} is still at {state.downstream_head[:12]}", run)


def plan_promote(
    *,
    source: str,
    target: str,
    applied: Applied,
    soak: str,
    state: GitState,
    push: bool,
    now: datetime,
) -> Plan:
    """The promotion: fast-forward the local downstream branch to the applied commit, then (with `push`) push it —
    a destructive step (the target cluster will apply it), confirmed by typing the target cluster's name."""
    commit = applied.revision.commit
    branch = state.downstream_branch
    n = len(state.commits)
    if state.local_head == commit:
        local = Step(f"fast-forward local branch {branch} to {commit[:12]}", noop=f"{branch} is already at it")
    elif state.local_ahead:
        noop = f"{branch} ({(state.local_head or '')[:12]}) has commits {commit[:12]} lacks; never moved back"
        local = Step(f"fast-forward local branch {branch} to {commit[:12]}", noop=noop)
    else:
        command = (
            git.fast_forward_checked_out(state.repo, commit)
            if state.checked_out
            else git.update_branch(state.repo, branch, commit, state.local_head)
        )
        was = state.local_head[:12] if state.local_head else "nothing (created)"
        local = Step(f"fast-forward local branch {branch} from {was} to {commit[:12]}", commands=(command,))
    steps = [local]
    notes = [
        f"{source} applied {applied.revision} and has kept it Ready since {applied.since:%Y-%m-%d %H:%M:%S}Z "
        f"({age_text((now - applied.since).total_seconds())}, soak {soak}; measured from {applied.evidence})",
    ]
    if n:
        notes.append(f"{n} commit(s) of {state.upstream_branch} promoted to {branch} ({state.downstream_head[:12]}..):")
        notes += [f"  {e.commit[:12]} {e.subject}" for e in state.commits]
    else:
        notes.append(f"{state.remote}/{branch} ({state.downstream_head[:12]}) already contains {commit[:12]}")
    if push:
        if n:
            steps.append(
                Step(
                    f"push {commit[:12]} to {state.remote}/{branch} ({n} commit(s); cluster {target} applies them)",
                    commands=(git.push_branch(state.repo, state.remote, branch, commit),),
                    before=(_remote_unchanged(state),),
                    destructive=True,
                )
            )
        else:
            steps.append(Step(f"push {branch} to {state.remote}", noop="the remote branch already contains it"))
    elif n:
        notes.append(f"not pushed: re-run with --push to push {branch} to {state.remote} (type '{target}' to confirm)")
    return Plan(f"promote {source} → {target}: {branch} to {commit[:12]}", target, tuple(steps), notes=tuple(notes))
