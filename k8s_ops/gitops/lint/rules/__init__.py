"""The rulebook, one module per family; importing this package registers every rule in `model.RULES`.

GL001–GL008 files, layout, names and annotations (`files.py`); GL010–GL018 Flux objects (`flux.py`);
GL020–GL029 cluster-specific values, app dependencies, routes, network policies (`cluster.py`); GL030–GL034
containers and secrets (`workloads.py`); GL035 commit subjects (`k8s_ops.gitops.lint.commits`, `--commits`).
"""

from __future__ import annotations

from k8s_ops.gitops.lint import commits
from k8s_ops.gitops.lint.rules import cluster, files, flux, workloads

__all__ = ["cluster", "commits", "files", "flux", "workloads"]
