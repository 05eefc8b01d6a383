"""Glue between invoke tasks and the library: clean errors and exit codes, stop signals, start-up housekeeping."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

from invoke.exceptions import Exit

from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.paths import check_options
from k8s_ops.core.settings import apply_invoke_config

__all__ = ["STOP_SIGNALS", "guarded", "stop_signals_raise"]

F = TypeVar("F", bound=Callable[..., Any])

# Handled like Ctrl-C: a terminal closing (HUP), a service manager or `kill` (TERM).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    from k8s_ops.core.runner import Terminated

    raise Terminated(signum)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise `Terminated` (a KeyboardInterrupt) in the main thread, so they
    take Ctrl-C's path: no new command starts, the one in flight is terminated, the plan's recovery runs, and the
    task exits 128 + the signal. Outside the main thread (signals cannot be handled there) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_terminated) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _last_words() -> Iterator[None]:
    """Ignore further stop signals while the closing message is printed, so it is never cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (*STOP_SIGNALS, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _housekeeping(cluster: object) -> None:
    """At start-up: remove secret files a killed run left in the spool (one line says how many), and tighten the
    cluster's own files (build dir: kubeconfig, talosconfig, rendered configs) and the state dir to 0600."""
    from k8s_ops.core.files import clean_stale_spool, tighten_tree
    from k8s_ops.core.paths import build_dir, state_dir

    clean_stale_spool()
    if isinstance(cluster, str):
        tighten_tree(build_dir(cluster))
    tighten_tree(state_dir())


def guarded(fn: F) -> F:
    """Turn ToolkitError into a clean message on stderr and a non-zero exit; Ctrl-C, SIGTERM and SIGHUP into exit
    130, 143 and 129 after the plan's recovery ran (`stop_signals_raise`).

    Place it *under* `@task` so invoke still sees the wrapped signature. Also applies the `k8s_ops:` section of
    invoke.yaml to the runtime settings, and does the start-up housekeeping (`_housekeeping`).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from k8s_ops.core.runner import signal_name, signum_of

        with stop_signals_raise():
            try:
                if args and hasattr(args[0], "config"):
                    # invoke.yaml `k8s_ops:` settings (poll interval, timeouts, concurrency) reach the library via env
                    apply_invoke_config(args[0].config)
                # every task checks --cluster/--node/--name/--namespace/--app the same way, before anything else
                check_options(kwargs)
                _housekeeping(kwargs.get("cluster"))
                return fn(*args, **kwargs)
            except ToolkitError as exc:
                with _last_words():
                    print(f"error: {exc}", file=sys.stderr, flush=True)
                raise Exit(code=exc.exit_code) from None
            except KeyboardInterrupt as exc:
                signum = signum_of(exc)
                what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal_name(signum)}"
                with _last_words():
                    print(f"{what}: stopped between commands; re-run the same task to resume", file=sys.stderr)
                raise Exit(code=128 + signum) from None

    return wrapper  # type: ignore[return-value]
