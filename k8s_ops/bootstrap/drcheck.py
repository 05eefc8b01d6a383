"""`bootstrap.dr-check`: could this cluster be rebuilt right now from git, 1Password and the object store alone?

Each check only reads — the local checkout, the cluster's 1Password vault (one store for every read) and the
`backups.etcd` bucket — and yields a `Finding` (ok / warn / fail / skip, with a one-line detail that never holds
a secret value). `fail` means something a rebuild needs is missing or does not match; `warn` is worth fixing but
does not block a rebuild (a stale snapshot, a local file that differs from its 1Password copy).

    age-key            in 1Password, and equal to the local key when this machine has one
    talos-secrets      in 1Password, and byte-equal to the bundle in git
    kubeconfig         pushed (talosconfig likewise)
    deploy-key         the git credentials file decrypts with the age key (local, else 1Password's, in memory)
    connect            the `onepassword.connect` items resolve and the credentials are a Connect file
    bootstrap-secrets  every `bootstrap.secrets` source resolves / decrypts
    etcd-snapshot      the newest verified off-box snapshot, and its age (warn past `max_age`)
    inventory, charts  the inventory loads and is consistent; the pinned charts load and their values render

`offer_material_push` is how `bootstrap.cluster` ends: when the age key or the secrets bundle is missing in
1Password, it asks, then pushes them (a plan of its own through the pipeline).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.secret import Secret
from k8s_ops.core.units import age_text

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner
    from k8s_ops.onepassword.api import ItemStatus
    from k8s_ops.onepassword.sdk import SdkStore
    from k8s_ops.talos.inventory import Cluster
    from k8s_ops.tools.sops import AgeKey

__all__ = [
    "DEFAULT_MAX_AGE",
    "Finding",
    "NotRecoverable",
    "gather",
    "material_push_note",
    "offer_material_push",
    "report_json",
    "report_table",
    "verdict",
]

Status = Literal["ok", "warn", "fail", "skip"]
DEFAULT_MAX_AGE: Final = timedelta(hours=26)  # a daily snapshot plus slack
_STYLE: Final = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


class NotRecoverable(ToolkitError):
    """dr-check found something a rebuild needs missing or wrong."""


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail}


def _guarded(check: str, fn: Callable[[], Finding | list[Finding]]) -> list[Finding]:
    """Run one check; an error it raises is that check's failure (its message), never the end of the report."""
    try:
        out = fn()
    except ToolkitError as exc:
        first = exc.message.splitlines()[0] if exc.message else type(exc).__name__
        return [Finding(check, "fail", first)]
    return out if isinstance(out, list) else [out]


# --------------------------------------------------------------------------- 1Password items


def _status_finding(item: ItemStatus, check: str, *, git: bool = False) -> Finding:
    if item.problem is not None:
        return Finding(check, "fail", f"{item.title} in 1Password is unusable: {item.problem}")
    if item.remote_sha256 is None:
        return Finding(check, "fail", f"{item.title} is not in 1Password (push it: invoke op.push --what {check})")
    if item.local_sha256 is None:
        where = "in git" if git else "on this machine"
        status: Status = "warn" if git else "ok"
        return Finding(check, status, f"{item.title} in 1Password (sha256 {item.remote_sha256[:12]}); not {where}")
    if item.local_sha256 != item.remote_sha256:
        what = "the bundle in git" if git else f"the local {item.location}"
        level: Status = "fail" if check in ("age-key", "talos-secrets") else "warn"
        return Finding(
            check,
            level,
            f"{item.title} in 1Password (sha256 {item.remote_sha256[:12]}) differs from {what} "
            f"(sha256 {item.local_sha256[:12]})",
        )
    same = "byte-equal to git" if git else "equal to the local copy"
    return Finding(check, "ok", f"{item.title} in 1Password, {same} (sha256 {item.remote_sha256[:12]})")


def _age_key(cluster: Cluster, store: SdkStore | None) -> AgeKey | None:
    """The local age key, else the one in 1Password (kept in memory), else None."""
    from k8s_ops.core.errors import SecretError
    from k8s_ops.onepassword.artefacts import Kind, item_title
    from k8s_ops.talos.secrets import age_key_for
    from k8s_ops.tools.sops import AgeKey

    try:
        return age_key_for(cluster)
    except SecretError:
        pass
    if store is None:
        return None
    title = item_title(Kind.AGE_KEY, cluster.name)
    remote = store.get(title)
    if remote is None or remote.content is None:
        return None
    return AgeKey(source=f"1Password item {title!r}", value=Secret(remote.content.reveal()))


def _deploy_key(cluster: Cluster, key: AgeKey | None) -> Finding:
    from k8s_ops.bootstrap.credentials import git_credentials_path, load_git_credentials

    path = git_credentials_path(cluster)
    if key is None and path.is_file():
        return Finding("deploy-key", "fail", f"{path} present, but no age key (local or 1Password) decrypts it")
    creds = load_git_credentials(cluster, key) if key is not None else None
    if creds is None:
        if path.is_file():
            return Finding("deploy-key", "fail", f"{path} could not be read")
        return Finding("deploy-key", "ok", f"public repository {cluster.gitops.repository}: no credentials needed")
    return Finding("deploy-key", "ok", f"{path.name} decrypts with {key.describe() if key else '-'} (keys "
                   f"{', '.join(creds.keys)})")  # fmt: skip


def _connect(cluster: Cluster, store: SdkStore | None) -> Finding:
    from k8s_ops.bootstrap.credentials import connect_secrets

    conn = cluster.onepassword.connect
    if conn is None:
        return Finding("connect", "skip", "onepassword.connect not configured (External Secrets bootstrap by hand)")
    if store is None:
        return Finding("connect", "fail", "1Password not configured: cannot read the Connect items")
    found = connect_secrets(cluster, store)
    names = ", ".join(f"{e.namespace}/{e.name}" for e in found)
    return Finding(
        "connect",
        "ok",
        f"{conn.credentials.item}/{conn.credentials.field} (a Connect credentials file) and "
        f"{conn.token.item}/{conn.token.field} present -> Secrets {names}",
    )


def _bootstrap_secrets(cluster: Cluster, store: SdkStore | None, key: AgeKey | None) -> Finding:
    from k8s_ops.bootstrap.credentials import extra_secrets

    extra = cluster.bootstrap.secrets if cluster.bootstrap else ()
    if not extra:
        return Finding("bootstrap-secrets", "skip", "no bootstrap.secrets")
    found = [e for e in extra_secrets(cluster, key, store) if e.purpose == "bootstrap.secrets"]
    return Finding("bootstrap-secrets", "ok", f"{len(found)} Secret(s) readable: "
                   + ", ".join(f"{e.namespace}/{e.name}" for e in found))  # fmt: skip


# --------------------------------------------------------------------------- etcd snapshot, inventory, charts


def _snapshot(cluster: Cluster, now: datetime, max_age: timedelta) -> Finding:
    from k8s_ops.backups.catalog import remote_backups
    from k8s_ops.backups.etcd import Remote

    remote = Remote.for_cluster(cluster)
    if remote is None:
        return Finding("etcd-snapshot", "fail", "no backups.etcd target: no off-box snapshot to recover from")
    found = remote_backups(remote.store(), remote.target, cluster.name)
    newest = next((b for b in found if b.verified), None)
    if newest is None:
        return Finding(
            "etcd-snapshot",
            "fail",
            f"no verified snapshot under {remote.url('')} ({len(found)} unverified); "
            "upload one: invoke talos.etcd-snapshot --upload",
        )
    age = newest.age(now)
    text = f"{newest.ref} ({newest.size} bytes) taken {age_text(age.total_seconds())} ago"
    if age > max_age:
        return Finding("etcd-snapshot", "warn", f"{text}: older than {age_text(max_age.total_seconds())}")
    return Finding("etcd-snapshot", "ok", text)


def _inventory(cluster: Cluster) -> Finding:
    from k8s_ops.bootstrap.credentials import repository_problems
    from k8s_ops.core.errors import ProblemsError

    problems = repository_problems(cluster)
    if problems:
        raise ProblemsError(problems)
    return Finding("inventory", "ok", f"{cluster.file} loads ({len(cluster.nodes)} nodes)")


def _charts(cluster: Cluster) -> Finding:
    from k8s_ops.bootstrap.charts import load_charts, render_all_values

    charts = load_charts()
    values = render_all_values(cluster, charts)
    return Finding("charts", "ok", f"{len(charts.releases)} pinned releases, {len(values)} values files render")


# --------------------------------------------------------------------------- the report


@contextmanager
def _store(cluster: Cluster) -> Iterator[tuple[SdkStore | None, str | None]]:
    from k8s_ops import onepassword as op

    if not op.is_configured(cluster):
        yield None, "1Password not configured (onepassword.vault + OP_SERVICE_ACCOUNT_TOKEN)"
        return
    try:
        store = op.open_cluster_store(cluster)
    except ToolkitError as exc:
        yield None, exc.message.splitlines()[0]
        return
    with store:
        yield store, None


def gather(cluster: Cluster, *, now: datetime, max_age: timedelta = DEFAULT_MAX_AGE) -> list[Finding]:
    """Every finding, in the order of the module doc. Reads only."""
    from k8s_ops import onepassword as op

    out: list[Finding] = []
    with _store(cluster) as (store, why):
        kinds = ("kubeconfig", "talosconfig", "age-key", "talos-secrets")
        try:
            statuses = op.status(cluster, "all", store=store) if store is not None else None
        except ToolkitError as exc:
            statuses, why = None, exc.message.splitlines()[0]
        if statuses is None:
            out += [Finding(k, "fail", why or "") for k in kinds]
        else:
            out += [_status_finding(s, s.kind.value, git=s.kind.value == "talos-secrets") for s in statuses]
        key = _age_key(cluster, store)
        out += _guarded("deploy-key", lambda: _deploy_key(cluster, key))
        out += _guarded("connect", lambda: _connect(cluster, store))
        out += _guarded("bootstrap-secrets", lambda: _bootstrap_secrets(cluster, store, key))
    out += _guarded("etcd-snapshot", lambda: _snapshot(cluster, now, max_age))
    out += _guarded("inventory", lambda: _inventory(cluster))
    out += _guarded("charts", lambda: _charts(cluster))
    return out


def report_table(cluster: str, findings: Sequence[Finding], *, color: bool = False, width: int = 160) -> str:
    """One rich table: CHECK, STATUS (green/yellow/red with `color`), DETAIL."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"disaster recovery readiness: {cluster}",
        title_justify="left",
        box=None,
        pad_edge=False,
        header_style="bold",
    )
    for col in ("CHECK", "STATUS", "DETAIL"):
        table.add_column(col, no_wrap=col != "DETAIL")
    for f in findings:
        table.add_row(f.check, f"[{_STYLE[f.status]}]{f.status.upper()}[/]", f.detail)
    buf = io.StringIO()
    console = Console(file=buf, width=width, highlight=False, color_system="standard" if color else None)
    console.print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


def report_json(cluster: str, findings: Sequence[Finding]) -> str:
    doc: dict[str, Any] = {
        "cluster": cluster,
        "recoverable": not any(f.status == "fail" for f in findings),
        "findings": [f.to_json() for f in findings],
    }
    return json.dumps(doc, indent=2)


def verdict(cluster: str, findings: Sequence[Finding]) -> None:
    """Raise NotRecoverable naming every failed check."""
    failed = [f.check for f in findings if f.status == "fail"]
    if failed:
        raise NotRecoverable(
            f"{cluster} cannot be rebuilt from git, 1Password and the object store alone: {', '.join(failed)}",
            hint="fix the red rows, then re-run `invoke bootstrap.dr-check --cluster " + cluster + "`",
        )


# --------------------------------------------------------------------------- the end of bootstrap.cluster


def _missing_material(cluster: Cluster) -> list[str]:
    from k8s_ops import onepassword as op

    if not op.is_configured(cluster):
        return []
    return [s.kind.value for s in op.status(cluster, "age-key,talos-secrets") if s.remote_sha256 is None]


def material_push_note(cluster: Cluster) -> str | None:
    """For the dry run of bootstrap.cluster: what the run would offer to push at its end, if anything."""
    missing = _missing_material(cluster)
    if not missing:
        return None
    return f"after the plan: {' and '.join(missing)} missing in 1Password; the run asks, then pushes them"


def offer_material_push(cluster: Cluster, runner: Runner, *, yes: bool) -> None:
    """When the age key or the Talos secrets bundle is missing in 1Password, ask, then push them (never replacing
    an item that exists: a differing copy is for `op.status` to explain). No terminal and no --yes: say how."""
    from k8s_ops import onepassword as op
    from k8s_ops.core.errors import Aborted
    from k8s_ops.core.pipeline import finish
    from k8s_ops.core.plan import Plan, Step
    from k8s_ops.core.prompt import confirm
    from k8s_ops.onepassword.effects import Push

    missing = _missing_material(cluster)
    if not missing:
        return
    what = ",".join(missing)
    command = f"invoke op.push --cluster {cluster.name} --what {what}"
    try:
        confirm(cluster.name, f"push {' and '.join(missing)} to 1Password (vault {op.vault_of(cluster)})", yes=yes)
    except Aborted:
        print(f"not pushed: {what} missing in 1Password — a rebuild needs them; run `{command}`")
        return
    push = Push(cluster, what)
    step = Step(f"push {what} to 1Password (vault {op.vault_of(cluster)})", finish=(push,))
    finish(Plan(f"push {what} of {cluster.name} to 1Password", cluster.name, (step,)), runner, dry_run=False, yes=yes)
