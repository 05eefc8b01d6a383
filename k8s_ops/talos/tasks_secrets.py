"""Tasks `talos.gen-secrets` and `talos.talosconfig`: the secrets bundle and the client config built from it."""

from __future__ import annotations

import json as _json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded

if TYPE_CHECKING:
    from k8s_ops.talos.secrets import NewBundleTarget
    from k8s_ops.tools.sops import AgeKey

__all__ = ["gen_secrets", "talosconfig"]


@task(
    help={
        "cluster": "cluster name (directory under the clusters dir, K8S_OPS_CLUSTERS_DIR overrides it)",
        "dry-run": "show what would be generated and where it would be written; change nothing",
        "json": "with --dry-run: print the plan as JSON",
    }
)
@guarded
def gen_secrets(c: Context, cluster: str, dry_run: bool = False, json: bool = False) -> None:
    """Create a cluster's Talos secrets bundle (talosctl gen secrets shape), sops-encrypted; never overwrites.

    Generates CAs, keys and tokens in Python, encrypts them with sops to the recipients of the `.sops.yaml`
    rule matching clusters/<cluster>/talos/secrets.sops.yaml (plaintext only via stdin), checks the result
    decrypts back when your age key is at hand, and creates the file. An existing bundle is never replaced:
    new CAs would lock the running cluster's nodes and clients out.
    """
    from k8s_ops.talos.secrets import (
        ciphertext_recipients,
        encrypt_bundle,
        generate_bundle,
        new_bundle_target,
        refuse_existing,
        verify_round_trip,
        write_new_file,
    )

    target = new_bundle_target(cluster)
    if dry_run:
        print(_json.dumps(target.to_json(), indent=2) if json else target.describe())
        return
    bundle = generate_bundle()
    ciphertext = encrypt_bundle(target, bundle)
    recipients = ciphertext_recipients(ciphertext)
    key = _verification_key(target)
    if key is None:
        print("note: no age key at hand, so the round trip was not verified", file=sys.stderr)
    elif set(key.recipients()) & set(recipients):
        verify_round_trip(ciphertext, bundle, key)
    else:
        print(
            f"note: your age key ({key.describe()}) is not a recipient of this bundle; "
            "only the holders of: " + ", ".join(recipients) + " can decrypt it",
            file=sys.stderr,
        )
    refuse_existing(target.path, cluster)
    write_new_file(target.path, ciphertext)
    print(f"wrote {target.path} (encrypted to {', '.join(recipients)})")
    print("commit it; keep the age key safe: losing it means losing the cluster's CAs")


def _verification_key(target: NewBundleTarget) -> AgeKey | None:
    """The key gen-secrets uses to prove the new bundle decrypts: the cluster's key if one can be found."""
    from k8s_ops.talos.inventory import CLUSTER_FILE, load_cluster
    from k8s_ops.talos.secrets import age_key_for
    from k8s_ops.tools.sops import AgeKeyNotFound, resolve_age_key

    cdir = target.path.parent.parent
    try:
        if (cdir / CLUSTER_FILE).is_file():
            return age_key_for(load_cluster(target.cluster, clusters_dir=cdir.parent))
        return resolve_age_key(cluster=target.cluster)
    except AgeKeyNotFound:
        return None


@task(
    help={
        "cluster": "cluster name (directory under the clusters dir)",
        "force": "issue a new client certificate even if the existing one is still valid",
        "dry-run": "say what would be written (create / keep / update / renew) without writing",
        "json": "with --dry-run: print the decision as JSON",
    }
)
@guarded
def talosconfig(c: Context, cluster: str, force: bool = False, dry_run: bool = False, json: bool = False) -> None:
    """Write build/<cluster>/talosconfig (0600) from the secrets bundle, without talosctl.

    The client certificate (role os:admin, 1 year) is signed by the bundle's os CA. Endpoints are every
    controlplane address, never the VIP; nodes is the first controlplane. A still-valid certificate is kept
    (no churn) unless --force, the CA changed, or it expires within 30 days.
    """
    from k8s_ops.core import paths
    from k8s_ops.core.files import write_private
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.secrets import load_bundle
    from k8s_ops.talos.talosconfig import plan_talosconfig

    inventory = load_cluster(cluster)
    bundle = load_bundle(inventory)
    path = paths.talosconfig_path(cluster)
    existing = _read_existing(path)
    result = plan_talosconfig(inventory, bundle, existing=existing, force=force)
    if dry_run:
        if json:
            print(_json.dumps({"action": result.action, "path": str(path), "reason": result.reason}, indent=2))
        else:
            print(f"would {result.action} {path}: {result.reason}")
        return
    if result.action == "keep":
        write_private(path, existing or b"")  # re-asserts mode 0600 if it drifted; unchanged bytes
        print(f"{path}: {result.reason}")
        return
    write_private(path, result.content.reveal())
    done = {"create": "created", "update": "updated", "renew": "renewed"}[result.action]
    print(f"{done} {path} (0600): {result.reason}")


def _read_existing(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
