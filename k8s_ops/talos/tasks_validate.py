"""Tasks `talos.validate` and `talos.schematic`: check rendered configs in three layers; show/upload the schematic.

Layers of `talos.validate`, all problems reported at once:
1. JSON schema of the cluster's Talos version, per document, known schema defects tolerated (k8s_ops.talos.schema);
2. Talos' own validation rules, offline (`config_rules`: what `talosctl validate --mode metal --strict` and a
   node's ApplyConfiguration refuse, with Talos' wording); document warnings are printed, not fatal, as talosctl
   prints them;
3. our semantic rules (k8s_ops.talos.semantic);
4. `talosctl validate --mode metal --strict` per node file when talosctl is on PATH (the authority).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded
from k8s_ops.core.command import Command, Result, TempFile
from k8s_ops.core.errors import Problem, ProblemsError
from k8s_ops.core.secret import Secret
from k8s_ops.tools.talosctl import validate_command

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner
    from k8s_ops.talos.inventory import Cluster
    from k8s_ops.talos.render import RenderedConfig
    from k8s_ops.talos.schema import DocumentResult, TalosSchema

__all__ = [
    "ValidationReport",
    "node_file_name",
    "parse_talosctl_validate",
    "schematic",
    "talosctl_validate_command",
    "validate",
    "validate_rendered",
]

_CLUSTER_HELP = "cluster name (directory under the clusters dir, K8S_OPS_CLUSTERS_DIR overrides it)"


def node_file_name(hostname: str) -> str:
    """The name a node's rendered config has in build/<cluster>/ (used to name problems)."""
    return f"{hostname}.yaml"


# --- talosctl validate (argv builder + parser; belongs with the other talosctl argv builders) --------


def talosctl_validate_command(hostname: str, text: str | bytes) -> Command:
    """`talosctl validate --config $TMP/<node>.yaml --mode metal --strict`; the config is a 0600 temp file."""
    return validate_command(TempFile(node_file_name(hostname), Secret(text)), host=hostname)


_BULLET = re.compile(r"^\s*\*\s+(.*\S)\s*$")
_WARNING = re.compile(r"^\s*WARNING:?\s*(.*\S)\s*$", re.I)


def parse_talosctl_validate(result: Result, *, file: str) -> list[Problem]:
    """Problems from one `talosctl validate` run: `WARNING:` lines and, on failure, the error bullets.

    Success prints "<path> is valid for metal mode"; the temp path in messages is replaced by `file`.
    """

    def clean(msg: str) -> str:
        return re.sub(r"\S*/" + re.escape(file), file, msg)

    problems: list[Problem] = []
    lines = (result.stderr + "\n" + result.stdout).splitlines()
    for line in lines:
        m = _WARNING.match(line)
        if m:
            problems.append(Problem(file, "talosctl", f"warning: {clean(m.group(1))}"))
    if result.ok and "is valid for metal mode" in result.stdout:
        return problems
    bullets = [clean(m.group(1)) for line in lines if (m := _BULLET.match(line))]
    if bullets:
        problems += [Problem(file, "talosctl", b) for b in bullets]
    elif not result.ok or not problems:
        detail = " / ".join(clean(x.strip()) for x in lines if x.strip() and not _WARNING.match(x))
        problems.append(
            Problem(file, "talosctl", detail or f"talosctl validate failed (exit {result.returncode}) without output")
        )
    return problems


# --- the three layers -------------------------------------------------------------------------------


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
    """Run the three layers over rendered configs (`k8s_ops.talos.render.RenderedConfig`).

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
            problems += parse_talosctl_validate(result, file=file)
    return ValidationReport(documents, tuple(problems), tuple(results), runner is not None, tuple(warnings))


# --- tasks ------------------------------------------------------------------------------------------


@task(help={"cluster": _CLUSTER_HELP})
@guarded
def validate(c: Context, cluster: str) -> None:
    """Validate every node's rendered Talos config: schema, Talos' rules, our rules, and talosctl validate.

    Renders in memory (nothing is written), checks each YAML document against the Talos JSON schema of the
    cluster's talosVersion (fetched from the Talos tag on GitHub and cached under the state dir;
    K8S_OPS_TALOS_SCHEMA=<path|url> overrides), with the schema's known defects tolerated; then Talos' own
    validation rules offline (as `talosctl validate --mode metal --strict`; warnings printed); then the semantic
    rules (no control-plane secrets on workers, CNI none, kube-proxy off, KubePrism 7445, factory installer
    image, HostnameConfig, no install.extraKernelArgs, VIP only on control planes); then, when talosctl is on
    PATH, `talosctl validate --mode metal --strict` per node. Prints every problem at once and exits non-zero.
    """
    from k8s_ops.core.runner import SubprocessRunner
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.render import render_cluster
    from k8s_ops.talos.schema import load_schema
    from k8s_ops.talos.secrets import load_bundle

    inv = load_cluster(cluster)
    schema = load_schema(inv.talos_version)
    rendered = render_cluster(inv, load_bundle(inv), check_rules=False)  # the rules are a layer below
    runner = SubprocessRunner() if shutil.which("talosctl") else None
    report = validate_rendered(inv, rendered, schema, runner=runner)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if report.problems:
        raise ProblemsError(report.problems)
    print(f"{report.documents} documents valid")
    tolerated = report.tolerated_summary()
    if tolerated:
        print(f"tolerated known Talos schema defects: {tolerated}", file=sys.stderr)
    if not report.talosctl_checked:
        print("note: talosctl not on PATH; `talosctl validate` was skipped", file=sys.stderr)


@task(
    help={
        "cluster": _CLUSTER_HELP,
        "upload": "POST the schematic to the Image Factory (K8S_OPS_IMAGE_FACTORY overrides the URL) and check "
        "the returned id equals the offline one",
    }
)
@guarded
def schematic(c: Context, cluster: str, upload: bool = False) -> None:
    """Print the cluster's Image Factory schematic YAML, its ID (computed offline) and the installer image.

    The ID is sha256 of the schematic as the factory serialises it, so it is known before (and without) any
    upload. With --upload the schematic is registered at the factory, which must answer the same ID.
    """
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.schematic import installer_image, schematic_for, upload_schematic

    inv = load_cluster(cluster)
    sch = schematic_for(inv)
    sys.stdout.write(sch.to_yaml().decode())
    print(f"# id: {sch.id}")
    print(f"# installer: {installer_image(inv)}")
    if upload:
        upload_schematic(sch)
        print(f"# uploaded: the Image Factory returned the same id {sch.id}")
