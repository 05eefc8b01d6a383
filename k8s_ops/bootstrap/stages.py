"""Plan builders for the bootstrap stages after Talos: kubeconfig, secrets, CNI, Flux, 1Password (stages 3–7).

Pure: a `Context` (inventory, pinned charts and rendered values, the secrets to hand over) in, `Step`s out.
Every step that changes something has a guard — a read re-checked at execution that returns why the step is
already done ("same content", "release at the same chart version and values", "Ready") — and every wait is a
step of its own whose guard skips it when the condition already holds. So a re-run on a healthy cluster is
all no-ops, and a run that failed mid-way resumes where it stopped: completed steps are detected, not
remembered.

Order (each stage needs the one before; `STAGES` names them for `--from`):

3 kubeconfig   fetch (0600, context = cluster), server = first controlplane until the VIP answers, /readyz,
               nodes registered — never Ready: without a CNI they stay NotReady;
4 secrets      namespaces (prune disabled), sops-age, git credentials, cluster-vars, then the 1Password Connect
               Secrets (`onepassword.connect`) and `bootstrap.secrets` — so External Secrets sync as soon as
               Flux installs the operator;
5 cni          CRD bundles (Established), Cilium, rollout + every node Ready, CoreDNS, then (k8s_ops.bootstrap.run)
               every node running and ready in Talos — the first point where Talos can say so;
6 flux         flux-operator, flux-instance, FluxInstance Ready (Flux CRDs exist), GitRepository, root
               Kustomization (sops-age + cluster-vars gated), root Ready;
7 onepassword  push kubeconfig and talosconfig when the inventory names a vault and a token is set.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from k8s_ops.bootstrap import kube, manifests
from k8s_ops.bootstrap.charts import (
    Charts,
    CrdBundle,
    CrdVerdict,
    InstalledCrd,
    RenderedValues,
    crd_bundles,
    crd_verdict,
)
from k8s_ops.bootstrap.credentials import ExtraSecret, GitCredentials, git_credentials_path
from k8s_ops.bootstrap.manifests import KubeObject, SecretObject
from k8s_ops.core.errors import GateFailed, ToolkitError, last_error_line
from k8s_ops.core.plan import Check, Step
from k8s_ops.core.runner import Runner
from k8s_ops.core.secret import Secret
from k8s_ops.core.wait import wait_check
from k8s_ops.talos import yamlio
from k8s_ops.tools import helm, kubectl
from k8s_ops.tools.flux import FLUX_NAMESPACE, ROOT_KUSTOMIZATION
from k8s_ops.tools.kubectl import KubeTarget, Obj, dig

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Cluster

__all__ = [
    "FLUX_INSTANCE",
    "STAGES",
    "Context",
    "Timeouts",
    "cni_steps",
    "flux_steps",
    "kubeconfig_steps",
    "onepassword_steps",
    "release_step",
    "secrets_steps",
    "stage_of",
    "tag",
]

STAGES: Final = ("preflight", "talos", "kubeconfig", "secrets", "cni", "flux", "onepassword")
FLUX_INSTANCE: Final = "flux"  # the flux-instance chart names its FluxInstance `flux`
FLUX_CRDS: Final = (
    "gitrepositories.source.toolkit.fluxcd.io",
    "kustomizations.kustomize.toolkit.fluxcd.io",
)
FLUXINSTANCE_RESOURCE: Final = "fluxinstances.fluxcd.controlplane.io"


@dataclass(frozen=True)
class Timeouts:
    """Seconds, before K8S_OPS_TIMEOUT_SCALE. Generous: real hardware installs, pulls images, reboots."""

    etcd: float = 900.0
    api: float = 600.0
    nodes_registered: float = 600.0
    crds: float = 180.0
    cilium: float = 900.0
    talos_ready: float = 600.0  # after the CNI: every node stage running and ready in Talos
    deployment: float = 600.0
    flux_instance: float = 900.0
    root_sync: float = 900.0
    helm: float = 600.0  # per helm command


@dataclass(frozen=True)
class Context:
    """What the stage builders need: inventory, charts + values, where the API is, the secrets to hand over."""

    cluster: Cluster
    charts: Charts
    values: Mapping[str, RenderedValues]
    kube: KubeTarget
    age_key: Secret | None = field(default=None, repr=False)  # the keys file text for sops-age
    age_source: str = ""
    git: GitCredentials | None = None
    extras: tuple[ExtraSecret, ...] = field(default=(), repr=False)  # onepassword.connect + bootstrap.secrets
    timeouts: Timeouts = Timeouts()
    task: str = "bootstrap.cluster"

    def rerun(self, stage: str) -> str:
        return f"invoke {self.task} --cluster {self.cluster.name} --from {stage}"


def tag(stage: str, steps: Sequence[Step]) -> list[Step]:
    """Set every step's `stage` and prefix its description with it (`[cni] …`) for plans and logs."""
    if stage not in STAGES:
        raise ValueError(f"unknown bootstrap stage {stage!r} (one of {', '.join(STAGES)})")
    return [replace(s, description=f"[{stage}] {s.description}", stage=stage) for s in steps]


def stage_of(step: Step) -> str | None:
    """The stage a step belongs to (its `stage` field; the description is never parsed)."""
    return step.stage


def _safe(guard: Callable[[Runner], str | None]) -> Callable[[Runner], str | None]:
    """A guard that cannot read the world says "not done" (the step then runs and reports the real error)."""

    def run(runner: Runner) -> str | None:
        try:
            return guard(runner)
        except ToolkitError:
            return None

    return run


def _wait_step(
    what: str,
    probe: Callable[[Runner], str | None],
    *,
    timeout: float,
    done: str,
    hint: str | None = None,
) -> Step:
    """A step that only waits for `what`; skipped (guard) when the condition already holds."""
    return Step(
        f"wait for {what}",
        after=(wait_check(what, probe, timeout=timeout, hint=hint),),
        guard=_safe(lambda r: done if probe(r) is None else None),
    )


# --------------------------------------------------------------------------- stage 3: kubeconfig


def _kubeconfig_server(path: Path, cluster: str) -> str | None:
    try:
        data = yamlio.load_document(yamlio.read_text(path))
    except (OSError, yamlio.YAMLError):
        return None
    for c in dig(data, "clusters", default=[]):
        if isinstance(c, dict) and c.get("name") == cluster:
            return str(dig(c, "cluster", "server", default="")) or None
    return None


def _readyz_problem(runner: Runner, target: KubeTarget, server: str | None = None) -> str | None:
    result = runner.run(kubectl.readyz(target, server=server), check=False)
    return None if result.ok else last_error_line(result)


def kubeconfig_steps(ctx: Context, fetched: Sequence[Step]) -> list[Step]:
    """Stage 3. `fetched` are k8s_ops.talos.lifecycle.plan_kubeconfig's steps (fetch, point at a controlplane).

    Guards added here: the fetch is skipped while the existing kubeconfig has the context and the API answers
    through it (talosctl mints a new client certificate on every fetch, so refetching is never a no-op).
    """
    cluster = ctx.cluster
    path = ctx.kube.kubeconfig
    vip = cluster.api_url
    cp_server = kubectl.server_url(str(cluster.controlplanes[0].address))

    def have_working_kubeconfig(runner: Runner) -> str | None:
        if not path.is_file() or _kubeconfig_server(path, cluster.name) is None:
            return None
        if _readyz_problem(runner, ctx.kube) is None:
            return f"{path} has context {cluster.name} and the API answers through it"
        return None

    def server_ok(runner: Runner) -> str | None:
        server = _kubeconfig_server(path, cluster.name)
        if server == cp_server:
            return f"already points at {cp_server}"
        if server == vip:
            return f"points at the VIP {vip}, which answers" if _readyz_problem(runner, ctx.kube) is None else None
        return None

    steps: list[Step] = []
    for i, step in enumerate(fetched):
        own = have_working_kubeconfig if i == 0 else server_ok
        theirs = step.guard

        def guard(runner: Runner, own: Callable[[Runner], str | None] = own, theirs: Any = theirs) -> str | None:
            return _safe(own)(runner) or (theirs(runner) if theirs is not None else None)

        steps.append(replace(step, guard=guard))

    def switch_to_vip(runner: Runner) -> str | None:
        server = _kubeconfig_server(path, cluster.name)
        if server == vip:
            return f"already points at the VIP {vip}"
        if _readyz_problem(runner, ctx.kube, vip) is not None:
            return f"the VIP {vip} does not answer yet; keeping {server or cp_server}"
        return None

    steps.append(
        Step(
            f"point the kubeconfig at the VIP {vip} once it answers",
            commands=(kubectl.set_cluster_server(ctx.kube, cluster.name, vip),),
            guard=_safe(switch_to_vip),
        )
    )
    steps.append(
        _wait_step(
            "the Kubernetes API /readyz",
            lambda r: _readyz_problem(r, ctx.kube),
            timeout=ctx.timeouts.api,
            done="the API server answers /readyz",
        )
    )
    hostnames = [n.hostname for n in cluster.nodes]
    steps.append(
        _wait_step(
            f"all {len(hostnames)} nodes to register (NotReady is expected until the CNI runs)",
            lambda r: kubectl.nodes_problem(r, ctx.kube, hostnames, ready=False),
            timeout=ctx.timeouts.nodes_registered,
            done=f"all {len(hostnames)} nodes are registered",
        )
    )
    return steps


# --------------------------------------------------------------------------- stage 4: secrets


Compare = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


def _object_guard(
    ctx: Context, obj: KubeObject, compare: Compare, requires: Sequence[tuple[str, str]] = ()
) -> Callable[[Runner], str | None]:
    """Skip when the live object has this content — and every object it references (`requires`:
    (resource, name) in the same namespace) exists, so a deleted sops-age makes the step run its gate."""

    def guard(runner: Runner) -> str | None:
        live = kubectl.get_or_none(runner, ctx.kube, obj.resource, obj.name, namespace=obj.namespace)
        if live is None or not compare(obj.manifest, live):
            return None
        for resource, name in requires:
            if kubectl.get_or_none(runner, ctx.kube, resource, name, namespace=obj.namespace) is None:
                return None
        return f"{obj.ref()} exists with the same content"

    return _safe(guard)


def _same_data(want: Mapping[str, Any], have: Mapping[str, Any]) -> bool:
    return dict(dig(have, "data", default={})) == dict(dig(want, "data", default={})) and kube.is_subset(
        Obj(want).labels, Obj(have).labels
    )


def _same_meta(want: Mapping[str, Any], have: Mapping[str, Any]) -> bool:
    wanted = {k: v for k in ("labels", "annotations") if (v := want["metadata"].get(k))}
    return kube.is_subset(wanted, dig(have, "metadata", default={}))


def _same_spec(want: Mapping[str, Any], have: Mapping[str, Any]) -> bool:
    return _same_meta({"metadata": {"labels": want["metadata"].get("labels")}}, have) and kube.is_subset(
        dig(want, "spec", default={}), dig(have, "spec", default={})
    )


def apply_object_step(
    ctx: Context,
    obj: KubeObject,
    description: str,
    compare: Compare = _same_spec,
    requires: Sequence[tuple[str, str]] = (),
) -> Step:
    """Server-side apply one object; skipped when the live object already has this content."""
    return Step(
        description,
        commands=(kube.apply_stdin(ctx.kube, obj.to_bytes(), description=f"apply {obj.ref()}"),),
        guard=_object_guard(ctx, obj, compare, requires),
    )


def apply_secret_step(ctx: Context, secret: SecretObject, description: str) -> Step:
    """Server-side apply a Secret (manifest on stdin, masked); skipped when the live data is identical."""

    def guard(runner: Runner) -> str | None:
        live = kubectl.get_or_none(runner, ctx.kube, secret.resource, secret.name, namespace=secret.namespace)
        if live is None:
            return None
        same_data = dict(dig(live, "data", default={})) == secret.encoded()
        if same_data and kube.is_subset(dict(secret.labels), Obj(live).labels):
            return f"{secret.ref()} exists with the same content (sha256 {secret.fingerprint()})"
        return None

    return Step(
        description,
        commands=(kube.apply_stdin(ctx.kube, secret.to_stdin(), description=f"apply {secret.ref()}"),),
        guard=_safe(guard),
    )


def secrets_steps(ctx: Context) -> list[Step]:
    """Stage 4: namespaces (prune disabled), then sops-age, the git credentials and cluster-vars in flux-system,
    then every extra Secret (1Password Connect credentials and token, `bootstrap.secrets`), values on stdin."""
    release_namespaces = (*(r.namespace for r in ctx.charts.releases), *(e.namespace for e in ctx.extras))
    steps: list[Step] = []
    for ns in manifests.bootstrap_namespaces(release_namespaces):
        steps.append(
            apply_object_step(
                ctx, ns, f"namespace {ns.name} (annotated kustomize.toolkit.fluxcd.io/prune: disabled)", _same_meta
            )
        )
    if ctx.age_key is None:
        steps.append(Step(f"Secret {FLUX_NAMESPACE}/{manifests.SOPS_AGE}", noop="no age key (planning only)"))
    else:
        sops_age = manifests.sops_age_secret(ctx.age_key, source=ctx.age_source)
        steps.append(apply_secret_step(ctx, sops_age, sops_age.describe()))
    if ctx.git is None:
        steps.append(
            Step(
                f"Secret {FLUX_NAMESPACE}/{manifests.GIT_CREDENTIALS}",
                noop=f"public repository {ctx.cluster.gitops.repository}: no credentials "
                f"({git_credentials_path(ctx.cluster)} absent)",
            )
        )
    else:
        creds = manifests.git_credentials_secret(ctx.git.data, source=str(ctx.git.source))
        steps.append(apply_secret_step(ctx, creds, creds.describe()))
    cm = manifests.cluster_vars_configmap(ctx.cluster)
    keys = ", ".join(cm.manifest["data"])
    steps.append(
        apply_object_step(ctx, cm, f"ConfigMap {FLUX_NAMESPACE}/{manifests.CLUSTER_VARS} ({keys})", _same_data)
    )
    for extra in ctx.extras:
        obj = manifests.SecretObject(extra.name, extra.namespace, extra.data, source=extra.source)
        steps.append(apply_secret_step(ctx, obj, f"{obj.describe()} [{extra.purpose}]"))
    return steps


# --------------------------------------------------------------------------- helm releases


def release_step(ctx: Context, name: str) -> Step:
    """`helm upgrade --install` one release; skipped when deployed at the same chart version with these values."""
    rv = ctx.values[name]
    r = rv.release
    want = json.loads(json.dumps(rv.data))  # helm reports values as JSON: compare like with like

    def guard(runner: Runner) -> str | None:
        result = runner.run(helm.status(ctx.kube, r.name, r.namespace), check=False)
        if not result.ok:
            return None
        have = helm.parse_status(result)
        if not have.deployed or have.version != r.version or have.values != want:
            return None
        return f"release {r.name} {r.version} is deployed with the same values (revision {have.revision})"

    return Step(
        f"helm release {r.name} ({r.chart} {r.version}) in {r.namespace}",
        commands=(
            helm.upgrade_install(
                ctx.kube,
                r.name,
                r.chart,
                version=r.version,
                namespace=r.namespace,
                values=rv.text,
                timeout=ctx.timeouts.helm,
            ),
        ),
        guard=_safe(guard),
    )


# --------------------------------------------------------------------------- stage 5: CRDs, Cilium, CoreDNS


def _installed_crds(r: Runner, ctx: Context, bundle: CrdBundle) -> dict[str, InstalledCrd] | str:
    """The bundle's CRDs as the cluster has them (Established, version/channel annotations), or why unreadable."""
    have = kubectl.by_name(r, ctx.kube, "customresourcedefinitions", description="read the CRDs")
    if isinstance(have, str):
        return have
    return {
        name: InstalledCrd(
            name,
            obj.is_true("Established"),
            obj.annotations.get(bundle.version_annotation) if bundle.version_annotation else None,
            obj.annotations.get(bundle.channel_annotation) if bundle.channel_annotation else None,
        )
        for name, obj in have.items()
    }


def _crd_step(ctx: Context, bundle: CrdBundle) -> Step:
    """Apply a CRD bundle unless the cluster already has it (same channel, version >= pinned); never downgrade.

    The verdict (`k8s_ops.bootstrap.charts.crd_verdict`) is read again at execution: the guard skips when done, the gate
    refuses before anything is applied when the bundle would downgrade or cross channels, and the wait holds
    until every CRD is Established at an acceptable version.
    """

    def verdict(r: Runner) -> CrdVerdict:
        installed = _installed_crds(r, ctx, bundle)
        if isinstance(installed, str):
            return CrdVerdict("apply", installed)
        return crd_verdict(bundle, installed)

    def probe(r: Runner) -> str | None:
        v = verdict(r)
        return None if v.action == "done" else v.reason

    def guard(r: Runner) -> str | None:
        v = verdict(r)
        return v.reason if v.action == "done" else None

    shown = ",".join(
        f"{label}:.metadata.annotations.{note.replace('.', chr(92) + '.')}"
        for label, note in (("VERSION", bundle.version_annotation), ("CHANNEL", bundle.channel_annotation))
        if note
    )
    hint = f"`kubectl get crd -o custom-columns=NAME:.metadata.name{',' + shown if shown else ''}` shows them"

    def gate(r: Runner) -> None:
        v = verdict(r)
        if v.action == "refuse":
            raise GateFailed(f"the {bundle.label} CRDs cannot be applied", v.reason, hint=hint)

    return Step(
        f"CRDs {bundle.label} ({len(bundle.crd_names)} CRDs, server-side) — wait Established",
        commands=(kube.apply_url(ctx.kube, bundle.resolved_url, description=f"apply the {bundle.name} CRDs"),),
        before=(Check(f"no installed {bundle.name} CRD is newer or from another channel", gate),),
        after=(wait_check(f"{bundle.name} CRDs Established", probe, timeout=ctx.timeouts.crds),),
        guard=_safe(guard),
    )


def crd_steps(ctx: Context) -> list[Step]:
    """Every CRD bundle of charts.yaml (with the inventory's channel), applied from its URL, waited Established."""
    return [_crd_step(ctx, b) for b in crd_bundles(ctx.cluster, ctx.charts)]


def cni_steps(ctx: Context) -> list[Step]:
    """Stage 5: CRDs first, then Cilium (rolled out, every node Ready), then CoreDNS."""
    hostnames = [n.hostname for n in ctx.cluster.nodes]
    steps = crd_steps(ctx)
    steps.append(release_step(ctx, "cilium"))

    def cilium_ready(r: Runner) -> str | None:
        return kubectl.daemonset_problem(r, ctx.kube, "cilium", "kube-system") or kubectl.nodes_problem(
            r, ctx.kube, hostnames, ready=True
        )

    steps.append(
        _wait_step(
            f"the cilium DaemonSet rollout and all {len(hostnames)} nodes Ready",
            cilium_ready,
            timeout=ctx.timeouts.cilium,
            done=f"cilium is rolled out and all {len(hostnames)} nodes are Ready",
            hint="`kubectl -n kube-system get pods -l k8s-app=cilium` and the agent logs say why",
        )
    )
    steps.append(release_step(ctx, "coredns"))
    steps.append(
        _wait_step(
            "Deployment kube-system/coredns to be available",
            lambda r: kubectl.deployment_problem(r, ctx.kube, "coredns", "kube-system"),
            timeout=ctx.timeouts.deployment,
            done="coredns is available",
        )
    )
    return steps


# --------------------------------------------------------------------------- stage 6: Flux


def _flux_instance_problem(r: Runner, ctx: Context) -> str | None:
    obj = kubectl.get_or_none(r, ctx.kube, FLUXINSTANCE_RESOURCE, FLUX_INSTANCE, namespace=FLUX_NAMESPACE)
    problem = kubectl.ready_condition_problem(obj, f"FluxInstance {FLUX_NAMESPACE}/{FLUX_INSTANCE}")
    return problem or kubectl.crd_problem(r, ctx.kube, FLUX_CRDS)


def _root_problem(r: Runner, ctx: Context) -> str | None:
    """Why the root Kustomization is not Ready, naming the GitRepository when the source is the cause."""
    repo = manifests.git_repository(
        ctx.cluster, with_credentials=ctx.git is not None, provider=ctx.git.provider if ctx.git else None
    )
    root = manifests.root_kustomization(ctx.cluster)
    src = kubectl.get_or_none(r, ctx.kube, repo.resource, repo.name, namespace=repo.namespace)
    src_problem = kubectl.ready_condition_problem(src, repo.ref())
    if src_problem is not None:
        return src_problem
    obj = kubectl.get_or_none(r, ctx.kube, root.resource, root.name, namespace=root.namespace)
    return kubectl.ready_condition_problem(obj, f"root {root.ref()}")


def _present(ctx: Context, resource: str, name: str, what: str, fix: str) -> Check:
    """Gate: an object the next step references exists (else fail now, naming it, instead of a stuck sync)."""
    desc = f"{what} {FLUX_NAMESPACE}/{name} exists"

    def run(r: Runner) -> None:
        if kubectl.get_or_none(r, ctx.kube, resource, name, namespace=FLUX_NAMESPACE) is None:
            raise GateFailed(
                f"{what} {FLUX_NAMESPACE}/{name} is missing",
                f"the root Kustomization {FLUX_NAMESPACE}/{ROOT_KUSTOMIZATION} references it",
                hint=fix,
            )

    return Check(desc, run)


def flux_steps(ctx: Context) -> list[Step]:
    """Stage 6: flux-operator, flux-instance (wait Ready: it creates Flux's CRDs), then the sync objects."""
    steps: list[Step] = [release_step(ctx, "flux-operator")]
    steps.append(
        _wait_step(
            f"Deployment {FLUX_NAMESPACE}/flux-operator to be available",
            lambda r: kubectl.deployment_problem(r, ctx.kube, "flux-operator", FLUX_NAMESPACE),
            timeout=ctx.timeouts.deployment,
            done="flux-operator is available",
        )
    )
    steps.append(release_step(ctx, "flux-instance"))
    steps.append(
        _wait_step(
            f"FluxInstance {FLUX_NAMESPACE}/{FLUX_INSTANCE} Ready (Flux {ctx.charts.flux_version} and its CRDs)",
            lambda r: _flux_instance_problem(r, ctx),
            timeout=ctx.timeouts.flux_instance,
            done=f"FluxInstance {FLUX_NAMESPACE}/{FLUX_INSTANCE} is Ready and the Flux CRDs exist",
        )
    )
    repo = manifests.git_repository(
        ctx.cluster, with_credentials=ctx.git is not None, provider=ctx.git.provider if ctx.git else None
    )
    root = manifests.root_kustomization(ctx.cluster)
    g = ctx.cluster.gitops
    secrets_fix = f"create it: `{ctx.rerun('secrets')}`"
    repo_before: tuple[Check, ...] = ()
    repo_requires: tuple[tuple[str, str], ...] = ()
    if ctx.git is not None:
        repo_before = (_present(ctx, "secrets", manifests.GIT_CREDENTIALS, "Secret", secrets_fix),)
        repo_requires = (("secrets", manifests.GIT_CREDENTIALS),)
    steps.append(
        replace(
            apply_object_step(ctx, repo, f"{repo.ref()} ({g.repository}, branch {g.branch})", requires=repo_requires),
            before=repo_before,
        )
    )
    steps.append(
        replace(
            apply_object_step(
                ctx,
                root,
                f"root {root.ref()} (path {root.manifest['spec']['path']}, SOPS via {manifests.SOPS_AGE}, "
                f"substituteFrom {manifests.CLUSTER_VARS})",
                requires=(("secrets", manifests.SOPS_AGE), ("configmaps", manifests.CLUSTER_VARS)),
            ),
            before=(
                _present(ctx, "secrets", manifests.SOPS_AGE, "Secret", secrets_fix),
                _present(ctx, "configmaps", manifests.CLUSTER_VARS, "ConfigMap", secrets_fix),
            ),
        )
    )
    steps.append(
        _wait_step(
            f"the root {root.ref()} to be Ready",
            lambda r: _root_problem(r, ctx),
            timeout=ctx.timeouts.root_sync,
            done=f"the root {root.ref()} is Ready",
            hint=(
                f"check gitops.repository/branch/path in {ctx.cluster.file} and the credentials in "
                f"{git_credentials_path(ctx.cluster)}; `kubectl -n {FLUX_NAMESPACE} describe "
                f"{repo.resource}/{repo.name} {root.resource}/{root.name}` shows the controllers' view"
            ),
        )
    )
    return steps


# --------------------------------------------------------------------------- stage 7: 1Password


def onepassword_steps(ctx: Context, *, configured: bool, force: bool = True) -> list[Step]:
    """Stage 7: push kubeconfig and talosconfig to the inventory's vault, or a no-op saying why not.

    `force`: the files this run verified are the live cluster's credentials, so they replace a copy another
    machine pushed (the 1Password item of a rebuilt cluster holds the dead cluster's kubeconfig).
    """
    from k8s_ops.onepassword.effects import Push

    what = "kubeconfig,talosconfig"
    vault = ctx.cluster.onepassword.vault
    desc = f"push kubeconfig and talosconfig to 1Password (vault {vault})"
    if not configured:
        return [Step(desc, noop="1Password not configured (inventory onepassword.vault + OP_SERVICE_ACCOUNT_TOKEN)")]

    push = Push(ctx.cluster, what, force=force)
    return [Step(desc, finish=(push,), guard=_safe(lambda _: push.pending()))]
