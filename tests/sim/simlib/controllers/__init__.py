"""In-cluster controllers, run after every simulator call while a cluster's etcd is bootstrapped.

Add a controller by dropping a module into this package that decorates a function with `@controller(name,
order)`; the function gets `(world, cluster, kube)` and returns True when it changed something (the loop
then runs again, up to a bound). A module may also declare `FAULTS = {kind: description}` for the fault kinds it
honours; `sim fault` accepts them. Modules are discovered automatically: no registry edit needed."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from ..kube import Kube
from ..util import JSON, Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

    Reconcile = Callable[[Any, JSON, Kube], bool]


class Controller(Frozen):
    __slots__ = ("name", "order", "reconcile")

    def __init__(self, name: str, order: int, reconcile: Reconcile) -> None:
        self.name = name
        self.order = order
        self.reconcile = reconcile


REGISTRY: dict[str, Controller] = {}
_loaded = False


def controller(name: str, order: int = 100) -> Callable[[Reconcile], Reconcile]:
    def deco(fn: Reconcile) -> Reconcile:
        REGISTRY[name] = Controller(name, order, fn)
        return fn

    return deco


def _modules() -> list[str]:
    """The controller modules in this package. A directory listing, not pkgutil: each simulated call is a
    fresh interpreter, and pkgutil (with importlib.util) costs it more than the listing."""
    return sorted(name[:-3] for name in os.listdir(__path__[0]) if name.endswith(".py") and not name.startswith("_"))


def discover() -> list[Controller]:
    global _loaded
    if not _loaded:
        for name in _modules():
            importlib.import_module(f"{__name__}.{name}")
        _loaded = True
    return sorted(REGISTRY.values(), key=lambda c: (c.order, c.name))


def fault_kinds() -> dict[str, str]:
    """Fault kinds declared by controller modules (`FAULTS = {kind: description}`)."""
    discover()
    kinds: dict[str, str] = {}
    for name in _modules():
        kinds.update(getattr(importlib.import_module(f"{__name__}.{name}"), "FAULTS", {}))
    return kinds


def run_all(world: Any, cluster: JSON, rounds: int = 8) -> None:
    kube = Kube(cluster, world.now)
    for _ in range(rounds):
        changed = False
        for c in discover():
            changed = bool(c.reconcile(world, cluster, kube)) or changed
        if not changed:
            return
