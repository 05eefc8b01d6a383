"""Talos machine config files as the simulated node sees them: parse, validate (the rejections Talos v1.12
really makes and the renderer must avoid), summarise, diff, patch."""

from __future__ import annotations

import copy

from .util import JSON, deep_merge, dig, dump_yaml, image_tag

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

MULTIDOC_KINDS = {
    "VolumeConfig",
    "UserVolumeConfig",
    "RawVolumeConfig",
    "ExistingVolumeConfig",
    "SwapVolumeConfig",
    "ZswapConfig",
    "RegistryMirrorConfig",
    "RegistryAuthConfig",
    "RegistryTLSConfig",
    "ExtensionServiceConfig",
    "PCIDriverRebindConfig",
    "EventSinkConfig",
    "KmsgLogConfig",
    "OOMConfig",
    "WatchdogTimerConfig",
    "TrustedRootsConfig",
    "SideroLinkConfig",
    "HostnameConfig",
    "LinkConfig",
    "LinkAliasConfig",
    "BondConfig",
    "BridgeConfig",
    "VLANConfig",
    "DummyLinkConfig",
    "WireguardConfig",
    "DHCPv4Config",
    "DHCPv6Config",
    "Layer2VIPConfig",
    "HCloudVIPConfig",
    "ResolverConfig",
    "StaticHostConfig",
    "TimeSyncConfig",
    "EthernetConfig",
    "NetworkDefaultActionConfig",
    "NetworkRuleConfig",
    "KubeSpanEndpointsConfig",
    "UnattendedInstallConfig",
}
MACHINE_TYPES = ("controlplane", "worker", "init")
# fields whose change Talos cannot apply to a running machine (`--mode=no-reboot` refuses them)
REBOOT_FIELDS = (
    ("machine", "type"),
    ("machine", "install", "disk"),
    ("machine", "install", "diskSelector"),
    ("machine", "systemDiskEncryption"),
    ("machine", "kernel"),
    ("machine", "ca"),
    ("cluster", "ca"),
)


class ConfigError(Exception):
    """A config Talos would reject; `.message` is the server's wording."""

    def __init__(self, message: str, *, parse: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.parse = parse


def parse_docs(text: str) -> list[JSON]:
    import yaml  # on use: importing PyYAML costs a simulated call ~8 ms, and most need none

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise ConfigError(f"yaml: {str(e).splitlines()[0]}", parse=True) from e
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise ConfigError(f"error decoding document #{i}: unexpected document type {type(d).__name__}", parse=True)
    return docs


def v1alpha1(docs: list[JSON]) -> JSON | None:
    for d in docs:
        if "kind" not in d and ("machine" in d or "cluster" in d or d.get("version") == "v1alpha1"):
            return d
    return None


def validate(docs: list[JSON], *, require_v1alpha1: bool) -> list[str]:
    """Decoder-level errors (empty = the documents load): apiVersion, known kinds, a v1alpha1 document.

    Talos' validation rules proper (duplicate documents, v1alpha1 and per-kind `Validate`, conflicts with the
    legacy fields) are `talos_rules_error`, the same port the toolkit checks its renders with."""
    errs: list[str] = []
    for d in docs:
        kind = d.get("kind")
        if kind is None:
            continue
        if d.get("apiVersion") != "v1alpha1":
            errs.append(f'{kind}: apiVersion "{d.get("apiVersion")}" is not supported')
        if kind not in MULTIDOC_KINDS:
            raise ConfigError(f'unknown document type "{kind}" version "{d.get("apiVersion")}"', parse=True)
    if v1alpha1(docs) is None and require_v1alpha1:
        errs.append("v1alpha1 config is required")
    return errs


def talos_rules_error(docs: list[JSON], *, strict: bool, mode: str = "metal") -> str | None:
    """The error Talos returns for these documents (None: valid), worded as Talos prints it.

    From `k8s_ops.talos.config_rules` (the port of siderolabs/talos v1.12.11 `Validate` / `V1Alpha1ConflictValidate`,
    pinned by tests/test_config_rules.py against Talos' own test vectors), so the simulator refuses exactly
    what the toolkit's render refuses. Imported lazily: every simulator call is a fresh process and only
    apply-config and validate pay for it."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[3])
    if root not in sys.path:
        sys.path.insert(0, root)
    from k8s_ops.talos.config_rules import talos_error, validate_documents

    return talos_error(validate_documents(docs, mode=mode, strict=strict))  # type: ignore[arg-type]


def hostname(docs: list[JSON]) -> str | None:
    for d in docs:
        if d.get("kind") == "HostnameConfig" and d.get("hostname"):
            return str(d["hostname"])
    main = v1alpha1(docs) or {}
    h = dig(main, "machine", "network", "hostname")
    return str(h) if h else None


def summarise(text: str) -> JSON:
    docs = parse_docs(text)
    main = v1alpha1(docs) or {}
    kubelet_image = dig(main, "machine", "kubelet", "image")
    return {
        "yaml": text,
        "type": dig(main, "machine", "type"),
        "hostname": hostname(docs),
        "ca_crt": dig(main, "machine", "ca", "crt"),
        "k8s_ca_crt": dig(main, "cluster", "ca", "crt"),
        "cluster_name": dig(main, "cluster", "clusterName"),
        "endpoint": dig(main, "cluster", "controlPlane", "endpoint"),
        "kubelet_version": image_tag(kubelet_image),
        "apiserver_version": image_tag(dig(main, "cluster", "apiServer", "image")),
        "install_image": dig(main, "machine", "install", "image"),
        "cni": dig(main, "cluster", "network", "cni", "name") or "flannel",
        "proxy_disabled": bool(dig(main, "cluster", "proxy", "disabled")),
        "coredns_disabled": bool(dig(main, "cluster", "coreDNS", "disabled")),
        "kinds": [d.get("kind", "v1alpha1") for d in docs],
    }


def needs_reboot(old_text: str, new_text: str) -> str | None:
    old = v1alpha1(parse_docs(old_text)) or {}
    new = v1alpha1(parse_docs(new_text)) or {}
    for path in REBOOT_FIELDS:
        if dig(old, *path) != dig(new, *path):
            return ".".join(path)
    return None


def diff(old_text: str | None, new_text: str) -> str:
    if old_text is None:
        return ""
    a = dump_yaml(parse_docs(old_text)).splitlines(keepends=True)
    b = dump_yaml(parse_docs(new_text)).splitlines(keepends=True)
    import difflib  # local: each simulated call is a fresh interpreter, and few need it

    return "".join(difflib.unified_diff(a, b, "a", "b"))


def apply_patches(text: str, patches: list[str], read: Any) -> str:
    """`--config-patch`: strategic-merge YAML patches (or JSON6902 lists) applied to the local file."""
    docs = parse_docs(text)
    for p in patches:
        body = read(p[1:]) if p.startswith("@") else p
        import yaml  # on use: importing PyYAML costs a simulated call ~8 ms, and most need none

        for patch in yaml.safe_load_all(body):
            if patch is None:
                continue
            if isinstance(patch, list):
                if len(docs) > 1:
                    raise ConfigError("JSON6902 patches are not supported for multi-document machine configuration")
                docs[0] = _json6902(docs[0], patch)
                continue
            kind = patch.get("kind")
            target = next((d for d in docs if d.get("kind") == kind and d.get("name") == patch.get("name")), None)
            if kind is None:
                target = v1alpha1(docs)
            if target is None:
                docs.append(copy.deepcopy(patch))
            else:
                docs[docs.index(target)] = deep_merge(target, patch)
    return "---\n".join(dump_yaml(d) for d in docs)


def _json6902(doc: JSON, ops: list[JSON]) -> JSON:
    out = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in str(op["path"]).strip("/").split("/")]
        parent: Any = out
        for p in parts[:-1]:
            parent = parent.setdefault(p, {}) if isinstance(parent, dict) else parent[int(p)]
        last = parts[-1]
        if op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                else:
                    parent.insert(int(last), op["value"])
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
    return out
