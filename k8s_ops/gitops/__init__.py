"""`gitops.*`: what Flux will apply to each cluster, built offline, and the repository's rules.

Modules (validate): `build` (real kustomize via the wheel's kubectl, Flux Kustomizations followed recursively),
`substitute` (Flux postBuild variable substitution), `graph` (dependsOn, cycles, duplicates, sources),
`schemas` (built-in and CRD schemas), `validate` (the whole check for one cluster), `report` (text, JSON, GitHub
annotations). The `lint` modules sit beside them.
"""

from __future__ import annotations

__all__: list[str] = []
