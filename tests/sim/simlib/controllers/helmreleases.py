"""helm-controller: HelmRelease readiness and upgrades.

A HelmRelease that is not suspended is handled when its generation or its `reconcile.fluxcd.io/requestedAt`
annotation changed: `observedGeneration`, `lastHandledReconcileAt` (and `lastHandledForceAt`) follow. It is
upgraded (a new history entry) on first install, when its chart/values digest changed, or when forced
(`reconcile.fluxcd.io/forceAt`, what `flux reconcile hr --force` sets) — as the real controller does, a plain
resume of an unchanged release does NOT upgrade it. An upgrade re-applies the chart: the Deployments and
StatefulSets labelled `helm.toolkit.fluxcd.io/name=<release>` get `spec.values.replicaCount` (default 1)
replicas back. The chart source (chartRef, or chart.spec.sourceRef) must exist and be Ready. The `helm-fails`
fault matching `<ns>/<name>` makes the upgrade fail: Ready=False/UpgradeFailed and Stalled=True/RetriesExceeded
(Flux gives up until the spec changes or a new reconcile is requested). Needs an available helm-controller."""

from __future__ import annotations

import copy
import json

from ..kube import Kube, condition, set_condition
from ..util import JSON, dig, rfc3339
from . import controller
from .flux import deployment_available

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

GROUP = "helm.toolkit.fluxcd.io"
REQUESTED = "reconcile.fluxcd.io/requestedAt"
FORCE = "reconcile.fluxcd.io/forceAt"


def _chart(o: JSON) -> tuple[str, str, JSON]:
    """(chart name, version, source ref)."""
    spec = o.get("spec") or {}
    if spec.get("chartRef"):
        ref = spec["chartRef"]
        return ref.get("name", ""), "latest", ref
    chart = dig(spec, "chart", "spec") or {}
    return chart.get("chart", ""), str(chart.get("version") or "latest"), chart.get("sourceRef") or {}


def _source_problem(kube: Kube, ns: str, ref: JSON) -> str | None:
    kind, name = ref.get("kind", "HelmRepository"), ref.get("name", "")
    src = kube.find(kind, ref.get("namespace") or ns, name, group="source.toolkit.fluxcd.io")
    if src is None:
        return f'{kind.lower()}s.source.toolkit.fluxcd.io "{name}" not found'
    if (condition(src, "Ready") or {}).get("status") != "True":
        return f"{kind} '{ref.get('namespace') or ns}/{name}' is not ready"
    return None


def _digest(o: JSON) -> str:
    import hashlib  # local: loading OpenSSL costs every simulated call (a fresh interpreter) ~3 ms

    spec = o.get("spec") or {}
    body = json.dumps([spec.get("chart"), spec.get("chartRef"), spec.get("values")], sort_keys=True)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def _apply_chart(kube: Kube, o: JSON) -> None:
    ns, name = o["metadata"]["namespace"], o["metadata"]["name"]
    replicas = int(dig(o, "spec", "values", "replicaCount", default=1))
    for kind in ("Deployment", "StatefulSet"):
        for w in kube.all_of_kind(kind, "apps"):
            labels = w["metadata"].get("labels") or {}
            if labels.get("helm.toolkit.fluxcd.io/name") != name:
                continue
            if labels.get("helm.toolkit.fluxcd.io/namespace", w["metadata"].get("namespace")) != ns:
                continue
            if dig(w, "spec", "replicas") != replicas:
                new = copy.deepcopy(w)
                new["spec"]["replicas"] = replicas
                kube.put(new, manager="helm-controller")


@controller("flux-helm", order=75)
def helmreleases(world: Any, cluster: JSON, kube: Kube) -> bool:
    if not deployment_available(kube, "helm-controller"):
        return False
    changed = False
    for o in kube.all_of_kind("HelmRelease", GROUP):
        if dig(o, "spec", "suspend"):
            continue
        meta = o["metadata"]
        ns, name = meta["namespace"], meta["name"]
        ann = meta.get("annotations") or {}
        gen = int(meta.get("generation", 1))
        st = copy.deepcopy(o.get("status") or {})
        handled = [gen, ann.get(REQUESTED), ann.get(FORCE)]
        if st.get("simHandled") == handled:
            continue
        st["simHandled"] = handled
        st["observedGeneration"] = gen
        if ann.get(REQUESTED):
            st["lastHandledReconcileAt"] = ann[REQUESTED]
        forced = bool(ann.get(FORCE)) and st.get("lastHandledForceAt") != ann.get(FORCE)
        if ann.get(FORCE):
            st["lastHandledForceAt"] = ann[FORCE]
        chart, version, ref = _chart(o)
        conds = [c for c in st.get("conditions", []) if c.get("type") != "Stalled"]
        problem = _source_problem(kube, ns, ref)
        if problem:
            st["conditions"] = set_condition(conds, "Ready", "False", "ArtifactFailed", problem, world.now, gen)
            changed = kube.set_status(o, st) or changed
            continue
        digest = _digest(o)
        history = st.get("history") or []
        ready = condition(o, "Ready") or {}
        failed_before = ready.get("status") == "False" and str(ready.get("reason", "")).endswith(
            ("InstallFailed", "UpgradeFailed")
        )
        if not history or forced or failed_before or st.get("lastAttemptedConfigDigest") != digest:
            action = "upgrade" if history else "install"
            revision = int(history[0]["version"]) + 1 if history else 1
            st["lastAttemptedConfigDigest"] = digest
            st["lastAttemptedRevision"] = version
            fault = world.fault("helm-fails", cluster=cluster["name"], text=f"{ns}/{name}")
            if fault is not None:
                msg = (
                    f"Helm {action} failed for release {ns}/{name} with chart {chart}@{version}: "
                    f"{fault.get('message') or 'context deadline exceeded'}"
                )
                st["failures"] = int(st.get("failures", 0)) + 1
                st["conditions"] = set_condition(
                    conds, "Ready", "False", f"{action.capitalize()}Failed", msg, world.now, gen
                )
                st["conditions"] = set_condition(
                    st["conditions"],
                    "Stalled",
                    "True",
                    "RetriesExceeded",
                    f"Failed to {action} after 1 attempt(s)",
                    world.now,
                    gen,
                )
            else:
                _apply_chart(kube, o)
                entry = {
                    "name": name,
                    "namespace": ns,
                    "version": revision,
                    "status": "deployed",
                    "chartName": chart,
                    "chartVersion": version,
                    "configDigest": digest,
                    "firstDeployed": rfc3339(world.now),
                    "lastDeployed": rfc3339(world.now),
                }
                st["history"] = [entry, *history][:5]
                st["conditions"] = set_condition(
                    conds,
                    "Ready",
                    "True",
                    f"{action.capitalize()}Succeeded",
                    f"Helm {action} succeeded for release {ns}/{name}.v{revision} with chart {chart}@{version}",
                    world.now,
                    gen,
                )
        else:
            st["conditions"] = conds
        changed = kube.set_status(o, st) or changed
    return changed
