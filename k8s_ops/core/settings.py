"""Runtime settings read from the environment (invoke.yaml values are exported to it by tasks).

K8S_OPS_POLL_INTERVAL   seconds between polls of a wait (default 5)
K8S_OPS_TIMEOUT_SCALE   multiplies every wait timeout (default 1; tests use small values)
K8S_OPS_COMMAND_TIMEOUT default per-command timeout in seconds (default 600)
K8S_OPS_CONCURRENCY     bound on concurrently executed independent steps (default 4)
"""

from __future__ import annotations

import os
from typing import Any, Protocol

__all__ = ["apply_invoke_config", "command_timeout", "concurrency", "poll_interval", "timeout_scale"]


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        return default


def poll_interval() -> float:
    return _float("K8S_OPS_POLL_INTERVAL", 5.0)


def timeout_scale() -> float:
    return _float("K8S_OPS_TIMEOUT_SCALE", 1.0)


def command_timeout() -> float:
    return _float("K8S_OPS_COMMAND_TIMEOUT", 600.0)


def concurrency() -> int:
    return max(1, int(_float("K8S_OPS_CONCURRENCY", 4)))


_KEYS = {
    "poll_interval": "K8S_OPS_POLL_INTERVAL",
    "timeout_scale": "K8S_OPS_TIMEOUT_SCALE",
    "command_timeout": "K8S_OPS_COMMAND_TIMEOUT",
    "concurrency": "K8S_OPS_CONCURRENCY",
}


class _ConfigLike(Protocol):
    def get(self, key: str, default: Any = ..., /) -> Any: ...


def apply_invoke_config(config: _ConfigLike) -> None:
    """Take `k8s_ops: {poll_interval: …}` from invoke.yaml; the environment still wins."""
    section = config.get("k8s_ops") or {}
    for key, env in _KEYS.items():
        if key in section and env not in os.environ:
            os.environ[env] = str(section[key])
