"""Entry point of every simulated tool: call log, latency/hang/fail faults, dispatch, error printing."""

from __future__ import annotations

import importlib
import sys
import time

from .runtime import Ctx, Fail, log_call

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any


def _module(tool: str) -> Any:
    if tool not in ("talosctl", "kubectl", "helm", "flux"):
        raise SystemExit(f"simulator: unknown tool {tool}")
    return importlib.import_module(f"{__package__}.{tool}")


def run(tool: str, argv: list[str]) -> int:
    if tool == "sim":
        from .sim_cli import main as sim_main

        return sim_main(argv)
    ctx = Ctx(tool, list(argv))
    started = time.time()
    rc: int | None = None
    logged = False
    try:
        joined = " ".join([tool, *argv])
        with ctx.store.read() as w:  # consuming a fault marks it dirty: saved then
            latency = float(w.setting("latency"))
            lf = w.fault("latency", tool=tool, text=joined)
            if lf:
                latency += float(lf.get("seconds") or 0.5)
            hang = w.fault("hang", tool=tool, text=joined, consume=True)
            fail = w.fault("fail", tool=tool, text=joined, consume=True)
        if latency:
            time.sleep(latency)
        if hang:
            log_call(ctx, None, started)
            logged = True
            time.sleep(float(hang.get("seconds") or 3600))
            raise Fail(f"{tool}: simulated hang ended after {hang.get('seconds') or 3600}s", 124)
        if fail:
            raise Fail(fail.get("message") or f"{tool}: simulated failure", int(fail.get("exit") or 1))
        rc = int(_module(tool).main(ctx))
    except Fail as e:
        msg = e.message
        ctx.err(msg if msg.endswith("\n") else msg + "\n")
        rc = e.code
    except BrokenPipeError:
        rc = 141
    finally:
        if not logged:
            log_call(ctx, rc, started)
    return rc if rc is not None else 1


def main() -> None:  # pragma: no cover - used by `python -m`
    sys.exit(run(sys.argv[1], sys.argv[2:]))
