"""talosctl v1.12.11 flags of every simulated command, exactly as `cli-v1.12.11.md` lists them (`### Options`
plus `### Options inherited from parent commands`). tests/test_sim_talos_flags.py keeps this in sync with the
reference. Hidden flags (`upgrade -p/--preserve`, `version --json`) are deliberately absent."""

from __future__ import annotations

from .cliparse import Flag

_CONN = [
    Flag("cluster", "c", "string"),
    Flag("context", None, "string"),
    Flag("endpoints", "e", "strings"),
    Flag("nodes", "n", "strings"),
    Flag("siderov1-keys-dir", None, "string"),
    Flag("talosconfig", None, "string"),
    Flag("help", "h"),
]


def _cmd(*extra: Flag, conn: bool = True) -> dict[str, Flag]:
    items = ([*_CONN] if conn else [Flag("help", "h")]) + list(extra)
    return {f.name: f for f in items}


TALOSCTL_FLAGS: dict[tuple[str, ...], dict[str, Flag]] = {
    ("apply-config",): _cmd(
        Flag("cert-fingerprint", None, "strings"),
        Flag("config-patch", "p", "stringArray"),
        Flag("dry-run"),
        Flag("file", "f", "string"),
        Flag("insecure", "i"),
        Flag("mode", "m", "string", "auto"),
        Flag("timeout", None, "duration", 60.0),
    ),
    ("bootstrap",): _cmd(Flag("recover-from", None, "string"), Flag("recover-skip-hash-check")),
    ("etcd", "alarm", "disarm"): _cmd(),
    ("etcd", "alarm", "list"): _cmd(),
    ("etcd", "defrag"): _cmd(),
    ("etcd", "leave"): _cmd(),
    ("etcd", "members"): _cmd(),
    ("etcd", "remove-member"): _cmd(),
    ("etcd", "snapshot"): _cmd(),
    ("etcd", "status"): _cmd(),
    ("get",): _cmd(
        Flag("insecure", "i"),
        Flag("namespace", None, "string"),
        Flag("output", "o", "string", "table"),
        Flag("watch", "w"),
    ),
    ("health",): _cmd(
        Flag("control-plane-nodes", None, "strings"),
        Flag("init-node", None, "string"),
        Flag("k8s-endpoint", None, "string"),
        Flag("run-e2e"),
        Flag("server", None, "bool", True),
        Flag("wait-timeout", None, "duration", 1200.0),
        Flag("worker-nodes", None, "strings"),
    ),
    ("kubeconfig",): _cmd(
        Flag("force", "f"),
        Flag("force-context-name", None, "string"),
        Flag("merge", "m", "bool", True),
    ),
    ("read",): _cmd(),
    ("reboot",): _cmd(
        Flag("debug"),
        Flag("mode", "m", "string", "default"),
        Flag("timeout", None, "duration", 1800.0),
        Flag("wait", None, "bool", True),
    ),
    ("reset",): _cmd(
        Flag("debug"),
        Flag("graceful", None, "bool", True),
        Flag("insecure"),
        Flag("reboot"),
        Flag("system-labels-to-wipe", None, "strings"),
        Flag("timeout", None, "duration", 1800.0),
        Flag("user-disks-to-wipe", None, "strings"),
        Flag("wait", None, "bool", True),
        Flag("wipe-mode", None, "string", "all"),
    ),
    ("service",): _cmd(),
    ("shutdown",): _cmd(
        Flag("debug"),
        Flag("force"),
        Flag("timeout", None, "duration", 1800.0),
        Flag("wait", None, "bool", True),
    ),
    ("upgrade",): _cmd(
        Flag("debug"),
        Flag("force", "f"),
        Flag("image", "i", "string", "ghcr.io/siderolabs/installer:v1.12.11"),
        Flag("insecure"),
        Flag("reboot-mode", "m", "string", "default"),
        Flag("stage", "s"),
        Flag("timeout", None, "duration", 1800.0),
        Flag("wait", None, "bool", True),
    ),
    ("upgrade-k8s",): _cmd(
        Flag("apiserver-image", None, "string", "registry.k8s.io/kube-apiserver"),
        Flag("controller-manager-image", None, "string", "registry.k8s.io/kube-controller-manager"),
        Flag("dry-run"),
        Flag("endpoint", None, "string"),
        Flag("from", None, "string"),
        Flag("kubelet-image", None, "string", "ghcr.io/siderolabs/kubelet"),
        Flag("pre-pull-images", None, "bool", True),
        Flag("proxy-image", None, "string", "registry.k8s.io/kube-proxy"),
        Flag("scheduler-image", None, "string", "registry.k8s.io/kube-scheduler"),
        Flag("to", None, "string", "1.35.4"),
        Flag("upgrade-kubelet", None, "bool", True),
        Flag("with-docs", None, "bool", True),
        Flag("with-examples", None, "bool", True),
    ),
    ("validate",): _cmd(Flag("config", "c", "string"), Flag("mode", "m", "string"), Flag("strict"), conn=False),
    ("version",): _cmd(Flag("client"), Flag("insecure", "i"), Flag("short")),
}

ALIASES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("apply",): ("apply-config",),
    ("services",): ("service",),
}
