"""Render each node's Talos v1.12 machine config from the inventory and the secrets bundle. Pure: no writes.

Pipeline for one node (steps 2 and 3 are strategic merges with `k8s_ops.talos.patch`, the engine user patches use):

1. role template `templates/<role>.yaml.j2`: exactly what `talosctl gen config --talos-version v1.12` writes for
   the cluster name, API URL, Kubernetes version, DNS domain, pod/service subnets and secrets bundle
   (checked field by field against Talos' golden output in tests/test_render_fidelity.py);
2. the inventory's choices (`inventory_documents`): install image (Image Factory schematic) and disk, CNI none,
   kube-proxy and CoreDNS disabled, certSANs, node labels/annotations/taints, HostnameConfig, ResolverConfig,
   TimeSyncConfig, link documents (LinkAliasConfig/BondConfig/LinkConfig/VLANConfig/DHCPv4Config),
   Layer2VIPConfig (control planes), UserVolumeConfig;
3. patch files, in `Cluster.node_patches` order: cluster-wide, role group, node. Each file is a jinja2 template
   (StrictUndefined; context `cluster`, `node`, `vars`) rendered per node in the sandbox of `k8s_ops.talos.sandbox`
   (no methods or internals, bounded work, size and time), then applied as a strategic merge (a JSON6902 patch is
   refused with Talos' multi-document message). A patch that is (or links to) the SOPS secrets bundle, or renders
   SOPS ciphertext, is refused before anything is merged.

Output is written by `k8s_ops.talos.yamlio.dump_documents` (its narrow emitter writes byte for byte what the PyYAML
dumper writes, at a fraction of the cost).

Problems (template errors, undefined variables, bad patches) are collected over all nodes and raised together
as one ProblemsError naming the file (and line where known). Talos' own validation rules (`k8s_ops.talos.config_rules`,
as `talosctl validate --mode metal --strict` applies them) run after the inventory's documents and after each
patch; a rule broken at a step is reported against that step's file (cluster.yaml or the patch), so no config
Talos would refuse is ever written.
"""

from __future__ import annotations

import functools
import json
import re
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jinja2
from jinja2.exceptions import SecurityError

from k8s_ops.core.errors import Problem, ProblemsError
from k8s_ops.talos.patch import (
    Patch,
    PatchError,
    apply_patches,
    find_go_template,
    load_config,
    load_patch,
    strategic_patch,
)
from k8s_ops.talos.sandbox import PatchTemplateError, compile_patch, render_patch
from k8s_ops.talos.yamlio import YAMLError, dump_documents, read_text

if TYPE_CHECKING:
    from k8s_ops.talos.inventory import Bond, Cluster, DeviceSelector, Interface, Node, Route, UserVolume
    from k8s_ops.talos.secrets import SecretsBundle

__all__ = [
    "DNS_DOMAIN",
    "TEMPLATES_DIR",
    "GeneratorInput",
    "RenderedConfig",
    "cert_sans",
    "generator_documents",
    "inventory_documents",
    "link_selector",
    "render_cluster",
    "render_node",
]

Document = dict[str, Any]
Role = Literal["controlplane", "worker"]

TEMPLATES_DIR = Path(__file__).with_name("templates")
#: Kubernetes' cluster DNS domain. The inventory's `domain` is the apps domain (CLUSTER_DOMAIN for ingress);
#: CoreDNS (k8s_ops/bootstrap/values/coredns.yaml.j2) and Flux serve `cluster.local`, so the config must say the same.
DNS_DOMAIN = "cluster.local"
_API = "v1alpha1"


@dataclass(frozen=True)
class RenderedConfig:
    """One node's machine config: the YAML bytes written to `<hostname>.yaml` and the parsed documents."""

    hostname: str
    text: bytes
    documents: list[Document] = field(repr=False)
    role: str = ""
    address: str = ""

    @property
    def file_name(self) -> str:
        return f"{self.hostname}.yaml"

    def __repr__(self) -> str:  # never the text: it holds secrets
        return f"RenderedConfig(hostname={self.hostname!r}, role={self.role!r}, {len(self.text)} bytes)"


@dataclass(frozen=True)
class GeneratorInput:
    """What Talos' generator takes (`generate.NewInput(name, endpoint, kubernetesVersion, …)`)."""

    cluster_name: str
    endpoint: str
    kubernetes_version: str
    dns_domain: str = DNS_DOMAIN
    pod_subnets: tuple[str, ...] = ("10.244.0.0/16",)
    service_subnets: tuple[str, ...] = ("10.96.0.0/12",)

    @classmethod
    def for_cluster(cls, cluster: Cluster) -> GeneratorInput:
        return cls(
            cluster_name=cluster.name,
            endpoint=cluster.api_url,
            kubernetes_version=cluster.kubernetes_version,
            pod_subnets=(str(cluster.network.pod_cidr),),
            service_subnets=(str(cluster.network.service_cidr),),
        )


# --- templates -------------------------------------------------------------------------------------------


def _yaml_scalar(value: Any) -> str:
    """A value as a YAML flow scalar/collection: JSON is YAML, and quoting stops any value changing structure."""
    return json.dumps(value, default=str)


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["y"] = _yaml_scalar
    return env


def _kubernetes_tag(version: str) -> str:
    return "v" + version.removeprefix("v")


def generator_documents(role: Role, inp: GeneratorInput, secrets: Mapping[str, Any]) -> list[Document]:
    """The documents `talosctl gen config --talos-version v1.12 --with-secrets` writes for `role`."""
    text = (
        _environment()
        .get_template(f"{role}.yaml.j2")
        .render(
            secrets=secrets,
            cluster_name=inp.cluster_name,
            endpoint=inp.endpoint,
            kubernetes_tag=_kubernetes_tag(inp.kubernetes_version),
            dns_domain=inp.dns_domain,
            pod_subnets=list(inp.pod_subnets),
            service_subnets=list(inp.service_subnets),
        )
    )
    return load_config(text, origin=str(TEMPLATES_DIR / f"{role}.yaml.j2"))


# --- the inventory's documents ----------------------------------------------------------------------------


# Talos warns "miimon/updelay/downdelay was not specified for 802.3ad bond" (and `talosctl validate --strict`
# reports it) unless all three are set; its own BondConfig example uses these values (siderolabs/talos v1.12.11
# pkg/machinery/config/types/network/bond.go, validateFor8023AD and exampleBondConfigV1Alpha1).
_LACP_TIMERS = {"miimon": 100, "updelay": 200, "downdelay": 200}


def _bond_timers(bond: Bond) -> dict[str, int | None]:
    """The bond's link-monitoring timers: the inventory's, else Talos' example values for an 802.3ad bond."""
    given = {"miimon": bond.miimon, "updelay": bond.updelay, "downdelay": bond.downdelay}
    if bond.mode != "802.3ad":
        return given
    return {k: _LACP_TIMERS[k] if v is None else v for k, v in given.items()}


def _doc(kind: str, **fields: Any) -> Document:
    return {"apiVersion": _API, "kind": kind, **{k: v for k, v in fields.items() if v is not None}}


def cert_sans(cluster: Cluster) -> list[str]:
    """API VIP, then every control-plane address: the names clients use for the Kubernetes and Talos APIs."""
    return list(dict.fromkeys([str(cluster.endpoint), *(str(n.address) for n in cluster.controlplanes)]))


def _taints(node: Node, cluster: Cluster) -> tuple[dict[str, str], list[str]]:
    # Talos keys nodeTaints by taint key ("key: value:Effect" or "key: Effect"), so one key holds one taint.
    out: dict[str, str] = {}
    errors: list[str] = []
    for t in cluster.node_taints(node):
        if t.key in out:
            errors.append(f"taints: Talos holds one taint per key; {t.key!r} is given twice ({t} and {out[t.key]})")
            continue
        out[t.key] = f"{t.value}:{t.effect}" if t.value else t.effect
    return out, errors


def _main_overlay(cluster: Cluster, node: Node) -> Document:
    from k8s_ops.talos.schematic import installer_image_for, schematic_for

    controlplane = node.role == "controlplane"
    machine: Document = {}
    if controlplane:
        machine["certSANs"] = cert_sans(cluster)
    # a canary's own talosVersion: its config installs (and apply-cluster carries) the version it was upgraded to
    image = installer_image_for(schematic_for(cluster), node.talos_version or cluster.talos_version)
    install: Document = {"image": image}
    if isinstance(node.install_disk, str):
        install["disk"] = node.install_disk
    else:
        install["diskSelector"] = node.install_disk.to_talos()
    machine["install"] = install
    labels = cluster.node_labels(node)
    if labels:
        machine["nodeLabels"] = dict(labels)
    annotations = cluster.node_annotations(node)
    if annotations:
        machine["nodeAnnotations"] = dict(annotations)
    taints, _ = _taints(node, cluster)
    if taints:
        machine["nodeTaints"] = taints
    kube: Document = {
        # Cilium is the CNI and replaces kube-proxy; CoreDNS is installed by Helm at bootstrap.
        "network": {"cni": {"name": "none"}},
        "proxy": {"disabled": True},
        "coreDNS": {"disabled": True},
    }
    if controlplane:
        kube["apiServer"] = {"certSANs": cert_sans(cluster)}
    if cluster.allow_scheduling_on_control_planes:
        kube["allowSchedulingOnControlPlanes"] = True
    return {"version": "v1alpha1", "machine": machine, "cluster": kube}


def _cel_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid CEL string literal


def link_selector(sel: DeviceSelector, *, bond_member: bool) -> str:
    """The CEL `selector.match` of a LinkAliasConfig for a device selector (talhelper's translation).

    A bond member's `hardwareAddr` is matched against the permanent address: enslaving rewrites the member's
    current address to the bond's, and Talos re-evaluates selectors when links change.
    """
    conds: list[str] = []
    if sel.hardware_addr:
        attr = "permanent_addr" if bond_member else "hardware_addr"
        conds.append(f"glob({_cel_string(sel.hardware_addr.lower())}, mac(link.{attr}))")
    if sel.permanent_addr:
        conds.append(f"glob({_cel_string(sel.permanent_addr.lower())}, mac(link.permanent_addr))")
    if sel.bus_path:
        conds.append(f"glob({_cel_string(sel.bus_path)}, link.bus_path)")
    if sel.driver:
        conds.append(f"glob({_cel_string(sel.driver)}, link.driver)")
    if sel.pci_id:
        conds.append(f"glob({_cel_string(sel.pci_id)}, link.pciid)")
    if sel.physical is not None:
        conds.append("link.type == 1" if sel.physical else "link.type != 1")
    return " && ".join(conds)


def _route(route: Route) -> Document:
    out: Document = {}
    net = route.network
    if net.prefixlen != 0:  # no destination = the default route of the gateway's family
        out["destination"] = str(net)
    if route.gateway is not None:
        out["gateway"] = str(route.gateway)
    if route.metric is not None:
        out["metric"] = route.metric
    return out


def _addressing(addresses: Iterable[Any] | None, routes: Iterable[Route] | None) -> Document:
    out: Document = {}
    addrs = [{"address": str(a)} for a in addresses or ()]
    if addrs:
        out["addresses"] = addrs
    rts = [_route(r) for r in routes or ()]
    if rts:
        out["routes"] = rts
    return out


def _interface_documents(itf: Interface) -> list[Document]:
    docs: list[Document] = []
    body = {"up": True, "mtu": itf.mtu, **_addressing(itf.addresses, itf.routes)}
    if itf.bond is not None:
        bond = itf.bond
        links: list[str] = []
        for i, member in enumerate(bond.members):
            if isinstance(member, str):
                links.append(member)
                continue
            alias = f"{itf.name}-m{i}"
            match = link_selector(member, bond_member=True)
            docs.append(_doc("LinkAliasConfig", name=alias, selector={"match": match}))
            links.append(alias)
        docs.append(
            _doc(
                "BondConfig",
                name=itf.name,
                links=links,
                bondMode=bond.mode,
                **_bond_timers(bond),
                xmitHashPolicy=bond.xmit_hash_policy,
                lacpRate=bond.lacp_rate,
                **body,
            )
        )
    else:
        if itf.device_selector is not None:
            match = link_selector(itf.device_selector, bond_member=False)
            docs.append(_doc("LinkAliasConfig", name=itf.name, selector={"match": match}))
        docs.append(_doc("LinkConfig", name=itf.name, **body))
    if itf.dhcp:
        docs.append(_doc("DHCPv4Config", name=itf.name))
    for vlan in itf.vlans:
        name = itf.vlan_name(vlan)
        docs.append(
            _doc(
                "VLANConfig",
                name=name,
                vlanID=vlan.id,
                parent=itf.name,
                up=True,
                mtu=vlan.mtu,
                **_addressing(vlan.addresses, vlan.routes),
            )
        )
        if vlan.dhcp:
            docs.append(_doc("DHCPv4Config", name=name))
    return docs


def _user_volume(vol: UserVolume) -> Document:
    provisioning: Document = {"diskSelector": {"match": vol.match}}
    for key, value in (("minSize", vol.min_size), ("maxSize", vol.max_size), ("grow", vol.grow)):
        if value is not None:
            provisioning[key] = value
    return _doc("UserVolumeConfig", name=vol.name, provisioning=provisioning, filesystem={"type": vol.filesystem})


def inventory_documents(cluster: Cluster, node: Node) -> list[Document]:
    """The inventory's settings for `node`, as strategic-merge documents over the generator's output.

    Never the legacy `machine.network.*` fields: hostname, resolvers and links are v1.12 documents.
    """
    docs: list[Document] = [
        _main_overlay(cluster, node),
        _doc("HostnameConfig", hostname=node.hostname, auto="off"),
        _doc("ResolverConfig", nameservers=[{"address": str(ns)} for ns in cluster.network.nameservers]),
    ]
    if cluster.network.timeservers:
        docs.append(_doc("TimeSyncConfig", ntp={"servers": list(cluster.network.timeservers)}))
    for itf in cluster.node_interfaces(node):
        docs.extend(_interface_documents(itf))
    link = cluster.primary_link(node)
    if node.role == "controlplane" and link is not None:
        docs.append(_doc("Layer2VIPConfig", name=str(cluster.endpoint), link=link))
    docs.extend(_user_volume(v) for v in node.volumes)
    return docs


def _inventory_problems(cluster: Cluster, node: Node) -> list[Problem]:
    where = str(cluster.file)
    out = [Problem(where, f"nodes[{node.hostname}]", msg) for msg in _taints(node, cluster)[1]]
    if node.role == "controlplane" and cluster.primary_link(node) is None:
        out.append(
            Problem(
                where,
                f"nodes[{node.hostname}].interfaces",
                "a controlplane needs an interface: the API VIP "
                f"{cluster.endpoint} (Layer2VIPConfig) is placed on the link that carries the node address",
            )
        )
    return out


# --- patches ---------------------------------------------------------------------------------------------


_SOPS_CIPHERTEXT = re.compile(r"ENC\[[A-Z0-9_]+,data:")
_SOPS_METADATA = re.compile(r"^sops:\s*$", re.M)


def _template_line(exc: BaseException, filename: str) -> int | None:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == filename:
            return frame.lineno
    return None


class _Renderer:
    """Renders nodes of one cluster; caches what does not depend on the node (role bases, compiled patches)."""

    def __init__(self, cluster: Cluster, bundle: SecretsBundle, *, check_rules: bool = True) -> None:
        from k8s_ops.talos.inventory import cluster_vars

        self.cluster = cluster
        self.check_rules = check_rules
        self.bundle = bundle
        self.vars = cluster_vars(cluster)
        self._bases: dict[str, list[Document]] = {}
        self._templates: dict[Path, jinja2.Template | Problem] = {}
        self._patches: dict[tuple[str, str], Patch | Problem] = {}

    def _base(self, role: Role) -> list[Document]:
        if role not in self._bases:
            self._bases[role] = generator_documents(role, GeneratorInput.for_cluster(self.cluster), self.bundle.data)
        return self._bases[role]

    def _template(self, path: Path) -> jinja2.Template | Problem:
        cached = self._templates.get(path)
        if cached is not None:
            return cached
        result: jinja2.Template | Problem
        refused = self._sops_problem(path, None)
        if refused is not None:
            self._templates[path] = refused
            return refused
        try:
            source = read_text(path)  # bounded: regular files only, size cap (a FIFO must not hang a review)
        except YAMLError as exc:
            result = Problem(str(path), "", f"cannot read patch file: {exc}", exc.line)
        except OSError as exc:
            result = Problem(str(path), "", f"cannot read patch file: {exc}")
        else:
            line = find_go_template(source)
            if line is not None:
                result = Problem(
                    str(path),
                    "",
                    "Go template syntax ({{ .MachineConfig… }}, {{ if … }}) is not supported: patch files are "
                    "jinja2 templates with `cluster`, `node` and `vars` (e.g. {{ node.hostname }}); "
                    "wrap literal {{ }} text in {% raw %}…{% endraw %}",
                    line,
                )
            else:
                try:
                    result = compile_patch(source, str(path))
                except jinja2.TemplateSyntaxError as exc:
                    result = Problem(str(path), "", f"jinja2 syntax error: {exc.message}", exc.lineno)
        self._templates[path] = result
        return result

    def _sops_problem(self, path: Path, text: str | None) -> Problem | None:
        """A patch that is (or links to) the SOPS secrets bundle, or renders SOPS ciphertext, is refused."""
        if text is None:
            try:
                same = path.resolve() == self.cluster.secrets_file.resolve()
            except OSError:
                same = False
            if same:
                return Problem(
                    str(path),
                    "",
                    f"this patch is the SOPS-encrypted secrets bundle ({self.cluster.secrets_file}); it must never "
                    "be merged into a machine config — remove it from the patches",
                )
            return None
        if _SOPS_CIPHERTEXT.search(text) or _SOPS_METADATA.search(text):
            return Problem(
                str(path),
                "",
                "this patch is a SOPS-encrypted file (it holds ENC[…] ciphertext or `sops:` metadata); encrypted "
                "data must never be merged into a machine config — remove it from the patches",
            )
        return None

    def _patch(self, path: Path, node: Node) -> Patch | Problem:
        template = self._template(path)
        if isinstance(template, Problem):
            return template
        try:
            text = render_patch(template, {"cluster": self.cluster, "node": node, "vars": self.vars})
        except (PatchTemplateError, SecurityError) as exc:
            return Problem(
                str(path),
                "",
                f"refused by the patch sandbox: {exc} (rendering for node {node.hostname})",
                _template_line(exc, str(path)),
            )
        except RecursionError:
            return Problem(str(path), "", f"template recursion is too deep (rendering for node {node.hostname})", None)
        except jinja2.UndefinedError as exc:
            return Problem(
                str(path),
                "",
                f"undefined variable: {exc.message} (rendering for node {node.hostname}; "
                "the context is `cluster`, `node` and `vars`)",
                _template_line(exc, str(path)),
            )
        except Exception as exc:  # a template is user input: any failure in it is a problem of that file
            return Problem(
                str(path),
                "",
                f"template error: {type(exc).__name__}: {exc} (rendering for node {node.hostname})",
                _template_line(exc, str(path)),
            )
        refused = self._sops_problem(path, text)
        if refused is not None:
            return refused
        key = (str(path), text)
        cached = self._patches.get(key)
        if cached is None:
            try:
                cached = load_patch(text, str(path), reject_go_templates=False)
            except PatchError as exc:
                cached = Problem(str(path), "", exc.reason, exc.line)
            self._patches[key] = cached
        return cached

    def _apply_validated(self, node: Node, patches: Sequence[Patch]) -> list[Document]:
        """Apply the inventory's documents, then each patch, checking Talos' rules after every step.

        A finding is blamed on the step that introduced it: the inventory (cluster.yaml) for what its documents
        already break, else the first patch file after which it appears. Every finding of the node is raised at
        once, so a node Talos would refuse (`talosctl validate --strict`, ApplyConfiguration) is never written.
        """
        from k8s_ops.talos.config_rules import errors_of, validate_documents

        if not self.check_rules:
            return apply_patches(self._base(node.role), patches)

        def key(f: Any) -> tuple[str, str, str]:
            return (f.document, f.field, f.text)

        docs = list(self._base(node.role))
        seen: set[tuple[str, str, str]] = set()
        problems: list[Problem] = []
        for patch in patches:
            docs = apply_patches(docs, [patch])
            for finding in errors_of(validate_documents(docs, mode="metal", strict=True)):
                if key(finding) in seen:
                    continue
                seen.add(key(finding))
                where = f"{finding.document} {finding.field}".strip()
                message = f"{finding.text} (node {node.hostname}: Talos refuses this config)"
                problems.append(Problem(patch.origin, where, message))
        if problems:
            raise ProblemsError(problems)
        return docs

    def render(self, node: Node) -> RenderedConfig:
        problems = _inventory_problems(self.cluster, node)
        patches: list[Patch] = [strategic_patch(inventory_documents(self.cluster, node), str(self.cluster.file))]
        for path in self.cluster.patch_files(node):
            patch = self._patch(path, node)
            if isinstance(patch, Problem):
                problems.append(patch)
            else:
                patches.append(patch)
        if problems:
            raise ProblemsError(problems)
        try:
            docs = self._apply_validated(node, patches)
        except PatchError as exc:
            message = f"{exc.reason} (node {node.hostname})"
            if exc.hint:
                message += f"; {exc.hint}"
            raise ProblemsError([Problem(exc.origin, "", message)]) from None
        header = (
            f"# Talos machine config of {node.hostname} ({node.role}, cluster {self.cluster.name}),\n"
            "# rendered by k8s-ops `invoke talos.render`: edit the inventory and patches, not this file.\n"
        )
        text = (header + dump_documents(docs)).encode()
        return RenderedConfig(node.hostname, text, docs, node.role, str(node.address))


def render_node(cluster: Cluster, node: Node, bundle: SecretsBundle, *, check_rules: bool = True) -> RenderedConfig:
    """Render one node's config; ProblemsError naming every bad template/patch file and every Talos rule broken."""
    return _Renderer(cluster, bundle, check_rules=check_rules).render(node)


def render_cluster(
    cluster: Cluster, bundle: SecretsBundle, nodes: Sequence[str] | None = None, *, check_rules: bool = True
) -> list[RenderedConfig]:
    """Render `nodes` (hostnames or addresses; default: every node, in inventory order).

    All nodes are rendered before anything is returned; the problems of every node are raised together.
    An unknown node name is a ProblemsError listing the known nodes. `check_rules=False` skips Talos' rules
    (`talos.validate` runs them as one of its layers, next to the schema, so it reports every layer at once).
    """
    targets = cluster.nodes if nodes is None else tuple(cluster.node(n) for n in nodes)
    renderer = _Renderer(cluster, bundle, check_rules=check_rules)
    results: list[RenderedConfig] = []
    problems: list[Problem] = []
    for node in targets:
        try:
            results.append(renderer.render(node))
        except ProblemsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ProblemsError(list(dict.fromkeys(problems)))
    return results
