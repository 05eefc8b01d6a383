"""Helm v3 release records, stored like Helm does: Secrets `sh.helm.release.v1.<name>.v<rev>` (type
helm.sh/release.v1) whose `release` key is base64(gzip(JSON)), so they live (and are restored) with etcd."""

from __future__ import annotations

import base64
import json

from .kube import Kube
from .util import JSON, memoized


def encode(rel: JSON) -> str:
    import gzip  # local: each simulated call is a fresh interpreter, and few need it

    inner = base64.b64encode(gzip.compress(json.dumps(rel).encode())).decode()
    return base64.b64encode(inner.encode()).decode()


def decode(secret: JSON) -> JSON:
    raw = secret["data"]["release"]
    if isinstance(raw, str):  # memoized across calls: controllers read every release on every tick
        rel: JSON = memoized("helm-release", raw, _decode)
        return rel
    return _decode(raw)


def _decode(raw: str) -> JSON:
    import gzip  # local: each simulated call is a fresh interpreter, and few need it

    inner = base64.b64decode(raw)
    rel: JSON = json.loads(gzip.decompress(base64.b64decode(inner)))
    return rel


def releases(kube: Kube, ns: str | None = None, name: str | None = None) -> list[JSON]:
    out = []
    for o in kube.all_of_kind("Secret", ""):
        if o.get("type") != "helm.sh/release.v1":
            continue
        if ns is not None and o["metadata"].get("namespace") != ns:
            continue
        labels = o["metadata"].get("labels") or {}
        if name is not None and labels.get("name") != name:
            continue
        out.append(decode(o))
    return sorted(out, key=lambda r: (r["namespace"], r["name"], r["version"]))


def latest(kube: Kube, ns: str, name: str) -> JSON | None:
    rels = releases(kube, ns, name)
    return rels[-1] if rels else None


def latest_all(kube: Kube, ns: str | None = None) -> list[JSON]:
    by: dict[tuple[str, str], JSON] = {}
    for r in releases(kube, ns):
        by[(r["namespace"], r["name"])] = r
    return list(by.values())


def store(kube: Kube, rel: JSON) -> None:
    name = f"sh.helm.release.v1.{rel['name']}.v{rel['version']}"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": name,
            "namespace": rel["namespace"],
            "labels": {
                "name": rel["name"],
                "owner": "helm",
                "status": rel["info"]["status"],
                "version": str(rel["version"]),
            },
        },
        "data": {"release": encode(rel)},
    }
    kube.put(secret, manager="helm")


def delete_all(kube: Kube, ns: str, name: str) -> None:
    for k, o in list(kube.objects.items()):
        if (
            o["kind"] == "Secret"
            and o.get("type") == "helm.sh/release.v1"
            and o["metadata"].get("namespace") == ns
            and (o["metadata"].get("labels") or {}).get("name") == name
        ):
            kube.delete_key(k)
