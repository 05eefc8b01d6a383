"""flux: argv builders and status parsers for the Flux CLI and Flux objects. One module per CLI.

Every call passes the cluster's kubeconfig and context explicitly (as `k8s_ops.tools.kubectl` does).
Shared module: add functions, never change the behaviour of existing ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from k8s_ops.core.command import Command
from k8s_ops.tools.kubectl import KubeTarget, Obj, dig

__all__ = [
    "FLUX_NAMESPACE",
    "HELMRELEASE",
    "KUSTOMIZATION",
    "REQUESTED_AT",
    "ROOT_KUSTOMIZATION",
    "FluxKind",
    "FluxStatus",
    "flux",
    "flux_status",
    "reconcile",
    "resume",
    "suspend",
]

ROOT_KUSTOMIZATION: Final = "flux-system"
"""The root Flux Kustomization, in `FLUX_NAMESPACE`: the one that syncs the cluster's GitOps path.

`bootstrap` creates it under this name (the name flux-operator's FluxInstance and `flux bootstrap` give it,
so `flux reconcile ks flux-system --with-source` works the same everywhere); day-2 tasks reconcile it by
default. Define it nowhere else: a second spelling is how `cluster-config` vs `cluster-<c>-config` happened.
"""

FLUX_NAMESPACE: Final = "flux-system"
"""Namespace of the Flux controllers, the root Kustomization and its GitRepository."""

KUSTOMIZATION: Final = "kustomizations.kustomize.toolkit.fluxcd.io"
"""kubectl resource name of Flux Kustomizations (fully qualified: `kustomization` alone is ambiguous)."""

HELMRELEASE: Final = "helmreleases.helm.toolkit.fluxcd.io"
"""kubectl resource name of Flux HelmReleases."""

REQUESTED_AT: Final = "reconcile.fluxcd.io/requestedAt"
"""Annotation the flux CLI sets to request a reconcile; controllers echo it in `status.lastHandledReconcileAt`."""

FluxKind = Literal["kustomization", "helmrelease"]

_DISPLAY: dict[str, str] = {"kustomization": "Kustomization", "helmrelease": "HelmRelease"}


def _target(cluster_or_target: str | KubeTarget) -> KubeTarget:
    return cluster_or_target if isinstance(cluster_or_target, KubeTarget) else KubeTarget.for_cluster(cluster_or_target)


def flux(cluster_or_target: str | KubeTarget, *args: str) -> tuple[str, ...]:
    """`flux --kubeconfig <path> --context <ctx> <args…>` for a cluster name or an explicit target."""
    t = _target(cluster_or_target)
    return ("flux", "--kubeconfig", str(t.kubeconfig), "--context", t.context, *args)


def suspend(target: str | KubeTarget, kind: FluxKind, name: str, namespace: str) -> Command:
    """`flux suspend <kind> <name> --namespace <ns>`: the controller stops reconciling the object."""
    return Command(
        argv=flux(target, "suspend", kind, name, "--namespace", namespace),
        description=f"suspend {_DISPLAY[kind]} {namespace}/{name}",
        mutates=True,
    )


def resume(target: str | KubeTarget, kind: FluxKind, name: str, namespace: str, *, wait: bool = False) -> Command:
    """`flux resume <kind> <name> --namespace <ns> --wait=<wait>`.

    The toolkit waits on its own checks (bounded, with the object's Ready message on timeout), so by default the
    CLI is told not to wait; resuming also requests a reconcile.
    """
    return Command(
        argv=flux(target, "resume", kind, name, "--namespace", namespace, f"--wait={'true' if wait else 'false'}"),
        description=f"resume {_DISPLAY[kind]} {namespace}/{name}",
        mutates=True,
    )


def reconcile(
    target: str | KubeTarget,
    kind: FluxKind,
    name: str,
    namespace: str,
    *,
    with_source: bool = False,
    force: bool = False,
) -> Command:
    """`flux reconcile <kind> <name> --namespace <ns> [--with-source] [--force]` (`--force`: HelmRelease only)."""
    args = ["reconcile", kind, name, "--namespace", namespace]
    if with_source:
        args.append("--with-source")
    if force:
        if kind != "helmrelease":
            raise ValueError("--force exists only for HelmReleases")
        args.append("--force")
    return Command(
        argv=flux(target, *args),
        description=f"reconcile {_DISPLAY[kind]} {namespace}/{name}{' with its source' if with_source else ''}",
        mutates=True,
    )


@dataclass(frozen=True)
class FluxStatus:
    """What a Flux object's status says about its last reconciliation."""

    name: str
    namespace: str
    suspended: bool
    ready: bool | None
    stalled: bool
    reason: str
    message: str
    generation: int
    observed_generation: int
    requested_at: str | None
    handled_at: str | None

    @property
    def reconciled(self) -> bool:
        """Ready for the current spec and for the latest requested reconcile."""
        handled = self.requested_at is None or self.handled_at == self.requested_at
        return bool(self.ready) and self.observed_generation >= self.generation and handled

    @property
    def handled(self) -> bool:
        """The controller has acted on the current spec and on the latest reconcile request (success or not)."""
        handled = self.requested_at is None or self.handled_at == self.requested_at
        return self.observed_generation >= self.generation and handled

    def describe(self) -> str:
        state = {True: "Ready", False: "not Ready", None: "no Ready condition"}[self.ready]
        extra = f" ({self.reason}: {self.message})" if self.reason or self.message else ""
        suspended = ", suspended" if self.suspended else ""
        return f"{self.namespace}/{self.name} {state}{extra}{suspended}"


def flux_status(obj: Mapping[str, Any]) -> FluxStatus:
    """Parse a Kustomization or HelmRelease object (from `kubectl get … -o json`)."""
    o = Obj(obj)
    ready = o.condition("Ready")
    ready_value: bool | None = None
    if ready is not None:
        ready_value = {"True": True, "False": False}.get(str(ready.get("status")))
    return FluxStatus(
        name=o.name,
        namespace=o.namespace,
        suspended=bool(o.path("spec", "suspend", default=False)),
        ready=ready_value,
        stalled=o.is_true("Stalled"),
        reason=str(dig(ready, "reason", default="")),
        message=str(dig(ready, "message", default="")),
        generation=o.generation,
        observed_generation=o.observed_generation,
        requested_at=o.annotations.get(REQUESTED_AT),
        handled_at=o.status("lastHandledReconcileAt"),
    )
