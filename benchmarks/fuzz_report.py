"""How much of the input space the fuzz targets cover (issue #16 §6; a report, not a test).

Runs the four targets of tests/test_fuzz_inputs.py — inventory loader, patch renderer, task option parsing,
settings — with their strategies and `--examples` inputs each (deterministic: derandomized, no database), and
prints per target the distinct inputs tried, how many were rejected cleanly (a ToolkitError with a message and no
planted secret), how many were accepted, and how many were unclean (another exception, a hang, a leaked secret:
should be 0; the first few are listed).

    .venv/bin/python benchmarks/fuzz_report.py [--examples 500] [--only inventory,patch,cli,settings]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests import test_fuzz_inputs as fz  # noqa: E402


@dataclass
class Tally:
    seen: set[str] = field(default_factory=set)
    rejected: int = 0
    accepted: int = 0
    unclean: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def record(self, key: str, run: Callable[[], str]) -> None:
        if key in self.seen:
            return
        self.seen.add(key)
        try:
            verdict = run()
        except fz.Unclean as exc:
            self.unclean.append(f"{key[:80]!r}: {str(exc)[:160]}")
            return
        if verdict == "rejected":
            self.rejected += 1
        else:
            self.accepted += 1


def _targets() -> dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], str]]]:
    def inventory(data: bytes) -> str:
        with fz.scratch() as root:
            return fz.inventory_outcome(root, data)

    def patch(source: str) -> str:
        with fz.scratch() as root:
            return fz.patch_outcome(root, source)

    def settings(args: tuple[dict[str, str], dict[Any, Any]]) -> str:
        return fz.settings_outcome(*args)

    return {
        "inventory": (fz.inventory_inputs, inventory),
        "patch": (fz.patch_sources, patch),
        "cli": (fz.argvs, fz.cli_outcome),
        "settings": (st.tuples(fz.env_inputs, fz.section_inputs), settings),
    }


def _cli_dirs(tmp: Path) -> None:
    """The environment `fuzz_dirs` gives the test: cluster `lab` with an encrypted secrets bundle, its age key and a
    kubeconfig (`make_cli_site`), so CLI inputs reach rendering, `--to` parsing and dry-run plans."""
    os.environ.pop("SOPS_AGE_KEY", None)
    os.environ.update(fz.make_cli_site(tmp))


def _driver(strategy: st.SearchStrategy[Any], run: Callable[[Any], str], tally: Tally, examples: int) -> Any:
    @fz.fuzz(max_examples=examples)
    @given(value=strategy)
    def drive(value: Any) -> None:
        tally.record(repr(value), lambda: run(value))

    return drive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="inputs generated per target")
    parser.add_argument("--only", default="inventory,patch,cli,settings")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="k8s-ops-fuzz-report-") as tmp:
        _cli_dirs(Path(tmp))
        targets = _targets()
        print(f"{'target':<10} {'distinct':>8} {'rejected':>8} {'accepted':>8} {'unclean':>7} {'seconds':>8}")
        failures: list[str] = []
        for name in args.only.split(","):
            strategy, run = targets[name]
            tally = Tally()

            drive = _driver(strategy, run, tally, args.examples)
            started = time.perf_counter()
            drive()
            tally.seconds = time.perf_counter() - started
            print(
                f"{name:<10} {len(tally.seen):>8} {tally.rejected:>8} {tally.accepted:>8} {len(tally.unclean):>7} "
                f"{tally.seconds:>8.1f}"
            )
            failures += [f"{name}: {u}" for u in tally.unclean[:5]]
        for line in failures:
            print("unclean:", line)
        sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
