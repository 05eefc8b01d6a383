"""The object store for off-box etcd snapshots: any S3-compatible API (Cloudflare R2, AWS S3, MinIO…) through boto3.

boto3 is imported lazily (inside `S3Store.__init__`), so nothing pays for it unless a backup target is used.
Every botocore failure becomes a `BackupStoreError` naming the endpoint, bucket and key — never the credentials.

Credentials (`credentials_for(target, vault)`): the inventory's `backups.etcd.credentials.onepassword` item (two
fields, read with the 1Password SDK in memory: never on argv, never on disk), else the standard
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and optional `AWS_SESSION_TOKEN`) environment variables. Nothing
else: no `~/.aws` profile is read, so a stray profile can never send a cluster's snapshots elsewhere.

API (used by k8s_ops/backups/etcd.py and by the disaster-recovery tasks):

    store = S3Store.for_target(target, credentials)      # or S3Store(endpoint, bucket, region, credentials)
    store.list(prefix) -> list[ObjectInfo]                # every object under prefix (paginated), key order
    store.head(key) -> ObjectInfo | None                  # size, ETag, last modified, user metadata
    store.upload_file(path, key, metadata) -> ObjectInfo  # single PUT up to 5 GiB (ETag = MD5), multipart above
    store.put_bytes(key, data, content_type) / store.get_bytes(key)
    store.download(key, dest) -> Path                     # to dest (0600, atomic), size checked against HEAD
    store.delete(keys)
    store.describe(key) -> "s3://bucket/key (endpoint)"
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from k8s_ops.core.errors import SecretError, ToolkitError
from k8s_ops.core.secret import Secret

if TYPE_CHECKING:
    from k8s_ops.talos.inventory.models import EtcdBackupTarget

__all__ = [
    "ENV_ACCESS_KEY",
    "ENV_SECRET_KEY",
    "ENV_SESSION_TOKEN",
    "BackupStoreError",
    "ObjectInfo",
    "S3Credentials",
    "S3Store",
    "credentials_for",
    "credentials_from_env",
]

ENV_ACCESS_KEY: Final = "AWS_ACCESS_KEY_ID"
ENV_SECRET_KEY: Final = "AWS_SECRET_ACCESS_KEY"
ENV_SESSION_TOKEN: Final = "AWS_SESSION_TOKEN"
SINGLE_PUT_LIMIT: Final = 5 * 1024**3  # S3's PutObject maximum; above it the upload is multipart


class BackupStoreError(ToolkitError):
    """The object store refused or could not be reached."""


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair; `source` says where it came from (shown in plans), the secret half is a `Secret`."""

    access_key_id: Secret = field(repr=False)
    secret_access_key: Secret = field(repr=False)
    session_token: Secret | None = field(default=None, repr=False)
    source: str = ""


def credentials_from_env(env: Mapping[str, str] | None = None) -> S3Credentials:
    """The standard AWS environment variables; SecretError naming the missing one."""
    env = os.environ if env is None else env
    key, secret = env.get(ENV_ACCESS_KEY, "").strip(), env.get(ENV_SECRET_KEY, "").strip()
    missing = [name for name, value in ((ENV_ACCESS_KEY, key), (ENV_SECRET_KEY, secret)) if not value]
    if missing:
        raise SecretError(
            f"no object store credentials: {' and '.join(missing)} not set",
            hint="export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or set backups.etcd.credentials.onepassword.item "
            "in cluster.yaml",
        )
    token = env.get(ENV_SESSION_TOKEN, "").strip()
    return S3Credentials(Secret(key), Secret(secret), Secret(token) if token else None, source="environment")


def credentials_for(target: EtcdBackupTarget, vault: str | None) -> S3Credentials:
    """The target's credentials: its 1Password item (SDK, `$OP_SERVICE_ACCOUNT_TOKEN`) or the environment."""
    item = target.credentials.onepassword
    if item is None:
        return credentials_from_env()
    if vault is None:
        raise SecretError(
            "backups.etcd.credentials.onepassword needs onepassword.vault in cluster.yaml",
            hint="add `onepassword: {vault: <vault title>}`",
        )
    from k8s_ops.onepassword.sdk import open_store

    with open_store(vault) as store:
        key = store.field(item.item, item.access_key_id_field)
        secret = store.field(item.item, item.secret_access_key_field)
    return S3Credentials(key, secret, source=f"1Password item {item.item!r} (vault {vault!r})")


@dataclass(frozen=True)
class ObjectInfo:
    """One object: key, size in bytes, ETag without quotes, last modified (UTC), user metadata (lower-case keys)."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)


def _error_text(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        err = response.get("Error") or {}
        code, message = err.get("Code", ""), err.get("Message", "")
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        text = " ".join(str(p) for p in (code, message) if p) or type(exc).__name__
        return f"{text} (HTTP {status})" if status else text
    return str(exc).strip() or type(exc).__name__


def _not_found(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return False
    code = str((response.get("Error") or {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3Store:
    """One bucket on one S3-compatible endpoint."""

    def __init__(
        self, endpoint: str, bucket: str, region: str, credentials: S3Credentials, *, timeout: float = 60.0
    ) -> None:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.source = credentials.source
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},  # R2 and MinIO; no DNS per bucket needed
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=min(timeout, 15.0),
            read_timeout=timeout,
            # Checksums only where the API requires them: S3-compatible stores differ in the newer
            # default CRC headers; integrity is checked here against the recorded SHA-256 and the ETag.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=credentials.access_key_id.reveal_text(),
            aws_secret_access_key=credentials.secret_access_key.reveal_text(),
            aws_session_token=credentials.session_token.reveal_text() if credentials.session_token else None,
            config=config,
        )

    @classmethod
    def for_target(cls, target: EtcdBackupTarget, credentials: S3Credentials) -> S3Store:
        return cls(target.endpoint, target.bucket, target.region, credentials)

    def describe(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key} ({self.endpoint})"

    def _fail(self, what: str, key: str, exc: BaseException) -> BackupStoreError:
        return BackupStoreError(
            f"object store: {what} {self.describe(key)} failed: {_error_text(exc)}",
            hint="check backups.etcd (endpoint, bucket, region) in cluster.yaml and the credentials "
            f"({self.source or 'environment'})",
        )

    def _call(self, what: str, key: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(what, key, exc) from None

    # ---- reads

    def list(self, prefix: str) -> list[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        out: list[ObjectInfo] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", ()):
                    out.append(
                        ObjectInfo(
                            key=obj["Key"],
                            size=int(obj["Size"]),
                            etag=str(obj.get("ETag", "")).strip('"'),
                            last_modified=_utc(obj["LastModified"]),
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("listing", prefix, exc) from None
        return sorted(out, key=lambda o: o.key)

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            r = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise self._fail("reading", key, exc) from None
        except BotoCoreError as exc:
            raise self._fail("reading", key, exc) from None
        return ObjectInfo(
            key=key,
            size=int(r["ContentLength"]),
            etag=str(r.get("ETag", "")).strip('"'),
            last_modified=_utc(r["LastModified"]),
            metadata={str(k).lower(): str(v) for k, v in (r.get("Metadata") or {}).items()},
        )

    def get_bytes(self, key: str) -> bytes:
        r = self._call("downloading", key, self._client.get_object, Bucket=self.bucket, Key=key)
        data: bytes = r["Body"].read()
        return data

    def download(self, key: str, dest: Path) -> Path:
        """Download to `dest` (0600, written to a temp file beside it, then renamed); the size must match HEAD."""
        info = self.head(key)
        if info is None:
            raise BackupStoreError(f"object store: {self.describe(key)} does not exist")
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        os.fchmod(fd, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                self._call("downloading", key, self._client.download_fileobj, Bucket=self.bucket, Key=key, Fileobj=f)
            size = os.path.getsize(tmp)
            if size != info.size:
                raise BackupStoreError(
                    f"object store: downloaded {size} bytes of {self.describe(key)}, expected {info.size}"
                )
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    # ---- writes

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/json") -> ObjectInfo:
        self._call(
            "uploading", key, self._client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
        )
        info = self.head(key)
        if info is None or info.size != len(data):
            raise BackupStoreError(f"object store: {self.describe(key)} was not stored ({len(data)} bytes sent)")
        return info

    def upload_file(self, path: Path, key: str, metadata: Mapping[str, str]) -> ObjectInfo:
        """Upload `path` with user `metadata` (ASCII values); returns what HEAD reports afterwards."""
        size = path.stat().st_size
        meta = {k: str(v) for k, v in metadata.items()}
        if size <= SINGLE_PUT_LIMIT:
            with path.open("rb") as body:
                self._call(
                    "uploading",
                    key,
                    self._client.put_object,
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=size,
                    ContentType="application/octet-stream",
                    Metadata=meta,
                )
        else:
            extra = {"Metadata": meta, "ContentType": "application/octet-stream"}
            self._call(
                "uploading", key, self._client.upload_file, Filename=str(path), Bucket=self.bucket, Key=key,
                ExtraArgs=extra,
            )  # fmt: skip
        info = self.head(key)
        if info is None:
            raise BackupStoreError(f"object store: {self.describe(key)} is missing right after the upload")
        return info

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:  # one by one: some S3-compatible stores lack DeleteObjects or its Content-MD5 rules
            self._call("deleting", key, self._client.delete_object, Bucket=self.bucket, Key=key)


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)
