"""A rollout round's Kubernetes reads as one `kubectl get <kinds…> --all-namespaces -o json`.

A rolling operation reads, each time a node comes back and before the next goes down, the nodes (Ready), the pods
and PodDisruptionBudgets (would a drain stall?), the VolumeAttachments (are its volumes back?) and the objects of the
inventory's health checks. kubectl lists several kinds in one call when they are given comma-separated, and prints
one List of all their items (each with its apiVersion and kind), so a round costs one process instead of one per
kind. Only kinds every API server serves are combined: a kind whose CRD is missing would fail the whole call, so
custom resources keep their own read. Filtering that the API server would do (namespace, name, label selector) is
then done here; a check with a field selector, or a label selector this module does not parse, keeps its own read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from k8s_ops.core.command import Result
from k8s_ops.core.facts import Fact
from k8s_ops.core.runner import Runner
from k8s_ops.tools import kubectl
from k8s_ops.tools.kubectl import KubeTarget

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import HealthCheck

__all__ = ["BASE", "Kind", "KubeRound", "folds", "selector_matches"]

# API groups every Kubernetes API server serves without a CRD
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apps",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
    }
)


@dataclass(frozen=True)
class Kind:
    """One kind of a combined read: kubectl's resource argument, the API group and the Kind its items carry."""

    resource: str
    group: str
    kind: str


NODES = Kind("nodes", "", "Node")
PODS = Kind("pods", "", "Pod")
PDBS = Kind("poddisruptionbudgets.v1.policy", "policy", "PodDisruptionBudget")
ATTACHMENTS = Kind("volumeattachments.v1.storage.k8s.io", "storage.k8s.io", "VolumeAttachment")
BASE = (NODES, PODS, PDBS, ATTACHMENTS)


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


@dataclass(frozen=True)
class KubeRound:
    """The kinds a round reads together (`BASE` plus the built-in kinds of foldable health checks)."""

    kinds: tuple[Kind, ...] = BASE

    @classmethod
    def for_checks(cls, checks: Sequence[HealthCheck]) -> KubeRound:
        """`BASE` plus the kind of every health check `folds` can answer."""
        rnd = cls()
        for hc in checks:
            if folds(hc) and rnd._kind_of(hc) is None:
                assert hc.api_version is not None and hc.kind is not None
                kind = Kind(kubectl.resource_arg(hc.api_version, hc.kind), _group(hc.api_version), hc.kind)
                rnd = cls((*rnd.kinds, kind))
        return rnd

    def _kind_of(self, hc: HealthCheck) -> Kind | None:
        """The round's kind of the check's objects (same API group and Kind), if it reads them."""
        group = _group(hc.api_version or "")
        return next((k for k in self.kinds if (k.group, k.kind) == (group, hc.kind)), None)

    def fact(self, kube: KubeTarget) -> Fact[dict[str, list[dict[str, Any]]]]:
        """Every object of every kind, by resource argument (one read; identical in every round, so merged)."""
        by_kind = {(k.group, k.kind): k.resource for k in self.kinds}

        def parse(result: Result) -> dict[str, list[dict[str, Any]]]:
            out: dict[str, list[dict[str, Any]]] = {k.resource: [] for k in self.kinds}
            for item in kubectl.parse_items(result):
                resource = by_kind.get((_group(str(item.get("apiVersion") or "")), str(item.get("kind") or "")))
                if resource is not None:
                    out[resource].append(item)
            return out

        names = ", ".join(k.kind for k in self.kinds)
        command = kubectl.get(
            kube, ",".join(k.resource for k in self.kinds), all_namespaces=True, description=f"read {names}"
        )
        return Fact(command, parse)

    def objects(self, runner: Runner, kube: KubeTarget, kind: Kind) -> list[dict[str, Any]]:
        return self.fact(kube).gather(runner)[kind.resource]

    def selected(self, runner: Runner, kube: KubeTarget, hc: HealthCheck) -> list[dict[str, Any]] | None:
        """The objects health check `hc` looks at, filtered here as the API server would; None when the round does
        not answer it (a custom resource, a field selector, a selector not parsed here)."""
        kind = self._kind_of(hc) if folds(hc) else None
        if kind is None:
            return None
        out = []
        for obj in self.objects(runner, kube, kind):
            o = kubectl.Obj(obj)
            if hc.namespace and o.namespace != hc.namespace:
                continue
            if hc.name and o.name != hc.name:
                continue
            if hc.label_selector and not selector_matches(hc.label_selector, o.labels):
                continue
            out.append(obj)
        return out


def folds(hc: HealthCheck) -> bool:
    """Whether a round can answer health check `hc`: a built-in kind, no field selector, a label selector parsed
    here, and a named object only with its namespace (without one kubectl would use the context's namespace)."""
    if hc.api_version is None or hc.kind is None or hc.field_selector:
        return False
    if _group(hc.api_version) not in BUILTIN_GROUPS:
        return False
    if hc.name and not hc.namespace:
        return False
    return not hc.label_selector or _parse(hc.label_selector) is not None


# --------------------------------------------------------------------------- label selectors

# Kubernetes label selector syntax: comma-separated requirements `key`, `!key`, `key=value`, `key==value`,
# `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`; keys may carry a DNS prefix (`app.kubernetes.io/name`).
_KEY = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9.]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EXISTS = re.compile(rf"\s*(!?)\s*({_KEY})\s*")
_EQUALS = re.compile(rf"\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*")
_SET = re.compile(rf"\s*({_KEY})\s+(in|notin)\s*\(\s*({_VALUE}(?:\s*,\s*{_VALUE})*)\s*\)\s*")

Requirement = tuple[str, str, frozenset[str]]  # key, operator (exists, !, =, !=, in, notin), values


def _split(selector: str) -> list[str]:
    """Requirements: the commas between them, not those inside `( … )`."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _parse(selector: str) -> list[Requirement] | None:
    """The requirements of `selector`, or None when it is not one this module understands (then the API server
    evaluates it)."""
    if not selector.strip():
        return []
    out: list[Requirement] = []
    for part in _split(selector):
        if m := _EXISTS.fullmatch(part):
            out.append((m[2], "!" if m[1] else "exists", frozenset()))
        elif m := _EQUALS.fullmatch(part):
            out.append((m[1], "!=" if m[2] == "!=" else "=", frozenset({m[3]})))
        elif m := _SET.fullmatch(part):
            out.append((m[1], m[2], frozenset(v.strip() for v in m[3].split(","))))
        else:
            return None
    return out


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether `labels` satisfy the label selector as the API server decides it: `!=` and `notin` also match an
    object without the key. A selector `_parse` rejects matches nothing (callers check `folds` first)."""
    reqs = _parse(selector)
    if reqs is None:
        return False
    for key, op, values in reqs:
        present = key in labels
        value = labels.get(key)
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
        if op in ("=", "in") and (not present or value not in values):
            return False
        if op in ("!=", "notin") and present and value in values:
            return False
    return True
