"""Glue between invoke tasks and the library: clean errors and exit codes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke.exceptions import Exit

from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.paths import check_cluster_name
from k8s_ops.core.settings import apply_invoke_config

__all__ = ["guarded"]

F = TypeVar("F", bound=Callable[..., Any])


def guarded(fn: F) -> F:
    """Turn ToolkitError into a clean message on stderr and a non-zero exit, and Ctrl-C into exit 130.

    Place it *under* `@task` so invoke still sees the wrapped signature. Also applies the `k8s_ops:` section of
    invoke.yaml to the runtime settings.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            if args and hasattr(args[0], "config"):
                # invoke.yaml `k8s_ops:` settings (poll interval, timeouts, concurrency) reach the library via env
                apply_invoke_config(args[0].config)
            if "cluster" in kwargs:  # every task checks --cluster the same way, before anything else
                check_cluster_name(kwargs["cluster"])
            return fn(*args, **kwargs)
        except ToolkitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted: stopped between commands; re-run the same task to resume", file=sys.stderr)
            raise Exit(code=130) from None

    return wrapper  # type: ignore[return-value]
