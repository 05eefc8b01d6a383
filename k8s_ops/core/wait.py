"""One polling helper for every wait: timeout and interval from settings, progress on a TTY."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

from k8s_ops.core import settings
from k8s_ops.core.errors import GateFailed, ToolkitError

__all__ = ["NotYet", "StopWaiting", "wait_for"]

T = TypeVar("T")


class NotYet(Exception):
    """Raised by a probe to say "not yet", with a detail kept for the timeout message."""


class StopWaiting(Exception):
    """Raised by a probe when waiting longer cannot help (a job failed): the wait fails at once with this text."""


def wait_for(
    description: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float | None = None,
    hint: str | None = None,
) -> T:
    """Poll `probe` until it returns a value (not None). Raise GateFailed naming `description` on timeout.

    The probe may raise NotYet(detail) or a ToolkitError (e.g. a failing command) to mean "not yet"; the last
    detail is reported if the wait times out. StopWaiting(detail) fails the wait at once. `timeout` is scaled by
    K8S_OPS_TIMEOUT_SCALE.
    """
    timeout = timeout * settings.timeout_scale()
    interval = settings.poll_interval() if interval is None else interval
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    last = "no answer yet"
    status = _status(description)
    try:
        while True:
            try:
                value = probe()
                if value is not None:
                    return value
            except NotYet as exc:
                last = str(exc) or last
            except StopWaiting as exc:
                raise GateFailed(description, str(exc), hint=hint) from None
            except ToolkitError as exc:
                last = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
            if time.monotonic() >= deadline:
                raise GateFailed(
                    f"timed out after {timeout:g}s waiting for {description}", f"last seen: {last}", hint=hint
                )
            if status is not None:
                status.update(f"{description} — {time.monotonic() - started:.0f}s — {last}")
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    finally:
        if status is not None:
            status.stop()


def _status(description: str):  # type: ignore[no-untyped-def]
    """A rich spinner on an interactive stderr; nothing in CI or tests."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console

    status = Console(stderr=True).status(description)
    status.start()
    return status
