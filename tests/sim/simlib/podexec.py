"""`kubectl debug node/<node>` and `kubectl exec` against the simulated clusters (registered in kubectl.py).

No container runs here, so what a command prints is the simulator's own report of where it ran, marked `sim:` —
the node, the pod and its mounts — which is what the product's tests need to see (the right node, /host, the claim
mounted read-only or read-write). As kubectl does (FIDELITY.md, "kubectl debug and exec"):
* `debug node/<n>` creates pod `node-debugger-<n>-<5 chars>` labelled `app.kubernetes.io/managed-by=kubectl-debug`
  on the node (nodeName, tolerate everything, restartPolicy Never), the host's root at /host; `--profile sysadmin`
  makes the container privileged and the pod use the host's PID, network and IPC namespaces; "Creating debugging
  pod … on node …." unless `--quiet`; the pod stays after the command ends (phase Succeeded);
* Pod Security as Talos configures it by default: `baseline` enforced everywhere but `kube-system`, so a sysadmin
  debug pod elsewhere is Forbidden (unless the namespace is labelled `pod-security.kubernetes.io/enforce=privileged`);
* `exec` needs the pod Running and the container present."""

from __future__ import annotations

import shlex

from .cliparse import Parsed
from .runtime import Fail
from .util import JSON, short_hash

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

PROFILE_PRIVILEGED = "sysadmin"
PSA_EXEMPT = ("kube-system",)
DEBUG_LABEL = {"app.kubernetes.io/managed-by": "kubectl-debug"}


def _privileged_allowed(kube: Any, ns: str) -> bool:
    if ns in PSA_EXEMPT:
        return True
    obj = kube.find("Namespace", None, ns, group="")
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels.get("pod-security.kubernetes.io/enforce") == "privileged"


def _mounts(pod: JSON) -> list[str]:
    claims = {
        v.get("name"): (v["persistentVolumeClaim"].get("claimName"), bool(v["persistentVolumeClaim"].get("readOnly")))
        for v in (pod.get("spec") or {}).get("volumes") or []
        if isinstance(v.get("persistentVolumeClaim"), dict)
    }
    hostpaths = {
        v.get("name"): v["hostPath"].get("path")
        for v in (pod.get("spec") or {}).get("volumes") or []
        if isinstance(v.get("hostPath"), dict)
    }
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for m in c.get("volumeMounts") or []:
            name = m.get("name")
            if name in claims:
                claim, ro = claims[name]
                mode = "ro" if ro or m.get("readOnly") else "rw"
                out.append(f"{m.get('mountPath')}=pvc/{claim}({mode})")
            elif name in hostpaths:
                out.append(f"{m.get('mountPath')}=host:{hostpaths[name]}")
    return out


def cmd_debug(ctx: Any, p: Parsed) -> int:
    from .kubectl import connect, ns_of, target

    if not p.args or not p.args[0].startswith("node/"):
        raise Fail("error: the simulator models only `kubectl debug node/<name>`")
    node = p.args[0].split("/", 1)[1]
    command = p.args[1:]
    if not p["image"]:
        raise Fail("error: --image is required for node debugging")
    t = target(ctx, p)
    with ctx.store.tx() as world:
        kube = connect(world, t)
        ns = ns_of(p, t)
        if kube.find("Node", None, node, group="") is None:
            raise Fail(f'Error from server (NotFound): nodes "{node}" not found')
        name = f"node-debugger-{node}-{short_hash(node, str(world.clock), n=5)}"
        privileged = p["profile"] == PROFILE_PRIVILEGED
        if privileged and not _privileged_allowed(kube, ns):
            raise Fail(
                f'Error from server (Forbidden): pods "{name}" is forbidden: violates PodSecurity "baseline:latest": '
                "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), hostPath volumes (volume "
                '"host-root"), privileged (container "debugger" must not set securityContext.privileged=true)'
            )
        container: JSON = {
            "name": p["container"] or "debugger",
            "image": p["image"],
            "stdin": bool(p["stdin"]),
            "tty": bool(p["tty"]),
            "volumeMounts": [{"name": "host-root", "mountPath": "/host"}],
        }
        if command:
            container["command"] = command
        if privileged:
            container["securityContext"] = {"privileged": True}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": dict(DEBUG_LABEL)},
            "spec": {
                "nodeName": node,
                "restartPolicy": "Never",
                "tolerations": [{"operator": "Exists"}],
                "hostPID": True,
                "hostNetwork": True,
                "hostIPC": True,
                "containers": [container],
                "volumes": [{"name": "host-root", "hostPath": {"path": "/"}}],
            },
        }
        kube.put(pod, manager="kubectl-debug")
        if not p["quiet"]:
            ctx.out(f"Creating debugging pod {name} with container {container['name']} on node {node}.\n")
        attach = p["attach"] or p["stdin"]
        if attach:
            ctx.out(
                f"sim: ran {shlex.join(command) or '(image entrypoint)'} on node {node} in pod {ns}/{name} "
                f"[{' '.join(_mounts(pod))}]\n"
            )
            phase = "Succeeded"
        else:
            phase = "Running"
        kube.set_status(kube.find("Pod", ns, name, group="") or pod, {"phase": phase})
    return 0


def cmd_exec(ctx: Any, p: Parsed) -> int:
    from .kubectl import connect, ns_of, target

    if not p.args:
        raise Fail("error: expected 'exec POD_NAME COMMAND [ARG1] [ARG2] ... [ARGN]'.")
    name = p.args[0].split("/", 1)[-1]
    command = p.args[1:]
    if not command:
        raise Fail("error: you must specify at least one command for the container")
    t = target(ctx, p)
    with ctx.store.tx() as world:
        kube = connect(world, t)
        ns = ns_of(p, t)
        pod = kube.find("Pod", ns, name, group="")
        if pod is None:
            raise Fail(f'Error from server (NotFound): pods "{name}" not found')
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise Fail(f"error: cannot exec into a container in a completed pod; current phase is {phase}")
        if phase != "Running":
            raise Fail(f"error: unable to upgrade connection: pod {name} is {phase or 'Pending'}")
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        want = p["container"] or (names[0] if names else "")
        if want not in names:
            raise Fail(f'error: unable to upgrade connection: container not found ("{want}")')
        node = (pod.get("spec") or {}).get("nodeName") or "?"
        ctx.out(f"sim: ran {shlex.join(command)} in pod {ns}/{name} on node {node} [{' '.join(_mounts(pod))}]\n")
    return 0
