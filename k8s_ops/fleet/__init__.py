"""`fleet.*` and `gitops.promote`: every cluster of the inventory operated as one fleet.

Modules: `revision` (Flux's `<ref>@sha1:<hex>` revisions), `facts` (what one cluster's API says: nodes, the root
GitRepository and Kustomization, Flux objects not Ready or suspended), `status` (the fleet table and its JSON),
`promote` (the soak judgement and the fast-forward plan), `configs` (one kubeconfig / talosconfig with every
cluster's context), `tasks` (the invoke tasks).
"""

from __future__ import annotations

__all__: list[str] = []
