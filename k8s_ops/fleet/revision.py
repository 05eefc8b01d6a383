"""Flux source revisions as the source-controller writes them (tests/sim/FIDELITY.md, "The fleet").

`status.artifact.revision` of a GitRepository, and a Kustomization's `status.lastAppliedRevision`, name the commit as
`<branch>@sha1:<hex>` (a tag: `<tag>@sha1:<hex>`; a pinned commit: `sha1:<hex>`; SHA-256 repositories `sha256:`).
Flux before RFC-0005 wrote `<branch>/<hex>`; both are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Revision", "parse_revision"]

_CURRENT = re.compile(r"^(?:(?P<ref>.+)@)?(?P<algo>sha1|sha256):(?P<hex>[0-9a-f]{40}|[0-9a-f]{64})$")
_LEGACY = re.compile(r"^(?P<ref>.+)/(?P<hex>[0-9a-f]{40})$")


@dataclass(frozen=True)
class Revision:
    """A Git revision Flux reports: the named ref (branch or tag; None for a pinned commit) and the commit."""

    ref: str | None
    commit: str

    @property
    def short(self) -> str:
        return self.commit[:12]

    def __str__(self) -> str:
        return f"{self.ref}@{self.short}" if self.ref else self.short


def parse_revision(text: object) -> Revision | None:
    """The revision in `text`, or None when it is empty or not a Git revision (an OCI digest, a chart version)."""
    if not isinstance(text, str) or not text:
        return None
    m = _CURRENT.match(text) or _LEGACY.match(text)
    if m is None:
        return None
    ref = m.group("ref")
    return Revision(ref.removeprefix("refs/heads/") if ref else None, m.group("hex"))
