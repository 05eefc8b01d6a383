"""A small stateful kube API behind FakeRunner for the day-2 unit tests: kubectl get/patch/annotate/scale/delete/
apply and flux suspend/resume/reconcile over a dict of objects, plus controller callbacks run on every read.

It asserts that every command names the expected kubeconfig and context, so a command that would follow a
stray KUBECONFIG fails the test. End-to-end behaviour lives in the simulator tests."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from k8s_ops.core.command import Command, Result
from k8s_ops.core.testing import FakeRunner
from k8s_ops.tools.flux import HELMRELEASE, KUSTOMIZATION, REQUESTED_AT
from k8s_ops.tools.kubectl import KubeTarget

Obj = dict[str, Any]
Controller = Callable[["FakeKube"], None]

FLUX_KINDS = {"kustomization": KUSTOMIZATION, "helmrelease": HELMRELEASE}
WORKLOADS = {"deployment": "deployments.apps", "statefulset": "statefulsets.apps"}

TARGET = KubeTarget(Path("/tmp/k8s-ops-test/kubeconfig"), "infra")


def merge(base: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base) if isinstance(base, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def obj(resource: str, ns: str, name: str, **fields: Any) -> Obj:
    o: Obj = {"metadata": {"name": name, "namespace": ns, "generation": 1}, **fields}
    o.setdefault("spec", {})
    o["_resource"] = resource
    return o


class FakeKube:
    def __init__(self, *objects: Obj, target: KubeTarget = TARGET) -> None:
        self.target = target
        self.objects: dict[tuple[str, str, str], Obj] = {}
        for o in objects:
            self.add(o)
        self.controllers: list[Controller] = []
        self.mutations: list[list[str]] = []
        self.failing: dict[str, Result] = {}  # argv substring -> result
        self.clock = 1000

    def add(self, o: Obj) -> None:
        resource = o.pop("_resource")
        m = o["metadata"]
        self.objects[(resource, m.get("namespace", ""), m["name"])] = o

    def get(self, resource: str, ns: str, name: str) -> Obj | None:
        return self.objects.get((resource, ns, name))

    def runner(self) -> FakeRunner:
        return FakeRunner(handler=self.handle)

    # -------------------------------------------------------------------------------------------------
    def handle(self, command: Command) -> Result:
        argv = command.display_argv()
        tool = argv[0]
        assert argv[1:5] == ["--kubeconfig", str(self.target.kubeconfig), "--context", self.target.context], argv
        line = " ".join(argv)
        for needle, result in self.failing.items():
            if needle in line:
                return result
        args = argv[5:]
        if command.mutates:
            self.mutations.append(argv)
        if tool == "kubectl":
            return self._kubectl(args, command)
        if tool == "flux":
            return self._flux(args)
        raise AssertionError(f"unexpected tool {tool}")

    @staticmethod
    def _opt(args: list[str], name: str) -> str | None:
        return args[args.index(name) + 1] if name in args else None

    def _kubectl(self, args: list[str], command: Command) -> Result:
        verb = args[0]
        ns = self._opt(args, "--namespace")
        if verb == "get":
            for c in self.controllers:
                c(self)
            resource = args[1]
            name = args[2] if len(args) > 2 and not args[2].startswith("--") else None
            if name:
                o = self.get(resource, ns or "", name)
                if o is None:
                    return Result(1, "", f'Error from server (NotFound): {resource} "{name}" not found')
                return Result(0, json.dumps(o))
            items = [
                o for (r, ons, _), o in sorted(self.objects.items()) if r == resource and (ns is None or ons == ns)
            ]
            return Result(0, json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        if verb == "patch":
            o = self.get(args[1], ns or "", args[2])
            if o is None:
                return Result(1, "", "NotFound")
            body = json.loads(self._opt(args, "--patch") or "{}")
            new = merge(o, body)
            if new.get("spec") != o.get("spec"):
                new["metadata"]["generation"] = int(o["metadata"].get("generation", 1)) + 1
            o.clear()
            o.update(new)
            return Result(0, f"{args[1]}/{args[2]} patched")
        if verb == "annotate":
            resource = args[1]
            names = [a for a in args[2:] if not a.startswith("--") and "=" not in a and a != ns]
            kv = dict(a.split("=", 1) for a in args[2:] if "=" in a and not a.startswith("--"))
            for n in names:
                o = self.get(resource, ns or "", n)
                assert o is not None, n
                o["metadata"].setdefault("annotations", {}).update(kv)
            return Result(0)
        if verb == "scale":
            replicas = int(next(a for a in args if a.startswith("--replicas=")).split("=")[1])
            for ref in [a for a in args[1:] if "/" in a]:
                kind, name = ref.split("/")
                o = self.get(WORKLOADS[kind], ns or "", name)
                assert o is not None, ref
                o["spec"]["replicas"] = replicas
            return Result(0)
        if verb == "delete":
            resource = args[1]
            for n in [a for a in args[2:] if not a.startswith("--") and a != ns]:
                self.objects.pop((resource, ns or "", n), None)
            return Result(0)
        if verb == "apply":
            assert isinstance(command.stdin, bytes)
            doc = json.loads(command.stdin)
            resource = {"ReplicationDestination": "replicationdestinations.volsync.backube"}[doc["kind"]]
            doc = {**doc, "_resource": resource}
            doc["metadata"].setdefault("generation", 1)
            self.add(doc)
            return Result(0)
        raise AssertionError(f"unexpected kubectl {args}")

    def _flux(self, args: list[str]) -> Result:
        verb, kind, name = args[0], args[1], args[2]
        ns = self._opt(args, "--namespace") or "flux-system"
        o = self.get(FLUX_KINDS[kind], ns, name)
        if o is None:
            return Result(1, "", f"✗ {kind} '{name}' not found")
        self.clock += 1
        if verb == "suspend":
            o["spec"]["suspend"] = True
            o["metadata"]["generation"] += 1
        elif verb == "resume":
            o["spec"].pop("suspend", None)
            o["metadata"]["generation"] += 1
            o["metadata"].setdefault("annotations", {})[REQUESTED_AT] = str(self.clock)
        elif verb == "reconcile":
            o["metadata"].setdefault("annotations", {})[REQUESTED_AT] = str(self.clock)
        else:
            raise AssertionError(args)
        return Result(0)


# ---- controllers used by the tests ------------------------------------------------------------------


def flux_controller(*, fail: str | None = None, stalled: bool = False) -> Controller:
    """Reconcile unsuspended Kustomizations/HelmReleases: Ready (or not Ready with `fail` as message)."""

    def run(k: FakeKube) -> None:
        for (resource, _, _), o in k.objects.items():
            if resource not in (KUSTOMIZATION, HELMRELEASE) or o["spec"].get("suspend"):
                continue
            status = o.setdefault("status", {})
            status["observedGeneration"] = o["metadata"]["generation"]
            requested = (o["metadata"].get("annotations") or {}).get(REQUESTED_AT)
            if requested:
                status["lastHandledReconcileAt"] = requested
            ok = fail is None
            conds = [
                {
                    "type": "Ready",
                    "status": "True" if ok else "False",
                    "reason": "ReconciliationSucceeded" if ok else "ReconciliationFailed",
                    "message": "Applied revision: main@sha1:abc" if ok else fail,
                }
            ]
            if stalled:
                conds.append({"type": "Stalled", "status": "True", "reason": "InvalidValues", "message": fail or ""})
            status["conditions"] = conds

    return run


def ready_flux(resource: str, ns: str, name: str, **extra: Any) -> Obj:
    o = obj(resource, ns, name, **extra)
    o["status"] = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Ok"}]}
    return o


def volsync_controller(*, fail: str | None = None, steps: int = 1) -> Controller:
    """VolSync: a changed manual trigger starts a mover job; `steps` reads later the sync is done (or, with
    `fail`, the job fails and latestMoverStatus says Failed with `fail` in its logs)."""
    rs_res, rd_res = "replicationsources.volsync.backube", "replicationdestinations.volsync.backube"

    def run(k: FakeKube) -> None:
        for (resource, ns, name), o in list(k.objects.items()):
            if resource not in (rs_res, rd_res) or o["spec"].get("paused"):
                continue
            tag = (o["spec"].get("trigger") or {}).get("manual")
            status = o.setdefault("status", {})
            if not tag or status.get("lastManualSync") == tag:
                continue
            job_name = f"volsync-{'src' if resource == rs_res else 'dst'}-{name}"
            job = k.get("jobs.batch", ns, job_name)
            if job is None:
                job = obj("jobs.batch", ns, job_name, spec={"backoffLimit": 8})
                job["status"] = {"active": 1, "_age": 0}
                k.add(job)
                status["lastSyncStartTime"] = "2026-01-01T00:00:00Z"
                continue
            if job["status"].get("failed"):
                # like VolSync: a job at its backoff limit is deleted, the mover's logs go to the status
                k.objects.pop(("jobs.batch", ns, job_name))
                status["latestMoverStatus"] = {"result": "Failed", "logs": f"restic: {fail}\nexit status 1"}
                continue
            job["status"]["_age"] += 1
            if job["status"]["_age"] < steps:
                continue
            if fail:
                job["status"] = {"failed": 8}
                continue
            k.objects.pop(("jobs.batch", ns, job_name))
            status["lastManualSync"] = tag
            status["lastSyncTime"] = "2026-01-01T00:01:00Z"
            status["lastSyncDuration"] = "1m0s"
            status["latestMoverStatus"] = {"result": "Successful", "logs": "processed 10 files"}
            unlock = (o["spec"].get("restic") or {}).get("unlock")
            if unlock:
                status.setdefault("restic", {})["lastUnlocked"] = unlock

    return run


def workload_controller(*, stuck: bool = False) -> Controller:
    """Deployments/StatefulSets: pods follow spec.replicas (selector labels, PVC mounts); `stuck` pods never go."""

    def run(k: FakeKube) -> None:
        for (resource, ns, name), o in list(k.objects.items()):
            if resource not in WORKLOADS.values():
                continue
            want = int(o["spec"].get("replicas", 1))
            labels = dict((o["spec"].get("selector") or {}).get("matchLabels") or {})
            mine = [
                key
                for key, p in k.objects.items()
                if key[0] == "pods"
                and key[1] == ns
                and all((p["metadata"].get("labels") or {}).get(a) == b for a, b in labels.items())
            ]
            if want == 0 and not stuck:
                for key in mine:
                    k.objects.pop(key)
            for i in range(len(mine), want):
                p = obj(
                    "pods", ns, f"{name}-{i}", spec=copy.deepcopy((o["spec"].get("template") or {}).get("spec") or {})
                )
                p["metadata"]["labels"] = labels
                p["status"] = {"phase": "Running"}
                k.add(p)
            o["status"] = {"replicas": want, "readyReplicas": want if want else 0}

    return run
