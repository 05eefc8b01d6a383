"""Version preflight: which Talos, Kubernetes, client and chart versions go together, and how to upgrade.

Pure: data tables that name their upstream source, and functions from versions to `Finding`s. An error refuses
the operation (every one at once, as a `ProblemsError`); a warning becomes a plan note, so `--dry-run` shows it.
The tasks feed it what they already know — the inventory, the tool versions `k8s_ops.core.preflight.preflight` read, the
nodes' running versions the upgrade facts gather — so the checks add no reads of their own.

Rules (each with its source in the table or function that encodes it):

* talosctl must be the cluster's Talos minor or newer; newer is a warning ("Your `talosctl` version should match
  the version of Talos Linux you are running", docs.siderolabs.com talos/v1.12 getting-started/talosctl).
* kubectl within one minor of Kubernetes, else a warning (kubernetes/website
  content/en/releases/version-skew-policy.md: "`kubectl` is supported within one minor version").
* `kubernetesVersion` inside the Talos minor's range, else an error (`TALOS`).
* Talos upgrades: to the latest patch of every intermediate minor, as upgrading-talos.md says; skipping a minor
  is refused with the path to take. Its example also starts with "upgrade from 1.0 to latest patch of 1.0":
  crossing a minor from an older patch is a warning naming that first hop, because the rule's own sentence
  ("the latest patch release of all intermediate minor releases") covers only the minors in between.
* Kubernetes upgrades (`talos.upgrade-k8s`): one minor at a time, never down.
* Pinned charts outside their tested Kubernetes range: a warning (`TESTED`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from k8s_ops.core.errors import Problem, ProblemsError
from k8s_ops.core.paths import shown
from k8s_ops.core.preflight import format_version, parse_version

__all__ = [
    "TALOS",
    "TESTED",
    "Finding",
    "TalosRelease",
    "TestedRange",
    "Verdict",
    "check_charts",
    "check_kubectl",
    "check_kubernetes_supported",
    "check_kubernetes_upgrade",
    "check_talos_upgrade",
    "check_talosctl",
    "evaluate",
    "semantic_version",
    "talos_upgrade_path",
]

Version = tuple[int, int, int]
Minor = tuple[int, int]

_UPGRADE_DOC = 'docs.siderolabs.com talos/v1.12 upgrading-talos, "Supported upgrade paths"'
_SKEW_DOC = "kubernetes/website content/en/releases/version-skew-policy.md"


@dataclass(frozen=True)
class Finding:
    """One rule's verdict: `field` is the inventory key or node it is about."""

    severity: Literal["error", "warning"]
    field: str
    message: str


@dataclass(frozen=True)
class TalosRelease:
    """What one Talos minor accepts.

    `kubernetes`: the supported minors, inclusive. `latest`: its newest patch when this table was written (a
    newer patch only makes the suggested path a little older). `oldest_host`/`newest_host`: the installer's own
    hard limits on the running version (MinimumHostUpgradeVersion, MaximumHostDowngradeVersion, exclusive).
    """

    minor: Minor
    latest: Version
    kubernetes: tuple[Minor, Minor]
    oldest_host: Minor
    newest_host: Minor


# siderolabs/talos <tag> pkg/machinery/compatibility/talos1NN/talos1NN.go (Minimum/MaximumKubernetesVersion,
# MinimumHostUpgradeVersion, MaximumHostDowngradeVersion), which `talosctl upgrade-k8s` enforces per node
# (pkg/cluster/kubernetes/compat.go) and Talos on the config's image tags; the same ranges as
# pkg/machinery/constants/constants.go (DefaultKubernetesVersion and SupportedKubernetesVersions = 6 going
# backwards) and the support matrix (docs.siderolabs.com talos/v1.13 getting-started/support-matrix: 1.12 →
# "1.35, 1.34, 1.33, 1.32, 1.31, 1.30"). Latest patches: the repository's tags (v1.10.9, v1.11.6, v1.12.11, v1.13.9).
TALOS: Mapping[Minor, TalosRelease] = {
    r.minor: r
    for r in (
        TalosRelease((1, 10), (1, 10, 9), ((1, 28), (1, 33)), (1, 8), (1, 12)),  # v1.12.11 talos110
        TalosRelease((1, 11), (1, 11, 6), ((1, 29), (1, 34)), (1, 9), (1, 13)),  # v1.12.11 talos111
        TalosRelease((1, 12), (1, 12, 11), ((1, 30), (1, 35)), (1, 10), (1, 14)),  # v1.12.11 talos112
        TalosRelease((1, 13), (1, 13, 9), ((1, 31), (1, 36)), (1, 11), (1, 15)),  # v1.13.9 talos113
    )
}


@dataclass(frozen=True)
class TestedRange:
    """The Kubernetes minors a component's release line is tested with (inclusive) and where that is written."""

    component: str
    minor: Minor
    kubernetes: tuple[Minor, Minor]
    source: str


TESTED: tuple[TestedRange, ...] = (
    # "All Kubernetes versions listed are e2e tested and guaranteed to be compatible with Cilium"; a release branch
    # keeps its list ("Cilium typically does not change the Kubernetes versions it uses to run e2e tests for the
    # entire maintenance period").
    TestedRange(
        "cilium",
        (1, 18),
        ((1, 30), (1, 33)),
        "cilium/cilium v1.18.14 Documentation/network/kubernetes/compatibility.rst",
    ),
    # `flux check --pre` requires ">=1.32.0-0" (cmd/flux/check.go) and the conformance workflow runs 1.32.1,
    # 1.33.0, 1.34.1 (.github/workflows/conformance.yaml). The flux-operator publishes no range of its own: the
    # Flux it installs (charts.yaml `flux.version`) is what meets the API server.
    TestedRange(
        "flux",
        (2, 7),
        ((1, 32), (1, 34)),
        "fluxcd/flux2 v2.7.5 .github/workflows/conformance.yaml, cmd/flux/check.go",
    ),
)


# A version string longer than this is not one (and a 5000-digit component must not reach int()).
_MAX_VERSION_TEXT = 64


def _v(text: str | None) -> Version | None:
    return parse_version(text) if text and len(text) <= _MAX_VERSION_TEXT else None


# semver.org 2.0.0 (numeric parts without leading zeros, optional pre-release and build) with an optional `v`:
# the whole text must be the version, so `--to "v1.35.0 --force"` or `1.35` is refused, not searched for a version.
_SEMVER = re.compile(
    r"v?(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})"
    r"(?:-(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


def semantic_version(text: str | None) -> Version | None:
    """`text` as (major, minor, patch) if all of it is a semantic version (`v1.35.0`, `1.35.0-rc.1`), else None."""
    if not text or len(text) > _MAX_VERSION_TEXT:
        return None
    m = _SEMVER.fullmatch(text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def _minor(v: Version) -> Minor:
    return (v[0], v[1])


def _span(r: tuple[Minor, Minor]) -> str:
    return f"{format_version(r[0])}–{format_version(r[1])}"


def _unparseable(fld: str, text: str) -> Finding:
    return Finding("error", fld, f"{shown(text)} is not a version like v1.2.3")


def _err(fld: str, message: str) -> Finding:
    return Finding("error", fld, message)


def _warn(fld: str, message: str) -> Finding:
    return Finding("warning", fld, message)


# --------------------------------------------------------------------------- clients


def check_talosctl(client: Version, talos: str) -> list[Finding]:
    """talosctl older than the cluster's Talos minor is refused; newer is a warning (the docs ask for a match)."""
    target = _v(talos)
    if target is None:
        return [_unparseable("talosVersion", talos)]
    have, want = format_version(client), format_version(_minor(target))
    if _minor(client) < _minor(target):
        return [
            _err(
                "talosVersion",
                f"talosctl {have} is older than the cluster's Talos {want}: install talosctl {want}.x "
                "(docs.siderolabs.com talos/v1.12 getting-started/talosctl: the version should match)",
            )
        ]
    if _minor(client) > _minor(target):
        return [_warn("talosVersion", f"talosctl {have} is newer than the cluster's Talos {want} (should match)")]
    return []


def check_kubectl(client: Version, kubernetes: str) -> list[Finding]:
    """kubectl more than one minor away from the API server is outside the skew policy: a warning."""
    k8s = _v(kubernetes)
    if k8s is None or client[0] != k8s[0] or abs(client[1] - k8s[1]) <= 1:
        return []
    return [
        _warn(
            "kubernetesVersion",
            f"kubectl {format_version(client)} is more than one minor from Kubernetes {format_version(_minor(k8s))} "
            f"(supported within one minor, {_SKEW_DOC})",
        )
    ]


# --------------------------------------------------------------------------- Talos x Kubernetes


def check_kubernetes_supported(talos: str, kubernetes: str, *, fld: str = "kubernetesVersion") -> list[Finding]:
    """`kubernetes` must be inside the range of `talos`' minor (as Talos itself checks on upgrade-k8s)."""
    tv, kv = _v(talos), _v(kubernetes)
    if tv is None or kv is None:
        return [_unparseable("talosVersion", talos) if tv is None else _unparseable(fld, kubernetes)]
    release = TALOS.get(_minor(tv))
    if release is None:
        known = ", ".join(format_version(m) for m in TALOS)
        return [_err("talosVersion", f"no version data for Talos {format_version(_minor(tv))} (known: {known})")]
    lo, hi = release.kubernetes
    if not lo <= _minor(kv) <= hi:
        return [
            _err(
                fld,
                f"Kubernetes {format_version(kv)} is not supported by Talos {format_version(release.minor)} "
                f"(supports {_span(release.kubernetes)}; siderolabs/talos pkg/machinery/compatibility)",
            )
        ]
    return []


# --------------------------------------------------------------------------- Talos upgrade path


def _latest(minor: Minor) -> str:
    release = TALOS.get(minor)
    return format_version(release.latest) if release is not None else f"the latest {format_version(minor)}.x"


def talos_upgrade_path(current: Version, target: Version) -> tuple[str, ...]:
    """The recommended hops from `current` to `target` (ending with the target), per the upgrade guide: the
    latest patch of the current minor, then of every intermediate minor. Empty when `target` is not newer."""
    if target <= current:
        return ()
    if _minor(current) == _minor(target):
        return (format_version(target),)
    hops: list[str] = []
    release = TALOS.get(_minor(current))
    if release is None or current < release.latest:
        hops.append(_latest(_minor(current)))
    hops += [_latest((current[0], m)) for m in range(current[1] + 1, target[1])]
    return (*hops, format_version(target))


def _group(running: Mapping[str, str | None]) -> dict[str, list[str]]:
    """Node names by the version they run (unknown versions left out: the upgrade runbook reports them)."""
    out: dict[str, list[str]] = {}
    for node, version in running.items():
        if version and _v(version) is not None:
            out.setdefault(version, []).append(node)
    return out


def check_talos_upgrade(
    running: Mapping[str, str | None], target: str, *, installer: str | None = None
) -> list[Finding]:
    """Each node's path from its running Talos to `target` (one finding per running version)."""
    tv = _v(target)
    if tv is None:
        return [_unparseable("talosVersion", target)]
    out: list[Finding] = []
    release = TALOS.get(_minor(tv))
    for version, nodes in sorted(_group(running).items()):
        cv = _v(version)
        assert cv is not None  # _group keeps parseable versions only
        who = ", ".join(sorted(nodes))
        if tv < cv:
            if release is not None and _minor(cv) >= release.newest_host:
                out.append(
                    _err(
                        f"nodes {who}",
                        f"run {version}; the {format_version(_minor(tv))} installer refuses hosts from "
                        f"{format_version(release.newest_host)} on (siderolabs/talos pkg/machinery/compatibility)",
                    )
                )
            else:
                out.append(
                    _warn(
                        f"nodes {who}",
                        f"run {version}: going to {target} is a downgrade ({_UPGRADE_DOC} describes upgrades only)",
                    )
                )
            continue
        path = talos_upgrade_path(cv, tv)
        if len(path) <= 1:
            continue
        arrow = " -> ".join((version, *path))
        if tv[1] - cv[1] >= 2:
            how = f" (`talosctl upgrade --image {installer.rsplit(':', 1)[0]}:<version>` per hop)" if installer else ""
            skipped = ", ".join(format_version((cv[0], m)) for m in range(cv[1] + 1, tv[1]))
            out.append(
                _err(
                    f"nodes {who}",
                    f"run {version}: {target} skips Talos {skipped}; "
                    f"upgrade through the latest patch of each minor: {arrow}{how} ({_UPGRADE_DOC})",
                )
            )
        else:
            out.append(
                _warn(
                    f"nodes {who}",
                    f"run {version}: the recommended path first takes the latest patch of "
                    f"{format_version(_minor(cv))}: {arrow} ({_UPGRADE_DOC})",
                )
            )
    return out


# --------------------------------------------------------------------------- Kubernetes upgrade


def check_kubernetes_upgrade(current: str | None, target: str, kubelets: Mapping[str, str] | None) -> list[Finding]:
    """`talosctl upgrade-k8s` from the running API server to `target`: one minor at a time, never down.

    The API server may not skip a minor (version-skew-policy.md "Supported component upgrade order": "require
    `kube-apiserver` to not skip minor versions when upgrading"); talosctl accepts only "1.N->1.N" and
    "1.N->1.N+1" (siderolabs/go-kubernetes v0.2.28 kubernetes/upgrade/path.go). A kubelet must not be newer than
    the API server (version-skew-policy.md), so a kubelet above `target` is a downgrade too.
    """
    if _v(target) is None:
        return [_unparseable("kubernetesVersion", target)]  # the same finding as the range rule's: reported once
    tv = semantic_version(target)
    if tv is None:
        message = f"{shown(target)} is not a semantic version like v1.35.0 (the --to value or kubernetesVersion)"
        return [_err("kubernetesVersion", message)]
    out: list[Finding] = []
    cv = _v(current)
    if cv is not None:
        if tv < cv:
            out.append(
                _err("kubernetesVersion", f"the API server runs {current}: {target} would be a downgrade (refused)")
            )
        elif tv[0] != cv[0] or tv[1] - cv[1] > 1:
            path = " -> ".join(
                [str(current), *(f"{format_version((cv[0], m))}.x" for m in range(cv[1] + 1, tv[1])), target]
            )
            out.append(
                _err(
                    "kubernetesVersion",
                    f"the API server runs {current}: upgrade Kubernetes one minor at a time: {path} "
                    f"(`invoke talos.upgrade-k8s --to <version>` per hop; {_SKEW_DOC})",
                )
            )
    newer = sorted(n for n, v in (kubelets or {}).items() if (kv := _v(v)) is not None and kv > tv)
    if newer and not (cv is not None and tv < cv):
        out.append(
            _err(
                "kubernetesVersion",
                f"kubelets on {', '.join(newer)} are newer than {target} (a kubelet must not be newer than the "
                f"API server, {_SKEW_DOC})",
            )
        )
    return out


# --------------------------------------------------------------------------- charts


def check_charts(kubernetes: str, pinned: Iterable[tuple[str, str]]) -> list[Finding]:
    """A warning per pinned component (name, version) whose tested Kubernetes range misses `kubernetes`;
    components `TESTED` does not list are not checked, a listed component at an unlisted minor is reported."""
    kv = _v(kubernetes)
    if kv is None:
        return []
    out: list[Finding] = []
    for name, version in pinned:
        pv = _v(version)
        lines = [t for t in TESTED if t.component == name]
        if pv is None or not lines:
            continue
        tested = next((t for t in lines if t.minor == _minor(pv)), None)
        if tested is None:
            out.append(
                _warn("charts", f"{name} {version}: no tested Kubernetes range recorded (versions.py TESTED)")
            )
        elif not tested.kubernetes[0] <= _minor(kv) <= tested.kubernetes[1]:
            out.append(
                _warn(
                    "charts",
                    f"{name} {version} is tested with Kubernetes {_span(tested.kubernetes)}, not "
                    f"{format_version(_minor(kv))} ({tested.source})",
                )
            )
    return out


# --------------------------------------------------------------------------- together


@dataclass(frozen=True)
class Verdict:
    """Every finding of one preflight."""

    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    def notes(self) -> tuple[str, ...]:
        """The warnings as plan notes."""
        return tuple(f"version warning: {f.field}: {f.message}" for f in self.warnings)

    def enforce(self, file: Path | str) -> tuple[str, ...]:
        """Raise every error at once (against the inventory `file`); otherwise return the warnings as notes."""
        if self.errors:
            raise ProblemsError(
                [Problem(str(file), f.field, f.message) for f in self.errors],
                hint='version preflight (README "Version preflight"): fix the versions in cluster.yaml or the '
                "tools, or take the upgrade path named above",
            )
        return self.notes()


def evaluate(
    *,
    talos: str,
    kubernetes: str | None,
    talosctl: Version | None = None,
    kubectl: Version | None = None,
    nodes: Mapping[str, str | None] | None = None,
    installer: str | None = None,
    k8s_from: str | None = None,
    kubelets: Mapping[str, str] | None = None,
    upgrade_k8s: bool = False,
    charts: Sequence[tuple[str, str]] = (),
) -> Verdict:
    """All rules that apply to what is known: `talos`/`kubernetes` are the versions the operation leads to
    (`kubernetes` None: an operation that installs nothing, e.g. a reboot or a reset, checks the clients only);
    `nodes` (running Talos by node) adds the Talos path rule; `upgrade_k8s` the Kubernetes path rule from
    `k8s_from` (the API server) and `kubelets`; `charts` (name, version) the tested-range warnings."""
    found: list[Finding] = []
    if talosctl is not None:
        found += check_talosctl(talosctl, talos)
    if nodes is not None:
        found += check_talos_upgrade(nodes, talos, installer=installer)
    if kubernetes is not None:
        if kubectl is not None:
            found += check_kubectl(kubectl, kubernetes)
        found += check_kubernetes_supported(talos, kubernetes)
        if upgrade_k8s:
            found += check_kubernetes_upgrade(k8s_from, kubernetes, kubelets)
        found += check_charts(kubernetes, charts)
    # One message per (severity, field, text): a bad version string is reported once however many rules saw it.
    return Verdict(tuple(dict.fromkeys(found)))
