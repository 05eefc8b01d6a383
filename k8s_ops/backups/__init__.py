"""Off-box backups: etcd snapshots verified, described and kept in an S3-compatible object store.

Modules (small, named for what they hold):

* `snapshot` — etcd's SHA-256 integrity trailer: `verify_file(path) -> SnapshotCheck`, `SnapshotCorrupt`.
* `s3` — the object store over boto3 (imported lazily): `S3Store` (list, head, upload_file, put_bytes, get_bytes,
  download, delete), `credentials_for(target, vault)` (1Password item via the SDK, else `AWS_ACCESS_KEY_ID` /
  `AWS_SECRET_ACCESS_KEY`), `BackupStoreError`.
* `catalog` — names (`<prefix>/<cluster>/<UTC time>.db`), the `Sidecar` JSON beside each snapshot, local and remote
  listings (`Backup`, verified = a matching sidecar), retention (`plan_retention`).
* `etcd` — plan steps and entry points: `Remote.for_cluster(cluster)`, `snapshot_steps` (take → verify → record →
  upload → read back), `with_offsite_snapshot` (talos.upgrade-cluster), `listing`/`plan_prune`, and for a recovery
  `fetch_for_recovery(spec, cluster, remote=, dest_dir=) -> RecoverySnapshot` / `fetch_step(...)` where spec is
  `latest`, an object key or name, or a local file.

The tasks are `talos.etcd-snapshot [--upload]` and `talos.etcd-backups [--prune]` (k8s_ops/talos/tasks.py); the
inventory section is `backups.etcd` (k8s_ops/talos/inventory/models.py `EtcdBackupTarget`).
"""
