"""external-secrets: an ExternalSecret syncs when it is new, its spec changed or its annotations changed (the
`force-sync` annotation is how operators force a refresh), as ESO compares `status.syncedResourceVersion`
(generation + a hash of labels and annotations). A sync writes the target Secret, `status.refreshTime` and
Ready=True/SecretSynced; a missing store, or the `externalsecret-fails` fault matching `<ns>/<name>`
(with `message`), gives Ready=False/SecretSyncedError and leaves refreshTime alone. Nothing syncs unless an
`external-secrets` Deployment is available (the controller runs)."""

from __future__ import annotations

import base64
import copy
import json

from ..kube import Kube, set_condition
from ..util import JSON, dig, rfc3339
from . import controller

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

GROUP = "external-secrets.io"
FAULT = "externalsecret-fails"
FAULTS = {FAULT: "ExternalSecrets whose ns/name matches --match fail to sync with --message"}


def _controller_running(kube: Kube) -> bool:
    for d in kube.all_of_kind("Deployment", "apps"):
        labels = d["metadata"].get("labels") or {}
        named = "external-secrets" in (d["metadata"]["name"], labels.get("app.kubernetes.io/name"))
        if named and int(dig(d, "status", "availableReplicas", default=0) or 0) >= 1:
            return True
    return False


def _version(o: JSON) -> str:
    import hashlib  # local: loading OpenSSL costs every simulated call (a fresh interpreter) ~3 ms

    meta = o["metadata"]
    digest = hashlib.sha1(
        json.dumps([meta.get("labels") or {}, meta.get("annotations") or {}], sort_keys=True).encode()
    ).hexdigest()
    return f"{meta.get('generation', 1)}-{digest}"


def _store_problem(kube: Kube, o: JSON) -> str | None:
    ref = dig(o, "spec", "secretStoreRef") or {}
    kind = ref.get("kind", "SecretStore")
    name = ref.get("name", "")
    ns = o["metadata"]["namespace"]
    store = kube.find(kind, None if kind == "ClusterSecretStore" else ns, name, group=GROUP)
    if store is None:
        return f'could not get {kind} "{name}", secretstores.external-secrets.io "{name}" not found'
    return None


@controller("external-secrets", order=80)
def external_secrets(world: Any, cluster: JSON, kube: Kube) -> bool:
    if not _controller_running(kube):
        return False
    changed = False
    for o in kube.all_of_kind("ExternalSecret", GROUP):
        ns, name = o["metadata"]["namespace"], o["metadata"]["name"]
        version = _version(o)
        st = copy.deepcopy(o.get("status") or {})
        if st.get("syncedResourceVersion") == version:
            continue
        conds = st.get("conditions", [])
        fault = world.fault(FAULT, cluster=cluster["name"], text=f"{ns}/{name}")
        problem = _store_problem(kube, o) or (str(fault.get("message") or "provider error") if fault else None)
        if problem:
            st["conditions"] = set_condition(
                conds, "Ready", "False", "SecretSyncedError", f"error retrieving secret: {problem}", world.now
            )
        else:
            target = dig(o, "spec", "target", "name") or name
            data = {
                str(d.get("secretKey")): base64.b64encode(f"sim-{ns}-{name}-{d.get('secretKey')}".encode()).decode()
                for d in dig(o, "spec", "data") or []
                if d.get("secretKey")
            }
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": target,
                    "namespace": ns,
                    "labels": {"reconcile.external-secrets.io/managed": "true"},
                    "ownerReferences": [
                        {"apiVersion": f"{GROUP}/v1", "kind": "ExternalSecret", "name": name, "controller": True}
                    ],
                },
                "type": "Opaque",
                "data": data,
            }
            kube.put(secret, manager="external-secrets")
            st["conditions"] = set_condition(conds, "Ready", "True", "SecretSynced", "secret synced", world.now)
            st["refreshTime"] = rfc3339(world.now)
            st["binding"] = {"name": target}
            st["syncedResourceVersion"] = version
        # a failure leaves syncedResourceVersion alone, so the next pass retries (as ESO does on refresh)
        changed = kube.set_status(o, st) or changed
    return changed
