"""A masked value type: the only way secret material travels through plans, logs and errors."""

from __future__ import annotations

from typing import Final

__all__ = ["MASK", "Secret", "reveal"]

MASK: Final = "***"


class Secret:
    """A secret value. str()/repr()/format() show `***`; only `reveal()` gives the value.

    Deliberately not a str subclass: a str subclass leaks through f-strings, "".join and json.dumps.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        self._value = value.encode() if isinstance(value, str) else bytes(value)

    def reveal(self) -> bytes:
        """The raw bytes. Call only where the value is handed to a process's stdin or a 0600 file."""
        return self._value

    def reveal_text(self) -> str:
        """The value decoded as UTF-8."""
        return self._value.decode()

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def reveal(value: str | bytes | Secret) -> bytes:
    """Bytes of a plain or secret value."""
    if isinstance(value, Secret):
        return value.reveal()
    return value.encode() if isinstance(value, str) else value
