"""One polling helper for every wait: timeout and interval from settings, progress on a TTY.

`wait_for` polls a value probe; `wait_until` / `wait_check` adapt the usual probe shape (`None` = fine, text =
why not) into a wait, or into a plan `Check`. Errors a probe raises: NotYet and the TRANSIENT errors
(k8s_ops.core.errors: a command failed or timed out) mean "not yet"; StopWaiting fails the wait at once with
its text; any other error (a parse error, bad input) is permanent and propagates at once, as with stamina's
`retry(on=...)`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from k8s_ops.core import settings
from k8s_ops.core.errors import TRANSIENT, GateFailed, last_error_line
from k8s_ops.core.plan import Check

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner

__all__ = ["NotYet", "StopWaiting", "wait_check", "wait_for", "wait_until"]

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
    on: tuple[type[BaseException], ...] = TRANSIENT,
) -> T:
    """Poll `probe` until it returns a value (not None). Raise GateFailed naming `description` on timeout.

    The probe may raise NotYet(detail) or one of `on` (default: a failed or timed-out command) to mean "not
    yet"; the last detail is reported if the wait times out. StopWaiting(detail) fails the wait at once; any
    other exception propagates at once (permanent). `timeout` is scaled by K8S_OPS_TIMEOUT_SCALE.
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
            except on as exc:
                last = last_error_line(exc)
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


def _problem_probe(probe: Callable[[], str | None]) -> Callable[[], bool | None]:
    """The adapter: a probe answering None (fine) or why not, as a `wait_for` probe raising NotYet(why)."""

    def once() -> bool | None:
        problem = probe()
        if problem is not None:
            raise NotYet(problem)
        return True

    return once


def wait_until(description: str, probe: Callable[[], str | None], *, timeout: float, hint: str | None = None) -> None:
    """Poll `probe` (None = done, text = why not) until done; GateFailed naming `description` on timeout."""
    wait_for(description, _problem_probe(probe), timeout=timeout, hint=hint)


def wait_check(
    description: str,
    probe: Callable[[Runner], str | None],
    *,
    timeout: float,
    hint: str | None = None,
    show_timeout: bool = False,
) -> Check:
    """A plan Check polling `probe(runner)` (None = done, text = why not; it may also raise NotYet or
    StopWaiting) until done. `show_timeout` adds "(timeout 5m)" to the Check's description."""
    title = description
    if show_timeout:
        title += f" (timeout {f'{timeout / 60:g}m' if timeout >= 60 else f'{timeout:g}s'})"
    return Check(title, lambda runner: wait_until(description, lambda: probe(runner), timeout=timeout, hint=hint))


def _status(description: str):  # type: ignore[no-untyped-def]
    """A rich spinner on an interactive stderr; nothing in CI or tests."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console

    status = Console(stderr=True).status(description)
    status.start()
    return status
