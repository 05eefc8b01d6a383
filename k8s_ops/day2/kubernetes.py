"""kubernetes.* plans: force-sync ExternalSecrets, restart a HelmRelease, reconcile Kustomizations, cleanse pods.

Pure builders: facts in (objects read with kubectl), Plan out. Each wait fails with the object's own message.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from k8s_ops.core.command import Command
from k8s_ops.core.errors import GateFailed, ToolkitError
from k8s_ops.core.plan import Check, Plan, Step, Undo
from k8s_ops.core.runner import Runner
from k8s_ops.core.wait import StopWaiting, wait_check
from k8s_ops.day2.common import DEBUG_IMAGE, MANAGED_BY, PodSession, by_namespace, shell
from k8s_ops.tools import flux
from k8s_ops.tools.flux import (
    FLUX_NAMESPACE,
    HELMRELEASE,
    KUSTOMIZATION,
    REQUESTED_AT,
    ROOT_KUSTOMIZATION,
    flux_status,
)
from k8s_ops.tools.kubectl import (
    KubeTarget,
    Obj,
    annotate,
    apply_manifest,
    delete,
    dig,
    get_or_none,
    kubectl,
    list_or_empty,
    parse_time,
)

__all__ = [
    "CLEANSE_PHASES",
    "DEBUG_POD_LABEL",
    "EXTERNALSECRET",
    "FORCE_AT",
    "FORCE_SYNC",
    "KS_FIELD_MANAGER",
    "NODE_SHELL_NAMESPACE",
    "SYNC_PHASES",
    "BuiltKustomization",
    "ClaimUse",
    "browse_node",
    "browse_pod",
    "claim_use_fact",
    "external_secrets_fact",
    "find_kustomization",
    "flux_objects_fact",
    "flux_ready_check",
    "node_problem",
    "plan_apply_ks",
    "plan_browse_pvc",
    "plan_cleanse_pods",
    "plan_hr_restart",
    "plan_hr_restart_failed",
    "plan_node_shell",
    "plan_reconcile",
    "plan_sync_all",
    "plan_sync_secrets",
    "prepare_objects",
    "read_diff",
    "select_failed_releases",
    "select_pods",
    "select_secrets",
    "server_side_diff",
    "substitution_vars",
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


# --------------------------------------------------------------------------- hr-restart --failed


def select_failed_releases(releases: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[str]]:
    """HelmReleases not Ready (to restart) and the suspended ones among them (left alone: restarting resumes)."""
    failed, suspended = [], []
    for hr in releases:
        status = flux_status(hr)
        if status.ready is True:
            continue
        if status.suspended:
            suspended.append(_ns_name(hr))
        else:
            failed.append(hr)
    return sorted(failed, key=_ns_name), sorted(suspended)


def plan_hr_restart_failed(cluster: str, target: KubeTarget, releases: Sequence[Mapping[str, Any]]) -> Plan:
    """Restart every HelmRelease that is not Ready, one after the other (suspend, resume, wait Ready) exactly as
    `plan_hr_restart` does for one; a failure resumes the release being restarted and stops."""
    failed, suspended = select_failed_releases(releases)
    title = "restart every HelmRelease that is not Ready"
    notes = [f"suspended and not Ready, left alone: {', '.join(suspended)}"] if suspended else []
    if not failed:
        return Plan(
            title,
            cluster,
            (Step("restart failed HelmReleases", noop="every HelmRelease is Ready"),),
            notes=tuple(notes),
        )
    steps: list[Step] = []
    for hr in failed:
        o = Obj(hr)
        steps += plan_hr_restart(cluster, target, hr, name=o.name, namespace=o.namespace).steps
        notes.append(f"{flux_status(hr).describe()}")
    return Plan(title, cluster, tuple(steps), notes=tuple(notes), on_failure="")


# --------------------------------------------------------------------------- sync-all

FORCE_AT = "reconcile.fluxcd.io/forceAt"
"""helm-controller runs a one-off install/upgrade when this annotation equals `reconcile.fluxcd.io/requestedAt`."""

SYNC_PHASES: tuple[tuple[str, str], ...] = (
    ("gitrepositories.source.toolkit.fluxcd.io", "GitRepository"),
    ("ocirepositories.source.toolkit.fluxcd.io", "OCIRepository"),
    (KUSTOMIZATION, "Kustomization"),
    (HELMRELEASE, "HelmRelease"),
)
SYNC_PHASE_TIMEOUT = 600.0


def flux_objects_fact(runner: Runner, target: KubeTarget) -> dict[str, list[dict[str, Any]]]:
    """Every object of each `SYNC_PHASES` resource in all namespaces (none when the kind is not installed)."""
    return {res: list_or_empty(runner, target, res, all_namespaces=True) for res, _ in SYNC_PHASES}


def _handled_probe(
    target: KubeTarget, resource: str, label: str, wanted: Sequence[str], token: str
) -> Callable[[Runner], str | None]:
    def probe(runner: Runner) -> str | None:
        items = {_ns_name(o): o for o in list_or_empty(runner, target, resource, all_namespaces=True)}
        waiting = [k for k in wanted if k in items and Obj(items[k]).status("lastHandledReconcileAt") != token]
        if waiting:
            done = len(wanted) - len(waiting)
            return f"{done} of {len(wanted)} {label}(s) reconciled; waiting for {', '.join(waiting[:5])}"
        return None

    return probe


def _not_ready_check(target: KubeTarget, wanted: Sequence[tuple[str, str, str]]) -> Check:
    """The closing check of sync-all: every reconciled object Ready, else a failure naming each one that is not."""

    def run(runner: Runner) -> None:
        failures = []
        for resource, label, key in wanted:
            ns, name = key.split("/", 1)
            obj = get_or_none(runner, target, resource, name, namespace=ns)
            if obj is None:
                continue
            ready = Obj(obj).condition("Ready") or {}
            if ready.get("status") != "True":
                why = ": ".join(str(x) for x in (ready.get("reason"), ready.get("message")) if x) or "no Ready yet"
                failures.append(f"{label} {key} ({why})")
        if failures:
            raise GateFailed(
                f"{len(failures)} of {len(wanted)} Flux object(s) not Ready after the sync",
                "\n  - " + "\n  - ".join(failures),
                hint=shell(target, "flux", "get", "all", "-A", "--status-selector", "ready=false"),
            )

    return Check(f"all {len(wanted)} reconciled Flux object(s) Ready", run)


def plan_sync_all(
    cluster: str,
    target: KubeTarget,
    objects: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    token: str,
    force: bool = False,
) -> Plan:
    """Request a reconcile (`reconcile.fluxcd.io/requestedAt=<token>`, plus `forceAt=<token>` on HelmReleases with
    `force`) of every GitRepository and OCIRepository, then every Kustomization, then every HelmRelease; each phase
    waits until its objects handled the request (`status.lastHandledReconcileAt == token`), counting them; the last
    step names every object that is not Ready. Suspended objects are skipped (noted)."""
    steps: list[Step] = []
    notes: list[str] = []
    everything: list[tuple[str, str, str]] = []
    for resource, label in SYNC_PHASES:
        items = objects.get(resource) or []
        live = [o for o in items if not flux_status(o).suspended]
        skipped = sorted(_ns_name(o) for o in items if flux_status(o).suspended)
        if skipped:
            notes.append(f"suspended {label}(s) skipped: {', '.join(skipped)}")
        if not live:
            steps.append(Step(f"reconcile {label}s", noop=f"no {label} to reconcile"))
            continue
        annotations = {REQUESTED_AT: token}
        if force and label == "HelmRelease":
            annotations[FORCE_AT] = token
        commands = tuple(
            annotate(
                target,
                resource,
                names,
                annotations,
                namespace=ns,
                description=f"request a reconcile of {label}(s) {', '.join(names)} in {ns}",
            )
            for ns, names in by_namespace(live).items()
        )
        wanted = sorted(_ns_name(o) for o in live)
        everything += [(resource, label, k) for k in wanted]
        steps.append(
            Step(
                f"reconcile {len(wanted)} {label}(s){' (forced upgrade)' if force and label == 'HelmRelease' else ''}",
                commands=commands,
                after=(
                    wait_check(
                        f"{len(wanted)} {label}(s) handled the reconcile request {token}",
                        _handled_probe(target, resource, label, wanted, token),
                        timeout=SYNC_PHASE_TIMEOUT,
                        hint=shell(target, "flux", "get", label.lower() if label != "HelmRelease" else "hr", "-A"),
                        show_timeout=True,
                    ),
                ),
            )
        )
    if everything:
        steps.append(Step("check that every reconciled object is Ready", after=(_not_ready_check(target, everything),)))
    return Plan("reconcile every Flux source, Kustomization and HelmRelease", cluster, tuple(steps), notes=tuple(notes))


# --------------------------------------------------------------------------- node-shell

NODE_SHELL_NAMESPACE = "kube-system"
"""Where node-shell's debug pod runs: Talos exempts kube-system from its default PodSecurity level (baseline), and a
sysadmin debug pod (privileged, host namespaces) is admitted nowhere else without relabelling a namespace."""

DEBUG_POD_LABEL = {"app.kubernetes.io/managed-by": "kubectl-debug"}
"""The label kubectl debug puts on the node debugging pods it creates (node-debugger-<node>-<suffix>)."""

POD_RUNNING_TIMEOUT = 300.0


def node_problem(nodes: Sequence[Mapping[str, Any]], node: str) -> str | None:
    """Why `node` cannot take a debug pod (unknown, or not Ready), or None."""
    by = {Obj(n).name: n for n in nodes}
    if node not in by:
        return f"no node named {node}; nodes: {', '.join(sorted(by)) or 'none'}"
    if not Obj(by[node]).is_true("Ready"):
        return f"node {node} is not Ready: a pod cannot start there"
    return None


def _delete_debug_pods(target: KubeTarget, node: str) -> Command:
    selector = ",".join(f"{k}={v}" for k, v in DEBUG_POD_LABEL.items())
    return Command(
        argv=kubectl(
            target,
            "delete",
            "pods",
            "--namespace",
            NODE_SHELL_NAMESPACE,
            "--selector",
            selector,
            "--field-selector",
            f"spec.nodeName={node}",
            "--ignore-not-found",
            "--wait=false",
        ),
        description=f"delete the debug pod(s) on {node}",
        mutates=True,
    )


def plan_node_shell(
    cluster: str,
    target: KubeTarget,
    nodes: Sequence[Mapping[str, Any]],
    node: str,
    *,
    command: str | None,
    image: str = DEBUG_IMAGE,
) -> Plan:
    """A privileged debug pod on `node` (`kubectl debug node/<node> --profile sysadmin`, the host's filesystem at
    /host, host namespaces) with a shell on the terminal — or, with `command`, `sh -c <command>` with its output
    captured — then the pod is deleted; the delete is also the recovery, so a failure or Ctrl-C removes it."""
    problem = node_problem(nodes, node)
    if problem is not None:
        raise ToolkitError(problem, hint=f"list them: {shell(target, 'kubectl', 'get', 'nodes')}")
    args = [
        "debug",
        f"node/{node}",
        "--namespace",
        NODE_SHELL_NAMESPACE,
        "--profile",
        "sysadmin",
        "--image",
        image,
        "--quiet",
    ]
    if command is None:
        args += ["--stdin", "--tty", "--", "sh"]
    else:
        args += ["--attach", "--", "sh", "-c", command]
    session = Command(argv=kubectl(target, *args), description=f"debug pod on {node}", mutates=True)
    cleanup = _delete_debug_pods(target, node)
    steps = (
        Step(
            f"start a privileged debug pod on node {node} and {'open a shell' if command is None else 'run --command'}",
            prepare=(PodSession(session, interactive=command is None),),
            undo=Undo((cleanup,), f"deleted the debug pod(s) on {node}"),
        ),
        Step(f"delete the debug pod on node {node}", commands=(cleanup,)),
    )
    notes = (
        f"image {image}; the node's filesystem is at /host; namespace {NODE_SHELL_NAMESPACE}",
        "the pod is deleted when the session ends (labelled "
        + ", ".join(f"{k}={v}" for k, v in DEBUG_POD_LABEL.items())
        + f", on {node})",
    )
    return Plan(f"shell on node {node}", cluster, steps, notes=notes, on_failure="")


# --------------------------------------------------------------------------- browse-pvc

BROWSE_MOUNT = "/data"


@dataclass(frozen=True)
class ClaimUse:
    """Where a claim is used now: its access modes and the live pods mounting it, with their nodes."""

    claim: Mapping[str, Any]
    users: tuple[tuple[str, str], ...]  # (pod, node)
    attached_to: str | None  # the node of a VolumeAttachment of the claim's volume
    security: Mapping[str, Any]  # the pod securityContext of a user, copied so files are readable


def claim_use_fact(runner: Runner, target: KubeTarget, namespace: str, claim: str) -> ClaimUse:
    """Read the claim, the pods of its namespace that mount it (not finished) and its VolumeAttachment, if any."""
    obj = get_or_none(runner, target, "persistentvolumeclaims", claim, namespace=namespace)
    if obj is None:
        raise ToolkitError(
            f"PersistentVolumeClaim {namespace}/{claim} not found",
            hint=f"list them: {shell(target, 'kubectl', 'get', 'pvc', '-n', namespace)}",
        )
    users: list[tuple[str, str]] = []
    security: Mapping[str, Any] = {}
    for pod in list_or_empty(runner, target, "pods", namespace=namespace):
        o = Obj(pod)
        if o.status("phase") in ("Succeeded", "Failed"):
            continue
        volumes = o.path("spec", "volumes", default=[]) or []
        claims = {dig(v, "persistentVolumeClaim", "claimName") for v in volumes if isinstance(v, Mapping)}
        if claim in claims:
            users.append((o.name, str(o.path("spec", "nodeName", default="") or "")))
            security = security or (o.path("spec", "securityContext", default={}) or {})
    attached_to = None
    volume = Obj(obj).path("spec", "volumeName")
    if volume:
        for va in list_or_empty(runner, target, "volumeattachments.storage.k8s.io"):
            v = Obj(va)
            if v.path("spec", "source", "persistentVolumeName") == volume and v.status("attached"):
                attached_to = str(v.path("spec", "nodeName", default="") or "") or None
    return ClaimUse(obj, tuple(sorted(users)), attached_to, security)


def browse_node(use: ClaimUse, claim: str, *, rw: bool) -> str | None:
    """The node the browse pod must run on (where a ReadWriteOnce claim is attached), None for anywhere; refuses a
    claim that cannot be mounted a second time (ReadWriteOncePod in use, or in use on several nodes)."""
    modes = set(Obj(use.claim).path("spec", "accessModes", default=[]) or [])
    pods = ", ".join(f"{p} on {n or '?'}" for p, n in use.users)
    if "ReadWriteOncePod" in modes and use.users:
        raise ToolkitError(
            f"claim {claim} is ReadWriteOncePod and in use by {pods}: no second pod can mount it",
            hint="stop the app first (e.g. invoke kubernetes.pause, then scale it to 0)",
        )
    if modes & {"ReadWriteMany", "ReadOnlyMany"}:
        return None
    nodes = {n for _, n in use.users if n} | ({use.attached_to} if use.attached_to else set())
    if len(nodes) > 1:
        raise ToolkitError(
            f"claim {claim} is ReadWriteOnce and in use on several nodes ({', '.join(sorted(nodes))}): {pods}",
            hint="a ReadWriteOnce volume is attached to one node at a time; wait for the old pod to go",
        )
    return next(iter(nodes), None)


def browse_pod(
    namespace: str, claim: str, *, name: str, node: str | None, rw: bool, image: str, security: Mapping[str, Any]
) -> dict[str, Any]:
    """The pod mounting `claim` at /data (read-only unless `rw`), pinned to `node` when given, that sleeps until
    the session ends (and at most an hour, if the delete never comes)."""
    pod_security: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for key in ("runAsUser", "runAsGroup", "fsGroup", "supplementalGroups"):
        if key in security:
            pod_security[key] = security[key]
    pod_security.setdefault("runAsUser", 65534)
    pod_security.setdefault("runAsGroup", 65534)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "activeDeadlineSeconds": 3600,
        "securityContext": pod_security,
        "containers": [
            {
                "name": "browse",
                "image": image,
                "command": ["sleep", "3600"],
                "workingDir": BROWSE_MOUNT,
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "data", "mountPath": BROWSE_MOUNT, "readOnly": not rw}],
            }
        ],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": not rw}}],
    }
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**MANAGED_BY, "app.kubernetes.io/name": "browse-pvc"},
            "annotations": {"monosense.dev/browse-claim": claim},
        },
        "spec": spec,
    }


def _pod_running_check(target: KubeTarget, name: str, namespace: str) -> Check:
    def probe(runner: Runner) -> str | None:
        pod = get_or_none(runner, target, "pods", name, namespace=namespace)
        if pod is None:
            raise StopWaiting(f"pod {namespace}/{name} is gone")
        phase = Obj(pod).status("phase")
        if phase == "Running":
            return None
        if phase in ("Failed", "Succeeded"):
            raise StopWaiting(f"pod {namespace}/{name} ended ({phase}) before the session")
        waiting = [
            dig(c, "state", "waiting", "reason")
            for c in Obj(pod).status("containerStatuses", default=[]) or []
            if dig(c, "state", "waiting")
        ]
        return f"phase {phase or 'Pending'}" + (f" ({', '.join(map(str, waiting))})" if waiting else "")

    return wait_check(
        f"pod {namespace}/{name} Running",
        probe,
        timeout=POD_RUNNING_TIMEOUT,
        hint=shell(target, "kubectl", "describe", "pod", name, "-n", namespace),
        show_timeout=True,
    )


def plan_browse_pvc(
    cluster: str,
    target: KubeTarget,
    use: ClaimUse,
    *,
    namespace: str,
    claim: str,
    rw: bool,
    command: str | None,
    epoch: int,
    image: str = DEBUG_IMAGE,
) -> Plan:
    """A pod mounting the claim (read-only unless `rw`) on the node where it is attached, a shell in it on the
    terminal (or `command` run with `sh -c`), then the pod is deleted — also when anything fails."""
    node = browse_node(use, claim, rw=rw)
    name = f"browse-{claim}"[:50].rstrip("-") + f"-{epoch % 100000:05d}"
    pod = browse_pod(namespace, claim, name=name, node=node, rw=rw, image=image, security=use.security)
    remove = delete(target, "pods", [name], namespace=namespace, wait=False, description=f"delete pod {name}")
    argv = ["exec", name, "--namespace", namespace, "--container", "browse"]
    argv += ["--stdin", "--tty", "--", "sh"] if command is None else ["--", "sh", "-c", command]
    session = Command(argv=kubectl(target, *argv), description=f"shell in {name}", mutates=True)
    steps = (
        Step(
            f"start pod {namespace}/{name} mounting {claim} at {BROWSE_MOUNT}"
            + (" read-write" if rw else " read-only")
            + (f" on node {node}" if node else ""),
            commands=(apply_manifest(target, pod, description=f"create pod {name}"),),
            after=(_pod_running_check(target, name, namespace),),
            undo=Undo((remove,), f"deleted pod {namespace}/{name}"),
        ),
        Step(
            f"{'open a shell' if command is None else 'run the command'} in {name}",
            prepare=(PodSession(session, interactive=command is None),),
        ),
        Step(f"delete pod {namespace}/{name}", commands=(remove,)),
    )
    notes = [
        f"claim {namespace}/{claim} "
        + (f"in use by {', '.join(p for p, _ in use.users)}" if use.users else "not in use")
    ]
    if node:
        notes.append(f"pinned to {node}: a ReadWriteOnce volume is attached to one node at a time")
    if rw and use.users:
        notes.append("--rw while the app runs: two writers on one filesystem — pause the app first if in doubt")
    return Plan(f"browse PVC {namespace}/{claim}", cluster, steps, notes=tuple(notes), on_failure="")


# --------------------------------------------------------------------------- apply-ks

KS_FIELD_MANAGER = "kustomize-controller"
"""The field manager kustomize-controller applies with: applying as it keeps the fields Flux's own, so its next
reconcile takes them over without conflicts (and prunes what it no longer builds)."""

KS_NAME_LABEL = "kustomize.toolkit.fluxcd.io/name"
KS_NAMESPACE_LABEL = "kustomize.toolkit.fluxcd.io/namespace"


def _norm_path(path: str) -> str:
    """A Kustomization path as Flux compares them: `./a/b/` and `a/b` are the same."""
    return posixpath.normpath(path.strip() or ".")


def find_kustomization(
    kustomizations: Sequence[Mapping[str, Any]], path: str, *, name: str | None, namespace: str | None
) -> Mapping[str, Any]:
    """The live Kustomization to build `path` as: the one named (`name`, `namespace`), else the one whose
    `spec.path` is `path`; none or several is an error listing the candidates."""
    if name is not None:
        found = [
            k for k in kustomizations if Obj(k).name == name and (namespace is None or Obj(k).namespace == namespace)
        ]
    else:
        found = [
            k for k in kustomizations if _norm_path(str(Obj(k).path("spec", "path", default=""))) == _norm_path(path)
        ]
    if len(found) == 1:
        return found[0]
    listing = ", ".join(f"{_ns_name(k)} ({Obj(k).path('spec', 'path', default='?')})" for k in kustomizations) or "none"
    what = f"named {name}" if name is not None else f"with spec.path {path}"
    if not found:
        raise ToolkitError(
            f"no Kustomization {what}", hint=f"pick one with --name/--namespace; Kustomizations: {listing}"
        )
    raise ToolkitError(
        f"{len(found)} Kustomizations {what}: {', '.join(_ns_name(k) for k in found)}",
        hint="pick one with --name/--namespace",
    )


def substitution_vars(
    runner: Runner, target: KubeTarget, kustomization: Mapping[str, Any]
) -> tuple[dict[str, str] | None, list[str]]:
    """The postBuild variables of the Kustomization as kustomize-controller resolves them: each `substituteFrom`
    ConfigMap in order (a later one wins), then the inline `substitute` (which wins over all); None when the
    Kustomization has no postBuild. Secret sources are refused: their values would be shown in the diff and the
    dry run. Returns the variables and notes (an optional source that is missing)."""
    post = Obj(kustomization).path("spec", "postBuild")
    if not isinstance(post, Mapping):
        return None, []
    ns = Obj(kustomization).namespace
    values: dict[str, str] = {}
    notes: list[str] = []
    for ref in post.get("substituteFrom") or []:
        kind, name = str(ref.get("kind", "ConfigMap")), str(ref.get("name", ""))
        if kind == "Secret":
            raise ToolkitError(
                f"Kustomization {_ns_name(kustomization)} substitutes from Secret {ns}/{name}: apply-ks substitutes "
                "ConfigMaps only (Secret values would appear in the diff and the plan)",
                hint="let Flux apply it: push the change and run kubernetes.reconcile",
            )
        cm = get_or_none(runner, target, "configmaps", name, namespace=ns)
        if cm is None:
            if ref.get("optional"):
                notes.append(f"optional ConfigMap {ns}/{name} is missing: skipped")
                continue
            raise ToolkitError(
                f"ConfigMap {ns}/{name} (postBuild.substituteFrom of {_ns_name(kustomization)}) not found"
            )
        values.update({str(k): str(v) for k, v in (Obj(cm).path("data", default={}) or {}).items()})
    values.update({str(k): str(v) for k, v in (post.get("substitute") or {}).items()})
    return values, notes


@dataclass(frozen=True)
class BuiltKustomization:
    """What apply-ks applies: the built, substituted objects, and what was left out."""

    objects: tuple[dict[str, Any], ...]
    skipped: tuple[str, ...]


def _ref(obj: Mapping[str, Any]) -> str:
    o = Obj(obj)
    return f"{obj.get('kind', '?')} {o.namespace + '/' if o.namespace else ''}{o.name}"


def prepare_objects(
    built: Sequence[Mapping[str, Any]], kustomization: Mapping[str, Any], variables: Mapping[str, str] | None
) -> BuiltKustomization:
    """Substitute (unless an object disables it), label each object as kustomize-controller does, and leave out
    SOPS-encrypted objects (Flux decrypts them; the working tree has only ciphertext). A variable without a value
    is an error naming it and the object (Flux would apply an empty string)."""
    from k8s_ops.gitops.substitute import SubstitutionError, substitute_object, substitution_disabled

    ks = Obj(kustomization)
    out: list[dict[str, Any]] = []
    skipped: list[str] = []
    missing: list[str] = []
    for raw in built:
        obj = dict(raw)
        if "sops" in obj:
            skipped.append(f"{_ref(obj)} (SOPS-encrypted: Flux decrypts it on its own reconcile)")
            continue
        if variables is not None and not substitution_disabled(obj):
            try:
                obj, expansion = substitute_object(obj, variables.get)
            except SubstitutionError as exc:
                raise ToolkitError(f"{_ref(raw)}: {exc}") from None
            missing += [f"{v} ({_ref(obj)})" for v in expansion.missing]
        meta = obj.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), KS_NAME_LABEL: ks.name, KS_NAMESPACE_LABEL: ks.namespace}
        out.append(obj)
    if missing:
        raise ToolkitError(
            f"variables without a value: {', '.join(missing)}",
            hint=f"cluster-vars (or the Kustomization's substitute) of {_ns_name(kustomization)} lacks them",
        )
    return BuiltKustomization(tuple(out), tuple(skipped))


def _objects_stdin(objects: Sequence[Mapping[str, Any]]) -> bytes:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def server_side_diff(target: KubeTarget, objects: Sequence[Mapping[str, Any]]) -> Command:
    """`kubectl diff --server-side --field-manager kustomize-controller --filename -`: what applying would change,
    as the API server would merge it (a read: exit 0 = no change, 1 = differences, more = error)."""
    return Command(
        argv=kubectl(target, "diff", "--server-side", "--field-manager", KS_FIELD_MANAGER, "--filename", "-"),
        stdin=_objects_stdin(objects),
        description="server-side diff",
    )


def read_diff(runner: Runner, command: Command) -> str:
    """The diff text ("" when nothing changes); an error of kubectl diff (exit > 1) raises."""
    from k8s_ops.core.errors import CommandFailed

    result = runner.run(command, check=False)
    if result.returncode > 1:
        raise CommandFailed(command.display(), result.returncode, result.stderr or result.stdout)
    return result.stdout


def plan_apply_ks(
    cluster: str,
    target: KubeTarget,
    kustomization: Mapping[str, Any],
    built: BuiltKustomization,
    *,
    path: str,
    notes: Sequence[str] = (),
) -> Plan:
    """Apply the built objects server-side as kustomize-controller would (its field manager, `--force-conflicts`
    as Flux forces), labelled as its own, so the next reconcile of the Kustomization adopts them."""
    ks = _ns_name(kustomization)
    title = f"apply {path} as Kustomization {ks} from the working tree"
    shown = [f"{len(built.objects)} object(s): " + ", ".join(_ref(o) for o in built.objects[:20]), *notes]
    notes = [*shown, *(f"left out: {s}" for s in built.skipped)]
    notes.append(f"Flux reverts this at the next reconcile of {ks} unless the change is pushed (or {ks} suspended)")
    if not built.objects:
        return Plan(title, cluster, (Step("apply", noop="the build has no object to apply"),), notes=tuple(notes))
    apply = Command(
        argv=kubectl(
            target,
            "apply",
            "--server-side",
            "--field-manager",
            KS_FIELD_MANAGER,
            "--force-conflicts",
            "--filename",
            "-",
        ),
        stdin=_objects_stdin(built.objects),
        description=f"server-side apply of {len(built.objects)} object(s)",
        mutates=True,
    )
    return Plan(
        title,
        cluster,
        (Step(f"apply {len(built.objects)} object(s) server-side", commands=(apply,)),),
        notes=tuple(notes),
    )
