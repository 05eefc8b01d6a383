"""kubectl commands the bootstrap needs, built on `k8s_ops.tools.kubectl` (argv with explicit
`--kubeconfig`/`--context`): server-side apply from stdin or a URL, and "same content" comparisons for guards.
Reads and readiness probes live in `k8s_ops.tools.kubectl`, waits in `k8s_ops.core.wait`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from k8s_ops.core.command import Command
from k8s_ops.core.secret import Secret
from k8s_ops.tools import kubectl
from k8s_ops.tools.kubectl import KubeTarget

__all__ = [
    "FIELD_MANAGER",
    "apply_stdin",
    "apply_url",
    "is_subset",
]

FIELD_MANAGER: Final = "k8s-ops"


def apply_stdin(target: KubeTarget, payload: Secret | bytes, *, description: str) -> Command:
    """`kubectl apply --server-side --field-manager k8s-ops --force-conflicts --filename -` (manifest on stdin).

    Server-side apply with one field manager makes a re-apply of the same content a no-op and lets a re-run
    take fields back after a partial failure; a Secret's manifest travels as a masked `Secret` on stdin.
    """
    return Command(
        argv=kubectl.kubectl(
            target, "apply", "--server-side", "--field-manager", FIELD_MANAGER, "--force-conflicts", "--filename", "-"
        ),
        stdin=payload,
        description=description,
        mutates=True,
    )


def apply_url(target: KubeTarget, url: str, *, description: str) -> Command:
    """`kubectl apply --server-side … --filename <https URL>` (CRD bundles published as release assets)."""
    return Command(
        argv=kubectl.kubectl(
            target, "apply", "--server-side", "--field-manager", FIELD_MANAGER, "--force-conflicts", "--filename", url
        ),
        description=description,
        mutates=True,
    )


def is_subset(want: Any, have: Any) -> bool:
    """Every field of `want` is present in `have` with the same value (lists compared whole, by value).

    The API server adds defaults (e.g. a Kustomization's `force: false`); those must not count as drift.
    """
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(k in have and is_subset(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return False
        return all(is_subset(w, h) for w, h in zip(want, have, strict=True))
    return bool(want == have)
