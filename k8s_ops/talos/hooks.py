"""What a rollout runs around its nodes, as plan effects: inventory hooks, Job runs, Alertmanager silences.

* `command` hooks run an argv on the operator machine without a shell, from the cluster directory; `kubectl` hooks
  are kubectl argv against the cluster's own kubeconfig and context. Node hooks get NODE, NODE_ADDRESS and ROLE in
  their environment (a Job gets them as container env). Both are `Command`s, so `always` post-hooks can be step
  undos that the plan's recovery runs when the rollout fails or is interrupted.
* A Job (a `job` health check or hook) is a manifest file in the cluster directory: a leftover Job of the same name
  is deleted first (a finished Job would otherwise count as done at once), then it is applied, awaited (condition
  `Complete`, or `Failed` which stops at once), its logs shown on failure, and deleted whatever happened.
* An Alertmanager silence per node (`upgrade.alertmanager`): POST `<url>/api/v2/silences` (matchers with the node's
  name), ending on its own after the node's reboot timeout; DELETE `<url>/api/v2/silence/<id>` expires it once the
  node is back (Alertmanager API v2, api/v2/openapi.yaml).
"""

from __future__ import annotations

import copy
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from k8s_ops.core.command import Command
from k8s_ops.core.errors import GateFailed, Problem, ProblemsError, ToolkitError, last_error_line
from k8s_ops.core.plan import Action, Effect
from k8s_ops.core.runner import Runner
from k8s_ops.core.wait import NotYet, StopWaiting, wait_for
from k8s_ops.tools import kubectl
from k8s_ops.tools.kubectl import KubeTarget

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Cluster, Node
    from k8s_ops.talos.inventory.models import Alertmanager, HookAction

__all__ = [
    "JobSpec",
    "SilenceMemo",
    "hook_command",
    "hook_effect",
    "job_effect",
    "load_job",
    "node_env",
    "run_job",
    "silence_create",
    "silence_expire",
]

LOG_TAIL = 40


def node_env(node: Node | None) -> tuple[tuple[str, str], ...]:
    """NODE, NODE_ADDRESS, ROLE for a node hook (nothing for a cluster hook)."""
    if node is None:
        return ()
    return (("NODE", node.hostname), ("NODE_ADDRESS", str(node.address)), ("ROLE", node.role))


# --------------------------------------------------------------------------- Jobs


@dataclass(frozen=True)
class JobSpec:
    """A Job manifest from the cluster directory: where it came from, its name and namespace, the object."""

    file: str
    name: str
    namespace: str
    manifest: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def with_env(self, env: Sequence[tuple[str, str]]) -> JobSpec:
        """The same Job with `env` added to every container (a node hook's NODE, NODE_ADDRESS, ROLE)."""
        if not env:
            return self
        doc = copy.deepcopy(dict(self.manifest))
        spec = kubectl.dig(doc, "spec", "template", "spec", default={}) or {}
        for container in spec.get("containers") or []:
            if isinstance(container, dict):
                have = [e for e in container.get("env") or [] if e.get("name") not in dict(env)]
                container["env"] = [*have, *({"name": k, "value": v} for k, v in env)]
        return JobSpec(self.file, self.name, self.namespace, doc)


def load_job(cluster: Cluster, relative: str, *, where: str) -> JobSpec:
    """Read and check a Job manifest (`relative` to the cluster directory); problems name the file and `where`."""
    from k8s_ops.talos import yamlio

    path = cluster.path / relative
    file = str(cluster.file)
    try:
        docs = yamlio.load_documents(yamlio.read_text(path))
    except FileNotFoundError:
        raise ProblemsError(
            [Problem(file, where, f"Job manifest {relative} does not exist in {cluster.path}")]
        ) from None
    except (OSError, yamlio.YAMLError) as exc:
        raise ProblemsError([Problem(str(path), where, f"cannot read the Job manifest: {exc}")]) from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ProblemsError([Problem(str(path), where, "a Job manifest holds exactly one object")])
    doc: dict[str, Any] = docs[0]
    if doc.get("kind") != "Job" or doc.get("apiVersion") != "batch/v1":
        raise ProblemsError([Problem(str(path), where, "the manifest must be a batch/v1 Job")])
    name = kubectl.dig(doc, "metadata", "name")
    if not isinstance(name, str) or not name:
        raise ProblemsError([Problem(str(path), where, "the Job needs metadata.name (generateName cannot be awaited)")])
    namespace = kubectl.dig(doc, "metadata", "namespace") or "default"
    doc.setdefault("metadata", {})["namespace"] = namespace
    return JobSpec(relative, name, str(namespace), doc)


def _job_state(obj: Mapping[str, Any] | None, spec: JobSpec) -> bool:
    """True once the Job completed; StopWaiting once it failed (backoffLimit reached); NotYet otherwise
    (batch/v1 JobStatus conditions `Complete` and `Failed`)."""
    if obj is None:
        raise NotYet(f"Job {spec.ref} not created yet")
    o = kubectl.Obj(obj)
    failed = o.condition("Failed")
    if failed is not None and failed.get("status") == "True":
        raise StopWaiting(f"Job {spec.ref} failed ({failed.get('reason', '')}: {failed.get('message', '')})")
    if o.is_true("Complete"):
        return True
    active, failures = o.status("active", default=0) or 0, o.status("failed", default=0) or 0
    raise NotYet(f"Job {spec.ref}: {active} active, {failures} failed pod(s)")


def job_logs(runner: Runner, kube: KubeTarget, spec: JobSpec) -> str:
    """The last lines of the Job's pod logs (`kubectl logs job/<name>`), or why they could not be read."""
    command = Command(
        argv=kubectl.kubectl(kube, "logs", f"job/{spec.name}", "--namespace", spec.namespace, f"--tail={LOG_TAIL}"),
        description=f"read the logs of Job {spec.ref}",
    )
    try:
        result = runner.run(command, check=False)
    except ToolkitError as exc:
        return f"(logs unavailable: {last_error_line(exc)})"
    if not result.ok:
        return f"(logs unavailable: {last_error_line(result)})"
    return result.stdout.rstrip() or "(no output)"


def run_job(runner: Runner, kube: KubeTarget, spec: JobSpec, *, timeout: float, what: str) -> None:
    """Run the Job to completion (see the module docstring); GateFailed with its logs when it fails or times out."""
    resource = "jobs.v1.batch"
    runner.run(kubectl.delete(kube, resource, [spec.name], namespace=spec.namespace, description="remove a leftover"))
    try:
        runner.run(kubectl.apply_manifest(kube, spec.manifest, description=f"create Job {spec.ref}"))

        def probe() -> bool:
            return _job_state(kubectl.get_or_none(runner, kube, resource, spec.name, namespace=spec.namespace), spec)

        try:
            wait_for(f"{what}: Job {spec.ref} to complete", probe, timeout=timeout)
        except GateFailed as exc:
            logs = job_logs(runner, kube, spec)
            raise GateFailed(exc.gate, f"{exc.detail}\nlogs of Job {spec.ref}:\n{logs}", hint=exc.hint) from None
    finally:
        runner.run(kubectl.delete(kube, resource, [spec.name], namespace=spec.namespace), check=False)


def job_effect(kube: KubeTarget, spec: JobSpec, *, timeout: float, what: str) -> Action:
    """The Job run as a plan effect (it creates and deletes a Job: it mutates, so it is never a read-only gate)."""
    return Action(
        "run-job",
        f"Job {spec.ref}",
        lambda runner: run_job(runner, kube, spec, timeout=timeout, what=what),
        detail=(("manifest", spec.file), ("timeout", f"{timeout:g}s"), ("for", what)),
    )


# --------------------------------------------------------------------------- hooks


def hook_command(cluster: Cluster, kube: KubeTarget, hook: HookAction, *, phase: str, node: Node | None) -> Command:
    """A `command` or `kubectl` hook as the exact Command it runs."""
    env = node_env(node)
    label = hook.description or ""
    if hook.kubectl is not None:
        argv = kubectl.kubectl(kube, *hook.kubectl)
        what = label or f"kubectl {shlex.join(hook.kubectl)}"
    else:
        assert hook.command is not None
        argv = hook.command
        what = label or shlex.join(hook.command)
    return Command(
        argv=argv,
        env=env,
        description=f"{phase} hook: {what}",
        mutates=True,
        node=node.hostname if node is not None else None,
        timeout=hook.timeout,
        cwd=str(cluster.path),
    )


def hook_effect(
    cluster: Cluster, kube: KubeTarget, hook: HookAction, *, phase: str, node: Node | None, index: int
) -> Effect:
    """Any hook as an effect: a Command, or a Job run."""
    if hook.job is not None:
        where = f"upgrade.hooks.{phase}[{index}].job"
        spec = load_job(cluster, hook.job, where=where).with_env(node_env(node))
        suffix = f" for {node.hostname}" if node is not None else ""
        return job_effect(kube, spec, timeout=hook.timeout, what=f"{phase} hook{suffix}")
    return hook_command(cluster, kube, hook, phase=phase, node=node)


# --------------------------------------------------------------------------- Alertmanager silences


class SilenceMemo:
    """The id of the silence created for one node, kept for its expiry (one per node and run)."""

    def __init__(self) -> None:
        self.id: str | None = None


def _matchers(am: Alertmanager, node: Node) -> list[dict[str, Any]]:
    return [
        {"name": k, "value": v.replace("{node}", node.hostname), "isRegex": False, "isEqual": True}
        for k, v in sorted(am.matchers.items())
    ]


def _base(am: Alertmanager) -> str:
    """Alertmanager's base URL, or for a `service` the path of its Kubernetes API service proxy (`<scheme>:<name>:
    <port>`: the scheme to reach the pods with and the Service's port name or number)."""
    if am.url is not None:
        return am.url.rstrip("/")
    svc = am.service
    assert svc is not None
    return f"/api/v1/namespaces/{svc.namespace}/services/{svc.scheme}:{svc.name}:{svc.port}/proxy"


@dataclass(frozen=True)
class _ApiServer:
    """How httpx reaches the Kubernetes API server as the kubeconfig's context does: its URL, TLS verification
    (the cluster's CA, or the system's), the client certificate or bearer token. Nothing of it is written to disk."""

    server: str
    verify: Any = field(repr=False)
    token: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def _api_server(kube: KubeTarget) -> _ApiServer:
    """The kubeconfig context's API server and credentials (ToolkitError naming what is missing)."""
    import base64
    import ssl

    from k8s_ops.core.facts import dig
    from k8s_ops.core.files import anonymous_file
    from k8s_ops.talos.yamlio import YAMLError

    where = f"kubeconfig {kube.kubeconfig}"
    try:
        doc = kubectl.read_kubeconfig(kube.kubeconfig) or {}
    except (OSError, YAMLError) as exc:
        raise ToolkitError(f"{where}: cannot read it ({exc})") from None

    def named(section: str, name: str) -> dict[str, Any]:
        for item in doc.get(section) or []:
            if isinstance(item, dict) and item.get("name") == name:
                return dict(item)
        raise ToolkitError(f"{where}: no {section[:-1]} named {name!r}")

    ctx = dig(named("contexts", kube.context), "context", default={})
    cluster = dig(named("clusters", str(ctx.get("cluster"))), "cluster", default={})
    user = dig(named("users", str(ctx.get("user"))), "user", default={}) if ctx.get("user") else {}
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise ToolkitError(f"{where}: context {kube.context} names no server")
    if not server.startswith("https://"):
        return _ApiServer(server, True, user.get("token"))
    if cluster.get("insecure-skip-tls-verify"):
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        tls = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    else:
        tls = ssl.create_default_context(cafile=cluster.get("certificate-authority"))
    cert, key = user.get("client-certificate-data"), user.get("client-key-data")
    if cert and key:
        # the key reaches OpenSSL through anonymous in-memory files, closed right after loading
        fds = [anonymous_file(base64.b64decode(cert)), anonymous_file(base64.b64decode(key))]
        try:
            tls.load_cert_chain(f"/dev/fd/{fds[0]}", f"/dev/fd/{fds[1]}")
        finally:
            for fd in fds:
                os.close(fd)
    elif user.get("client-certificate") and user.get("client-key"):
        tls.load_cert_chain(user["client-certificate"], user["client-key"])
    return _ApiServer(server, tls, user.get("token"))


def _http(am: Alertmanager, kube: KubeTarget | None) -> tuple[str, dict[str, Any]]:
    """The base URL and httpx arguments for `am`: a URL as it is, a service through the API server's proxy."""
    if am.url is not None:
        return _base(am), {}
    if kube is None:
        raise ToolkitError("upgrade.alertmanager.service needs the cluster's kubeconfig")
    api = _api_server(kube)
    return api.server + _base(am), {"verify": api.verify, "headers": api.headers()}


def silence_create(
    am: Alertmanager,
    node: Node,
    memo: SilenceMemo,
    *,
    minutes: float,
    why: str,
    kube: KubeTarget | None = None,
) -> Action:
    """POST a silence for the node's alerts, ending by itself after `minutes` (`kube`: for a `service`)."""
    shown_url = _base(am) + "/api/v2/silences"
    shown = ",".join(f"{m['name']}={m['value']}" for m in _matchers(am, node))

    def run(_: Runner) -> str:
        import httpx

        now = datetime.now(UTC)
        body = {
            "matchers": _matchers(am, node),
            "startsAt": now.isoformat().replace("+00:00", "Z"),
            "endsAt": (now + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
            "createdBy": am.created_by,
            "comment": why,
        }
        base, extra = _http(am, kube)
        url = base + "/api/v2/silences"
        try:
            response = httpx.post(url, json=body, timeout=30, **extra)
            response.raise_for_status()
            silence_id = response.json().get("silenceID")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise ToolkitError(f"Alertmanager silence for {node.hostname} at {url} failed: {exc}") from None
        if not isinstance(silence_id, str) or not silence_id:
            raise ToolkitError(f"Alertmanager at {url} answered without a silenceID")
        memo.id = silence_id
        return f"silence {silence_id}"

    return Action(
        "alertmanager-silence",
        shown_url,
        run,
        detail=(("matchers", shown), ("minutes", f"{minutes:g}")),
    )


def silence_expire(am: Alertmanager, node: Node, memo: SilenceMemo, *, kube: KubeTarget | None = None) -> Action:
    """DELETE the node's silence (expires it); nothing when none was created."""
    shown = _base(am) + "/api/v2/silence/"

    def run(_: Runner) -> None:
        import httpx

        if memo.id is None:
            return
        base, extra = _http(am, kube)
        try:
            httpx.delete(base + "/api/v2/silence/" + memo.id, timeout=30, **extra).raise_for_status()
        except httpx.HTTPError as exc:
            raise ToolkitError(
                f"expiring the Alertmanager silence {memo.id} of {node.hostname} failed: {exc}"
            ) from None
        memo.id = None

    return Action("alertmanager-expire", shown + "<id>", run, detail=(("node", node.hostname),))
