"""The Kubernetes object store of one simulated cluster: REST mapping (built-in kinds + CRDs), create/apply
(client-side and server-side with field ownership and conflicts), delete, label selectors."""

from __future__ import annotations

import copy
import json
import re

from .util import JSON, Frozen, dig, new_uuid, rfc3339

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any


class KindInfo(Frozen):
    __slots__ = ("group", "kind", "namespaced", "plural", "short", "version", "versions")

    def __init__(
        self,
        group: str,
        version: str,
        kind: str,
        plural: str,
        namespaced: bool,
        short: tuple[str, ...] = (),
        versions: tuple[str, ...] = (),
    ) -> None:
        self.group = group
        self.version = version
        self.kind = kind
        self.plural = plural
        self.namespaced = namespaced
        self.short = short
        self.versions = versions

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def resource(self) -> str:
        """`deployments.apps`, `secrets`: how kubectl names the resource in errors."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def ref(self) -> str:
        """`deployment.apps`, `secret`: how kubectl prefixes `<ref>/<name> created`."""
        return f"{self.singular}.{self.group}" if self.group else self.singular


def _k(group: str, version: str, kind: str, plural: str, namespaced: bool, *short: str) -> KindInfo:
    return KindInfo(group, version, kind, plural, namespaced, tuple(short), (version,))


BUILTIN: list[KindInfo] = [
    _k("", "v1", "Namespace", "namespaces", False, "ns"),
    _k("", "v1", "Node", "nodes", False, "no"),
    _k("", "v1", "Secret", "secrets", True),
    _k("", "v1", "ConfigMap", "configmaps", True, "cm"),
    _k("", "v1", "Pod", "pods", True, "po"),
    _k("", "v1", "Service", "services", True, "svc"),
    _k("", "v1", "ServiceAccount", "serviceaccounts", True, "sa"),
    _k("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, "pvc"),
    _k("", "v1", "PersistentVolume", "persistentvolumes", False, "pv"),
    _k("", "v1", "Endpoints", "endpoints", True, "ep"),
    _k("", "v1", "Event", "events", True, "ev"),
    _k("", "v1", "LimitRange", "limitranges", True, "limits"),
    _k("", "v1", "ResourceQuota", "resourcequotas", True, "quota"),
    _k("apps", "v1", "Deployment", "deployments", True, "deploy"),
    _k("apps", "v1", "DaemonSet", "daemonsets", True, "ds"),
    _k("apps", "v1", "StatefulSet", "statefulsets", True, "sts"),
    _k("apps", "v1", "ReplicaSet", "replicasets", True, "rs"),
    _k("batch", "v1", "Job", "jobs", True),
    _k("batch", "v1", "CronJob", "cronjobs", True, "cj"),
    _k("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False, "crd", "crds"),
    _k("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _k("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _k("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _k("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _k("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, "sc"),
    _k("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", False),
    _k("coordination.k8s.io", "v1", "Lease", "leases", True),
    _k("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, "netpol"),
    _k("networking.k8s.io", "v1", "Ingress", "ingresses", True, "ing"),
    _k("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, "pdb"),
    _k("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, "pc"),
    _k(
        "admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", False
    ),
    _k("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False),
]


class NotFound(Exception):
    pass


class ApiError(Exception):
    """An error the API server returns; `.message` is kubectl's wording without the `Error from server` prefix."""

    def __init__(self, message: str, reason: str = "BadRequest") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    @property
    def prefix(self) -> str:
        """kubectl's lead-in: `Error from server (<reason>)`, or `Error from server` for a status without a reason
        (kubernetes/kubectl pkg/cmd/util/helpers.go `StandardErrorMessage`)."""
        return f"Error from server ({self.reason})" if self.reason else "Error from server"


class MappingError(Exception):
    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(f'no matches for kind "{kind}" in version "{api_version}"')
        self.api_version = api_version
        self.kind = kind


def split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        g, v = api_version.split("/", 1)
        return g, v
    return "", api_version


def obj_key(group: str, kind: str, ns: str, name: str) -> str:
    return f"{group}/{kind}/{ns}/{name}"


class Kube:
    """Operations over `cluster["k8s"]`."""

    def __init__(self, cluster: JSON, now: float, *, client: bool = False) -> None:
        self.cluster = cluster
        self.data: JSON = cluster.setdefault("k8s", {"objects": {}, "rv": 1, "owners": {}})
        self.data.setdefault("owners", {})
        self.now = now
        # a client's request through kube-apiserver (kubectl, flux): its writes reach etcd and can be refused;
        # the simulated controllers write directly (their refusal is not modelled)
        self.client = client

    def _check_write(self) -> None:
        if not self.client:
            return
        from .etcd import write_refused

        why = write_refused(self.cluster)
        if why is not None:
            # kube-apiserver turns an etcd error into a Status with code 500 and no reason
            # (k8s.io/apiserver pkg/endpoints/handlers/responsewriters/status.go `ErrorToAPIStatus`)
            raise ApiError(why, "")

    @property
    def objects(self) -> dict[str, JSON]:
        objs: dict[str, JSON] = self.data["objects"]
        return objs

    # ---- mapping ------------------------------------------------------------------------------------
    def crd_kinds(self) -> list[KindInfo]:
        out = []
        for o in self.objects.values():
            if o["kind"] != "CustomResourceDefinition":
                continue
            spec = o.get("spec", {})
            names = spec.get("names", {})
            versions = tuple(v["name"] for v in spec.get("versions", []) if v.get("served", True))
            storage = next(
                (v["name"] for v in spec.get("versions", []) if v.get("storage")), versions[0] if versions else "v1"
            )
            short = tuple(names.get("shortNames", []) or [])
            if names.get("singular"):
                short = (*short, names["singular"])
            out.append(
                KindInfo(
                    spec.get("group", ""),
                    storage,
                    names.get("kind", ""),
                    names.get("plural", ""),
                    spec.get("scope", "Namespaced") == "Namespaced",
                    short,
                    versions,
                )
            )
        return out

    def kinds(self) -> list[KindInfo]:
        return BUILTIN + self.crd_kinds()

    def for_object(self, api_version: str, kind: str) -> KindInfo:
        group, version = split_api_version(api_version)
        for k in self.kinds():
            if k.group == group and k.kind == kind and version in (k.versions or (k.version,)):
                return KindInfo(k.group, version, k.kind, k.plural, k.namespaced, k.short, k.versions)
        raise MappingError(api_version, kind)

    def resolve(self, token: str) -> KindInfo | None:
        """A kubectl resource argument: `pods`, `po`, `deploy`, `deployments.apps`, `ks`, `kustomization`,
        `kustomizations.kustomize.toolkit.fluxcd.io`, `Kustomization.v1.kustomize.toolkit.fluxcd.io`."""
        low = token.strip().lower()
        name, _, rest = low.partition(".")
        for k in self.kinds():
            names = {k.plural, k.singular, k.kind.lower(), *k.short}
            if not rest:
                if low in names:
                    return k
                continue
            g = k.group.lower()
            ver, _, vgroup = rest.partition(".")
            if name in names and (rest == g or (ver in k.versions and vgroup == g)):
                return k
        return None

    # ---- CRUD ---------------------------------------------------------------------------------------
    def key(self, info: KindInfo, ns: str | None, name: str) -> str:
        return obj_key(info.group, info.kind, ns if info.namespaced and ns else "", name)

    def get(self, info: KindInfo, ns: str | None, name: str) -> JSON | None:
        return self.objects.get(self.key(info, ns, name))

    def list_objects(self, info: KindInfo, ns: str | None = None) -> list[JSON]:
        prefix = f"{info.group}/{info.kind}/"
        out = [
            o
            for k, o in self.objects.items()
            if k.startswith(prefix) and (ns is None or not info.namespaced or o["metadata"].get("namespace") == ns)
        ]
        return sorted(out, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def find(self, kind: str, ns: str | None, name: str, group: str | None = None) -> JSON | None:
        suffix = "/" + name  # a key is group/kind/namespace/name: a cheap test first (called per node per call)
        for k, o in self.objects.items():
            if not k.endswith(suffix):
                continue
            g, kd, n, nm = k.split("/", 3)
            if kd == kind and nm == name and (ns is None or n == ns or n == "") and (group is None or g == group):
                return o
        return None

    def all_of_kind(self, kind: str, group: str | None = None) -> list[JSON]:
        mid = f"/{kind}/"  # a key is group/kind/namespace/name: a cheap test first
        return [
            o
            for k, o in self.objects.items()
            if mid in k and k.split("/", 2)[1] == kind and (group is None or k.split("/", 1)[0] == group)
        ]

    def namespace_exists(self, ns: str) -> bool:
        o = self.objects.get(obj_key("", "Namespace", "", ns))
        return o is not None and not o["metadata"].get("deletionTimestamp")

    def _bump(self) -> str:
        self.data["rv"] = int(self.data.get("rv", 1)) + 1
        return str(self.data["rv"])

    def put(
        self, obj: JSON, *, manager: str = "kubectl", ssa: bool = False, force: bool = False, status: bool = False
    ) -> str:
        """Create or update; returns "created" | "configured" | "unchanged". Raises ApiError on conflicts."""
        info = self.for_object(obj["apiVersion"], obj["kind"])
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise ApiError("resource name may not be empty")
        ns = meta.get("namespace") if info.namespaced else None
        if info.namespaced:
            ns = ns or "default"
            meta["namespace"] = ns
            if not self.namespace_exists(ns) and info.kind != "Namespace":
                raise ApiError(f'namespaces "{ns}" not found', "NotFound")
        else:
            meta.pop("namespace", None)
        key = self.key(info, ns, name)
        live = self.objects.get(key)
        owners: dict[str, str] = self.data["owners"].setdefault(key, {})
        new_fields = _flatten({k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")})
        new_fields.pop("metadata.name", None)
        new_fields.pop("metadata.namespace", None)
        if live is None:
            self._check_write()
            body = copy.deepcopy(obj)
            bm = body["metadata"]
            bm["uid"] = new_uuid()
            bm["creationTimestamp"] = rfc3339(self.now)
            bm["resourceVersion"] = self._bump()
            if info.group:
                bm["generation"] = 1
            self.objects[key] = body
            self.data["owners"][key] = {f: manager for f in new_fields}
            return "created"
        if ssa:
            conflicts = []
            for f, v in new_fields.items():
                owner = owners.get(f)
                if owner and owner != manager and _get_flat(live, f) != v:
                    conflicts.append((owner, f))
            if conflicts and not force:
                lines = "\n".join(f'- conflict with "{o}": .{f}' for o, f in conflicts)
                raise ApiError(
                    f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: {lines}",
                    "Conflict",
                )
            mine_before = {f for f, o in owners.items() if o == manager}
            merged = copy.deepcopy(live)
            for f in mine_before - set(new_fields):
                _del_flat(merged, f)
            merged = _merge(merged, {k: v for k, v in obj.items() if k != "status"})
        else:
            merged = copy.deepcopy(obj)
            merged["metadata"] = {**live["metadata"], **copy.deepcopy(obj.get("metadata", {}))}
            if "status" in live and not status:
                merged["status"] = copy.deepcopy(live["status"])
            for keep in ("uid", "creationTimestamp", "resourceVersion", "generation"):
                if keep in live["metadata"]:
                    merged["metadata"][keep] = live["metadata"][keep]
        if status:
            merged["status"] = copy.deepcopy(obj.get("status", {}))
        comparable_new = _strip_meta(merged)
        if comparable_new == _strip_meta(live):
            for f in new_fields:
                owners.setdefault(f, manager)
                if ssa:
                    owners[f] = manager
            return "unchanged"
        self._check_write()  # an unchanged object never reaches etcd (the apiserver skips the no-op update)
        if merged.get("spec") != live.get("spec") and "generation" in live["metadata"]:
            merged["metadata"]["generation"] = int(live["metadata"]["generation"]) + 1
        merged["metadata"]["resourceVersion"] = self._bump()
        self.objects[key] = merged
        for f in new_fields:
            owners[f] = manager
        return "configured"

    def set_status(self, obj: JSON, status: JSON) -> bool:
        """Controllers' status writes; returns whether anything changed."""
        if obj.get("status") == status:
            return False
        self._check_write()
        obj["status"] = copy.deepcopy(status)
        obj["metadata"]["resourceVersion"] = self._bump()
        return True

    def delete_key(self, key: str) -> None:
        self.objects.pop(key, None)
        self.data["owners"].pop(key, None)

    def delete(self, info: KindInfo, ns: str | None, name: str, *, stuck: bool = False) -> bool:
        key = self.key(info, ns, name)
        obj = self.objects.get(key)
        if obj is None:
            return False
        if stuck or obj["metadata"].get("finalizers"):
            self._check_write()  # setting deletionTimestamp is an update (a Txn that puts)
            obj["metadata"].setdefault("deletionTimestamp", rfc3339(self.now))
            return True
        self.delete_key(key)
        if info.kind == "Namespace":
            for k in [k for k, o in self.objects.items() if o["metadata"].get("namespace") == name]:
                self.delete_key(k)
        if info.kind == "CustomResourceDefinition":
            spec = obj.get("spec", {})
            for k in [k for k in self.objects if k.startswith(f"{spec.get('group')}/{dig(spec, 'names', 'kind')}/")]:
                self.delete_key(k)
        return True

    def key_of(self, obj: JSON) -> str:
        g, _ = split_api_version(obj["apiVersion"])
        return obj_key(g, obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def _strip_meta(o: JSON) -> JSON:
    c = copy.deepcopy(o)
    m = c.get("metadata", {})
    for k in ("resourceVersion", "generation", "managedFields"):
        m.pop(k, None)
    return c


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = obj
    return out


def _get_flat(obj: Any, path: str) -> Any:
    cur = obj
    for p in path.split("."):
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def _del_flat(obj: Any, path: str) -> None:
    parts = path.split(".")
    cur = obj
    for p in parts[:-1]:
        if not isinstance(cur, dict) or p not in cur:
            return
        cur = cur[p]
    if isinstance(cur, dict):
        cur.pop(parts[-1], None)


# ---- selectors -----------------------------------------------------------------------------------------
_SEL_IN = r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$"  # re.compile'd on first use (cached by re)


def _split_selector(sel: str) -> list[str]:
    parts, depth, buf = [], 0, ""
    for ch in sel:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    if buf.strip():
        parts.append(buf)
    return parts


def match_labels(labels: dict[str, str], selector: str) -> bool:
    for term in _split_selector(selector):
        t = term.strip()
        m = re.match(_SEL_IN, t)
        if m:
            vals = {v.strip() for v in m.group(3).split(",")}
            has = labels.get(m.group(1))
            if m.group(2) == "in" and has not in vals:
                return False
            if m.group(2) == "notin" and has in vals:
                return False
        elif "!=" in t:
            k, v = t.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in t:
            k, v = t.split("==", 1) if "==" in t else t.split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif t.startswith("!"):
            if t[1:].strip() in labels:
                return False
        elif t and t not in labels:
            return False
    return True


def match_fields(obj: JSON, selector: str) -> bool:
    for term in _split_selector(selector):
        t = term.strip()
        neg = "!=" in t
        k, v = t.split("!=" if neg else ("==" if "==" in t else "="), 1)
        val = _get_flat(obj, k.strip())
        sval = "" if val is None else str(val)
        if (sval == v.strip()) == neg:
            return False
    return True


def condition(obj: JSON, ctype: str) -> JSON | None:
    for c in dig(obj, "status", "conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def set_condition(
    conds: list[JSON], ctype: str, status: str, reason: str, message: str, now: float, generation: int | None = None
) -> list[JSON]:
    out = [c for c in conds if c.get("type") != ctype]
    old = next((c for c in conds if c.get("type") == ctype), None)
    ts = old["lastTransitionTime"] if old and old.get("status") == status else rfc3339(now)
    c: JSON = {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": ts}
    if generation is not None:
        c["observedGeneration"] = generation
    out.append(c)
    return out


def dumps(o: Any) -> str:
    return json.dumps(o, indent=4)
