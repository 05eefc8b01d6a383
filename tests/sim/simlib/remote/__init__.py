"""Simulated remote manifests: what `kubectl apply -f <https URL>` downloads (the simulator has no network).

Add a source by dropping a module into this package that calls `register(pattern, render)`: `pattern` is a
regex over the URL, `render(match)` returns the YAML text the URL serves. Unknown URLs fail like kubectl does
for a 404. Modules are discovered automatically."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable

from ..runtime import Fail

Render = Callable[[re.Match[str]], str]

SOURCES: list[tuple[re.Pattern[str], Render]] = []
_loaded = False


def register(pattern: str, render: Render) -> None:
    SOURCES.append((re.compile(pattern), render))


def is_url(ref: str) -> bool:
    return ref.startswith(("https://", "http://"))


def fetch(url: str) -> str:
    """The text `url` serves, or the error kubectl prints for an unreachable or missing URL."""
    global _loaded
    if not _loaded:
        for mod in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{mod.name}")
        _loaded = True
    for pattern, render in SOURCES:
        m = pattern.fullmatch(url)
        if m is not None:
            return render(m)
    raise Fail(f'error: unable to read URL "{url}", server reported 404 Not Found, status code=404')
