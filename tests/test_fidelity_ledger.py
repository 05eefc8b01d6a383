"""tests/sim/FIDELITY.md stays true to the suite: every test it names as pinning a behaviour exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LEDGER = REPO / "tests" / "sim" / "FIDELITY.md"
_PIN = re.compile(r"`(tests/[\w/]+\.py)::(\w+)")


def test_every_pinning_test_named_in_the_ledger_exists() -> None:
    text = LEDGER.read_text()
    pins = {(m.group(1), m.group(2)) for m in _PIN.finditer(text)}
    assert len(pins) > 100  # the ledger names its pins as `tests/<file>.py::<test>`
    missing = [
        f"{f}::{name}"
        for f, name in sorted(pins)
        if not (REPO / f).is_file() or not re.search(rf"^def {name}\b", (REPO / f).read_text(), re.M)
    ]
    assert missing == []


def test_every_row_names_a_source_or_says_it_is_an_assumption() -> None:
    rows = [line for line in LEDGER.read_text().splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    body = [r for r in rows if not r.startswith("| Behaviour")]
    assert len(body) > 150
    for row in body:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) >= 3, row
        assert cells[1] or "assumption" in row.lower(), row
