"""kubectl commands, facts and waits the bootstrap needs, built on `k8s_ops.tools.kubectl` (argv with explicit
`--kubeconfig`/`--context`). Adapter kept in bootstrap/: server-side apply from stdin or a URL, "same content"
comparisons for guards, and bounded waits that name the object they wait for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from k8s_ops.core.command import Command
from k8s_ops.core.errors import CommandFailed
from k8s_ops.core.runner import Runner
from k8s_ops.core.secret import Secret
from k8s_ops.core.wait import NotYet, wait_for
from k8s_ops.tools import kubectl
from k8s_ops.tools.kubectl import KubeTarget

__all__ = [
    "FIELD_MANAGER",
    "apply_stdin",
    "apply_url",
    "crd_problem",
    "daemonset_problem",
    "deployment_problem",
    "get_object",
    "is_subset",
    "nodes_problem",
    "ready_condition_problem",
    "wait_until",
]

FIELD_MANAGER: Final = "k8s-ops"


def apply_stdin(target: KubeTarget, payload: Secret | bytes, *, description: str) -> Command:
    """`kubectl apply --server-side --field-manager k8s-ops --force-conflicts --filename -` (manifest on stdin).

    Server-side apply with one field manager makes a re-apply of the same content a no-op and lets a re-run
    take fields back after a partial failure; a Secret's manifest travels as a masked `Secret` on stdin.
    """
    return Command(
        argv=kubectl.kubectl(
            target, "apply", "--server-side", "--field-manager", FIELD_MANAGER, "--force-conflicts", "--filename", "-"
        ),
        stdin=payload,
        description=description,
        mutates=True,
    )


def apply_url(target: KubeTarget, url: str, *, description: str) -> Command:
    """`kubectl apply --server-side … --filename <https URL>` (CRD bundles published as release assets)."""
    return Command(
        argv=kubectl.kubectl(
            target, "apply", "--server-side", "--field-manager", FIELD_MANAGER, "--force-conflicts", "--filename", url
        ),
        description=description,
        mutates=True,
    )


def get_object(
    runner: Runner, target: KubeTarget, resource: str, name: str, namespace: str | None
) -> dict[str, Any] | None:
    """The object, or None when it (or its kind) does not exist. Other failures raise."""
    command = kubectl.get(target, resource, name, namespace=namespace)
    result = runner.run(command, check=False)
    if not result.ok:
        if kubectl.is_not_found(result):
            return None
        raise CommandFailed(command.display(), result.returncode, result.stderr or result.stdout)
    return kubectl.parse_object(result)


def is_subset(want: Any, have: Any) -> bool:
    """Every field of `want` is present in `have` with the same value (lists compared whole, by value).

    The API server adds defaults (e.g. a Kustomization's `force: false`); those must not count as drift.
    """
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(k in have and is_subset(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return False
        return all(is_subset(w, h) for w, h in zip(want, have, strict=True))
    return bool(want == have)


# --------------------------------------------------------------------------- probes: None = fine, text = why not


def crd_problem(
    runner: Runner,
    target: KubeTarget,
    names: Sequence[str],
    *,
    annotation: str | None = None,
    version: str | None = None,
) -> str | None:
    """Why the CRDs are not all there and Established (at `version` when an annotation carries it). One call."""
    result = runner.run(kubectl.get(target, "customresourcedefinitions", description="read the CRDs"), check=False)
    if not result.ok:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return f"Kubernetes API: {lines[-1] if lines else 'no answer'}"
    have = {str((o.get("metadata") or {}).get("name")): o for o in kubectl.parse_items(result)}
    bad: list[str] = []
    for name in names:
        obj = have.get(name)
        if obj is None:
            bad.append(f"{name}: missing")
            continue
        cond = kubectl.condition(obj, "Established")
        if cond is None or cond.get("status") != "True":
            bad.append(f"{name}: not Established")
            continue
        if annotation and version:
            seen = ((obj.get("metadata") or {}).get("annotations") or {}).get(annotation)
            if seen != version:
                bad.append(f"{name}: {annotation}={seen or 'unset'}, want {version}")
    return "; ".join(bad) if bad else None


def daemonset_problem(runner: Runner, target: KubeTarget, name: str, namespace: str) -> str | None:
    """Why the DaemonSet is not fully rolled out (every scheduled pod updated and ready)."""
    obj = get_object(runner, target, "daemonsets", name, namespace)
    if obj is None:
        return f"DaemonSet {namespace}/{name} does not exist yet"
    meta, st = obj.get("metadata") or {}, obj.get("status") or {}
    desired = int(st.get("desiredNumberScheduled") or 0)
    ready = int(st.get("numberReady") or 0)
    updated = int(st.get("updatedNumberScheduled") or 0)
    observed = int(st.get("observedGeneration") or 0)
    if observed < int(meta.get("generation") or 0):
        return f"DaemonSet {namespace}/{name}: new spec not observed yet"
    if desired == 0:
        return f"DaemonSet {namespace}/{name}: no pod scheduled yet"
    if ready < desired or updated < desired:
        return f"DaemonSet {namespace}/{name}: {ready}/{desired} ready, {updated}/{desired} updated"
    return None


def deployment_problem(runner: Runner, target: KubeTarget, name: str, namespace: str) -> str | None:
    """Why the Deployment is not Available with every replica updated."""
    obj = get_object(runner, target, "deployments", name, namespace)
    if obj is None:
        return f"Deployment {namespace}/{name} does not exist yet"
    meta, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    want = int(spec.get("replicas", 1) or 0)
    if int(st.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return f"Deployment {namespace}/{name}: new spec not observed yet"
    available = kubectl.condition(obj, "Available")
    ready = int(st.get("readyReplicas") or 0)
    updated = int(st.get("updatedReplicas") or 0)
    if available is None or available.get("status") != "True" or ready < want or updated < want:
        return f"Deployment {namespace}/{name}: {ready}/{want} ready, {updated}/{want} updated"
    return None


def nodes_problem(runner: Runner, target: KubeTarget, hostnames: Sequence[str], *, ready: bool) -> str | None:
    """Why not every inventory node is registered (and, with `ready`, Ready)."""
    result = runner.run(kubectl.get(target, "nodes", description="read Kubernetes nodes"), check=False)
    if not result.ok:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return f"Kubernetes API: {lines[-1] if lines else 'no answer'}"
    nodes = {str((o.get("metadata") or {}).get("name")): o for o in kubectl.parse_items(result)}
    missing = [h for h in hostnames if h not in nodes]
    if missing:
        return f"not registered yet: {', '.join(missing)}"
    if ready:
        not_ready = [h for h in hostnames if (kubectl.condition(nodes[h], "Ready") or {}).get("status") != "True"]
        if not_ready:
            return f"NotReady: {', '.join(not_ready)}"
    return None


def ready_condition_problem(obj: Mapping[str, Any] | None, what: str) -> str | None:
    """Why an object with a Ready condition (Flux, FluxInstance) is not Ready for its current generation."""
    if obj is None:
        return f"{what} does not exist"
    meta, st = obj.get("metadata") or {}, obj.get("status") or {}
    cond = kubectl.condition(obj, "Ready")
    if cond is None:
        return f"{what}: no Ready condition yet"
    if cond.get("status") != "True":
        reason = cond.get("reason") or ""
        message = cond.get("message") or ""
        return f"{what} not Ready ({reason}: {message})" if reason or message else f"{what} not Ready"
    if int(st.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return f"{what}: current generation not reconciled yet"
    return None


def wait_until(description: str, probe: Callable[[], str | None], *, timeout: float, hint: str | None = None) -> None:
    """Poll `probe` (None = done, text = why not) until done; GateFailed naming `description` on timeout."""

    def once() -> bool | None:
        problem = probe()
        if problem is not None:
            raise NotYet(problem)
        return True

    wait_for(description, once, timeout=timeout, hint=hint)
