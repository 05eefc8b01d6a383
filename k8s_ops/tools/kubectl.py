"""kubectl: argv builders and output parsers. Every call names the cluster's kubeconfig and context explicitly.

A stray `KUBECONFIG` or a current-context pointing at the other cluster must never redirect an operation, so
argv always carries `--kubeconfig <build/<c>/kubeconfig> --context <c>` (the context name `talos.kubeconfig`
writes). Shared module: add functions, never change the behaviour of existing ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from k8s_ops.core import paths
from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import ToolkitError

__all__ = [
    "KubeTarget",
    "KubectlOutputError",
    "annotate",
    "apply_manifest",
    "condition",
    "delete",
    "get",
    "is_not_found",
    "kubectl",
    "merge_patch",
    "names_of",
    "parse_items",
    "parse_object",
    "parse_server_version",
    "parse_time",
    "readyz",
    "scale",
    "set_cluster_server",
    "version",
]


@dataclass(frozen=True)
class KubeTarget:
    """Which API server to talk to: a kubeconfig file and the context inside it."""

    kubeconfig: Path
    context: str

    @classmethod
    def for_cluster(cls, cluster: str) -> KubeTarget:
        """The cluster's own kubeconfig (`build/<c>/kubeconfig`) and its context, named after the cluster."""
        return cls(paths.kubeconfig_path(cluster), cluster)


def _target(cluster_or_target: str | KubeTarget) -> KubeTarget:
    if isinstance(cluster_or_target, KubeTarget):
        return cluster_or_target
    return KubeTarget.for_cluster(cluster_or_target)


def kubectl(cluster_or_target: str | KubeTarget, *args: str) -> tuple[str, ...]:
    """`kubectl --kubeconfig <path> --context <ctx> <args…>` for a cluster name or an explicit target."""
    t = _target(cluster_or_target)
    return ("kubectl", "--kubeconfig", str(t.kubeconfig), "--context", t.context, *args)


def _ns_args(namespace: str | None, all_namespaces: bool = False) -> tuple[str, ...]:
    if all_namespaces:
        return ("--all-namespaces",)
    return ("--namespace", namespace) if namespace else ()


def get(
    target: str | KubeTarget,
    resource: str,
    name: str | None = None,
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    selector: str | None = None,
    description: str = "",
) -> Command:
    """A read: `kubectl get <resource> [name] -o json` (a List when no name is given)."""
    args = ["get", resource]
    if name:
        args.append(name)
    args += _ns_args(namespace, all_namespaces)
    if selector:
        args += ["--selector", selector]
    args += ["--output", "json"]
    where = f" in {namespace}" if namespace else (" in all namespaces" if all_namespaces else "")
    return Command(
        argv=kubectl(target, *args),
        description=description or f"read {resource}{' ' + name if name else ''}{where}",
    )


def annotate(
    target: str | KubeTarget,
    resource: str,
    names: Sequence[str],
    annotations: Mapping[str, str],
    *,
    namespace: str | None = None,
    description: str = "",
) -> Command:
    """`kubectl annotate <resource> <names…> k=v… --overwrite` (overwrite: re-annotating must change the value)."""
    kv = [f"{k}={v}" for k, v in annotations.items()]
    return Command(
        argv=kubectl(target, "annotate", resource, *names, *_ns_args(namespace), *kv, "--overwrite"),
        description=description or f"annotate {resource} {', '.join(names)}",
        mutates=True,
    )


def merge_patch(
    target: str | KubeTarget,
    resource: str,
    name: str,
    patch: Mapping[str, Any],
    *,
    namespace: str | None = None,
    description: str = "",
) -> Command:
    """`kubectl patch <resource> <name> --type merge --patch <json>` (JSON merge patch: null deletes a field)."""
    body = json.dumps(patch, separators=(",", ":"), sort_keys=True)
    return Command(
        argv=kubectl(target, "patch", resource, name, *_ns_args(namespace), "--type", "merge", "--patch", body),
        description=description or f"patch {resource} {name}",
        mutates=True,
    )


def delete(
    target: str | KubeTarget,
    resource: str,
    names: Sequence[str],
    *,
    namespace: str | None = None,
    wait: bool = True,
    description: str = "",
) -> Command:
    """`kubectl delete <resource> <names…> --ignore-not-found` (idempotent: gone already is fine)."""
    args = ["delete", resource, *names, *_ns_args(namespace), "--ignore-not-found"]
    if not wait:
        args.append("--wait=false")
    return Command(
        argv=kubectl(target, *args),
        description=description or f"delete {resource} {', '.join(names)}",
        mutates=True,
    )


def scale(
    target: str | KubeTarget,
    workloads: Sequence[str],
    replicas: int,
    *,
    namespace: str | None = None,
    description: str = "",
) -> Command:
    """`kubectl scale <kind/name…> --replicas N`."""
    return Command(
        argv=kubectl(target, "scale", *workloads, *_ns_args(namespace), f"--replicas={replicas}"),
        description=description or f"scale {', '.join(workloads)} to {replicas}",
        mutates=True,
    )


def apply_manifest(
    target: str | KubeTarget, manifest: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, description: str = ""
) -> Command:
    """`kubectl apply --filename -` with the object(s) as JSON on stdin (a List for several)."""
    many = not isinstance(manifest, Mapping)
    doc = {"apiVersion": "v1", "kind": "List", "items": list(manifest)} if many else manifest
    return Command(
        argv=kubectl(target, "apply", "--filename", "-"),
        stdin=json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n",
        description=description or "apply manifest",
        mutates=True,
    )


# --------------------------------------------------------------------------- parsers


class KubectlOutputError(ToolkitError):
    """kubectl printed something that is not the JSON asked for."""


def parse_object(result: Result) -> dict[str, Any]:
    """One object from `get … -o json`."""
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise KubectlOutputError(f"kubectl did not print JSON: {exc}: {result.stdout[:200]!r}") from None
    if not isinstance(data, dict):
        raise KubectlOutputError(f"kubectl printed {type(data).__name__}, expected an object")
    return data


def parse_items(result: Result) -> list[dict[str, Any]]:
    """The items of a List from `get … -o json` (a single object is returned as a one-item list)."""
    data = parse_object(result)
    if data.get("kind", "").endswith("List") or "items" in data:
        return [i for i in data.get("items") or [] if isinstance(i, dict)]
    return [data]


def is_not_found(result: Result) -> bool:
    """True when a failed `get` failed because the object (or its kind) does not exist."""
    # only the API's own answers: "context was not found" or "no such host" must stay errors
    text = result.stderr + result.stdout
    return not result.ok and ("(NotFound)" in text or "doesn't have a resource type" in text)


def condition(obj: Mapping[str, Any], ctype: str) -> dict[str, Any] | None:
    """`status.conditions[type == ctype]`, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == ctype:
            return cond
    return None


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp from a Kubernetes status (`2026-01-02T03:04:05Z`), as an aware datetime."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def names_of(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """`metadata.name` of each object."""
    return [str((o.get("metadata") or {}).get("name", "")) for o in objects]


# --------------------------------------------------------------------------- added by the node-lifecycle helper


def version(target: str | KubeTarget) -> Command:
    """`kubectl version -o json`: client and API server versions (a read)."""
    return Command(argv=kubectl(target, "version", "--output", "json"), description="read the API server version")


def parse_server_version(result: Result) -> str:
    """`serverVersion.gitVersion` (`v1.35.0`) from `kubectl version -o json`."""
    data = parse_object(result)
    server = data.get("serverVersion") or {}
    value = server.get("gitVersion") if isinstance(server, dict) else None
    if not isinstance(value, str) or not value:
        raise KubectlOutputError("kubectl version printed no serverVersion.gitVersion")
    return value


def set_cluster_server(target: str | KubeTarget, cluster: str, server: str) -> Command:
    """`kubectl config set-cluster <cluster> --server <url>` in the target's kubeconfig file."""
    return Command(
        argv=kubectl(target, "config", "set-cluster", cluster, "--server", server),
        description=f"set the server of cluster {cluster} to {server}",
        mutates=True,
    )


def readyz(target: str | KubeTarget, *, request_timeout: str = "5s") -> Command:
    """`kubectl get --raw /readyz` with a short request timeout: does the API server answer?"""
    return Command(
        argv=kubectl(target, f"--request-timeout={request_timeout}", "get", "--raw", "/readyz"),
        description="ask the API server /readyz",
    )
