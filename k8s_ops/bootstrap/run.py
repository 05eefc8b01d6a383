"""Assemble a bootstrap plan: preflight (stage 1, reads only), then the stage builders, then pre-resolve no-ops.

`build_plan` is what every bootstrap task calls. Preflight gathers everything the later stages decide from:
tool versions, the one age key (never sops' default keys file), the decrypted secrets bundle and git
credentials, the rendered values and machine configs, and how each node answers on the Talos API
(maintenance or configured), and — for the secrets stage — the Secrets of `onepassword.connect` and
`bootstrap.secrets` (1Password items read once through one store, SOPS files decrypted; values stay masked). Any
problem there stops the run before anything changes. A rebuild's `--recover-from` snapshot is fetched and verified
even earlier (`fetch_recovery_snapshot`, called by the task before any plan is built).

No-ops are decided twice: `settle` evaluates the guards of the leading steps at plan time (so `--dry-run` on a
healthy cluster shows every step unchanged) until the first step that would change something; from there on
guards are evaluated at execution, after the steps before them ran.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

from k8s_ops.bootstrap import stages, talos_stage
from k8s_ops.bootstrap.charts import load_charts, render_all_values
from k8s_ops.bootstrap.credentials import ExtraSecret, extra_secrets, load_git_credentials, repository_problems
from k8s_ops.bootstrap.stages import STAGES, Context, Timeouts
from k8s_ops.core import paths
from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import ProblemsError, SecretError, ToolkitError
from k8s_ops.core.files import spooled
from k8s_ops.core.plan import Plan, Step
from k8s_ops.core.runner import Runner, check_result
from k8s_ops.core.secret import Secret
from k8s_ops.tools.kubectl import KubeTarget
from k8s_ops.tools.talosctl import Talosctl

if TYPE_CHECKING:
    from k8s_ops.backups.etcd import RecoverySnapshot
    from k8s_ops.bootstrap.charts import Charts
    from k8s_ops.onepassword.effects import Pull
    from k8s_ops.talos.inventory import Cluster
    from k8s_ops.talos.lifecycle import Env
    from k8s_ops.talos.secrets import SecretsBundle
    from k8s_ops.talos.talosconfig import TalosconfigResult
    from k8s_ops.tools.sops import AgeKey

__all__ = [
    "APPS_STAGES",
    "TALOS_STAGES",
    "TOOLS",
    "Options",
    "build_plan",
    "fetch_recovery_snapshot",
    "material_plan",
    "recovery_dir",
    "recovery_note",
    "resume_hint",
    "select_stages",
    "settle",
    "sops_default_keys_file",
]

TOOLS: Final = ("talosctl", "kubectl", "helm")
TALOS_STAGES: Final = ("preflight", "talos", "kubeconfig")
APPS_STAGES: Final = ("preflight", "secrets", "cni", "flux", "onepassword")


@dataclass(frozen=True)
class Options:
    """What to plan: the cluster, which stages, where to resume, rebuild specifics."""

    cluster: str
    stages: tuple[str, ...] = STAGES
    start: str | None = None  # --from
    task: str = "bootstrap.cluster"
    rebuild: bool = False
    recover_from: Path | None = None
    dry_run: bool = False  # the plan is the same either way (a rebuild pulls in its own phase 1, `material_plan`)
    timeouts: Timeouts = field(default_factory=Timeouts)


def select_stages(stages_: Sequence[str], start: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(stages to plan, stages skipped by `--from`). `start` is a stage name or its number (1–7)."""
    if start is None:
        return tuple(stages_), ()
    name = start
    if start.isdigit() and 1 <= int(start) <= len(STAGES):
        name = STAGES[int(start) - 1]
    if name not in stages_:
        known = ", ".join(f"{i}={s}" for i, s in enumerate(STAGES, start=1) if s in stages_)
        raise ToolkitError(f"--from {start!r} is not a stage of this task (stages: {known})")
    idx = list(stages_).index(name)
    keep = ("preflight", *[s for s in stages_[idx:] if s != "preflight"])
    skipped = tuple(s for s in stages_[:idx] if s != "preflight")
    return keep, skipped


def resume_hint(task: str, cluster: str, stage: str | None) -> str:
    base = f"invoke {task} --cluster {cluster}"
    if stage is None or stage == "preflight":
        return f"fix the cause, then re-run `{base}` (completed steps are detected and skipped)"
    return f"fix the cause, then resume with `{base} --from {stage}` (or re-run it whole: done steps are skipped)"


# --------------------------------------------------------------------------- settle


class _ReadMemo:
    """A Runner for plan-time guards: identical reads are answered once (nothing changes the world while
    planning). Mutating commands never pass through it."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.seen: dict[tuple[str, ...], Result] = {}

    def run(self, command: Command, *, check: bool = True) -> Result:
        if command.mutates or command.stdin is not None:
            raise ToolkitError(f"a plan-time guard tried to run a mutating command: {command.display()}")
        key = tuple(command.display_argv())
        if key not in self.seen:
            self.seen[key] = self.runner.run(command, check=False)
        return check_result(command, self.seen[key]) if check else self.seen[key]


def settle(steps: Sequence[Step], runner: Runner) -> list[Step]:
    """Resolve the guards of the leading steps now; stop at the first step that would act."""
    memo = _ReadMemo(runner)
    out: list[Step] = []
    acting = False
    for step in steps:
        if acting or step.noop is not None:
            out.append(step)
            continue
        if step.guard is None:
            if step.commands or step.writes or step.after or step.before:
                acting = True
            out.append(step)
            continue
        try:
            reason = step.guard(memo)
        except ToolkitError:
            reason = None
        if reason is None:
            acting = True
            out.append(step)
        else:
            out.append(replace(step, noop=reason, guard=None))
    return out


# --------------------------------------------------------------------------- preflight


@dataclass
class _Preflight:
    cluster: Cluster
    notes: list[str] = field(default_factory=list)
    bundle: SecretsBundle | None = None
    age_key: Secret | None = None
    age_source: str = ""
    key: AgeKey | None = None


def _tools(runner: Runner, notes: list[str], cluster: Cluster, charts: Charts) -> None:
    """Tool versions, then the version preflight (k8s_ops/talos/versions.py): the clients against the inventory's
    versions, kubernetesVersion against talosVersion, the pinned charts' tested Kubernetes ranges (warnings)."""
    from k8s_ops.core.preflight import preflight
    from k8s_ops.talos.versions import evaluate

    found = preflight(runner, TOOLS)
    notes.append("tools: " + ", ".join(f"{t.name} v{'.'.join(map(str, t.version))}" for t in found))
    clients = {t.name: t.version for t in found}
    pinned = [*((r.name, r.version) for r in charts.releases), ("flux", charts.flux_version)]
    verdict = evaluate(
        talos=cluster.talos_version,
        kubernetes=cluster.kubernetes_version,
        talosctl=clients.get("talosctl"),
        kubectl=clients.get("kubectl"),
        charts=pinned,
    )
    notes += verdict.enforce(cluster.file)


def sops_default_keys_file() -> Path:
    """sops' own default key file, which k8s-ops never uses (its keys would be merged silently)."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".config") / "sops" / "age" / "keys.txt"


def _age_key(pf: _Preflight) -> None:
    from k8s_ops.talos.secrets import age_key_for

    key = age_key_for(pf.cluster)
    key.recipients()  # a malformed key fails here, naming where it came from
    pf.key = key
    pf.age_key = key.text()
    pf.age_source = key.describe()
    stray = sops_default_keys_file()
    ignored = f"; {stray} exists and is ignored (never merged)" if stray.is_file() else ""
    pf.notes.append(f"age key: {key.describe()}{ignored}")


@contextlib.contextmanager
def _probe_talosctl(real: Talosctl, content: Secret, existing: bytes | None) -> Iterator[Talosctl]:
    """A Talosctl for plan-time reads: the real file when it is current, else a private temporary copy."""
    if existing == content.reveal():
        yield real
        return
    # a real path talosctl reads on every probe: this run's private spool (memory-backed where /dev/shm exists),
    # removed after planning, and by the next run's start-up if this one is killed (core/files.py)
    with spooled("talosconfig", content.reveal()) as path:
        yield Talosctl(path, real.endpoints, real.binary)


# --------------------------------------------------------------------------- rebuild: material from 1Password


def _missing_material(cluster: Cluster) -> list[str]:
    from k8s_ops.talos.secrets import age_key_for

    missing = []
    try:
        age_key_for(cluster)
    except SecretError:
        missing.append("age-key")
    if not cluster.secrets_file.is_file():
        missing.append("talos-secrets")
    return missing


def _pending(pull: Pull) -> Callable[[Runner], str | None]:
    """The step's guard: re-asks 1Password just before acting (None: the pull would still write)."""
    return lambda _runner: pull.pending()


def material_plan(cluster: Cluster, *, task: str = "bootstrap.rebuild") -> Plan | None:
    """Rebuild, phase 1: restore the age key and the Talos secrets bundle from 1Password when missing locally.

    A plan of its own (None when both are present): one step per missing item, each carrying a `Pull` effect
    (written 0600, atomically, content never printed; `--only-missing`, so an existing file is never replaced).
    Building it only reads (the local files and 1Password's preview of the pull); the files are written when the
    plan runs, through the same pipeline as every plan. An item 1Password lacks or refuses is a step whose gate
    fails, placed first, so a real run stops before writing anything. Phase 2 (`build_plan`) needs the material
    these steps write, so it is planned only once they ran.
    """
    from k8s_ops import onepassword as op
    from k8s_ops.core.plan import Check
    from k8s_ops.onepassword.effects import Pull
    from k8s_ops.onepassword.sync import Action

    missing = _missing_material(cluster)
    if not missing:
        return None
    if not op.is_configured(cluster):
        raise SecretError(
            f"rebuild needs {' and '.join(missing)} but they are missing locally and 1Password is not configured",
            hint="set OP_SERVICE_ACCOUNT_TOKEN (and onepassword.vault in cluster.yaml), or restore the files by hand",
        )
    preview = op.pull(cluster, ",".join(missing), only_missing=True, dry_run=True)
    blocked = [r for r in preview if r.action in (Action.REFUSE, Action.MISSING)]

    def refuse(runner: Runner) -> None:
        raise op.SyncRefused("rebuild: pull from 1Password", preview)

    steps = [
        Step(f"pull {r.title} -> {r.location}", before=(Check(f"{r.title}: {r.reason}", refuse),)) for r in blocked
    ]
    for r in preview:
        if r in blocked:
            continue
        pull = Pull(cluster, r.kind.value, only_missing=True)
        if r.action.changes:
            steps.append(
                Step(
                    f"pull {r.title} -> {r.location} (0600)",
                    finish=(pull,),
                    guard=_pending(pull),
                )
            )
        else:
            steps.append(Step(f"{r.title} -> {r.location}", noop=f"{r.action.value}: {r.reason}"))
    notes = [f"rebuild: would pull {r.title} -> {r.location} ({r.reason})" for r in preview if r.action.changes]
    notes.append(
        "rebuild: phase 1 of 2 — the rest of the rebuild (preflight → … → onepassword) decrypts this material, so "
        "it is planned once the material exists locally (after this plan ran)"
    )
    vault = op.vault_of(cluster)
    return Plan(
        f"rebuild {cluster.name}, phase 1: pull {', '.join(missing)} from 1Password (vault {vault})",
        cluster.name,
        tuple(stages.tag("preflight", steps)),
        notes=tuple(notes),
        resume_hint=resume_hint(task, cluster.name, None),
    )


# --------------------------------------------------------------------------- rebuild: the etcd snapshot


def recovery_dir(cluster: str) -> Path:
    """Where `--recover-from latest|<key>` downloads to (0700): `<state>/backups/<c>/recovery/`, out of the
    snapshot listing, so a downloaded copy never counts as a backup of its own."""
    return paths.backups_dir(cluster) / "recovery"


def fetch_recovery_snapshot(cluster: Cluster, spec: str) -> RecoverySnapshot:
    """`--recover-from latest|<s3 key or name>|<file>`: resolved, downloaded (0600) and verified — etcd's SHA-256
    trailer and the sidecar's sha256 — before anything else of the rebuild happens, `--dry-run` included. A
    missing or corrupt snapshot is a clean error here; a corrupt download is deleted (k8s_ops/backups/etcd.py)."""
    from k8s_ops.backups.etcd import Remote, fetch_for_recovery

    if not spec.strip():
        raise ToolkitError("--recover-from is empty: give latest, an object key, or a snapshot file")
    dest = recovery_dir(cluster.name)
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    return fetch_for_recovery(spec, cluster.name, remote=Remote.for_cluster(cluster), dest_dir=dest)


def recovery_note(snap: RecoverySnapshot) -> str:
    side = snap.sidecar
    facts = ""
    if side is not None:
        bits = [f"taken {side.taken.strftime('%Y-%m-%dT%H:%M:%SZ')}"]
        bits += [f"revision {side.revision}"] if side.revision is not None else []
        bits += [f"Talos {side.talos_version}"] if side.talos_version else []
        bits += [f"Kubernetes {side.kubernetes_version}"] if side.kubernetes_version else []
        facts = "; " + ", ".join(bits)
    return (
        f"recover from: {snap.origin} -> {snap.path} (verified: SHA-256 trailer"
        + (" and sidecar" if side is not None else "")
        + f", sha256 {snap.check.sha256[:16]}…, {snap.check.size} bytes{facts})"
    )


# --------------------------------------------------------------------------- build


def build_plan(options: Options, runner: Runner) -> Plan:
    """Preflight, then every selected stage's steps; settled, tagged with their stage, ready to print or run."""
    from k8s_ops import onepassword as op
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.lifecycle import Env, plan_kubeconfig
    from k8s_ops.talos.secrets import load_bundle
    from k8s_ops.talos.talosconfig import plan_talosconfig, read_existing

    chosen, skipped = select_stages(options.stages, options.start)
    cluster = load_cluster(options.cluster)
    pf = _Preflight(cluster)
    title = ("rebuild" if options.rebuild else "bootstrap") + f" {cluster.name}: " + " → ".join(chosen)
    hint = resume_hint(options.task, cluster.name, None)

    if options.rebuild:
        still = _missing_material(cluster)
        if still:
            raise SecretError(
                f"rebuild: {' and '.join(still)} missing locally; pull them first (phase 1, `material_plan`)",
                hint=f"run `invoke {options.task} --cluster {cluster.name}`: it pulls them from 1Password, then plans "
                "the rest",
            )
        pf.notes.append("rebuild: age key and Talos secrets bundle present locally (nothing to pull from 1Password)")

    problems = repository_problems(cluster)
    if problems:
        raise ProblemsError(problems)
    charts = load_charts()
    values = render_all_values(cluster, charts)
    pf.notes.append(
        "charts: "
        + ", ".join(f"{r.name} {r.version}" for r in charts.releases)
        + "; CRDs: "
        + ", ".join(f"{c.name} {c.version}" for c in charts.crds)
        + f"; Flux {charts.flux_version}"
    )
    _tools(runner, pf.notes, cluster, charts)
    _age_key(pf)
    bundle = load_bundle(cluster)
    assert pf.key is not None
    git = load_git_credentials(cluster, pf.key)
    pf.notes.append(
        f"secrets: Talos bundle decrypted (fingerprint {bundle.fingerprint()[:12]}); git credentials: "
        + (f"{', '.join(git.keys)} from {git.source}" if git else "none (public repository)")
    )
    extras = _extras(cluster, pf) if "secrets" in chosen else []
    env = Env.for_cluster(cluster)
    kube = KubeTarget(paths.kubeconfig_path(cluster.name), cluster.name)
    tc_path = env.tctl.talosconfig
    existing = read_existing(tc_path)
    tc = plan_talosconfig(cluster, bundle, existing=existing)
    steps: list[Step] = []
    with _probe_talosctl(env.tctl, tc.content, existing) as probe:
        states = talos_stage.probe_nodes(runner, probe, cluster.nodes)
        pf.notes += [f"node {s.describe()}" for s in states]
        down = [s for s in states if s.state == "unreachable"]
        if down:
            raise ToolkitError(
                "preflight: not every node answers on the Talos API (port 50000):\n"
                + "\n".join(f"  - {s.describe()}" for s in down),
                hint="power the nodes on / fix the network (maintenance mode or configured are both fine); an "
                "x509 or certificate error means the node runs another cluster's config: reset it "
                "(invoke talos.reset-node) or fix the inventory address",
            )
        if skipped:
            pf.notes.append(f"--from {options.start}: skipping stages {', '.join(skipped)}")
        if "talos" in chosen:
            steps += stages.tag("talos", _talos(env, probe, runner, cluster, bundle, tc, states, options))
    ctx = Context(
        cluster=cluster,
        charts=charts,
        values=values,
        kube=kube,
        age_key=pf.age_key,
        age_source=pf.age_source,
        git=git,
        extras=tuple(extras),
        timeouts=options.timeouts,
        task=options.task,
    )
    if "kubeconfig" in chosen:
        fetched = plan_kubeconfig(env, kube.kubeconfig).steps
        steps += stages.tag("kubeconfig", stages.kubeconfig_steps(ctx, fetched))
    if "secrets" in chosen:
        steps += stages.tag("secrets", stages.secrets_steps(ctx))
    if "cni" in chosen:
        ready = talos_stage.talos_ready_step(env, timeout=options.timeouts.talos_ready)
        steps += stages.tag("cni", [*stages.cni_steps(ctx), ready])
    if "flux" in chosen:
        steps += stages.tag("flux", stages.flux_steps(ctx))
    if "onepassword" in chosen:
        steps += stages.tag("onepassword", stages.onepassword_steps(ctx, configured=op.is_configured(cluster)))
    preflight = Step(
        "[preflight] tools, age key, inventory, secrets, Talos API of every node", noop="passed (see notes)"
    )
    return Plan(title, cluster.name, (preflight, *settle(steps, runner)), notes=tuple(pf.notes), resume_hint=hint)


def _extras(cluster: Cluster, pf: _Preflight) -> list[ExtraSecret]:
    """The Secrets of `onepassword.connect` and `bootstrap.secrets`, read now (values stay masked `Secret`s)."""
    from k8s_ops import onepassword as op

    wants_op = cluster.onepassword.connect is not None or any(
        s.onepassword for s in (cluster.bootstrap.secrets if cluster.bootstrap else ())
    )
    if wants_op and op.is_configured(cluster):
        with op.open_cluster_store(cluster) as store:
            found = extra_secrets(cluster, pf.key, store)
    else:
        found = extra_secrets(cluster, pf.key, None)  # 1Password needed but not configured: an error naming the fix
    for e in found:
        pf.notes.append(
            f"{e.purpose}: Secret {e.namespace}/{e.name} (keys {', '.join(sorted(e.data))}; values masked) "
            f"from {e.source}"
        )
    return found


def _talos(
    env: Env,
    probe: Talosctl,
    runner: Runner,
    cluster: Cluster,
    bundle: SecretsBundle,
    tc: TalosconfigResult,
    states: Sequence[talos_stage.NodeState],
    options: Options,
) -> list[Step]:
    from k8s_ops.talos.facts import gather_apply_targets
    from k8s_ops.talos.render import render_cluster
    from k8s_ops.talos.render_output import semantic_problems
    from k8s_ops.talos.talosconfig import talosconfig_write

    rendered = render_cluster(cluster, bundle)
    found = semantic_problems(cluster, rendered)
    if found:
        raise ProblemsError(found, hint="the rendered configs break a rule the toolkit relies on")
    configs = {r.hostname: Secret(r.text) for r in rendered}
    by_state = {s.hostname: s.state for s in states}
    cps = list(cluster.controlplanes)
    workers = list(cluster.workers)
    if options.rebuild:
        # A rebuild only installs wiped nodes; a node that still runs a config is left for talos.apply-*.
        cps = [n for n in cps if by_state.get(n.hostname) == "maintenance"]
        workers = [n for n in workers if by_state.get(n.hostname) == "maintenance"]
    known = {host: state == "maintenance" for host, state in by_state.items()}
    cp_targets = gather_apply_targets(runner, probe, cps, configs, mode="auto", maintenance=known)
    worker_targets = gather_apply_targets(runner, probe, workers, configs, mode="auto", maintenance=known)
    etcd = None
    if any(by_state.get(n.hostname) == "configured" for n in cluster.controlplanes):
        etcd = talos_stage.etcd_state(runner, env, probe)
    write = None if tc.action == "keep" else talosconfig_write(env.tctl.talosconfig, tc.content)
    steps = talos_stage.talos_steps(
        env,
        talosconfig=write,
        talosconfig_note=tc.reason,
        controlplanes=cp_targets,
        workers=worker_targets,
        etcd=etcd,
        recover_from=options.recover_from,
        etcd_timeout=options.timeouts.etcd,
        confirm_bootstrap=options.rebuild,
    )
    if options.rebuild:
        left = [n.hostname for n in cluster.nodes if by_state.get(n.hostname) != "maintenance"]
        if left:
            steps.insert(
                1,
                Step(
                    f"nodes already configured: {', '.join(left)}",
                    noop="a rebuild only installs "
                    "nodes in maintenance mode; use talos.apply-cluster for configured ones",
                ),
            )
    return steps
