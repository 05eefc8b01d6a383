"""op.* tasks: keep the files a cluster cannot be recovered without in 1Password (see k8s_ops.onepassword)."""

from __future__ import annotations

from collections.abc import Sequence

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded
from k8s_ops.core.errors import SecretError
from k8s_ops.core.pipeline import CLUSTER_HELP
from k8s_ops.onepassword import api, report
from k8s_ops.onepassword.artefacts import parse_what
from k8s_ops.onepassword.sync import Action
from k8s_ops.talos.inventory import load_cluster

_WHAT = "kubeconfig|talosconfig|age-key|talos-secrets|all, or a comma-separated list (default: all)"
_COMMON = {
    "cluster": CLUSTER_HELP + "; its cluster.yaml's onepassword.vault is used",
    "what": _WHAT,
    "dry-run": "show what would be done (titles and sha256 digests, never content); change nothing",
    "json": "print the result as JSON",
}


def _emit(text: str) -> None:
    print(text)


def _show(
    operation: str, cluster: str, vault: str, results: Sequence[api.ItemResult], *, json: bool, note: str
) -> None:
    _emit(report.results_json(results) if json else report.results_text(operation, cluster, vault, results, note=note))


@task(
    help={
        **_COMMON,
        "force": "overwrite 1Password copies that changed since this machine last synced them",
    }
)
@guarded
def push(
    c: Context, cluster: str, what: str = "all", force: bool = False, dry_run: bool = False, json: bool = False
) -> None:
    """Store kubeconfig, talosconfig, SOPS age key and the encrypted Talos secrets bundle in 1Password.

    Byte for byte (base64 + sha256 in a Secure Note per item: kubeconfig-<cluster>, talosconfig-<cluster>,
    sops-age-key-<cluster>, talos-secrets-<cluster>). Unchanged items are skipped. A 1Password copy that
    changed since this machine last pushed or pulled it is not overwritten without --force. Needs
    OP_SERVICE_ACCOUNT_TOKEN. Prints each item's op:// reference.
    """
    cl = load_cluster(cluster)
    kinds = parse_what(what)
    with api.open_cluster_store(cl) as store:
        try:
            results = api.push(cl, kinds, store=store, force=force, dry_run=dry_run)
        except api.SyncRefused as exc:
            _show("op.push", cl.name, store.vault, exc.results, json=json, note="refused, nothing was changed")
            raise
        _show(
            "op.push", cl.name, store.vault, results, json=json, note="dry run, nothing changed" if dry_run else "done"
        )
    _fail_if_blocked("op.push", results)


@task(
    help={
        **_COMMON,
        "force": "overwrite local files that differ (also replaces an existing secrets bundle)",
        "only-missing": "write only files that do not exist locally; keep every existing file",
    }
)
@guarded
def pull(
    c: Context,
    cluster: str,
    what: str = "all",
    force: bool = False,
    only_missing: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Restore kubeconfig, talosconfig, SOPS age key and the encrypted Talos secrets from 1Password.

    Files are written atomically with mode 0600; their content is never printed. The age key goes to
    $SOPS_AGE_KEY_FILE, else ~/.config/k8s-ops/age.agekey. A local file changed since the last sync is not
    overwritten without --force; the committed secrets bundle is only restored when missing (or --force).
    Needs OP_SERVICE_ACCOUNT_TOKEN.
    """
    cl = load_cluster(cluster)
    kinds = parse_what(what)
    with api.open_cluster_store(cl) as store:
        try:
            results = api.pull(cl, kinds, store=store, force=force, only_missing=only_missing, dry_run=dry_run)
        except api.SyncRefused as exc:
            _show("op.pull", cl.name, store.vault, exc.results, json=json, note="refused, nothing was changed")
            raise
        _show(
            "op.pull", cl.name, store.vault, results, json=json, note="dry run, nothing changed" if dry_run else "done"
        )
    _fail_if_blocked("op.pull", results)


@task(help={"cluster": _COMMON["cluster"], "what": _WHAT, "json": _COMMON["json"]})
@guarded
def status(c: Context, cluster: str, what: str = "all", json: bool = False) -> None:
    """Compare each item: local vs 1Password sha256, the digest last synced from here, and which is newer."""
    cl = load_cluster(cluster)
    kinds = parse_what(what)
    with api.open_cluster_store(cl) as store:
        statuses = api.status(cl, kinds, store=store)
        _emit(report.status_json(statuses) if json else report.status_text(cl.name, store.vault, statuses))


def _fail_if_blocked(operation: str, results: list[api.ItemResult]) -> None:
    # Only a dry run gets here with refusals (a real run raised SyncRefused): exit non-zero all the same.
    bad = [r.title for r in results if r.action in (Action.REFUSE, Action.MISSING)]
    if bad:
        raise SecretError(f"{operation} would refuse or miss: {', '.join(bad)} (see above)")
