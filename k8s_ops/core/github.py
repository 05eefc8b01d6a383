"""GitHub Actions workflow commands (`::error file=…,line=…,title=…::message`) for the `--format github` outputs.

The runner parses properties up to `,` and `::`, so values are escaped the way the Actions toolkit's `command.ts`
does: `%`, CR and LF everywhere; `:` and `,` in properties as well.
"""

from __future__ import annotations

__all__ = ["escape_data", "escape_property"]


def escape_property(value: str) -> str:
    """A property value (file, title): `%`, CR, LF, `:` and `,` percent-encoded."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def escape_data(value: str) -> str:
    """The message after `::`: `%`, CR and LF percent-encoded (a newline stays one annotation)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

