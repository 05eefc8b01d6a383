"""`fleet.status`: every cluster of the inventory in one table (or JSON) — Talos and Kubernetes versions per node,
the root GitRepository's branch and fetched revision against the remote head, the revision the root Kustomization
applied, Flux objects not Ready, everything suspended — and how far each branch lags the branch it is promoted from.

Reads only: kubectl per cluster (`k8s_ops.fleet.facts`), `git ls-remote` per repository, and the local clone for the
lag (`git log <behind>..<ahead>`). A cluster or remote that does not answer becomes a row or field saying so.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k8s_ops.core.command import Command
from k8s_ops.core.errors import ToolkitError, last_error_line
from k8s_ops.core.units import age_text
from k8s_ops.fleet.facts import ClusterFacts, read_cluster
from k8s_ops.fleet.revision import Revision, parse_revision
from k8s_ops.tools import git
from k8s_ops.tools.kubectl import KubeTarget, Obj

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner
    from k8s_ops.talos.inventory import Cluster

__all__ = ["ClusterRow", "FleetStatus", "Lag", "gather", "lags", "remote_heads"]


@dataclass(frozen=True)
class ClusterRow:
    """One cluster: its inventory branch, what Flux fetched and applied, the remote head, and the live facts."""

    cluster: str
    repository: str
    branch: str
    live_branch: str | None
    fetched: Revision | None
    applied: Revision | None
    remote_head: str | None
    remote_error: str | None
    facts: ClusterFacts

    @property
    def sync(self) -> str:
        """`current`, `behind` (the remote has a newer commit than Flux fetched) or why it cannot be told."""
        if self.facts.error is not None:
            return "unknown (cluster does not answer)"
        if self.remote_head is None:
            return f"unknown ({self.remote_error or 'no remote head'})"
        if self.fetched is None:
            return "nothing fetched"
        if self.fetched.commit != self.remote_head:
            return f"behind the remote ({self.remote_head[:12]})"
        if self.applied is None or self.applied.commit != self.fetched.commit:
            return "fetched, not applied yet"
        return "current"

    def to_json(self) -> dict[str, Any]:
        f = self.facts
        return {
            "cluster": self.cluster,
            "reachable": f.error is None,
            "error": f.error,
            "repository": self.repository,
            "branch": self.branch,
            "liveBranch": self.live_branch,
            "fetchedRevision": None if self.fetched is None else self.fetched.commit,
            "appliedRevision": None if self.applied is None else self.applied.commit,
            "remoteHead": self.remote_head,
            "remoteError": self.remote_error,
            "sync": self.sync,
            "nodes": [n.to_json() for n in f.nodes],
            "notReady": list(f.not_ready),
            "suspended": list(f.suspended),
        }


@dataclass(frozen=True)
class Lag:
    """How far branch `behind` lags branch `ahead` of the same repository: commits on `ahead` not on `behind` and
    the committer time of the oldest of them; `error` when it could not be told (e.g. the clone lacks a head)."""

    repository: str
    behind: str
    ahead: str
    commits: int | None = None
    oldest: int | None = None
    error: str | None = None

    def describe(self, now: datetime) -> str:
        if self.error is not None:
            return f"{self.behind} vs {self.ahead}: {self.error}"
        if not self.commits:
            return f"{self.behind} is level with {self.ahead}"
        age = "" if self.oldest is None else f", oldest {age_text(now.timestamp() - self.oldest)} old"
        return f"{self.behind} lags {self.ahead} by {self.commits} commit(s){age}"

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "behind": self.behind,
            "ahead": self.ahead,
            "commits": self.commits,
            "oldestAgeSeconds": None if self.oldest is None else int(now.timestamp() - self.oldest),
            "error": self.error,
        }


@dataclass(frozen=True)
class FleetStatus:
    rows: tuple[ClusterRow, ...]
    lags: tuple[Lag, ...]

    @property
    def unreachable(self) -> tuple[str, ...]:
        return tuple(r.cluster for r in self.rows if r.facts.error is not None)

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {"clusters": [r.to_json() for r in self.rows], "lags": [lag.to_json(now) for lag in self.lags]}

    def table(self, now: datetime) -> str:
        """One rich table, a row per cluster, then one line per branch lag."""
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for col in (
            "CLUSTER",
            "NODE",
            "TALOS",
            "K8S",
            "BRANCH",
            "FETCHED",
            "APPLIED",
            "SYNC",
            "NOT READY",
            "SUSPENDED",
        ):
            table.add_column(col, no_wrap=col not in ("NOT READY", "SUSPENDED", "SYNC"))
        for r in self.rows:
            f = r.facts
            if f.error is not None:
                table.add_row(r.cluster, f"unreachable: {f.error}", "", "", r.branch, "", "", "", "", "")
                continue
            branch = r.branch if r.live_branch in (None, r.branch) else f"{r.live_branch} (inventory: {r.branch})"
            nodes = f.nodes or ()
            table.add_row(
                r.cluster,
                "\n".join(n.name + ("" if n.ready else " (NotReady)") for n in nodes) or "-",
                "\n".join(n.talos or "-" for n in nodes),
                "\n".join(n.kubernetes or "-" for n in nodes),
                branch,
                r.fetched.short if r.fetched else "-",
                r.applied.short if r.applied else "-",
                r.sync,
                "\n".join(f.not_ready) or "-",
                "\n".join(f.suspended) or "-",
            )
        buf = io.StringIO()
        Console(file=buf, width=240, highlight=False, color_system=None).print(table)
        remotes = sorted({(r.repository, r.remote_error) for r in self.rows if r.remote_error})
        tail = [lag.describe(now) for lag in self.lags] + [f"remote {repo}: {err}" for repo, err in remotes]
        return buf.getvalue() + "".join(line + "\n" for line in tail)


def remote_heads(runner: Runner, clusters: Sequence[Cluster]) -> dict[str, dict[str, str] | str]:
    """`{repository: {branch: commit}}` with one `git ls-remote` per repository; the error text when it failed."""
    by_repo: dict[str, set[str]] = {}
    for c in clusters:
        by_repo.setdefault(c.gitops.repository, set()).add(c.gitops.branch)
    out: dict[str, dict[str, str] | str] = {}
    for repo, branches in sorted(by_repo.items()):
        try:
            result = runner.run(git.ls_remote(repo, sorted(branches)), check=False)
            out[repo] = git.parse_ls_remote(result.stdout) if result.ok else git.error_line(result)
        except ToolkitError as exc:
            out[repo] = last_error_line(exc)
    return out


def _ok(runner: Runner, command: Command) -> bool | None:
    result = runner.run(command, check=False)
    return {0: True, 1: False}.get(result.returncode)


def lags(runner: Runner, clone: Path, heads: Mapping[str, Mapping[str, str] | str]) -> list[Lag]:
    """For each pair of branches of one repository where one is a strict ancestor of the other: how far it lags.
    Needs both heads in the local clone (`git fetch` brings them)."""
    out: list[Lag] = []
    for repo, branches in heads.items():
        if isinstance(branches, str):
            continue
        names = sorted(branches)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                ha, hb = branches[a], branches[b]
                if ha == hb:
                    out.append(Lag(repo, b, a, commits=0))
                    continue
                try:
                    missing = [n for n, h in ((a, ha), (b, hb)) if not _ok(runner, git.cat_commit(clone, h))]
                    if missing:
                        out.append(Lag(repo, b, a, error=f"the clone {clone} lacks {', '.join(missing)}: git fetch"))
                        continue
                    if _ok(runner, git.is_ancestor(clone, hb, ha)):
                        behind, ahead, range_ = b, a, f"{hb}..{ha}"
                    elif _ok(runner, git.is_ancestor(clone, ha, hb)):
                        behind, ahead, range_ = a, b, f"{ha}..{hb}"
                    else:
                        out.append(Lag(repo, b, a, error="diverged (neither is an ancestor of the other)"))
                        continue
                    entries = git.parse_log_subjects(runner.run(git.log_commits(clone, range_)).stdout)
                except ToolkitError as exc:
                    out.append(Lag(repo, b, a, error=last_error_line(exc)))
                    continue
                times = [e.time for e in entries if e.time is not None]
                out.append(Lag(repo, behind, ahead, commits=len(entries), oldest=min(times) if times else None))
    return out


def gather(runner: Runner, clusters: Sequence[Cluster], clone: Path) -> FleetStatus:
    """Read every cluster (in inventory order by name), the remote heads and the lags."""
    heads = remote_heads(runner, clusters)
    rows = []
    for c in sorted(clusters, key=lambda c: c.name):
        facts = read_cluster(runner, c.name, KubeTarget.for_cluster(c.name))
        repo_heads = heads.get(c.gitops.repository)
        head = repo_heads.get(c.gitops.branch) if isinstance(repo_heads, Mapping) else None
        if isinstance(repo_heads, str):
            remote_error: str | None = repo_heads
        else:
            remote_error = None if head else f"no branch {c.gitops.branch} on the remote"
        gr = Obj(facts.git_repository) if facts.git_repository is not None else None
        ks = Obj(facts.root_kustomization) if facts.root_kustomization is not None else None
        rows.append(
            ClusterRow(
                c.name,
                c.gitops.repository,
                c.gitops.branch,
                gr.path("spec", "ref", "branch") if gr else None,
                parse_revision(gr.status("artifact", "revision")) if gr else None,
                parse_revision(ks.status("lastAppliedRevision")) if ks else None,
                head,
                remote_error,
                facts,
            )
        )
    return FleetStatus(tuple(rows), tuple(lags(runner, clone, heads)))
