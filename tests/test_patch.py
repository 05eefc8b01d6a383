"""talos.patch: Talos' strategic merge and `$patch: delete` rule by rule and against Talos' test data; JSON6902
patches are recognised and refused with Talos' multi-document message."""

from __future__ import annotations

from typing import Any

import pytest

from k8s_ops.core.paths import repo_root
from k8s_ops.talos.patch import (
    MULTIDOC_JSON6902_ERROR,
    DocumentID,
    JSONPatch,
    PatchError,
    StrategicPatch,
    apply_patches,
    document_id,
    find_go_template,
    load_config,
    load_patch,
    strategic_merge,
    strategic_patch,
)
from k8s_ops.talos.yamlio import YAMLError, load_documents

TESTDATA = repo_root().parent / "shared" / "reference" / "talos" / "configpatcher-testdata"
needs_testdata = pytest.mark.skipif(
    not TESTDATA.is_dir(), reason=f"Talos configpatcher test data not found at {TESTDATA} (../shared is absent)"
)


def patch(text: str) -> Any:
    return load_patch(text, "test-patch.yaml")


def apply(config: str, *patches: str) -> list[dict[str, Any]]:
    return apply_patches(load_config(config), [patch(p) for p in patches])


V1 = "version: v1alpha1\n"


# --- Talos' own cases (pkg/machinery/config/configpatcher/apply_test.go) ------------------------------------


def _zeroless(value: Any) -> Any:
    """Drop null/""/[]/{} values: Go's typed encoder writes zero values of non-omitempty fields
    (`machine.type: ""`, `certSANs: []`, `cluster: null`) that a dict-level merge does not invent."""
    if isinstance(value, dict):
        out = {k: _zeroless(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_zeroless(v) for v in value]
    return value


def _case(config: str, patches: list[str]) -> list[dict[str, Any]]:
    docs = load_config((TESTDATA / config).read_text())
    loaded = [load_patch((TESTDATA / p).read_text(), p) for p in patches]
    return apply_patches(docs, loaded)


def _expected(name: str) -> list[Any]:
    return [_zeroless(d) for d in load_documents((TESTDATA / name).read_text())]


@needs_testdata
@pytest.mark.parametrize(
    ("config", "patches", "expected"),
    [
        pytest.param(
            "multidoc/config.yaml",
            ["multidoc/strategic1.yaml", "multidoc/strategic2.yaml"],
            "multidoc/expected.yaml",
            id="TestApplyMultiDoc",
        ),
        pytest.param(
            "auditpolicy/config.yaml",
            ["auditpolicy/patch1.yaml"],
            "auditpolicy/expected.yaml",
            id="TestApplyAuditPolicy",
        ),
        pytest.param(
            "patchdelete/config.yaml",
            ["patchdelete/strategic1.yaml"],
            "patchdelete/expected.yaml",
            id="TestApplyMultiDocDelete",
        ),
        pytest.param(
            "patchdelete/controlplane_orig.yaml",
            ["patchdelete/strategic2.yaml", "patchdelete/strategic3.yaml", "patchdelete/strategic4.yaml"],
            "patchdelete/controlplane_expected.yaml",
            id="TestApplyMultiDocCPDelete",
        ),
        pytest.param("patchlink/base.yaml", ["patchlink/patch.yaml"], "patchlink/expected.yaml", id="TestPatchLink"),
    ],
)
def test_talos_configpatcher_cases(config: str, patches: list[str], expected: str) -> None:
    got = [_zeroless(d) for d in _case(config, patches)]
    assert got == _expected(expected)


@needs_testdata
def test_talos_multidoc_json6902_fails_with_talos_text() -> None:  # TestApplyMultiDocFail
    with pytest.raises(PatchError) as err:
        _case("multidoc/config.yaml", ["multidoc/jsonpatch.yaml", "multidoc/strategic1.yaml"])
    assert err.value.reason == "JSON6902 patches are not supported for multi-document machine configuration"
    assert err.value.origin == "multidoc/jsonpatch.yaml"


@needs_testdata
def test_talos_patch_delete_missing_fails_with_talos_text() -> None:  # TestPatchDeleteMissing
    with pytest.raises(PatchError) as err:
        _case("patchdeletemissing/config.yaml", ["patchdeletemissing/strategic1.yaml"])
    assert (
        "patch delete: path 'machine.network.hostname' in document '/v1alpha1': "
        "failed to delete path 'machine.network.hostname': lookup failed"
    ) in str(err.value)


@needs_testdata
def test_talos_patch_loading_kinds() -> None:  # load_test.go
    as_json = load_patch((TESTDATA / "patch.json").read_text())
    assert isinstance(as_json, JSONPatch)
    assert as_json.operations == ({"op": "add", "path": "/machine/certSANs", "value": ["foo.com"]},)
    as_yaml = load_patch((TESTDATA / "patch.yaml").read_text())
    assert isinstance(as_yaml, JSONPatch)
    assert as_yaml.operations == ({"op": "add", "path": "/some/path", "value": ["a", "b", "c"]},)
    strategic = load_patch((TESTDATA / "strategic.yaml").read_text())
    assert isinstance(strategic, StrategicPatch)
    assert strategic.steps == ({"machine": {"network": {"hostname": "foo.bar"}}},)


# --- documents ------------------------------------------------------------------------------------------------


def test_document_identity() -> None:
    assert document_id({"version": "v1alpha1", "machine": {}}) == DocumentID("", "v1alpha1")
    assert document_id({"machine": {}}) == DocumentID("", "v1alpha1")
    assert str(document_id({"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": "eth0"})) == (
        "v1alpha1/LinkConfig/eth0"
    )
    assert str(document_id({"apiVersion": "v1alpha1", "kind": "HostnameConfig"})) == "v1alpha1/HostnameConfig"
    with pytest.raises(PatchError, match="missing kind"):
        document_id({"apiVersion": "v1alpha1"})
    with pytest.raises(PatchError, match="missing kind"):
        document_id({"foo": 1})


def test_documents_are_matched_by_kind_and_name_and_new_ones_appended() -> None:
    config = (
        V1 + "machine: {type: worker}\n---\napiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\nmtu: 1500\n"
        "---\napiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n"
    )
    out = apply(
        config,
        "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth1\nmtu: 9000\n---\n"
        "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\nup: true\n---\n"
        "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: n1\nauto: 'off'\n",
    )
    assert [document_id(d) for d in out] == [
        DocumentID("", "v1alpha1"),
        DocumentID("v1alpha1", "LinkConfig", "eth0"),
        DocumentID("v1alpha1", "HostnameConfig"),
        DocumentID("v1alpha1", "LinkConfig", "eth1"),
    ]
    assert out[1] == {"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": "eth0", "mtu": 1500, "up": True}
    assert out[2]["auto"] == "off" and out[2]["hostname"] == "n1"


def test_duplicate_document_in_a_patch_is_an_error() -> None:
    with pytest.raises(PatchError, match="duplicate document v1alpha1/LinkConfig/eth0"):
        link = "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\n"
        patch(link + "---\n" + link)


# --- merge rules ----------------------------------------------------------------------------------------------


def test_mappings_merge_scalars_replace_and_null_changes_nothing() -> None:
    out = apply(
        V1 + "machine: {type: worker, kubelet: {image: a, extraArgs: {x: '1'}}}\n",
        "machine: {kubelet: {image: b, extraArgs: {y: '2'}}, type: null}\n",
    )
    assert out[0]["machine"] == {"type": "worker", "kubelet": {"image": "b", "extraArgs": {"x": "1", "y": "2"}}}


def test_lists_are_appended() -> None:
    out = apply(V1 + "machine: {certSANs: [a]}\n", "machine: {certSANs: [b, c]}\n", "machine: {certSANs: [d]}\n")
    assert out[0]["machine"]["certSANs"] == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (("cluster", "network", "podSubnets"), ["10.244.0.0/16"], ["10.42.0.0/16"]),
        (("cluster", "network", "serviceSubnets"), ["10.96.0.0/12"], ["10.43.0.0/16"]),
        (("cluster", "apiServer", "auditPolicy"), {"kind": "Policy", "rules": [{"level": "Metadata"}]}, {"rules": []}),
    ],
)
def test_merge_replace_fields_of_v1alpha1_are_replaced(path: tuple[str, ...], old: Any, new: Any) -> None:
    def nest(value: Any) -> dict[str, Any]:
        out: Any = value
        for key in reversed(path):
            out = {key: out}
        return dict(out)

    docs = [{"version": "v1alpha1", **nest(old)}]
    result = apply_patches(docs, [strategic_patch([nest(new)])])
    node: Any = result[0]
    for key in path:
        node = node[key]
    assert node == new


def test_network_rule_config_ingress_and_ports_are_replaced_other_lists_appended() -> None:
    rule = (
        "apiVersion: v1alpha1\nkind: NetworkRuleConfig\nname: kubelet\n"
        "portSelector: {ports: [10250], protocol: tcp}\ningress: [{subnet: 10.0.0.0/8}]\n"
    )
    out = apply(rule, rule.replace("10250", "10251").replace("10.0.0.0/8", "192.168.0.0/16"))
    assert out[0]["portSelector"] == {"ports": [10251], "protocol": "tcp"}
    assert out[0]["ingress"] == [{"subnet": "192.168.0.0/16"}]
    # the same list in another kind is appended
    other = apply(
        "apiVersion: v1alpha1\nkind: Other\nname: x\ningress: [1]\n",
        "apiVersion: v1alpha1\nkind: Other\nname: x\ningress: [2]\n",
    )
    assert other[0]["ingress"] == [1, 2]


def test_interfaces_merge_by_interface_or_device_selector_and_vlans_by_id() -> None:
    config = V1 + (
        "machine:\n  network:\n    interfaces:\n"
        "      - {interface: eth0, dhcp: true, vlans: [{vlanId: 10, addresses: [a]}]}\n"
        "      - {deviceSelector: {driver: i40e}, mtu: 1500}\n"
    )
    out = apply(
        config,
        "machine:\n  network:\n    interfaces:\n"
        "      - {interface: eth0, dhcp: false, vlans: [{vlanId: 10, addresses: [b]}, {vlanId: 11}]}\n"
        "      - {deviceSelector: {driver: i40e}, mtu: 9000}\n"
        "      - {interface: eth1}\n",
    )
    assert out[0]["machine"]["network"]["interfaces"] == [
        {"interface": "eth0", "dhcp": False, "vlans": [{"vlanId": 10, "addresses": ["a", "b"]}, {"vlanId": 11}]},
        {"deviceSelector": {"driver": "i40e"}, "mtu": 9000},
        {"interface": "eth1"},
    ]


def test_admission_control_merges_by_name() -> None:
    config = V1 + "cluster:\n  apiServer:\n    admissionControl:\n      - {name: PodSecurity, configuration: {a: 1}}\n"
    out = apply(
        config,
        "cluster:\n  apiServer:\n    admissionControl:\n"
        "      - {name: PodSecurity, configuration: {b: 2}}\n      - {name: Other}\n",
    )
    assert out[0]["cluster"]["apiServer"]["admissionControl"] == [
        {"name": "PodSecurity", "configuration": {"a": 1, "b": 2}},
        {"name": "Other"},
    ]


def test_extension_service_config_files_merge_by_mount_path() -> None:
    base = "apiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: foo\n"
    out = apply(
        base + "configFiles: [{content: a, mountPath: /etc/a}]\n",
        base + "configFiles: [{content: b, mountPath: /etc/a}, {content: c, mountPath: /etc/c}]\n",
    )
    assert out[0]["configFiles"] == [{"content": "b", "mountPath": "/etc/a"}, {"content": "c", "mountPath": "/etc/c"}]


def test_type_mismatch_is_an_error_naming_the_path() -> None:
    with pytest.raises(PatchError, match=r"cannot merge a list into a mapping at 'machine.kubelet'"):
        apply(V1 + "machine: {kubelet: {image: a}}\n", "machine: {kubelet: [x]}\n")
    with pytest.raises(PatchError, match=r"cannot merge a mapping into a list at 'machine.certSANs'"):
        apply(V1 + "machine: {certSANs: [a]}\n", "machine: {certSANs: {a: b}}\n")


def test_inputs_and_patches_are_never_modified() -> None:
    docs = load_config(V1 + "machine: {certSANs: [a], network: {interfaces: [{interface: eth0}]}}\n")
    p = patch("machine: {certSANs: [b], network: {interfaces: [{interface: eth0, mtu: 9000}]}}\n")
    first = apply_patches(docs, [p])
    first[0]["machine"]["certSANs"].append("mutated")
    first[0]["machine"]["network"]["interfaces"][0]["mtu"] = 1
    second = apply_patches(docs, [p])
    assert docs[0]["machine"] == {"certSANs": ["a"], "network": {"interfaces": [{"interface": "eth0"}]}}
    assert second[0]["machine"]["certSANs"] == ["a", "b"]
    assert second[0]["machine"]["network"]["interfaces"] == [{"interface": "eth0", "mtu": 9000}]
    assert isinstance(p, StrategicPatch)
    assert strategic_merge(docs, p) == second


# --- $patch: delete --------------------------------------------------------------------------------------------


def test_delete_a_document() -> None:
    config = V1 + "machine: {}\n---\napiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\n"
    out = apply(config, "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\n$patch: delete\n")
    assert out == [{"version": "v1alpha1", "machine": {}}]


def test_delete_a_missing_document_is_an_error() -> None:
    with pytest.raises(PatchError, match="document 'v1alpha1/LinkConfig/eth9' not found"):
        apply(V1 + "machine: {}\n", "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth9\n$patch: delete\n")


def test_the_v1alpha1_document_cannot_be_deleted() -> None:
    with pytest.raises(PatchError, match="can't delete the root of the legacy document"):
        apply(V1 + "machine: {}\n", V1 + "$patch: delete\n")


def test_delete_a_key_then_merge_the_rest_of_the_document() -> None:
    out = apply(
        V1 + "machine: {nodeLabels: {a: '1', b: '2'}, certSANs: [x]}\n",
        "machine:\n  nodeLabels:\n    a: {$patch: delete}\n    c: '3'\n",
    )
    assert out[0]["machine"] == {"nodeLabels": {"b": "2", "c": "3"}, "certSANs": ["x"]}


def test_delete_a_list_item_by_its_first_key() -> None:
    config = (
        "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\n"
        "addresses: [{address: 10.0.0.1/24}, {address: 10.0.0.2/24}]\nroutes: [{gateway: 10.0.0.254, metric: 10}]\n"
    )
    out = apply(
        config,
        "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\n"
        "addresses: [{address: 10.0.0.1/24, $patch: delete}, {address: 10.0.0.3/24}]\n"
        "routes: [{metric: 10, $patch: delete}]\n",
    )
    assert out[0]["addresses"] == [{"address": "10.0.0.2/24"}, {"address": "10.0.0.3/24"}]
    assert "routes" not in out[0] or out[0]["routes"] == []


def test_delete_of_an_absent_key_or_item_fails_with_lookup_failed() -> None:
    named = r"named patch delete: document v1alpha1/LinkConfig: .*'addresses\.\[0\]'.*lookup failed"
    with pytest.raises(PatchError, match=named):
        apply(
            "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\naddresses: [{address: a}]\n",
            "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\naddresses: [{address: b, $patch: delete}]\n",
        )
    with pytest.raises(PatchError, match=r"path 'machine\.nodeLabels\.zzz' in document '/v1alpha1'.*lookup failed"):
        apply(V1 + "machine: {nodeLabels: {a: '1'}}\n", "machine: {nodeLabels: {zzz: {$patch: delete}}}\n")


def test_delete_inside_a_list_item_is_refused_like_talos() -> None:
    with pytest.raises(PatchError, match=r"cannot delete an inner key in 'machine\.network\.interfaces\.\[0\]\.mtu'"):
        patch("machine:\n  network:\n    interfaces:\n      - interface: eth0\n        mtu: {$patch: delete}\n")


def test_only_delete_is_a_known_directive() -> None:
    with pytest.raises(PatchError, match=r"unsupported directive `\$patch: replace`"):
        patch("machine:\n  certSANs:\n    $patch: replace\n")


# --- JSON6902 --------------------------------------------------------------------------------------------------


def test_json6902_on_a_multi_document_config_fails_with_talos_text() -> None:
    config = V1 + "machine: {}\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n"
    with pytest.raises(PatchError) as err:
        apply(config, "- {op: add, path: /machine/certSANs, value: [a]}\n")
    assert err.value.reason == MULTIDOC_JSON6902_ERROR
    assert err.value.origin == "test-patch.yaml"
    assert err.value.hint and "strategic merge" in err.value.hint


def test_json6902_is_refused_even_on_a_single_document() -> None:
    with pytest.raises(PatchError) as err:
        apply(V1 + "machine: {}\n", "- {op: add, path: /machine/certSANs, value: [a]}\n")
    assert err.value.reason == MULTIDOC_JSON6902_ERROR


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {op: frobnicate, path: /a}\n", "unknown op 'frobnicate'"),
        ("- {op: add, value: 1}\n", "missing path"),
        ("- {op: add, path: /a}\n", "add needs a value"),
        ("- {op: move, path: /a}\n", "move needs from"),
        ("- just a string\n", "is not a mapping"),
    ],
)
def test_malformed_json6902_is_rejected_when_loaded(text: str, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        patch(text)


# --- loading -----------------------------------------------------------------------------------------------


def test_go_templates_are_rejected_with_their_line() -> None:
    text = (
        "machine:\n  logging:\n    destinations:\n"
        "      - endpoint: '{{ .MachineConfig.MachineNetwork.NetworkHostname }}'\n"
    )
    with pytest.raises(PatchError) as err:
        patch(text)
    assert "Go template syntax" in err.value.reason and err.value.line == 4
    assert find_go_template("a: {{ if ne .MachineConfig.MachineType \"worker\" }}\n") == 1
    assert find_go_template("a: {{- range .ClusterConfig.ClusterNetwork.ServiceSubnet }}\n") == 1
    assert find_go_template("a: {{ node.hostname }}\nb: {{ vars.X | default('y') }}\n") is None
    assert find_go_template("a: {{ range(3) | list }}\nb: {{ endpoint }}\n") is None  # jinja, not Go
    assert find_go_template("a: x\n{{ end }}\n") == 2
    assert find_go_template("a: |\n  {% raw %}{{ .Status }}{% endraw %}\nb: {{ .X }}\n") == 3


def test_empty_patch_is_a_no_op() -> None:
    out = apply(V1 + "machine: {a: 1}\n", "# nothing for this node\n")
    assert out == [{"version": "v1alpha1", "machine": {"a": 1}}]


def test_yaml_errors_carry_the_line() -> None:
    with pytest.raises(PatchError) as err:
        patch("machine:\n  a: [1\n")
    assert err.value.origin == "test-patch.yaml" and err.value.line == 3


def test_patch_yaml_is_read_as_yaml_1_2_like_talos() -> None:
    p = patch("apiVersion: v1alpha1\nkind: HostnameConfig\nauto: off\nhostname: yes\n")
    assert isinstance(p, StrategicPatch)
    assert p.steps == ({"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "off", "hostname": "yes"},)
    with pytest.raises(YAMLError, match="duplicate key 'a'"):
        load_documents("a: 1\na: 2\n")
    assert load_documents("mac: 10:20:30:40:50:59\nn: 0x1f\nf: 1.5\nt: true\nz: ~\n") == [
        {"mac": "10:20:30:40:50:59", "n": 31, "f": 1.5, "t": True, "z": None}
    ]


def test_merge_keys_merge_like_go_yaml_v3() -> None:
    assert load_documents("a: &x {p: 1, q: 2}\nb:\n  <<: *x\n  q: 3\n") == [
        {"a": {"p": 1, "q": 2}, "b": {"p": 1, "q": 3}}
    ]


def test_a_scalar_document_is_not_a_patch() -> None:
    with pytest.raises(PatchError, match="neither a mapping"):
        patch("machine: {}\n---\n- a\n")


def test_load_config_requires_unique_mapping_documents() -> None:
    with pytest.raises(PatchError, match="document 1 is not a mapping"):
        load_config("- a\n", "x.yaml")
    with pytest.raises(PatchError, match="duplicate document v1alpha1/HostnameConfig"):
        load_config("apiVersion: v1alpha1\nkind: HostnameConfig\n---\napiVersion: v1alpha1\nkind: HostnameConfig\n")
