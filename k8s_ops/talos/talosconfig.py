"""Build a talosconfig from the secrets bundle, in Python (no talosctl).

The client certificate mirrors Talos' `secrets.NewAdminCertificateAndKey` (v1.12): a fresh key of the CA's type
(ED25519 for the os CA), subject O=os:admin (the role), NotBefore now, NotAfter now + 1 year
(`TalosAPIDefaultCertificateValidityDuration`), key usage digitalSignature (critical), EKU clientAuth, signed
by `certs.os`. The file's shape is talosctl's::

    context: <cluster>
    contexts:
        <cluster>:
            endpoints: [<every controlplane address>]   # never the VIP: it moves with etcd leadership and
            nodes: [<first controlplane>]               # is unreachable while the cluster is down
            ca: <base64 PEM of certs.os.crt>
            crt: <base64 PEM client certificate>
            key: <base64 PEM client key>

Re-running keeps a still-valid client certificate (same CA, verifies, not expiring within RENEW_BEFORE), so
the file does not churn; only endpoints/nodes are refreshed from the inventory.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

import yaml

from k8s_ops.core.errors import SecretError
from k8s_ops.core.secret import Secret
from k8s_ops.talos import yamlio
from k8s_ops.talos.pki import issue_client_certificate as issue_certificate
from k8s_ops.talos.pki import load_private_key, private_key_pem
from k8s_ops.talos.secrets import SecretsBundle
from k8s_ops.tools.talosctl import talos_endpoints

if TYPE_CHECKING:
    from pathlib import Path

    from k8s_ops.core.plan import FileWrite
    from k8s_ops.talos.inventory import Cluster

__all__ = [
    "ADMIN_ROLE",
    "CLIENT_CERT_TTL",
    "RENEW_BEFORE",
    "ClientCertificate",
    "TalosconfigResult",
    "build_talosconfig",
    "client_certificate_problem",
    "endpoints_and_nodes",
    "issue_client_certificate",
    "plan_talosconfig",
    "read_existing",
    "talosconfig_write",
]

ADMIN_ROLE: Final = "os:admin"
#: Talos `TalosAPIDefaultCertificateValidityDuration` (1 year).
CLIENT_CERT_TTL: Final = timedelta(days=365)
#: A kept certificate must stay valid at least this long, else it is renewed.
RENEW_BEFORE: Final = timedelta(days=30)

Action = Literal["create", "keep", "update", "renew"]


@dataclass(frozen=True)
class ClientCertificate:
    """A Talos API client certificate (public) and key (secret), both base64 PEM as talosconfig stores them."""

    crt: str
    key: Secret


@dataclass(frozen=True)
class TalosconfigResult:
    """The talosconfig to have on disk and why: create, keep (identical), update (endpoints), renew (new cert)."""

    content: Secret
    action: Action
    reason: str


def issue_client_certificate(
    bundle: SecretsBundle,
    *,
    roles: Sequence[str] = (ADMIN_ROLE,),
    now: datetime | None = None,
    ttl: timedelta = CLIENT_CERT_TTL,
) -> ClientCertificate:
    """A client certificate for the Talos API signed by the bundle's os CA (`NewAdminCertificateAndKey`)."""
    from cryptography.hazmat.primitives import serialization

    when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    ca_key = load_private_key(bundle.os_ca.key_pem().reveal())
    cert, client_key = issue_certificate(bundle.os_ca.crt_pem, ca_key, orgs=roles, now=when, ttl=ttl)
    crt_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = private_key_pem(client_key)
    return ClientCertificate(crt=base64.b64encode(crt_pem).decode(), key=Secret(base64.b64encode(key_pem)))


def endpoints_and_nodes(cluster: Cluster) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Endpoints: every controlplane address (never the VIP). Nodes: the first controlplane."""
    endpoints = talos_endpoints(cluster)
    if not endpoints:
        raise SecretError(f"cluster {cluster.name!r} has no controlplane address to use as a talosconfig endpoint")
    return endpoints, endpoints[:1]


def build_talosconfig(
    context: str, *, endpoints: Sequence[str], nodes: Sequence[str], ca: str, client: ClientCertificate
) -> Secret:
    """The talosconfig YAML (talosctl's layout, 4-space indent) as a Secret: it holds a private key."""
    doc = {
        "context": context,
        "contexts": {
            context: {
                "endpoints": list(endpoints),
                "nodes": list(nodes),
                "ca": ca,
                "crt": client.crt,
                "key": client.key.reveal_text(),
            }
        },
    }
    return Secret(yaml.safe_dump(doc, sort_keys=False, indent=4, default_flow_style=False, width=1 << 16))


def client_certificate_problem(
    crt_b64: str, key_b64: Secret, bundle: SecretsBundle, *, now: datetime | None = None
) -> str | None:
    """Why an existing client certificate must be replaced, or None if it is fine to keep."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    when = now or datetime.now(UTC)
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(crt_b64))
        key = load_private_key(base64.b64decode(key_b64.reveal()))
        ca_cert = x509.load_pem_x509_certificate(bundle.os_ca.crt_pem)
    except (ValueError, TypeError, SecretError):
        return "the client certificate or key cannot be parsed"
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "the client certificate was not issued by this cluster's os CA"
    pub = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*pub) != cert.public_key().public_bytes(*pub):
        return "the client key does not match the certificate"
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if ADMIN_ROLE not in orgs:
        return f"the client certificate lacks the {ADMIN_ROLE} role"
    if cert.not_valid_before_utc > when:
        return "the client certificate is not valid yet"
    if cert.not_valid_after_utc - when < RENEW_BEFORE:
        expiry = f"{cert.not_valid_after_utc:%Y-%m-%d}"
        return f"the client certificate expires {expiry} (renewed {RENEW_BEFORE.days} days ahead)"
    return None


def _existing_entry(existing: bytes | None, context: str) -> Mapping[str, Any] | None:
    if not existing:
        return None
    try:
        doc = yamlio.load_document(existing)
    except yamlio.YAMLError:
        return None
    contexts = doc.get("contexts") if isinstance(doc, Mapping) else None
    entry = contexts.get(context) if isinstance(contexts, Mapping) else None
    return entry if isinstance(entry, Mapping) else None


def plan_talosconfig(
    cluster: Cluster,
    bundle: SecretsBundle,
    *,
    existing: bytes | None,
    force: bool = False,
    now: datetime | None = None,
) -> TalosconfigResult:
    """Decide the talosconfig content: keep a valid client certificate, renew it only when needed or forced."""
    endpoints, nodes = endpoints_and_nodes(cluster)
    ca = bundle.os_ca.crt
    entry = _existing_entry(existing, cluster.name)

    client: ClientCertificate | None = None
    if entry is None:
        action: Action = "create"
        reason = "no talosconfig yet" if not existing else f"no usable context {cluster.name!r} in the existing file"
    elif force:
        action, reason = "renew", "--force: issuing a new client certificate"
    elif entry.get("ca") != ca:
        action, reason = "renew", "the existing talosconfig trusts a different CA (secrets bundle changed)"
    elif not isinstance(entry.get("crt"), str) or not isinstance(entry.get("key"), str):
        action, reason = "renew", "the existing talosconfig has no client certificate"
    else:
        problem = client_certificate_problem(entry["crt"], Secret(entry["key"]), bundle, now=now)
        if problem:
            action, reason = "renew", problem
        else:
            client = ClientCertificate(crt=entry["crt"], key=Secret(entry["key"]))
            action, reason = "update", "client certificate still valid; endpoints/nodes refreshed from the inventory"
    if client is None:
        client = issue_client_certificate(bundle, now=now)
    content = build_talosconfig(cluster.name, endpoints=endpoints, nodes=nodes, ca=ca, client=client)
    if action == "update" and existing is not None and content.reveal() == existing:
        action, reason = "keep", "up to date (valid client certificate, same endpoints)"
    return TalosconfigResult(content=content, action=action, reason=reason)


def read_existing(path: Path) -> bytes | None:
    """The talosconfig already at `path` (None when there is none), read bounded: a FIFO, device or huge file there
    is refused, never blocked on."""
    from k8s_ops.core.errors import ToolkitError

    try:
        return yamlio.read_bytes(path)
    except FileNotFoundError:
        return None
    except yamlio.YAMLError as exc:
        raise ToolkitError(f"{path}: {exc}", hint="move it away; talos.talosconfig writes a new one") from None


def talosconfig_write(path: Path, content: Secret) -> FileWrite:
    """The talosconfig as a 0600 FileWrite with every context's client key masked in diffs.

    The key is the only secret in the file; the CA and client certificates are public and stay readable in a
    dry-run diff. Content that does not parse is masked whole.
    """
    from k8s_ops.core.plan import FileWrite

    mask: list[Secret] = []
    try:
        doc = yamlio.load_document(content.reveal())
        for ctx in (doc.get("contexts") or {}).values():
            if isinstance(ctx, dict) and isinstance(ctx.get("key"), str):
                mask.append(Secret(ctx["key"]))
    except (yamlio.YAMLError, AttributeError):
        mask.append(content)
    return FileWrite(path, content.reveal(), 0o600, tuple(mask))
