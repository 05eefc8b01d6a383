"""`fleet.kubeconfig-merge` / `fleet.talosconfig-merge`: one file with every cluster's context, named after the
cluster, built from the per-cluster files the toolkit already writes (`build/<c>/kubeconfig` from talos.kubeconfig,
`build/<c>/talosconfig` from talos.talosconfig — `k8s_ops.core.paths`).

The merged file is a 0600 `FileWrite` (atomic) at the path asked for (default `build/kubeconfig`,
`build/talosconfig`). `~/.kube/config` / `~/.talos/config` are touched only with `install`: first a 0600 backup
of the file as it is, then the cluster contexts merged into it (entries of the same name replaced, all others kept).
Private keys are masked in every diff (talosconfig: `k8s_ops.talos.talosconfig.talosconfig_write`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from k8s_ops.core import paths
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.plan import EnsureDir, FileWrite, Plan, Step
from k8s_ops.core.secret import Secret
from k8s_ops.talos import yamlio
from k8s_ops.talos.talosconfig import talosconfig_write

__all__ = [
    "FLEET",
    "Kind",
    "Merged",
    "default_path",
    "installed_path",
    "merge_kubeconfigs",
    "merge_talosconfigs",
    "plan_merge",
]

FLEET = "fleet"
"""The plan's name for the lock of a fleet-wide task (no cluster of its own)."""

Kind = Literal["kubeconfig", "talosconfig"]
_SECRET_KEYS = ("client-key-data", "token", "password")  # kubeconfig user fields that are credentials


@dataclass(frozen=True)
class Merged:
    """The merged document, the clusters in it, and the clusters left out (and why)."""

    doc: dict[str, Any]
    clusters: tuple[str, ...]
    skipped: tuple[str, ...]


def _load(path: Path, what: str, hint: str = "fetch it again") -> Any:
    # kubeconfigs are read by client-go with YAML 1.1 rules; bounded like every file the toolkit reads
    try:
        return yamlio.load_document(yamlio.read_bytes(path), loader=yaml.SafeLoader)
    except FileNotFoundError:
        return None
    except yamlio.YAMLError as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise ToolkitError(f"{path}: not a {what}{where}: {exc}", hint=hint) from None


def _named(items: Any, name: str) -> Mapping[str, Any] | None:
    for item in items or []:
        if isinstance(item, Mapping) and item.get("name") == name:
            return item
    return None


def merge_kubeconfigs(clusters: Sequence[str]) -> Merged:
    """Every cluster's context `<c>` (with its cluster and user, renamed `<c>` so names never collide)."""
    contexts, kclusters, users, have, skipped = [], [], [], [], []
    for c in clusters:
        path = paths.kubeconfig_path(c)
        doc = _load(path, "kubeconfig")
        ctx = _named(doc.get("contexts") if isinstance(doc, Mapping) else None, c)
        if ctx is None:
            why = "no file" if doc is None else f"no context named {c!r}"
            skipped.append(f"{c}: {why} at {path} (invoke talos.kubeconfig --cluster {c})")
            continue
        inner = ctx.get("context") or {}
        kcluster = _named(doc.get("clusters"), str(inner.get("cluster")))
        user = _named(doc.get("users"), str(inner.get("user")))
        if kcluster is None or user is None:
            skipped.append(f"{c}: context {c!r} in {path} names a cluster or user the file lacks")
            continue
        kclusters.append({"name": c, "cluster": dict(kcluster.get("cluster") or {})})
        users.append({"name": c, "user": dict(user.get("user") or {})})
        contexts.append({"name": c, "context": {**dict(inner), "cluster": c, "user": c}})
        have.append(c)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": kclusters,
        "contexts": contexts,
        "users": users,
        "current-context": have[0] if have else "",
    }
    return Merged(doc, tuple(have), tuple(skipped))


def merge_talosconfigs(clusters: Sequence[str]) -> Merged:
    """Every cluster's talosconfig context `<c>` (talosctl's layout: `context` + a `contexts` mapping)."""
    contexts: dict[str, Any] = {}
    skipped = []
    for c in clusters:
        path = paths.talosconfig_path(c)
        doc = _load(path, "talosconfig")
        entry = (doc.get("contexts") or {}).get(c) if isinstance(doc, Mapping) else None
        if not isinstance(entry, Mapping):
            why = "no file" if doc is None else f"no context named {c!r}"
            skipped.append(f"{c}: {why} at {path} (invoke talos.talosconfig --cluster {c})")
            continue
        contexts[c] = dict(entry)
    return Merged({"context": next(iter(contexts), ""), "contexts": contexts}, tuple(contexts), tuple(skipped))


def _install_kubeconfig(existing: Any, merged: Mapping[str, Any]) -> dict[str, Any]:
    """`existing` (the operator's kubeconfig) with the merged entries replacing same-named ones; the rest kept."""
    base = dict(existing) if isinstance(existing, Mapping) else {"apiVersion": "v1", "kind": "Config"}
    for key in ("clusters", "contexts", "users"):
        ours = {i["name"]: i for i in merged[key]}
        kept = [i for i in base.get(key) or [] if not (isinstance(i, Mapping) and i.get("name") in ours)]
        base[key] = kept + list(ours.values())
    base.setdefault("current-context", merged["current-context"])
    return base


def _install_talosconfig(existing: Any, merged: Mapping[str, Any]) -> dict[str, Any]:
    base = dict(existing) if isinstance(existing, Mapping) else {}
    base["contexts"] = {**dict(base.get("contexts") or {}), **merged["contexts"]}
    base.setdefault("context", merged["context"])
    return base


def _dump(doc: Mapping[str, Any], kind: Kind) -> bytes:
    indent = 4 if kind == "talosconfig" else 2  # talosctl writes 4 spaces, kubectl 2
    return yaml.safe_dump(dict(doc), sort_keys=False, indent=indent, default_flow_style=False, width=1 << 16).encode()


def _write(path: Path, content: bytes, kind: Kind) -> FileWrite:
    """A 0600 write with the private material masked in its diff."""
    if kind == "talosconfig":
        return talosconfig_write(path, Secret(content))
    mask: list[Secret] = []
    try:
        doc = yamlio.load_document(content, loader=yaml.SafeLoader)
    except yamlio.YAMLError:
        doc = None
    for u in (doc.get("users") if isinstance(doc, Mapping) else None) or []:
        values = u.get("user") if isinstance(u, Mapping) else None
        for key in _SECRET_KEYS:
            if isinstance(values, Mapping) and isinstance(values.get(key), str):
                mask.append(Secret(values[key]))
    return FileWrite(path, content, 0o600, tuple(mask))


def default_path(kind: Kind, clusters: Sequence[str]) -> Path:
    """`<build root>/kubeconfig` or `<build root>/talosconfig` (the build root of `k8s_ops.core.paths.build_dir`)."""
    return paths.build_dir(clusters[0] if clusters else FLEET).parent / kind


def installed_path(kind: Kind) -> Path:
    """The operator's own file: `~/.kube/config` or `~/.talos/config`."""
    return Path.home() / (".kube/config" if kind == "kubeconfig" else ".talos/config")


def plan_merge(kind: Kind, merged: Merged, out: Path, *, install: bool, now: datetime) -> Plan:
    """Write the merged file to `out`; with `install`, back up the operator's file, then merge into it."""
    if not merged.clusters:
        raise ToolkitError(
            f"no cluster has a {kind} to merge",
            hint="\n".join(merged.skipped) or "no cluster in the clusters directory",
        )
    content = _dump(merged.doc, kind)
    steps = [
        Step(
            f"write every cluster's {kind} context ({', '.join(merged.clusters)}) to {out}",
            prepare=(EnsureDir(out.parent, 0o700, existing_mode=False),),
            writes=(_write(out, content, kind),),
        )
    ]
    notes = [f"skipped {s}" for s in merged.skipped]
    if install:
        target = installed_path(kind)
        existing = _load(target, kind, hint="repair it or move it away; nothing was changed")
        old = target.read_bytes() if target.exists() else None
        installed = (_install_kubeconfig if kind == "kubeconfig" else _install_talosconfig)(existing, merged.doc)
        new = _dump(installed, kind)
        if old == new:
            steps.append(Step(f"merge the contexts into {target}", noop=f"{target} already has them"))
        else:
            if old is not None:
                backup = target.with_name(f"{target.name}.k8s-ops-backup-{now:%Y%m%dT%H%M%SZ}")
                steps.append(Step(f"back up {target} to {backup}", writes=(_write(backup, old, kind),)))
            steps.append(
                Step(
                    f"merge the contexts {', '.join(merged.clusters)} into {target} (others kept)",
                    prepare=(EnsureDir(target.parent, 0o700, existing_mode=False),),
                    writes=(_write(target, new, kind),),
                )
            )
    else:
        notes.append(f"{installed_path(kind)} is not touched (--install merges the contexts into it, after a backup)")
    return Plan(f"merge {kind}s", FLEET, tuple(steps), notes=tuple(notes))
