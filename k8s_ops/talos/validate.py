"""Validation of rendered configs in layers, every problem reported at once (used by `talos.validate`).

1. JSON schema of the cluster's Talos version, per document, known schema defects tolerated (k8s_ops.talos.schema);
2. Talos' own validation rules, offline (`config_rules`: what `talosctl validate --mode metal --strict` and a
   node's ApplyConfiguration refuse, with Talos' wording); document warnings are kept apart, not fatal, as talosctl
   prints them;
3. our semantic rules (k8s_ops.talos.semantic);
4. `talosctl validate --mode metal --strict` per node file when a runner is given (the authority; argv and output
   parsing in k8s_ops.tools.talosctl).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from k8s_ops.core.command import Command, TempFile
from k8s_ops.core.errors import Problem
from k8s_ops.core.secret import Secret
from k8s_ops.tools.talosctl import parse_validate, validate_command

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner
    from k8s_ops.talos.inventory import Cluster
    from k8s_ops.talos.render import RenderedConfig
    from k8s_ops.talos.schema import DocumentResult, TalosSchema

__all__ = ["ValidationReport", "node_file_name", "talosctl_validate_command", "validate_rendered"]


def node_file_name(hostname: str) -> str:
    """The name a node's rendered config has in build/<cluster>/ (used to name problems)."""
    return f"{hostname}.yaml"


def talosctl_validate_command(hostname: str, text: str | bytes) -> Command:
    """`talosctl validate --config $TMP/<node>.yaml --mode metal --strict`; the config is an anonymous /dev/fd/N."""
    return validate_command(TempFile(node_file_name(hostname), Secret(text)), host=hostname)


@dataclass(frozen=True)
class ValidationReport:
    documents: int
    problems: tuple[Problem, ...]
    results: tuple[DocumentResult, ...]
    talosctl_checked: bool
    warnings: tuple[Problem, ...] = ()

    def tolerated_summary(self) -> str:
        """e.g. `v1alpha1 persist ×3 (defect 1)`; empty when nothing needed tolerating."""
        counts: dict[tuple[str, int], int] = {}
        for r in self.results:
            for t in r.tolerated:
                counts[(t.where, t.defect)] = counts.get((t.where, t.defect), 0) + 1
        return ", ".join(f"{w} ×{n} (defect {d})" for (w, d), n in sorted(counts.items()))


def validate_rendered(
    cluster: Cluster,
    rendered: Sequence[RenderedConfig],
    schema: TalosSchema,
    *,
    runner: Runner | None = None,
) -> ValidationReport:
    """Run the layers over rendered configs (`k8s_ops.talos.render.RenderedConfig`).

    `runner` runs talosctl; None skips the talosctl layer.
    """
    from k8s_ops.talos.config_rules import validate_documents
    from k8s_ops.talos.schematic import installer_image
    from k8s_ops.talos.semantic import NodeExpectations, check_documents

    image = installer_image(cluster)
    roles = {n.hostname: n.role for n in cluster.nodes}
    problems: list[Problem] = []
    warnings: list[Problem] = []
    results: list[DocumentResult] = []
    documents = 0
    for cfg in rendered:
        file = node_file_name(cfg.hostname)
        docs = list(cfg.documents)
        documents += len(docs)
        schema_problems, doc_results = schema.validate_documents(docs, file=file)
        problems += schema_problems
        results += doc_results
        for finding in validate_documents(docs, mode="metal", strict=True):
            where = f"{finding.document} {finding.field}".strip()
            (warnings if finding.warning else problems).append(Problem(file, where, finding.text))
        role = roles.get(cfg.hostname)
        if role is None:
            problems.append(Problem(file, "", f"node {cfg.hostname!r} is not in the inventory"))
        else:
            problems += check_documents(docs, NodeExpectations(cfg.hostname, role, image), file=file)
        if runner is not None:
            result = runner.run(talosctl_validate_command(cfg.hostname, cfg.text), check=False)
            problems += parse_validate(result, file=file)
    return ValidationReport(documents, tuple(problems), tuple(results), runner is not None, tuple(warnings))
