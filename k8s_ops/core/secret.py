"""A masked value type: the only way secret material travels through plans, logs and errors."""

from __future__ import annotations

import re
import threading
from typing import Final

__all__ = ["MASK", "Secret", "known_secret_count", "mask_text", "register", "reveal"]

MASK: Final = "***"

# Every secret value the run has seen (each Secret registers itself; the runner registers what it hands to a
# process), so text from the outside world — a failing tool's stderr — can be masked before it is shown or logged.
_MIN_LEN: Final = 6  # shorter values (a "1", a "true") would mask ordinary words; no real key is this short
# a key-like token inside a multi-line secret (a PEM body line, a base64 value in a kubeconfig) is masked on its own
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
_known: set[str] = set()
_ordered: list[str] = []  # longest first, so a value is masked before a line inside it
_registry_lock = threading.Lock()


def register(value: str | bytes | Secret) -> None:
    """Remember a secret value (and each key-like token in it) so that `mask_text` hides it."""
    raw = value.reveal() if isinstance(value, Secret) else value.encode() if isinstance(value, str) else value
    text = raw.decode(errors="replace")
    candidates = {text.strip()}
    for line in text.splitlines():  # a whole line, or the value of a `key: value` line, that is one long token
        token = line.rsplit(": ", 1)[-1].strip().strip("\"'")
        if _TOKEN_RE.fullmatch(token):
            candidates.add(token)
    new = {c for c in candidates if len(c) >= _MIN_LEN and c not in _known}
    if not new:
        return
    with _registry_lock:
        _known.update(new)
        _ordered[:] = sorted(_known, key=len, reverse=True)


def mask_text(text: str) -> str:
    """`text` with every registered secret value replaced by `***`."""
    if not text:
        return text
    for value in list(_ordered):
        if value in text:
            text = text.replace(value, MASK)
    return text


def known_secret_count() -> int:
    """How many values the registry holds (for tests)."""
    return len(_known)


class Secret:
    """A secret value. str()/repr()/format() show `***`; only `reveal()` gives the value.

    Deliberately not a str subclass: a str subclass leaks through f-strings, "".join and json.dumps.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        self._value = value.encode() if isinstance(value, str) else bytes(value)
        register(self._value)

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
