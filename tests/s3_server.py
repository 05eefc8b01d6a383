"""A real S3-compatible server on loopback for tests: moto's `ThreadedMotoServer` speaking the S3 REST API over
HTTP on 127.0.0.1 (an ephemeral port), so the code under test signs and sends real requests through boto3 — never
a mocked client.

Fixtures (import them into a test module: `from tests.s3_server import s3, s3_server  # noqa: F401`):

* `s3_server` (module scope) — the server, started before the module's first test and stopped after its last.
* `s3` — per test: the server's state reset, one empty bucket (`S3.bucket`, "etcd-backups"), and the standard
  `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` set for the code under test. `S3.client()` is a boto3 client for
  assertions; `S3.backups_yaml(prefix=…)` is a cluster.yaml `backups:` section pointing at it.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "us-east-1"
ACCESS_KEY = "AKIATESTETCDBACKUPS0"
SECRET_KEY = "test-secret-key-for-the-loopback-s3-server"


@dataclass(frozen=True)
class S3:
    endpoint: str
    bucket: str = "etcd-backups"
    region: str = REGION

    def client(self) -> Any:
        import boto3  # type: ignore[import-untyped]

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def objects(self, prefix: str = "") -> list[str]:
        r = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in r.get("Contents", []))

    def backups_yaml(self, *, prefix: str = "etcd", keep_last: int = 7, keep_daily_days: int = 30) -> str:
        return (
            "backups:\n"
            "  etcd:\n"
            f"    endpoint: {self.endpoint}\n"
            f"    bucket: {self.bucket}\n"
            f"    prefix: {prefix}\n"
            f"    region: {self.region}\n"
            "    retention:\n"
            f"      keepLast: {keep_last}\n"
            f"      keepDailyDays: {keep_daily_days}\n"
        )


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server running in this process for the module's tests."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A fresh bucket on the loopback server, and the AWS environment variables pointing the toolkit at it."""
    reset = urllib.request.Request(f"{s3_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(reset, timeout=10):
        pass
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    s = S3(s3_server)
    s.client().create_bucket(Bucket=s.bucket)
    return s
