"""Runtime settings read from the environment (invoke.yaml values are exported to it by tasks).

K8S_OPS_POLL_INTERVAL   seconds between polls of a wait (default 5)
K8S_OPS_TIMEOUT_SCALE   multiplies every wait timeout (default 1; tests use small values)
K8S_OPS_COMMAND_TIMEOUT default per-command timeout in seconds (default 600)
K8S_OPS_CONCURRENCY     bound on concurrently executed independent steps (default 4)

A value that is not a finite positive number (a whole number for the concurrency) is a SettingError naming the
setting — never a silent default. So is an unknown key in the invoke.yaml `k8s_ops:` section.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, Protocol

from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.paths import looks_like_key_material, shown

__all__ = [
    "SettingError",
    "apply_invoke_config",
    "command_timeout",
    "concurrency",
    "poll_interval",
    "timeout_scale",
    "validate",
]


class SettingError(ToolkitError):
    """A K8S_OPS_* variable or an invoke.yaml `k8s_ops:` value is unusable."""


def _number(name: str, default: float, *, integer: bool = False) -> float:
    raw = os.environ.get(name)
    return default if raw is None else _parse(name, raw, default, integer=integer)


def _parse(name: str, raw: str, default: float, *, integer: bool) -> float:
    what = "a whole number" if integer else "a number"
    text = raw.strip()
    if not text:
        raise SettingError(f"{name} is empty; expected {what} greater than 0 (unset it for the default {default:g})")
    value_shown = "<not shown>" if looks_like_key_material(text) else text if len(text) <= 20 else text[:17] + "..."
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise SettingError(f"{name}={value_shown!r} is not {what} greater than 0") from None
    if not math.isfinite(value):
        raise SettingError(f"{name}={value_shown!r} is not a finite number")
    if value <= 0:
        raise SettingError(f"{name}={value_shown!r} must be greater than 0")
    return value


def poll_interval() -> float:
    return _number("K8S_OPS_POLL_INTERVAL", 5.0)


def timeout_scale() -> float:
    return _number("K8S_OPS_TIMEOUT_SCALE", 1.0)


def command_timeout() -> float:
    return _number("K8S_OPS_COMMAND_TIMEOUT", 600.0)


def concurrency() -> int:
    return int(_number("K8S_OPS_CONCURRENCY", 4, integer=True))


_KEYS = {
    "poll_interval": "K8S_OPS_POLL_INTERVAL",
    "timeout_scale": "K8S_OPS_TIMEOUT_SCALE",
    "command_timeout": "K8S_OPS_COMMAND_TIMEOUT",
    "concurrency": "K8S_OPS_CONCURRENCY",
}
# keys of the section read elsewhere: `runner` (core/pipeline.py: the runner factory tests inject)
_OTHER_KEYS = frozenset({"runner"})
_DEFAULTS = {"poll_interval": 5.0, "timeout_scale": 1.0, "command_timeout": 600.0, "concurrency": 4}


def validate() -> None:
    """Read every numeric setting once, so a bad one fails the task before anything runs."""
    poll_interval()
    timeout_scale()
    command_timeout()
    concurrency()


class _ConfigLike(Protocol):
    def get(self, key: str, default: Any = ..., /) -> Any: ...


def apply_invoke_config(config: _ConfigLike) -> None:
    """Take `k8s_ops: {poll_interval: …}` from invoke.yaml (the environment still wins), then validate all settings.

    An unknown key, a value that is not a number (`true`, a list) is a SettingError naming `k8s_ops.<key>`."""
    section = config.get("k8s_ops") or {}
    if not isinstance(section, Mapping):
        raise SettingError(f"invoke.yaml k8s_ops: expected a mapping of settings, got {type(section).__name__}")
    for key in section:
        if key not in _KEYS and key not in _OTHER_KEYS:
            name = (
                f"k8s_ops.{key}"
                if isinstance(key, str) and shown(key, 40) == repr(key)
                else f"k8s_ops key {shown(str(key))}"
            )
            raise SettingError(f"invoke.yaml: unknown setting {name}", hint=f"known settings: {', '.join(_KEYS)}")
    for key, env in _KEYS.items():
        if key not in section or env in os.environ:
            continue
        value = section[key]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise SettingError(f"invoke.yaml k8s_ops.{key}: expected a number, got {type(value).__name__}")
        _parse(f"invoke.yaml k8s_ops.{key}", str(value), _DEFAULTS[key], integer=key == "concurrency")
        os.environ[env] = str(value)
    validate()
