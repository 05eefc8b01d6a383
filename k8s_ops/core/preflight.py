"""External tool discovery: present on PATH and at least the minimum version, checked once in preflight."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from k8s_ops.core.command import Command, Result, cmd
from k8s_ops.core.errors import ToolkitError, ToolNotFound
from k8s_ops.core.runner import INSTALL_HINTS, Runner

__all__ = [
    "TOOLS",
    "ToolSpec",
    "ToolVersion",
    "checked",
    "format_version",
    "parse_version",
    "preflight",
    "reset_cache",
]

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """First `vX.Y.Z` in `text`: the one version parser of the toolkit (tool output, node tags, inventory
    versions, chart pins), so every comparison is over the same integer triples."""
    m = _VERSION.search(text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def format_version(version: tuple[int, ...]) -> str:
    """`v1.12.11` (or `v1.12` for a minor): how versions appear in messages."""
    return "v" + ".".join(map(str, version))


def _kubectl_version(result: Result) -> str:
    try:
        return str(json.loads(result.stdout)["clientVersion"]["gitVersion"])
    except (ValueError, KeyError, TypeError):
        return result.stdout


@dataclass(frozen=True)
class ToolSpec:
    """How to ask a tool its version and the oldest version the toolkit supports."""

    name: str
    version_command: Command
    minimum: tuple[int, int, int]
    extract: Callable[[Result], str] = lambda r: r.stdout + r.stderr


@dataclass(frozen=True)
class ToolVersion:
    name: str
    version: tuple[int, int, int]


TOOLS: dict[str, ToolSpec] = {
    "talosctl": ToolSpec("talosctl", cmd("talosctl", "version", "--client", "--short"), (1, 12, 0)),
    "kubectl": ToolSpec("kubectl", cmd("kubectl", "version", "--client", "-o", "json"), (1, 33, 0), _kubectl_version),
    "helm": ToolSpec("helm", cmd("helm", "version", "--short"), (3, 14, 0)),
    "flux": ToolSpec("flux", cmd("flux", "version", "--client"), (2, 6, 0)),
}

_seen: dict[str, ToolVersion] = {}


def preflight(runner: Runner, names: Iterable[str]) -> list[ToolVersion]:
    """Check every named tool; report all missing or too-old tools at once. Cached for the process.

    The tools not checked yet are asked their version concurrently (each answer is independent), so a task's
    preflight costs one tool call of wall time however many tools it needs."""
    wanted = list(names)
    unchecked = list(dict.fromkeys(name for name in wanted if name not in _seen))
    if len(unchecked) > 1:
        with ThreadPoolExecutor(max_workers=len(unchecked)) as pool:
            answers = dict(zip(unchecked, pool.map(lambda name: _check(runner, name), unchecked), strict=True))
    else:
        answers = {name: _check(runner, name) for name in unchecked}
    found: list[ToolVersion] = []
    problems: list[str] = []
    for name in wanted:  # in the order asked, so the message lists the tools as the task names them
        if name in _seen:
            found.append(_seen[name])
        elif isinstance(answer := answers[name], ToolVersion):
            _seen[name] = answer
            found.append(answer)
        else:
            problems.append(answer)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ToolNotFound(f"preflight: external tools are missing or too old:\n{listing}")
    return found


def _check(runner: Runner, name: str) -> ToolVersion | str:
    """One tool's version, or the problem with it (one line of the preflight message)."""
    spec = TOOLS[name]
    if name == "kubectl":  # the wheel's kubectl when none is on PATH (tools/kubectl.executable)
        from k8s_ops.tools.kubectl import executable

        spec = ToolSpec(name, cmd(executable(), *spec.version_command.argv[1:]), spec.minimum, spec.extract)
    try:
        result = runner.run(spec.version_command, check=False)
    except ToolNotFound:
        return f"{name} not found on PATH — install it: {INSTALL_HINTS.get(name, '')}"
    except ToolkitError as exc:
        return f"{name}: cannot read its version: {exc}"
    version = parse_version(spec.extract(result)) if result.ok else None
    if version is None:
        return f"{name}: cannot read its version from `{spec.version_command.display()}`"
    if version < spec.minimum:
        return f"{name} {format_version(version)} is too old: k8s-ops needs {format_version(spec.minimum)} or newer"
    return ToolVersion(name, version)


def checked(name: str) -> tuple[int, int, int] | None:
    """The version `preflight` found for `name` in this process, or None when it was not checked (a task that
    never needed that tool); reads nothing, so version rules can use it without adding a requirement."""
    found = _seen.get(name)
    return found.version if found is not None else None


def reset_cache() -> None:
    """Forget checked tools (tests swap PATH between cases)."""
    _seen.clear()
