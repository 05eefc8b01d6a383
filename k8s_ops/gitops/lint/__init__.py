"""`gitops.lint`: the repository's rulebook as named rules, each with an id, a severity, a one-line message, a fix
hint and `file:line`.

Modules: `model` (files, objects, apps, rules, findings), `config` (`.k8s-ops-lint.yaml` and its defaults),
`engine` (read the trees, run the rules, opt-outs, scope), `rules/` (one module per family), `commits`
(`--commits RANGE`), `output` (text, JSON, GitHub annotations, `--list-rules`).
"""

from __future__ import annotations

from k8s_ops.gitops.lint import rules as _rules  # noqa: F401  (registers every rule in RULES)
from k8s_ops.gitops.lint.config import CONFIG_FILE, LintConfig, load_config
from k8s_ops.gitops.lint.engine import LintResult, enabled_rules, lint
from k8s_ops.gitops.lint.model import RULES, Finding, Rule

__all__ = ["CONFIG_FILE", "RULES", "Finding", "LintConfig", "LintResult", "Rule", "enabled_rules", "lint",
           "load_config"]  # fmt: skip
