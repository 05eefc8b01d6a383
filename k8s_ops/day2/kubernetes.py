"""kubernetes.* plans: force-sync ExternalSecrets, restart a HelmRelease, reconcile Kustomizations, cleanse pods.

Pure builders: facts in (objects read with kubectl), Plan out. Each wait fails with the object's own message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.plan import Check, Plan, Step, Undo
from k8s_ops.core.runner import Runner
from k8s_ops.core.wait import StopWaiting, wait_check
from k8s_ops.day2.common import by_namespace, shell
from k8s_ops.tools import flux
from k8s_ops.tools.flux import FLUX_NAMESPACE, HELMRELEASE, KUSTOMIZATION, ROOT_KUSTOMIZATION, flux_status
from k8s_ops.tools.kubectl import KubeTarget, Obj, annotate, delete, get_or_none, list_or_empty, parse_time

__all__ = [
    "CLEANSE_PHASES",
    "EXTERNALSECRET",
    "FORCE_SYNC",
    "external_secrets_fact",
    "flux_ready_check",
    "plan_cleanse_pods",
    "plan_hr_restart",
    "plan_reconcile",
    "plan_sync_secrets",
    "select_pods",
    "select_secrets",
]

EXTERNALSECRET = "externalsecrets.external-secrets.io"
FORCE_SYNC = "force-sync"
"""The annotation external-secrets watches: a new value makes it refresh the secret from its store now."""

CLEANSE_PHASES = ("Failed", "Succeeded")

SECRET_SYNC_TIMEOUT = 120.0
FLUX_READY_TIMEOUT = 600.0


def _ns_name(obj: Mapping[str, Any]) -> str:
    o = Obj(obj)
    return f"{o.namespace}/{o.name}"


# --------------------------------------------------------------------------- sync-secrets


def external_secrets_fact(runner: Runner, target: KubeTarget, namespace: str | None) -> list[dict[str, Any]]:
    """Every ExternalSecret (in `namespace`, or in all namespaces); none when the CRD is not installed."""
    return list_or_empty(runner, target, EXTERNALSECRET, namespace=namespace, all_namespaces=namespace is None)


def _secret_synced(obj: Mapping[str, Any], epoch: int) -> bool:
    o = Obj(obj)
    refreshed = parse_time(o.status("refreshTime"))
    return o.is_true("Ready") and refreshed is not None and refreshed.timestamp() >= epoch


def _secrets_synced_probe(
    target: KubeTarget, wanted: Sequence[str], epoch: int, namespace: str | None
) -> Callable[[Runner], str | None]:
    def probe(runner: Runner) -> str | None:
        items = {_ns_name(o): o for o in external_secrets_fact(runner, target, namespace)}
        pending = []
        for key in wanted:
            obj = items.get(key)
            if obj is None or _secret_synced(obj, epoch):
                continue  # synced, or deleted meanwhile: nothing left to wait for
            ready = Obj(obj).condition("Ready") or {}
            why = ": ".join(str(x) for x in (ready.get("reason"), ready.get("message")) if x) or "no status yet"
            pending.append(f"{key} ({why})")
        if pending:
            return f"{len(pending)} of {len(wanted)} not synced yet: " + "; ".join(pending[:5])
        return None

    return probe


def select_secrets(
    secrets: Sequence[Mapping[str, Any]], *, names: Sequence[str] = (), namespace: str | None = None
) -> list[Mapping[str, Any]]:
    """The ExternalSecrets named in `names` (all when empty); a name that matches none is an error."""
    selected = [s for s in secrets if not names or Obj(s).name in names]
    missing = sorted(set(names) - {Obj(s).name for s in selected})
    if missing:
        where = f"namespace {namespace}" if namespace else "any namespace"
        raise ToolkitError(
            f"no ExternalSecret named {', '.join(missing)} in {where}",
            hint="list them: kubectl get externalsecrets -A" if secrets else "is external-secrets installed?",
        )
    return selected


def plan_sync_secrets(
    cluster: str,
    target: KubeTarget,
    selected: Sequence[Mapping[str, Any]],
    *,
    epoch: int,
    namespace: str | None = None,
) -> Plan:
    """Annotate the selected ExternalSecrets `force-sync=<epoch>` (one command per namespace), then wait until
    every one reports Ready with a refresh at or after `epoch`."""
    title = "force-sync ExternalSecrets"
    if not selected:
        return Plan(title, cluster, (Step("force-sync ExternalSecrets", noop="no ExternalSecrets found"),))
    groups = by_namespace(selected)
    steps: list[Step] = []
    wanted = sorted(_ns_name(s) for s in selected)
    for i, (ns, group) in enumerate(groups.items()):
        last = i == len(groups) - 1
        after: tuple[Check, ...] = ()
        if last:
            after = (
                wait_check(
                    f"{len(wanted)} ExternalSecret(s) Ready and refreshed since {epoch}",
                    _secrets_synced_probe(target, wanted, epoch, namespace),
                    timeout=SECRET_SYNC_TIMEOUT,
                    hint="kubectl describe externalsecret -n <ns> <name> shows the store's error",
                    show_timeout=True,
                ),
            )
        steps.append(
            Step(
                f"force-sync {len(group)} ExternalSecret(s) in {ns}",
                commands=(
                    annotate(
                        target,
                        EXTERNALSECRET,
                        group,
                        {FORCE_SYNC: str(epoch)},
                        namespace=ns,
                        description=f"force-sync {', '.join(group)}",
                    ),
                ),
                after=after,
            )
        )
    return Plan(
        title, cluster, tuple(steps), notes=(f"{len(selected)} ExternalSecret(s) in {len(groups)} namespace(s)",)
    )


# --------------------------------------------------------------------------- flux readiness


def flux_ready_check(
    target: KubeTarget, kind: flux.FluxKind, name: str, namespace: str, *, timeout: float = FLUX_READY_TIMEOUT
) -> Check:
    """Wait until a Kustomization/HelmRelease is Ready for its current spec and latest reconcile request.

    Fails at once when the object is Stalled (Flux gave up) or suspended again (someone else acted on it).
    """
    resource = KUSTOMIZATION if kind == "kustomization" else HELMRELEASE
    label = "Kustomization" if kind == "kustomization" else "HelmRelease"

    def probe(runner: Runner) -> str | None:
        obj = get_or_none(runner, target, resource, name, namespace=namespace)
        if obj is None:
            raise StopWaiting(f"{label} {namespace}/{name} no longer exists")
        status = flux_status(obj)
        if status.reconciled:
            return None
        if status.stalled:
            raise StopWaiting(f"{label} {status.describe()} — stalled: Flux will not retry on its own")
        return status.describe()

    return wait_check(
        f"{label} {namespace}/{name} Ready",
        probe,
        timeout=timeout,
        hint=f"{shell(target, 'flux', 'get', kind, name, '-n', namespace)}; "
        f"{shell(target, 'flux', 'events', '--for', f'{label}/{name}', '-n', namespace)}",
        show_timeout=True,
    )


# --------------------------------------------------------------------------- hr-restart


def plan_hr_restart(
    cluster: str, target: KubeTarget, release: Mapping[str, Any] | None, *, name: str, namespace: str
) -> Plan:
    """Suspend then resume the HelmRelease (a fresh reconcile), and wait until it is Ready again.

    Recovery: the suspend step's undo resumes it, so a failure never leaves the release suspended.
    """
    if release is None:
        raise ToolkitError(
            f"HelmRelease {namespace}/{name} not found",
            hint=f"list them: {shell(target, 'flux', 'get', 'hr', '-A')}",
        )
    notes: list[str] = []
    if flux_status(release).suspended:
        notes.append(f"HelmRelease {namespace}/{name} is suspended now: hr-restart resumes it")
    resume = flux.resume(target, "helmrelease", name, namespace)
    steps = (
        Step(
            f"suspend HelmRelease {namespace}/{name}",
            commands=(flux.suspend(target, "helmrelease", name, namespace),),
            undo=Undo((resume,), f"resumed HelmRelease {namespace}/{name}"),
        ),
        Step(
            f"resume HelmRelease {namespace}/{name}",
            commands=(resume,),
            after=(flux_ready_check(target, "helmrelease", name, namespace),),
        ),
    )
    return Plan(f"restart HelmRelease {namespace}/{name}", cluster, steps, notes=tuple(notes), on_failure="")


# --------------------------------------------------------------------------- reconcile


def plan_reconcile(
    cluster: str,
    target: KubeTarget,
    kustomization: Mapping[str, Any] | None,
    *,
    name: str = ROOT_KUSTOMIZATION,
    namespace: str = FLUX_NAMESPACE,
    with_source: bool = False,
) -> Plan:
    """Reconcile one Flux Kustomization (the root one by default), optionally fetching its source first."""
    if kustomization is None:
        raise ToolkitError(
            f"Kustomization {namespace}/{name} not found",
            hint=f"list them: {shell(target, 'flux', 'get', 'ks', '-A')}",
        )
    status = flux_status(kustomization)
    if status.suspended:
        raise ToolkitError(
            f"Kustomization {namespace}/{name} is suspended: reconciling it would do nothing",
            hint=f"resume it: {shell(target, 'flux', 'resume', 'ks', name, '-n', namespace)}",
        )
    step = Step(
        f"reconcile Kustomization {namespace}/{name}{' with its source' if with_source else ''}",
        commands=(flux.reconcile(target, "kustomization", name, namespace, with_source=with_source),),
        after=(flux_ready_check(target, "kustomization", name, namespace),),
    )
    return Plan(f"reconcile Kustomization {namespace}/{name}", cluster, (step,), notes=(f"now: {status.describe()}",))


# --------------------------------------------------------------------------- cleanse-pods


def select_pods(pods: Sequence[Mapping[str, Any]], *, pending: bool = False) -> list[Mapping[str, Any]]:
    """Pods in phase Failed or Succeeded (and Pending with `pending`)."""
    phases = (*CLEANSE_PHASES, "Pending") if pending else CLEANSE_PHASES
    return [p for p in pods if Obj(p).status("phase") in phases]


def plan_cleanse_pods(
    cluster: str, target: KubeTarget, doomed: Sequence[Mapping[str, Any]], *, pending: bool = False
) -> Plan:
    """Delete the given pods (from `select_pods`), one command per namespace naming every pod."""
    phases = (*CLEANSE_PHASES, "Pending") if pending else CLEANSE_PHASES
    title = f"delete pods in phase {', '.join(phases)}"
    if not doomed:
        return Plan(title, cluster, (Step("delete finished pods", noop=f"no pods in phase {', '.join(phases)}"),))
    steps = []
    phase_of = {_ns_name(p): str(Obj(p).status("phase")) for p in doomed}
    for ns, names in by_namespace(doomed).items():
        shown = ", ".join(f"{n} ({phase_of[f'{ns}/{n}']})" for n in names)
        steps.append(
            Step(
                f"delete {len(names)} pod(s) in {ns}: {shown}",
                commands=(delete(target, "pods", names, namespace=ns, wait=False, description=f"delete {shown}"),),
            )
        )
    counts = {ph: sum(1 for v in phase_of.values() if v == ph) for ph in phases}
    note = ", ".join(f"{n} {ph}" for ph, n in counts.items() if n)
    return Plan(title, cluster, tuple(steps), notes=(f"{len(doomed)} pod(s): {note}",))
