"""The Talos secrets bundle: generated in Python exactly like `talosctl gen secrets`, stored SOPS-encrypted.

Shape (keys are Talos' lowercased Go field names)::

    cluster:    {id, secret}                                   # 32 random bytes, URL-safe / standard base64
    secrets:    {bootstraptoken, secretboxencryptionsecret}    # token [a-z0-9]{6}.[a-z0-9]{16}; 32 bytes base64
    trustdinfo: {token}
    certs:      {etcd: {crt, key}, k8s: {crt, key}, k8saggregator: {crt, key}, k8sserviceaccount: {key},
                 os: {crt, key}}                               # base64 of PEM

The CAs mirror Talos v1.12 (`pkg/machinery/config/generate/secrets`; certificates and key PEMs are made by
`k8s_ops.talos.pki`): subject O=etcd / O=kubernetes / empty (aggregator) / O=talos; ECDSA P-256 with SHA-256,
except the os CA which is ED25519. The service-account key is ECDSA P-256 (contract >= 1.3).

This module owns the bundle: model, validation, generation, loading (decrypted once per process), and creating a
new encrypted bundle file. sops' creation-rule matching lives in `k8s_ops.tools.sops`, the exclusive atomic
write in `k8s_ops.core.files`.

Plain values live only in `SecretsBundle.data` (the contract the renderer consumes); every typed accessor hands
secret material out as `Secret`, and `mask_values()` lists every secret string so plans and diffs can hide it.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import os
import re
import secrets as _random
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import yaml

from k8s_ops.core import paths
from k8s_ops.core.errors import Problem, ProblemsError, SecretError
from k8s_ops.core.secret import Secret
from k8s_ops.talos import yamlio

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from k8s_ops.talos.inventory import Cluster
    from k8s_ops.tools.sops import AgeKey

__all__ = [
    "CA_NAMES",
    "SOPS_CONFIG",
    "CertAndKey",
    "ClusterKeyRef",
    "NewBundleTarget",
    "SecretsBundle",
    "age_key_for",
    "ciphertext_recipients",
    "clear_cache",
    "encrypt_bundle",
    "find_sops_config",
    "generate_bundle",
    "load_bundle",
    "load_bundle_file",
    "new_bundle_target",
    "refuse_existing",
    "validate_bundle_data",
    "verify_round_trip",
    "write_bundle",
]

#: The bundle's CAs (certs.<name> with crt+key); `k8sserviceaccount` has only a key.
CA_NAMES: Final = ("etcd", "k8s", "k8saggregator", "os")

_TOKEN_ALPHABET: Final = string.ascii_lowercase + string.digits
_TOKEN_RE: Final = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
# Subject organisation per CA, as Talos sets it (the aggregator CA's CommonName option is dropped by
# siderolabs/crypto, so its subject is empty; see the v1.12 golden).
_CA_ORG: Final[Mapping[str, str | None]] = {"etcd": "etcd", "k8s": "kubernetes", "k8saggregator": None, "os": "talos"}

# key path -> required; the order is talosctl's output order.
_SHAPE: Final[Mapping[str, Mapping[str, Any]]] = {
    "cluster": {"id": True, "secret": True},
    "secrets": {"bootstraptoken": True, "secretboxencryptionsecret": True, "aescbcencryptionsecret": False},
    "trustdinfo": {"token": True},
    "certs": {
        "etcd": {"crt": True, "key": True},
        "k8s": {"crt": True, "key": True},
        "k8saggregator": {"crt": True, "key": True},
        "k8sserviceaccount": {"key": True},
        "os": {"crt": True, "key": True},
    },
}


@dataclass(frozen=True)
class CertAndKey:
    """One CA of the bundle: the certificate (public, base64 PEM) and its key (secret, base64 PEM)."""

    crt: str
    key: Secret

    @property
    def crt_pem(self) -> bytes:
        """The certificate PEM."""
        return base64.b64decode(self.crt)

    def key_pem(self) -> Secret:
        """The private key PEM."""
        return Secret(base64.b64decode(self.key.reveal()))


@dataclass(frozen=True)
class SecretsBundle:
    """A Talos secrets bundle. `data` is exactly the `talosctl gen secrets` YAML shape, with plain str values."""

    data: Mapping[str, Any]

    # -- (de)serialisation ---------------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, text: str | bytes, *, source: str = "<secrets bundle>") -> SecretsBundle:
        """Parse and validate a bundle; every shape problem is reported at once (ProblemsError)."""
        try:
            docs = yamlio.load_documents(text)  # bounded, in the toolkit's one dialect (Go yaml.v3 wrote it)
        except yamlio.YAMLError as exc:
            # The parser's message can quote file content: keep only the position.
            where = f" at line {exc.line}" if exc.line is not None else ""
            raise ProblemsError([Problem(source, "", f"not valid YAML{where}")]) from None
        if len(docs) > 1:
            raise ProblemsError([Problem(source, "", "expected one YAML document, found several")])
        raw: Any = docs[0] if docs else None
        problems = validate_bundle_data(raw, source=source)
        if problems:
            raise ProblemsError(problems)
        return cls(data=copy.deepcopy(raw))

    def to_yaml(self) -> bytes:
        """The bundle as YAML, key order and 4-space indent as talosctl writes it."""
        ordered: dict[str, Any] = {}
        for section, fields in _SHAPE.items():
            ordered[section] = _ordered(self.data[section], fields)
        return yaml.safe_dump(ordered, sort_keys=False, indent=4, default_flow_style=False, width=1 << 16).encode()

    # -- typed accessors (secret material as Secret) -------------------------------------------------------

    @property
    def cluster_id(self) -> Secret:
        """`cluster.id` (machine config `cluster.id`)."""
        return Secret(self.data["cluster"]["id"])

    @property
    def cluster_secret(self) -> Secret:
        """`cluster.secret` (machine config `cluster.secret`)."""
        return Secret(self.data["cluster"]["secret"])

    @property
    def bootstrap_token(self) -> Secret:
        """`secrets.bootstraptoken` (machine config `cluster.token`)."""
        return Secret(self.data["secrets"]["bootstraptoken"])

    @property
    def secretbox_encryption_secret(self) -> Secret:
        """`secrets.secretboxencryptionsecret` (machine config `cluster.secretboxEncryptionSecret`)."""
        return Secret(self.data["secrets"]["secretboxencryptionsecret"])

    @property
    def aescbc_encryption_secret(self) -> Secret | None:
        """`secrets.aescbcencryptionsecret`, only in bundles made for Talos < 1.3."""
        value = self.data["secrets"].get("aescbcencryptionsecret")
        return Secret(value) if value else None

    @property
    def trustd_token(self) -> Secret:
        """`trustdinfo.token` (machine config `machine.token`)."""
        return Secret(self.data["trustdinfo"]["token"])

    def ca(self, name: str) -> CertAndKey:
        """One CA: `etcd`, `k8s`, `k8saggregator` or `os`."""
        if name not in CA_NAMES:
            raise KeyError(f"unknown CA {name!r}; expected one of {', '.join(CA_NAMES)}")
        entry = self.data["certs"][name]
        return CertAndKey(crt=entry["crt"], key=Secret(entry["key"]))

    @property
    def os_ca(self) -> CertAndKey:
        """The Talos API CA (`machine.ca`), ED25519."""
        return self.ca("os")

    @property
    def service_account_key(self) -> Secret:
        """`certs.k8sserviceaccount.key` (base64 PEM; machine config `cluster.serviceAccount.key`)."""
        return Secret(self.data["certs"]["k8sserviceaccount"]["key"])

    def mask_values(self) -> tuple[Secret, ...]:
        """Every secret string of the bundle, longest first, as it may appear in configs, plans and diffs.

        Covers each value as stored (base64 for keys and random secrets), the decoded key PEMs and their body
        lines, and the secret half of each token. Certificates are public and not included.
        """
        values: set[bytes] = set()
        for value in (
            self.data["cluster"]["id"],
            self.data["cluster"]["secret"],
            self.data["secrets"]["secretboxencryptionsecret"],
            self.data["secrets"].get("aescbcencryptionsecret") or "",
        ):
            if value:
                values.add(value.encode())
        for token in (self.data["secrets"]["bootstraptoken"], self.data["trustdinfo"]["token"]):
            values.add(token.encode())
            values.add(token.split(".", 1)[-1].encode())
        for name in (*CA_NAMES, "k8sserviceaccount"):
            b64 = self.data["certs"][name]["key"].encode()
            values.add(b64)
            pem = base64.b64decode(b64)
            values.add(pem)
            values.add(pem.strip())
            # A PEM can be re-wrapped or shown line by line; its base64 body lines must not leak either.
            values.update(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
        return tuple(Secret(v) for v in sorted(values, key=lambda v: (-len(v), v)))

    def fingerprint(self) -> str:
        """A short, non-secret identifier of this bundle: SHA-256 of the os CA certificate (public)."""
        return hashlib.sha256(self.data["certs"]["os"]["crt"].encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"SecretsBundle(os-ca={self.fingerprint()}, values=***)"


def _ordered(value: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in fields.items():
        if key not in value:
            continue
        out[key] = _ordered(value[key], sub) if isinstance(sub, Mapping) else value[key]
    return out


# -- validation ----------------------------------------------------------------------------------------------


def validate_bundle_data(raw: object, *, source: str = "<secrets bundle>") -> list[Problem]:
    """Every problem with a decoded bundle: missing/unknown keys, non-string values, bad tokens, bad base64/PEM.

    Messages never contain the values themselves.
    """
    problems: list[Problem] = []
    if not isinstance(raw, Mapping):
        return [Problem(source, "", "not a mapping: expected the `talosctl gen secrets` shape")]
    _check_shape(raw, _SHAPE, "", source, problems)
    if problems:
        return problems
    for field in ("secrets.bootstraptoken", "trustdinfo.token"):
        section, key = field.split(".")
        if not _TOKEN_RE.match(raw[section][key]):
            problems.append(Problem(source, field, "not a token of the form [a-z0-9]{6}.[a-z0-9]{16}"))
    for field in ("cluster.id", "cluster.secret", "secrets.secretboxencryptionsecret"):
        section, key = field.split(".")
        if _b64decode(raw[section][key], urlsafe=field == "cluster.id") is None:
            problems.append(Problem(source, field, "not base64"))
    for name, fields in _SHAPE["certs"].items():
        for kind in fields:
            field = f"certs.{name}.{kind}"
            pem = _b64decode(raw["certs"][name][kind])
            label = b"CERTIFICATE" if kind == "crt" else b"PRIVATE KEY"
            if pem is None:
                problems.append(Problem(source, field, "not base64"))
            elif not pem.startswith(b"-----BEGIN ") or label not in pem.split(b"\n", 1)[0]:
                problems.append(Problem(source, field, f"not a base64-encoded PEM {label.decode().lower()}"))
    return problems


def _check_shape(
    value: Mapping[Any, Any], shape: Mapping[str, Any], prefix: str, source: str, problems: list[Problem]
) -> None:
    for key, sub in shape.items():
        field = f"{prefix}{key}"
        required = sub if isinstance(sub, bool) else True
        if key not in value or value[key] is None:
            if required:
                problems.append(Problem(source, field, "missing"))
            continue
        if isinstance(sub, Mapping):
            if not isinstance(value[key], Mapping):
                problems.append(Problem(source, field, "must be a mapping"))
            else:
                _check_shape(value[key], sub, f"{field}.", source, problems)
        elif not isinstance(value[key], str) or not value[key]:
            problems.append(Problem(source, field, "must be a non-empty string"))
    for key in value:
        if key not in shape:
            problems.append(Problem(source, f"{prefix}{key}", "unknown key (not part of a Talos secrets bundle)"))


def _b64decode(text: str, *, urlsafe: bool = False) -> bytes | None:
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(text.encode())
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        return None


# -- generation ----------------------------------------------------------------------------------------------


def generate_bundle(*, now: datetime | None = None) -> SecretsBundle:
    """A fresh bundle, equivalent to `talosctl gen secrets` for Talos v1.12. `now` fixes the CA NotBefore."""
    from k8s_ops.talos import pki

    when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)

    certs: dict[str, dict[str, str]] = {}
    for name in ("etcd", "k8s", "k8saggregator"):
        certs[name] = _ca_entry(pki.new_ec_key(), _CA_ORG[name], when)
    certs["k8sserviceaccount"] = {"key": _b64(pki.private_key_pem(pki.new_ec_key()))}
    certs["os"] = _ca_entry(pki.new_ed25519_key(), _CA_ORG["os"], when)

    data = {
        "cluster": {
            "id": base64.urlsafe_b64encode(_random.token_bytes(32)).decode(),
            "secret": base64.b64encode(_random.token_bytes(32)).decode(),
        },
        "secrets": {
            "bootstraptoken": _token(),
            "secretboxencryptionsecret": base64.b64encode(_random.token_bytes(32)).decode(),
        },
        "trustdinfo": {"token": _token()},
        "certs": certs,
    }
    return SecretsBundle(data=data)


def _token() -> str:
    """Talos `genToken(6, 16)`: lowercase alphanumerics, `xxxxxx.xxxxxxxxxxxxxxxx`."""
    return f"{_random_string(6)}.{_random_string(16)}"


def _random_string(length: int) -> str:
    return "".join(_random.choice(_TOKEN_ALPHABET) for _ in range(length))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _ca_entry(key: EllipticCurvePrivateKey | Ed25519PrivateKey, org: str | None, now: datetime) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization

    from k8s_ops.talos import pki

    cert = pki.self_signed_ca(key, org, now)
    return {"crt": _b64(cert.public_bytes(serialization.Encoding.PEM)), "key": _b64(pki.private_key_pem(key))}


# -- loading (decrypt once per process) ----------------------------------------------------------------------

# (resolved path, sha256 of the encrypted file) -> bundle. The key is content-addressed, so an edited file is
# decrypted again, while repeated loads in one run cost nothing.
_CACHE: dict[tuple[str, str], SecretsBundle] = {}


def clear_cache() -> None:
    """Forget decrypted bundles and sops plaintexts (tests; long-running processes after a key rotation)."""
    from k8s_ops.tools import sops

    _CACHE.clear()
    sops.clear_cache()


class ClusterKeyRef(Protocol):
    """What the age-key lookup needs from a cluster (the inventory's Cluster fits)."""

    @property
    def name(self) -> str: ...

    @property
    def age_key_file(self) -> Path | None: ...


def age_key_for(cluster: ClusterKeyRef) -> AgeKey:
    """The age key that decrypts this cluster's secrets.

    Order: env `SOPS_AGE_KEY`, env `SOPS_AGE_KEY_FILE`, the inventory's `sops.ageKeyFile` (relative to the
    cluster dir), then `k8s_ops.core.paths.default_age_key_file()`. Raises SecretError naming every place looked.
    """
    from k8s_ops.tools.sops import resolve_age_key

    return resolve_age_key(inventory_key_file=cluster.age_key_file, cluster=cluster.name)


def load_bundle(cluster: Cluster) -> SecretsBundle:
    """Decrypt and parse `<cluster>/talos/secrets.sops.yaml` with the cluster's age key, once per process."""
    path = cluster.secrets_file
    if not path.is_file():
        raise SecretError(
            f"cluster {cluster.name!r} has no Talos secrets bundle at {path}",
            hint=f"create it once with: invoke talos.gen-secrets --cluster {cluster.name}",
        )
    return load_bundle_file(path, key=age_key_for(cluster))


def load_bundle_file(path: Path, *, key: AgeKey) -> SecretsBundle:
    """Decrypt and parse one bundle file with `key` (cached by path and content hash)."""
    from k8s_ops.tools.sops import Sops

    path = path.resolve()
    try:
        ciphertext = path.read_bytes()
    except OSError as exc:
        raise SecretError(f"cannot read the secrets bundle {path}: {exc.strerror}") from None
    cache_key = (str(path), hashlib.sha256(ciphertext).hexdigest())
    cached = _CACHE.get(cache_key)
    if cached is not None:
        return cached
    # This is the one cache of the bundle: sops is told not to keep the plaintext as well.
    plaintext = Sops(key=key).decrypt(path, cache=False)
    bundle = SecretsBundle.from_yaml(plaintext.reveal(), source=str(path))
    _CACHE[cache_key] = bundle
    return bundle


# -- creating a new encrypted bundle (gen-secrets) -----------------------------------------------------------

SOPS_CONFIG: Final = ".sops.yaml"


@dataclass(frozen=True)
class NewBundleTarget:
    """Where a new bundle goes and how sops will pick its recipients."""

    cluster: str
    path: Path
    config: Path
    filename: str  # the path as sops' path_regex sees it: relative to the config file's directory
    rule: str | None  # the first matching path_regex (Python re emulation of sops' Go regexp; display only)
    recipients: tuple[str, ...]  # age recipients of that rule (display only; sops decides)

    def describe(self) -> str:
        """What would be written, without secrets."""
        lines = [
            f"would generate a new Talos secrets bundle for cluster {self.cluster!r} (Talos v1.12 shape)",
            f"  encrypt with sops to: {', '.join(self.recipients) or '(per .sops.yaml)'}",
            f"  rule: path_regex {self.rule} in {self.config}" if self.rule else f"  config: {self.config}",
            f"  write: {self.path} (new file, mode 0600; plaintext never touches disk)",
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The dry-run as JSON."""
        return {
            "action": "gen-secrets",
            "cluster": self.cluster,
            "path": str(self.path),
            "sops_config": str(self.config),
            "filename_override": self.filename,
            "rule": self.rule,
            "recipients": list(self.recipients),
        }


def find_sops_config(clusters_root: Path | None = None, *, start: Path | None = None) -> Path:
    """The `.sops.yaml` sops would use for a new file in `start` (default: the clusters directory): the first one in
    that directory or a parent (`k8s_ops.tools.sops.lookup_config`). A clusters directory outside this repository
    without a `.sops.yaml` of its own is refused: falling back to the repository's rules would encrypt the new
    cluster's CAs to the repository owner's key instead of its own owner's."""
    from k8s_ops.tools.sops import lookup_config

    root = clusters_root if clusters_root is not None else paths.clusters_dir()
    where = start if start is not None else root
    found = lookup_config(where)
    if found is not None:
        return found
    raise SecretError(
        f"no {SOPS_CONFIG} in {where} or any directory above it; refusing to pick recipients from anywhere else "
        "(this repository's rules encrypt to its owner's key)",
        hint=f"create {root.parent / SOPS_CONFIG} with a creation rule for "
        f"{root.name}/<name>/.*\\.sops\\.yaml$ and the age recipient of whoever runs these clusters",
    )


def _sops_filename(path: Path, config: Path) -> str:
    """The name sops matches path_regex against: the path relative to the config's directory (the config is in
    the file's directory or above it, `find_sops_config`)."""
    return Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(config.parent))).as_posix()


def new_bundle_target(cluster: str, *, clusters_root: Path | None = None) -> NewBundleTarget:
    """Plan a new bundle for `cluster`; refuses (SecretError) if one exists or the cluster dir is missing."""
    from k8s_ops.tools.sops import matching_rule

    root = clusters_root if clusters_root is not None else paths.clusters_dir()
    if not cluster or cluster in {".", ".."} or "/" in cluster or "\\" in cluster:
        raise SecretError(f"{cluster!r} is not a cluster name")
    cdir = root / cluster
    if not cdir.is_dir():
        raise SecretError(
            f"cluster directory {cdir} does not exist",
            hint=f"create {cdir}/cluster.yaml first (clusters dir: {root}; K8S_OPS_CLUSTERS_DIR overrides it)",
        )
    path = paths.bundle_file(cdir)
    refuse_existing(path, cluster)
    config = find_sops_config(root, start=path.parent)
    filename = _sops_filename(path, config)
    rule, recipients = matching_rule(config, filename)
    if rule is None:
        raise SecretError(
            f"no creation rule in {config} matches {filename!r}; sops would refuse to encrypt the bundle",
            hint="add a rule such as `path_regex: ^clusters/.*\\.sops\\.yaml$` with the cluster owner's age key",
        )
    return NewBundleTarget(cluster, path, config, filename, rule, recipients)


def refuse_existing(path: Path, cluster: str) -> None:
    """A bundle is never regenerated silently: new CAs would lock every node and client out (talhelper#926)."""
    if path.exists() or path.is_symlink():
        raise SecretError(
            f"refusing to overwrite the existing Talos secrets bundle {path}: regenerating it would create new "
            f"CAs and tokens, locking the nodes and clients of cluster {cluster!r} out (cf. talhelper#926)",
            hint="keep it (it is what the cluster runs on); to really start a cluster from scratch, move the "
            "file away yourself, then run gen-secrets again",
        )


def encrypt_bundle(target: NewBundleTarget, bundle: SecretsBundle) -> bytes:
    """Encrypt `bundle` for `target` with the real sops (plaintext via stdin); checks no value leaked."""
    from k8s_ops.tools.sops import Sops

    ciphertext = Sops(config=target.config).encrypt(
        Secret(bundle.to_yaml()), filename=target.filename, input_type="yaml", output_type="yaml"
    )
    leaked = [m for m in bundle.mask_values() if len(m) >= 16 and m.reveal() in ciphertext]
    if leaked:
        raise SecretError("sops output still contains plaintext secret values; nothing was written")
    if not ciphertext_recipients(ciphertext):
        raise SecretError("sops output has no age recipients; nothing was written")
    return ciphertext


def ciphertext_recipients(ciphertext: bytes) -> tuple[str, ...]:
    """The age recipients named in a sops file's metadata."""
    try:
        docs = yamlio.load_documents(ciphertext)
    except yamlio.YAMLError as exc:
        raise SecretError(f"sops output is not YAML ({exc})") from None
    doc: Any = docs[0] if len(docs) == 1 else None
    meta: Any = doc.get("sops") if isinstance(doc, Mapping) else None
    entries: Any = meta.get("age") if isinstance(meta, Mapping) else None
    if not isinstance(entries, list):
        return ()
    return tuple(str(e.get("recipient")) for e in entries if isinstance(e, Mapping))


def verify_round_trip(ciphertext: bytes, bundle: SecretsBundle, key: AgeKey) -> None:
    """Decrypt `ciphertext` in memory with `key` and require the exact bundle back."""
    from k8s_ops.tools.sops import Sops

    plaintext = Sops(key=key).decrypt_bytes(ciphertext, input_type="yaml")
    if SecretsBundle.from_yaml(plaintext.reveal(), source="round trip").data != bundle.data:
        raise SecretError("the encrypted bundle does not decrypt to what was generated; nothing was written")


def write_bundle(path: Path, ciphertext: bytes) -> None:
    """Create the bundle file (0600) atomically and exclusively: a bundle that appeared meanwhile wins."""
    from k8s_ops.core.files import write_new

    try:
        write_new(path, ciphertext)
    except FileExistsError:
        raise SecretError(f"refusing to overwrite {path}: it appeared while the bundle was generated") from None
