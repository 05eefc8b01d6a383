"""k8s_ops.talos.talosconfig: client certificate signed by the os CA, CP endpoints (never the VIP), no churn, 0600."""

from __future__ import annotations

import base64
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.context import Context

from k8s_ops.core import paths
from k8s_ops.core.secret import Secret
from k8s_ops.talos.inventory import Cluster, load_cluster
from k8s_ops.talos.pki import load_private_key
from k8s_ops.talos.secrets import SecretsBundle, generate_bundle
from k8s_ops.talos.talosconfig import (
    ADMIN_ROLE,
    ClientCertificate,
    client_certificate_problem,
    issue_client_certificate,
    plan_talosconfig,
)
from k8s_ops.talos.tasks import gen_secrets, talosconfig
from tests.test_secrets_bundle import isolated, make_site  # noqa: F401  (autouse fixture re-used)

GOLDEN = paths.repo_root().parent / "shared" / "reference" / "talos" / "stability-v1.12" / "secrets.yaml"
CP_ADDRESSES = ["10.9.0.11", "10.9.0.12", "10.9.0.13"]
VIP = "10.9.0.10"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def site_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    make_site(tmp_path, monkeypatch)
    return load_cluster("c1")


def context_of(content: Secret, name: str = "c1") -> dict[str, Any]:
    doc = yaml.safe_load(content.reveal())
    assert doc["context"] == name
    entry: dict[str, Any] = doc["contexts"][name]
    return entry


def load_cert(b64: str) -> Any:
    from cryptography import x509

    return x509.load_pem_x509_certificate(base64.b64decode(b64))


def assert_signed_by_os_ca(crt_b64: str, bundle: SecretsBundle) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    ca = load_cert(bundle.os_ca.crt)
    client = load_cert(crt_b64)
    client.verify_directly_issued_by(ca)  # raises InvalidSignature if not signed by the os CA
    # and explicitly with the CA's public key, as a TLS peer would
    ca_pub = ca.public_key()
    assert isinstance(ca_pub, ed25519.Ed25519PublicKey)
    ca_pub.verify(client.signature, client.tbs_certificate_bytes)


def test_client_certificate_is_an_os_admin_ed25519_cert_signed_by_the_os_ca() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    bundle = generate_bundle(now=NOW)
    client = issue_client_certificate(bundle, now=NOW)
    assert_signed_by_os_ca(client.crt, bundle)
    cert = load_cert(client.crt)
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [ADMIN_ROLE]
    assert cert.issuer == load_cert(bundle.os_ca.crt).subject
    assert isinstance(cert.public_key(), ed25519.Ed25519PublicKey)
    assert cert.not_valid_before_utc == NOW and cert.not_valid_after_utc == NOW + timedelta(days=365)
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    key_pem = base64.b64decode(client.key.reveal())
    assert key_pem.startswith(b"-----BEGIN ED25519 PRIVATE KEY-----")
    assert client_certificate_problem(client.crt, client.key, bundle, now=NOW) is None
    assert isinstance(load_private_key(key_pem), ed25519.Ed25519PrivateKey)


@pytest.mark.skipif(not GOLDEN.is_file(), reason=f"{GOLDEN} is absent (../shared not checked out)")
def test_client_certificate_from_the_talos_golden_bundle_verifies() -> None:
    golden = SecretsBundle.from_yaml(GOLDEN.read_bytes())
    client = issue_client_certificate(golden, now=NOW)
    assert_signed_by_os_ca(client.crt, golden)


def test_talosconfig_uses_controlplane_endpoints_never_the_vip(site_cluster: Cluster) -> None:
    bundle = generate_bundle(now=NOW)
    result = plan_talosconfig(site_cluster, bundle, existing=None, now=NOW)
    assert result.action == "create"
    entry = context_of(result.content)
    assert entry["endpoints"] == CP_ADDRESSES and VIP not in entry["endpoints"]
    assert entry["nodes"] == CP_ADDRESSES[:1]
    assert entry["ca"] == bundle.os_ca.crt
    assert_signed_by_os_ca(entry["crt"], bundle)
    assert str(result.content) == "***"


def test_rerun_keeps_a_valid_certificate(site_cluster: Cluster) -> None:
    bundle = generate_bundle(now=NOW)
    first = plan_talosconfig(site_cluster, bundle, existing=None, now=NOW)
    again = plan_talosconfig(site_cluster, bundle, existing=first.content.reveal(), now=NOW + timedelta(days=100))
    assert again.action == "keep" and again.content == first.content


def test_endpoint_change_keeps_the_certificate(site_cluster: Cluster) -> None:
    bundle = generate_bundle(now=NOW)
    first = plan_talosconfig(site_cluster, bundle, existing=None, now=NOW)
    stale = yaml.safe_load(first.content.reveal())
    stale["contexts"]["c1"]["endpoints"] = [VIP]
    result = plan_talosconfig(site_cluster, bundle, existing=yaml.safe_dump(stale).encode(), now=NOW)
    assert result.action == "update"
    assert context_of(result.content)["endpoints"] == CP_ADDRESSES
    assert context_of(result.content)["crt"] == context_of(first.content)["crt"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("other-ca", "different CA"),
        ("expiring", "expires"),
        ("force", "--force"),
        ("foreign-cert", "not issued by"),
    ],
)
def test_certificate_is_renewed_when_needed(site_cluster: Cluster, change: str, reason: str) -> None:
    bundle = generate_bundle(now=NOW)
    first = plan_talosconfig(site_cluster, bundle, existing=None, now=NOW)
    existing = first.content.reveal()
    now, force, use = NOW, False, bundle
    if change == "other-ca":
        use = generate_bundle(now=NOW)
    elif change == "expiring":
        now = NOW + timedelta(days=350)
    elif change == "force":
        force = True
    else:
        doc = yaml.safe_load(existing)
        foreign = issue_client_certificate(generate_bundle(now=NOW), now=NOW)
        doc["contexts"]["c1"]["crt"], doc["contexts"]["c1"]["key"] = foreign.crt, foreign.key.reveal_text()
        existing = yaml.safe_dump(doc).encode()
    result = plan_talosconfig(site_cluster, use, existing=existing, force=force, now=now)
    assert result.action == "renew" and reason in result.reason
    entry = context_of(result.content)
    assert entry["crt"] != context_of(first.content)["crt"]
    assert_signed_by_os_ca(entry["crt"], use)


def test_mismatched_key_is_detected() -> None:
    bundle = generate_bundle(now=NOW)
    a, b = issue_client_certificate(bundle, now=NOW), issue_client_certificate(bundle, now=NOW)
    assert client_certificate_problem(a.crt, b.key, bundle, now=NOW) == "the client key does not match the certificate"
    assert "cannot be parsed" in str(client_certificate_problem("eA==", a.key, bundle, now=NOW))
    bad = ClientCertificate(crt=a.crt, key=Secret(base64.b64encode(b"-----BEGIN X-----\n")))
    assert client_certificate_problem(bad.crt, bad.key, bundle, now=NOW) is not None


def test_task_writes_0600_and_does_not_churn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    make_site(tmp_path, monkeypatch)
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(tmp_path / "build"))
    gen_secrets(Context(), cluster="c1", yes=True)
    talosconfig(Context(), cluster="c1", dry_run=True)
    assert "[1] create " in capsys.readouterr().out
    path = paths.talosconfig_path("c1")
    assert not path.exists()
    talosconfig(Context(), cluster="c1")
    assert path.parent == tmp_path / "build" / "c1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    entry = yaml.safe_load(first)["contexts"]["c1"]
    assert entry["endpoints"] == CP_ADDRESSES and entry["nodes"] == CP_ADDRESSES[:1]
    path.chmod(0o644)
    talosconfig(Context(), cluster="c1")
    assert path.read_bytes() == first and stat.S_IMODE(path.stat().st_mode) == 0o600
    talosconfig(Context(), cluster="c1", force=True)
    assert yaml.safe_load(path.read_bytes())["contexts"]["c1"]["crt"] != entry["crt"]
    out = capsys.readouterr().out
    assert "up to date" in out and "renewed" in out
    assert "AGE-SECRET-KEY" not in out and entry["key"] not in out
