"""git: argv builders and parsers for the git CLI. One module per CLI.

Reads (`log`, `ls-remote`, `rev-parse`, `cat-file`, `merge-base --is-ancestor`) and the two writes `gitops.promote`
needs: a fast-forward of a local branch (`update-ref` with the old value, or `merge --ff-only` on the checked-out
branch) and a push that is never forced (git refuses a non-fast-forward push without `--force`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import OutputError, ToolkitError, last_error_line

__all__ = [
    "LogEntry",
    "cat_commit",
    "current_branch",
    "error_line",
    "fast_forward_checked_out",
    "is_ancestor",
    "log_commits",
    "log_subjects",
    "ls_remote",
    "parse_log_subjects",
    "parse_ls_remote",
    "push_branch",
    "rev_parse",
    "update_branch",
]

_SEP = "\x1f"  # unit separator: never in a commit hash, and git prints it verbatim from %x1f
ZERO = "0" * 40  # git's "no old value" object id for update-ref (creating a branch)

# a read of a remote never waits for a password or a host-key question: it fails instead
_NON_INTERACTIVE = (("GIT_TERMINAL_PROMPT", "0"), ("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"))


@dataclass(frozen=True)
class LogEntry:
    commit: str
    subject: str
    time: int | None = None  # committer time (seconds since the epoch), when the format asked for it


def _check_rev(value: str, what: str) -> str:
    if not value or value.startswith("-"):
        raise ToolkitError(f"not a git {what}: {value!r}")
    return value


def log_subjects(repo: Path, revision_range: str) -> Command:
    """`git -C <repo> log --no-merges --format=%H%x1f%s <range> --`: the subject of every commit in the range
    (merge commits are made by the forge, not written by hand). The trailing `--` keeps the range a revision."""
    if not revision_range or revision_range.startswith("-"):
        raise ToolkitError(f"not a git revision range: {revision_range!r}", hint="e.g. --commits origin/main..HEAD")
    return Command(
        argv=("git", "-C", str(repo), "log", "--no-merges", "--format=%H%x1f%s", revision_range, "--"),
        description=f"read the commit subjects of {revision_range}",
    )


def log_commits(repo: Path, revision_range: str) -> Command:
    """`git -C <repo> log --format=%H%x1f%ct%x1f%s <range> --`: every commit of the range, merges included, newest
    first, with its committer time (what a promotion brings, and how old the oldest of them is)."""
    _check_rev(revision_range, "revision range")
    return Command(
        argv=("git", "-C", str(repo), "log", "--format=%H%x1f%ct%x1f%s", revision_range, "--"),
        description=f"read the commits of {revision_range}",
    )


def parse_log_subjects(stdout: str) -> list[LogEntry]:
    """Lines of `log_subjects` (hash, subject) or `log_commits` (hash, time, subject)."""
    out = []
    for line in stdout.splitlines():
        if not line:
            continue
        parts = line.split(_SEP, 2)
        if len(parts) < 2 or len(parts[0]) < 7:
            raise OutputError(f"git log printed an unexpected line: {line[:80]!r}")
        if len(parts) == 3 and parts[1].isdigit():
            out.append(LogEntry(parts[0], parts[2], int(parts[1])))
        else:
            out.append(LogEntry(parts[0], line.partition(_SEP)[2]))
    return out


def error_line(result: Result) -> str:
    """Why git failed, in one line: the first line from ssh or git's first `fatal:`/`error:` line (git follows it
    with generic advice such as "Please make sure you have the correct access rights"), else the last line."""
    for line in (result.stderr or result.stdout).splitlines():
        if line.startswith(("ssh: ", "fatal: ", "error: ")):
            return line.strip()
    return last_error_line(result)


def ls_remote(remote: str, branches: Sequence[str], *, repo: Path | None = None) -> Command:
    """`git [-C <repo>] ls-remote <remote> refs/heads/<branch>…`: the remote's branch heads (a URL, or a remote name
    of `repo`), never asking for credentials on a terminal."""
    _check_rev(remote, "remote")
    refs = [f"refs/heads/{_check_rev(b, 'branch')}" for b in branches]
    where = ("-C", str(repo)) if repo is not None else ()
    return Command(
        argv=("git", *where, "ls-remote", remote, *refs),
        env=_NON_INTERACTIVE,
        description=f"read the heads of {', '.join(branches)} on {remote}",
        timeout=30,
    )


def parse_ls_remote(stdout: str) -> dict[str, str]:
    """`{branch: commit}` from `git ls-remote` lines (`<sha>\\t<ref>`); refs outside refs/heads/ are left out."""
    heads: dict[str, str] = {}
    for line in stdout.splitlines():
        sha, sep, ref = line.partition("\t")
        if not sep:
            if line.strip():
                raise OutputError(f"git ls-remote printed an unexpected line: {line[:80]!r}")
            continue
        if ref.startswith("refs/heads/"):
            heads[ref.removeprefix("refs/heads/")] = sha.strip()
    return heads


def rev_parse(repo: Path, ref: str) -> Command:
    """`git -C <repo> rev-parse --verify --quiet <ref>^{commit}`: the commit a ref names (exit 1 when none)."""
    return Command(
        argv=("git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{_check_rev(ref, 'ref')}^{{commit}}"),
        description=f"resolve {ref}",
    )


def cat_commit(repo: Path, commit: str) -> Command:
    """`git -C <repo> rev-parse --verify --quiet <commit>^{commit}`: exit 0 when the local clone has that commit, 1
    (quietly) when it does not (`cat-file -e <x>^{commit}` would exit 128 for a missing object)."""
    return Command(
        argv=("git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{_check_rev(commit, 'commit')}^{{commit}}"),
        description=f"check that the clone has {commit[:12]}",
    )


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> Command:
    """`git -C <repo> merge-base --is-ancestor A D`: exit 0 when A is D or an ancestor of it (D is a fast-forward
    of A), 1 when it is not, other codes on errors."""
    return Command(
        argv=(
            "git",
            "-C",
            str(repo),
            "merge-base",
            "--is-ancestor",
            _check_rev(ancestor, "commit"),
            _check_rev(descendant, "commit"),
        ),
        description=f"is {ancestor[:12]} an ancestor of {descendant[:12]}",
    )


def current_branch(repo: Path) -> Command:
    """`git -C <repo> symbolic-ref --quiet --short HEAD`: the checked-out branch (exit 1 on a detached HEAD)."""
    return Command(
        argv=("git", "-C", str(repo), "symbolic-ref", "--quiet", "--short", "HEAD"),
        description="read the checked-out branch",
    )


def update_branch(repo: Path, branch: str, new: str, old: str | None) -> Command:
    """`git -C <repo> update-ref refs/heads/<branch> <new> <old>`: move a branch that is not checked out, only if it
    still points at `old` (None: only if it does not exist yet), so a concurrent change makes it fail."""
    return Command(
        argv=(
            "git",
            "-C",
            str(repo),
            "update-ref",
            "-m",
            f"k8s-ops gitops.promote: fast-forward to {new[:12]}",
            f"refs/heads/{_check_rev(branch, 'branch')}",
            _check_rev(new, "commit"),
            old or ZERO,
        ),
        description=f"fast-forward local branch {branch} to {new[:12]}",
        mutates=True,
    )


def fast_forward_checked_out(repo: Path, new: str) -> Command:
    """`git -C <repo> merge --ff-only <new>`: fast-forward the checked-out branch (and the work tree); git refuses
    anything but a fast-forward."""
    return Command(
        argv=("git", "-C", str(repo), "merge", "--ff-only", _check_rev(new, "commit")),
        description=f"fast-forward the checked-out branch to {new[:12]}",
        mutates=True,
    )


def push_branch(repo: Path, remote: str, branch: str, commit: str) -> Command:
    """`git -C <repo> push <remote> <commit>:refs/heads/<branch>` without `--force`: the remote takes it only as a
    fast-forward of its branch (git rejects a non-fast-forward update unless forced)."""
    return Command(
        argv=(
            "git",
            "-C",
            str(repo),
            "push",
            "--porcelain",
            _check_rev(remote, "remote"),
            f"{_check_rev(commit, 'commit')}:refs/heads/{_check_rev(branch, 'branch')}",
        ),
        env=_NON_INTERACTIVE,
        description=f"push {commit[:12]} to {remote} as {branch} (fast-forward only)",
        mutates=True,
    )
