"""The simulator accepts exactly the talosctl v1.12.11 flags that the CLI reference lists per command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.sim.simlib.talos_flags import TALOSCTL_FLAGS

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "talos" / "cli-v1.12.11.md"


def reference_flags() -> dict[tuple[str, ...], set[tuple[str, str | None]]]:
    text = REFERENCE.read_text()
    out: dict[tuple[str, ...], set[tuple[str, str | None]]] = {}
    for section in re.split(r"^## ", text, flags=re.M):
        title = section.splitlines()[0].strip() if section else ""
        if not title.startswith("talosctl "):
            continue
        flags: set[tuple[str, str | None]] = set()
        for block in re.findall(
            r"### Options(?: inherited from parent commands)?\n\n```\n(.*?)```", section, flags=re.S
        ):
            for line in block.splitlines():
                m = re.match(r"\s+(?:-(\w), )?--([\w-]+)", line)
                if m:
                    flags.add((m.group(2), m.group(1)))
        out[tuple(title.split()[1:])] = flags
    return out


@pytest.mark.skipif(
    not REFERENCE.exists(), reason=f"talosctl CLI reference not found at {REFERENCE} (../shared absent)"
)
@pytest.mark.parametrize("command", sorted(TALOSCTL_FLAGS), ids=" ".join)
def test_embedded_flags_match_reference(command: tuple[str, ...]) -> None:
    ref = reference_flags()
    assert command in ref, f"talosctl {' '.join(command)} is not in the reference"
    sim = {(f.name, f.short) for f in TALOSCTL_FLAGS[command].values()}
    assert sim == ref[command]


@pytest.mark.skipif(
    not REFERENCE.exists(), reason=f"talosctl CLI reference not found at {REFERENCE} (../shared absent)"
)
def test_known_traps() -> None:
    ref = reference_flags()
    assert ("wait-timeout", None) not in ref[("upgrade",)] and ("timeout", None) in ref[("upgrade",)]
    assert ("wait-timeout", None) in ref[("health",)]
    assert "preserve" not in {n for n, _ in ref[("upgrade",)]}
