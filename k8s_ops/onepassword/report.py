"""Plain-text and JSON renderings of push/pull results and status. Digests and titles only, never content."""

from __future__ import annotations

import json
from collections.abc import Sequence

from k8s_ops.onepassword.api import ItemResult, ItemStatus
from k8s_ops.onepassword.store import CONTENT_FIELD
from k8s_ops.onepassword.sync import Action

__all__ = ["results_json", "results_text", "short", "status_json", "status_text"]


def short(sha: str | None) -> str:
    return f"sha256:{sha[:12]}" if sha else "-"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def results_text(operation: str, cluster: str, vault: str, results: Sequence[ItemResult], *, note: str) -> str:
    lines = [f"{operation} --cluster {cluster}: 1Password vault {vault!r} ({note})"]
    if not results:
        return "\n".join([*lines, "  (no items)"])
    rows = [["ACTION", "ITEM", "LOCAL", "1PASSWORD", "FILE", "WHY"]]
    for r in results:
        action = r.action.value if r.done or not r.action.changes else f"would {r.action.value}"
        rows.append([action, r.title, short(r.local_sha256), short(r.remote_sha256), r.location, r.reason])
    lines += _table(rows)
    # After a push (or in its preview), where each item lives; not after a refusal, when nothing was created.
    refs = [r for r in results if r.reference and r.action in (Action.CREATE, Action.UPDATE, Action.UNCHANGED)]
    if operation == "op.push" and refs and all(r.action not in (Action.REFUSE, Action.MISSING) for r in results):
        lines.append(f"op:// references ('{CONTENT_FIELD}' is the file in base64; `invoke op.pull` restores it):")
        lines += _table([[r.title, r.reference or ""] for r in refs])
    return "\n".join(lines)


def status_text(cluster: str, vault: str, statuses: Sequence[ItemStatus]) -> str:
    lines = [f"op.status --cluster {cluster}: 1Password vault {vault!r}"]
    rows = [["ITEM", "LOCAL", "1PASSWORD", "LAST SYNC", "STATE", "NEWER", "NEXT"]]
    for s in statuses:
        newer = s.newer if s.basis == "content" else f"{s.newer} (by {s.basis})"
        rows.append(
            [s.title, short(s.local_sha256), short(s.remote_sha256), short(s.last_sha256), s.state.value, newer, s.hint]
        )
    lines += _table(rows)
    lines += [f"  {s.title}: {s.problem}" for s in statuses if s.problem]
    return "\n".join(lines)


def results_json(results: Sequence[ItemResult]) -> str:
    return json.dumps([r.to_json() for r in results], indent=2)


def status_json(statuses: Sequence[ItemStatus]) -> str:
    return json.dumps([s.to_json() for s in statuses], indent=2)
