"""Talos' PKI in Python: self-signed CAs, client certificates signed by them, and their key PEMs.

The bundle's CAs and the talosconfig's client certificate are made here, mirroring Talos v1.12
(`pkg/machinery/config/generate/secrets` and siderolabs/crypto): CAs are self-signed with key usage
digitalSignature+certSign (critical), EKU serverAuth+clientAuth, basicConstraints CA (critical) and a subject
key identifier; a client certificate has key usage digitalSignature (critical), EKU clientAuth and the CA's
subject key identifier as its authority key identifier. EC keys are SEC1 `EC PRIVATE KEY` PEMs; ED25519 keys are
PKCS#8 under the `ED25519 PRIVATE KEY` PEM label, as Talos writes them. `cryptography` is imported lazily.
"""

from __future__ import annotations

import base64
import secrets as _random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from k8s_ops.core.errors import SecretError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    PrivateKey = EllipticCurvePrivateKey | Ed25519PrivateKey

__all__ = [
    "CA_VALIDITY",
    "ED25519_PEM_LABEL",
    "issue_client_certificate",
    "load_private_key",
    "new_ec_key",
    "new_ed25519_key",
    "new_key_like",
    "pem_encode",
    "private_key_pem",
    "self_signed_ca",
    "serial_number",
]

#: Talos `CAValidityTime` = 87600h.
CA_VALIDITY: Final = timedelta(hours=87600)
ED25519_PEM_LABEL: Final = "ED25519 PRIVATE KEY"


def new_ec_key() -> EllipticCurvePrivateKey:
    """An ECDSA P-256 key."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def new_ed25519_key() -> Ed25519PrivateKey:
    """An ED25519 key."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.generate()


def new_key_like(key: PrivateKey) -> PrivateKey:
    """A fresh key of `key`'s type (siderolabs/crypto NewKeyPair: a certificate's key has its CA's key type)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return new_ed25519_key() if isinstance(key, Ed25519PrivateKey) else new_ec_key()


def pem_encode(label: str, der: bytes) -> bytes:
    """A PEM block with 64-column base64 lines (Go's encoding/pem)."""
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n").encode()


def private_key_pem(key: PrivateKey) -> bytes:
    """PEM as Talos writes it: SEC1 `EC PRIVATE KEY`, or PKCS#8 under the `ED25519 PRIVATE KEY` label."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if isinstance(key, Ed25519PrivateKey):
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return pem_encode(ED25519_PEM_LABEL, der)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> PrivateKey:
    """Parse a Talos key PEM (SEC1 EC, PKCS#8, or PKCS#8 under the `ED25519 PRIVATE KEY` label)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    first = pem.split(b"\n", 1)[0]
    if ED25519_PEM_LABEL.encode() in first:
        body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
        key: object = serialization.load_der_private_key(base64.b64decode(body), password=None)
    else:
        key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, EllipticCurvePrivateKey | Ed25519PrivateKey):
        raise SecretError(f"unsupported private key type {type(key).__name__} (expected ECDSA or ED25519)")
    return key


def serial_number() -> int:
    """A random positive serial below 2^128, like Go's `rand.Int(rand.Reader, 2^128)`."""
    return _random.randbelow((1 << 128) - 1) + 1


def _signature_hash(key: PrivateKey) -> object:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return None if isinstance(key, Ed25519PrivateKey) else hashes.SHA256()


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def self_signed_ca(key: PrivateKey, org: str | None, now: datetime) -> x509.Certificate:
    """A Talos CA certificate for `key`: subject O=`org` (empty when None), valid `CA_VALIDITY` from `now`."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial_number())
        .not_valid_before(now)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, _signature_hash(key))  # type: ignore[arg-type]


def issue_client_certificate(
    ca_crt_pem: bytes, ca_key: PrivateKey, *, orgs: Sequence[str], now: datetime, ttl: timedelta
) -> tuple[x509.Certificate, PrivateKey]:
    """A client certificate (subject O=each of `orgs`) and its new key, signed by the CA."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(ca_crt_pem)
    client_key = new_key_like(ca_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in orgs]))
        .issuer_name(ca_cert.subject)
        .public_key(client_key.public_key())
        .serial_number(serial_number())
        .not_valid_before(now)
        .not_valid_after(now + ttl)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    except x509.ExtensionNotFound:
        pass
    return builder.sign(ca_key, _signature_hash(ca_key)), client_key  # type: ignore[arg-type]
