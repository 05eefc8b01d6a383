"""A configured Talos node's boot stage, services and readiness, as Talos v1.12.11 computes them.

Read from siderolabs/talos v1.12.11 (facts, not code; rows in tests/sim/FIDELITY.md):

* `internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer_tasks.go` `StartAllServices`: the Boot
  sequence loads the kubelet and CRI, and on controlplanes trustd and etcd, then waits (up to
  `constants.BootTimeout`, 70 min) for *every* loaded service to be up. A controlplane's etcd stays
  `Preparing` until it joins a cluster (`system/services/etcd.go`: "etcd is waiting to join the cluster, if
  this node is the first node in the cluster, please run `talosctl bootstrap`"), so the Boot sequence of a
  fresh controlplane only ends once etcd is bootstrapped (on it) or it joined the members.
* `internal/app/machined/pkg/controllers/runtime/machine_status.go`: the stage is `booting` from the start
  of Boot and `running` only when the Boot sequence stops without error. Readiness checks exist only in the
  `booting` and `running` stages (every other stage reports ready with no unmet condition); they are, in
  order, `time`, `network`, `services` (every service running, and healthy unless its health is unknown;
  apid, machined and kubelet required, plus etcd and trustd on controlplanes — a required service that is
  not running is reported a second time), `staticPods` (every static pod ready) and `nodeReady` (the
  Kubernetes Node is Ready; "status is not available yet" before the kubelet registered it). Each failed
  check is an unmet condition `{name, reason}` with the reason worded as there.

What is an assumption (no upstream source says it; marked so in FIDELITY.md): the static pods of a
controlplane are not ready while the Kubernetes API cannot serve (kube-apiserver needs etcd), and time and
network are always ready here.
"""

from __future__ import annotations

from .util import JSON

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

Service = tuple[str, str, str]  # id, state, health (OK / Fail / ?)

_REQUIRED = ("apid", "machined", "kubelet")
_REQUIRED_CP = ("etcd", "trustd")
_STATIC_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _etcd() -> Any:
    from . import etcd  # local import: etcd imports state, which imports this module lazily

    return etcd


def etcd_running(world: Any, n: JSON) -> bool:
    """etcd runs on this controlplane: the cluster is bootstrapped and this node holds a member's data."""
    c = world.clusters.get(n["cluster"]) or {}
    return bool(n.get("etcd_data")) and bool(_etcd().etcd(c)["bootstrapped"])


def services(world: Any, n: JSON) -> list[Service]:
    """`talosctl service` rows of a configured node (trustd and etcd on controlplanes only)."""
    out: list[Service] = [
        ("apid", "Running", "OK"),
        ("containerd", "Running", "OK"),
        ("cri", "Running", "OK"),
        ("kubelet", "Running", "OK"),
        ("machined", "Running", "OK"),
        ("udevd", "Running", "OK"),
    ]
    if world.is_cp(n):
        out.append(("trustd", "Running", "OK"))
        c = world.clusters[n["cluster"]]
        if etcd_running(world, n):
            healthy = _etcd().member_healthy(world, c, n["address"])
            out.append(("etcd", "Running", "OK" if healthy else "Fail"))
        else:
            out.append(("etcd", "Preparing", "?"))
    return sorted(out)


def boot_finished(world: Any, n: JSON) -> bool:
    """The Boot sequence ended: every service StartAllServices waits for is up (etcd on controlplanes)."""
    return not world.is_cp(n) or etcd_running(world, n)


def _services_reason(world: Any, n: JSON) -> str | None:
    problems: list[str] = []
    running: set[str] = set()
    for sid, state, health in services(world, n):
        if state != "Running":
            problems.append(f"{sid} not running")
            continue
        running.add(sid)
        if health not in ("OK", "?"):
            problems.append(f"{sid} not healthy")
    required = _REQUIRED + (_REQUIRED_CP if world.is_cp(n) else ())
    problems += [f"{sid} not running" for sid in required if sid not in running]
    return ", ".join(problems) or None


def _static_pods_reason(world: Any, n: JSON) -> str | None:
    if not world.is_cp(n):
        return None
    c = world.clusters[n["cluster"]]
    if etcd_running(world, n) and _etcd().api_available(world, c):
        return None
    name = world.node_name(n)
    return ", ".join(f"kube-system/{pod}-{name} not ready" for pod in _STATIC_PODS)


def _node_ready_reason(world: Any, n: JSON) -> str | None:
    name = world.node_name(n)
    c = world.clusters[n["cluster"]]
    obj = None
    if _etcd().api_available(world, c):
        obj = ((c.get("k8s") or {}).get("objects") or {}).get(f"/Node//{name}")
    if obj is None:
        return f'node "{name}" status is not available yet'
    conditions = (obj.get("status") or {}).get("conditions", [])
    ready = next((cond for cond in conditions if cond.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "True":
        return f'node "{name}" is not ready'
    return None


def unmet_conditions(world: Any, n: JSON, stage: str) -> list[JSON]:
    """Talos' readiness checks for `stage`, as `{name, reason}` of those that fail (none outside booting/running)."""
    if stage not in ("booting", "running") or not world.configured(n):
        return []
    checks = (
        ("services", _services_reason),
        ("staticPods", _static_pods_reason),
        ("nodeReady", _node_ready_reason),
    )
    out: list[JSON] = []
    for name, check in checks:
        reason = check(world, n)
        if reason is not None:
            out.append({"name": name, "reason": reason})
    return out
