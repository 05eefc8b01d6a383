"""Talos-compatible patching of multi-document machine configs: strategic merge and `$patch: delete`.

A re-implementation, on plain dicts, of siderolabs/talos v1.12 `pkg/machinery/config/configpatcher` (Apply,
StrategicMerge), `config/merge` and the `$patch: delete` selectors of `configloader/.../decoder`.
It is checked against Talos' own test data (`configpatcher-testdata/`, see tests/test_patch.py).

Rules (the README's "Merge rules" section is written from this list):

* Documents are matched by (apiVersion, kind, name); the v1alpha1 document is `/v1alpha1` (no apiVersion,
  no kind). A patch document without a match is appended at the end; a matched one is merged into it.
* Mappings merge key by key; a scalar in the patch replaces the old one; `null` in a patch changes nothing.
* Lists are appended (patch items after the existing ones), except:
  - replaced as a whole (Go tag `merge:"replace"`): `cluster.network.podSubnets`, `cluster.network.serviceSubnets`,
    `cluster.apiServer.auditPolicy`; NetworkRuleConfig `ingress` and `portSelector.ports`;
  - merged item by item on a key (Go `Merge` methods): `machine.network.interfaces` by `interface` (or equal
    `deviceSelector`), their `vlans` by `vlanId`, `cluster.apiServer.admissionControl` by `name`,
    ExtensionServiceConfig `configFiles` by `mountPath`. Unmatched items are appended.
* `$patch: delete` removes a whole document (`apiVersion`+`kind`[+`name`] + `$patch: delete`), a key
  (`key: {$patch: delete}`) or a list item (`- {<field>: <value>, $patch: delete}`: the first item whose
  `<field>` equals `<value>`; `<field>` is the item's first key). Within one patch document the deletes run
  first, then the rest merges. Deleting something that is not there is an error (Talos: "lookup failed").
* A JSON6902 patch (a YAML/JSON list of `op`s) is recognised and refused with Talos' error text: Talos applies
  one only to a single-document config, and every v1.12 config the renderer produces has several documents.

Deliberate differences from Talos: an explicit `""`/`0` in a patch replaces the old value (Talos' typed merge
ignores zero values of non-pointer fields); deleting an absent key is always an error (Talos ignores absent
struct fields but not absent map keys); a delete for a missing document is an error (Talos appends the
selector); list items are matched for delete on any scalar field (Talos only on string-like struct fields).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from k8s_ops.core.errors import ToolkitError
from k8s_ops.talos.yamlio import YAMLError, load_documents

__all__ = [
    "MULTIDOC_JSON6902_ERROR",
    "DocumentID",
    "JSONPatch",
    "Patch",
    "PatchError",
    "StrategicPatch",
    "apply_patches",
    "document_id",
    "find_go_template",
    "load_config",
    "load_patch",
    "strategic_merge",
    "strategic_patch",
]

Document = dict[str, Any]

MULTIDOC_JSON6902_ERROR = "JSON6902 patches are not supported for multi-document machine configuration"
_LEGACY_KEYS = ("version", "machine", "cluster", "debug", "persist")
_JSON6902_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})


class PatchError(ToolkitError):
    """A patch could not be loaded or applied. `origin` names the patch (file) when known."""

    def __init__(self, message: str, *, origin: str = "", line: int | None = None, hint: str | None = None):
        super().__init__(f"{origin}: {message}" if origin else message, hint=hint)
        self.origin = origin
        self.reason = message
        self.line = line


# --- document identity -------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class DocumentID:
    """(apiVersion, kind, name): what strategic merge matches documents on. v1alpha1 is ("", "v1alpha1", "")."""

    api_version: str
    kind: str
    name: str = ""

    def __str__(self) -> str:
        base = f"{self.api_version}/{self.kind}"
        return f"{base}/{self.name}" if self.name else base


V1ALPHA1 = DocumentID("", "v1alpha1")


def document_id(doc: Document) -> DocumentID:
    """The identity of a config document, as Talos' decoder derives it."""
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if not kind and not api:
        if any(k in doc for k in _LEGACY_KEYS):
            return V1ALPHA1
        raise PatchError("missing kind (a document needs apiVersion + kind, or be the v1alpha1 config)")
    if not kind:
        raise PatchError(f"missing kind in document with apiVersion {api!r}")
    if not api:
        raise PatchError(f"missing apiVersion in document of kind {kind!r}")
    name = doc.get("name")
    return DocumentID(str(api), str(kind), name if isinstance(name, str) else "")


# --- patches -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Delete:
    """One `$patch: delete` selector. `path` segments are keys, or `[i]` for a list item (matched on key=value)."""

    doc: DocumentID
    path: tuple[str, ...]
    key: str = ""
    value: str = ""


@dataclass(frozen=True)
class StrategicPatch:
    """A strategic merge patch: deletes and documents to merge, in the order Talos applies them."""

    steps: tuple[_Delete | Document, ...]
    origin: str = ""


@dataclass(frozen=True)
class JSONPatch:
    """An RFC 6902 JSON patch (list of operations)."""

    operations: tuple[Document, ...]
    origin: str = ""


Patch = StrategicPatch | JSONPatch

# A Go template action: `{{ .Field }}`, `{{ $var }}`, or a keyword followed by a space/end (`{{ if .X }}`,
# `{{ range .X }}`, `{{ end }}`), which jinja2 would not parse anyway; `{{ range(3) }}` is jinja and passes.
_GO_TEMPLATE = re.compile(
    r"\{\{-?\s*(?:\.[A-Za-z_]|\$[A-Za-z_.]|(?:if|range|with|end|else|define|template|block|printf)(?=\s|-?\}\}))"
)


_JINJA_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}", re.S)


def find_go_template(text: str) -> int | None:
    """1-based line of the first Go-template action (`{{ .MachineConfig… }}`, `{{ if … }}`), else None.

    Text inside jinja `{% raw %}…{% endraw %}` is literal content (e.g. an inline manifest) and is skipped.
    """
    blanked = _JINJA_RAW.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    m = _GO_TEMPLATE.search(blanked)
    return None if m is None else blanked.count("\n", 0, m.start()) + 1


def load_config(text: str | bytes, origin: str = "") -> list[Document]:
    """Parse a (multi-document) machine config; every document must be a mapping."""
    try:
        docs = load_documents(text)
    except YAMLError as exc:
        raise PatchError(str(exc), origin=origin, line=exc.line) from None
    seen: set[DocumentID] = set()
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise PatchError(f"document {i + 1} is not a mapping", origin=origin)
        did = document_id(doc) if ("kind" in doc or any(k in doc for k in _LEGACY_KEYS)) else None
        if did is not None:
            if did in seen:
                raise PatchError(f"duplicate document {did} is not allowed", origin=origin)
            seen.add(did)
    return docs


def load_patch(text: str | bytes, origin: str = "", *, reject_go_templates: bool = True) -> Patch:
    """A patch from YAML/JSON text: a list of `op`s is JSON6902, mapping documents are a strategic merge patch.

    An empty text is an empty strategic patch (a templated patch may render to nothing for some nodes).
    Go-template actions are rejected unless `reject_go_templates` is False (the renderer checks the jinja
    source instead, so a rendered `{% raw %}` block may carry them).
    """
    line = find_go_template(text.decode() if isinstance(text, bytes) else text) if reject_go_templates else None
    if line is not None:
        raise PatchError(
            "Go template syntax ({{ .MachineConfig… }}, {{ if … }}) is not supported in patches; patches are "
            "jinja2 templates with `cluster`, `node` and `vars` (e.g. {{ node.hostname }})",
            origin=origin,
            line=line,
        )
    try:
        docs = load_documents(text)
    except YAMLError as exc:
        raise PatchError(str(exc), origin=origin, line=exc.line) from None
    if len(docs) == 1 and isinstance(docs[0], list):
        return JSONPatch(tuple(_check_json6902(docs[0], origin)), origin)
    return strategic_patch(docs, origin)


def strategic_patch(documents: Sequence[Any], origin: str = "") -> StrategicPatch:
    """A strategic merge patch from parsed documents (mappings), with their `$patch: delete` markers."""
    steps: list[_Delete | Document] = []
    seen: set[DocumentID] = set()
    for i, doc in enumerate(documents):
        if not isinstance(doc, dict):
            raise PatchError(
                f"document {i + 1} is neither a mapping (strategic merge) nor a list of JSON6902 operations",
                origin=origin,
            )
        try:
            did = document_id(doc)
        except PatchError as exc:
            raise PatchError(f"document {i + 1}: {exc.reason}", origin=origin) from None
        if did in seen:
            raise PatchError(f"duplicate document {did} is not allowed", origin=origin)
        seen.add(did)
        body = _copy(doc)
        deletes: list[tuple[tuple[str, ...], Any, bool]] = []
        try:
            emptied = _extract_deletes(body, (), False, deletes)
        except PatchError as exc:
            raise PatchError(exc.reason, origin=origin) from None
        for path, node, in_list in deletes:
            if in_list:
                key, value = _item_selector(node, path, origin)
                steps.append(_Delete(did, path, key, value))
            else:
                steps.append(_Delete(did, path))
        if not emptied and not _only_identity(body):
            steps.append(body)
    return StrategicPatch(tuple(steps), origin)


def _check_json6902(ops: list[Any], origin: str) -> list[Document]:
    for i, op in enumerate(ops):
        where = f"JSON6902 operation {i + 1}"
        if not isinstance(op, dict):
            raise PatchError(f"{where} is not a mapping", origin=origin)
        if op.get("op") not in _JSON6902_OPS:
            raise PatchError(f"{where}: unknown op {op.get('op')!r}", origin=origin)
        if not isinstance(op.get("path"), str):
            raise PatchError(f"{where}: missing path", origin=origin)
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{where}: {op['op']} needs a value", origin=origin)
        if op["op"] in ("move", "copy") and not isinstance(op.get("from"), str):
            raise PatchError(f"{where}: {op['op']} needs from", origin=origin)
    return [_copy(op) for op in ops]


def _only_identity(doc: Document) -> bool:
    # Talos' isEmptyDoc: such a document (e.g. `version: v1alpha1` left after its deletes) is dropped. A document
    # with apiVersion is kept, so `{apiVersion, kind, name}` alone still creates that document.
    return all(k in ("version", "kind", "name") for k in doc)


def _extract_deletes(
    node: Any, path: tuple[str, ...], in_list: bool, out: list[tuple[tuple[str, ...], Any, bool]]
) -> bool:
    """Move `$patch: delete` markers out of `node` into `out`; True when `node` itself is to be dropped.

    Mirrors Talos' `processNode`: a mapping or list emptied by taking deletes out is dropped from its parent.
    """
    if isinstance(node, dict):
        if "$patch" in node:
            if node["$patch"] != "delete":
                raise PatchError(
                    f"unsupported directive `$patch: {node['$patch']}` at '{'.'.join(path) or '<document>'}' "
                    "(only `$patch: delete` is supported)"
                )
            if not in_list and any(p.startswith("[") for p in path):
                raise PatchError(f"cannot delete an inner key in '{'.'.join(path)}'")
            out.append((path, node, in_list))
            return True
        for key in list(node):
            if _extract_deletes(node[key], (*path, str(key)), False, out):
                del node[key]
                if not node:
                    return True
    elif isinstance(node, list):
        i = 0
        while i < len(node):
            if _extract_deletes(node[i], (*path, f"[{i}]"), True, out):
                del node[i]
                if not node:
                    return True
            else:
                i += 1
    return False


def _item_selector(item: Document, path: tuple[str, ...], origin: str) -> tuple[str, str]:
    for key, value in item.items():
        if key == "$patch":
            continue
        if isinstance(value, dict | list):
            raise PatchError(
                f"list item delete at '{'.'.join(path)}': the item's first key ({key}) must have a scalar value",
                origin=origin,
            )
        return str(key), _scalar_text(value)
    raise PatchError(f"no key:val found in sequence node for path {'.'.join(path)}", origin=origin)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# --- applying ------------------------------------------------------------------------------------------


def apply_patches(documents: Sequence[Document], patches: Iterable[Patch]) -> list[Document]:
    """Apply patches in order (configpatcher.Apply). The input documents are not modified."""
    docs = [_copy(d) for d in documents]
    for patch in patches:
        docs = _apply_one(docs, patch)
    return docs


def strategic_merge(documents: Sequence[Document], patch: StrategicPatch) -> list[Document]:
    """Apply one strategic merge patch; the input documents are not modified."""
    return _apply_one([_copy(d) for d in documents], patch)


def _apply_one(docs: list[Document], patch: Patch) -> list[Document]:
    """Apply in place where possible (docs are owned by the caller); returns the new document list."""
    if isinstance(patch, JSONPatch):
        raise PatchError(
            MULTIDOC_JSON6902_ERROR,
            origin=patch.origin,
            hint="a Talos v1.12 config always has several documents (HostnameConfig, network, …); "
            "write a strategic merge patch instead (use `$patch: delete` to remove things)",
        )
    index = {document_id(d): d for d in docs}
    for step in patch.steps:
        try:
            if isinstance(step, _Delete):
                _apply_delete(docs, index, step)
                continue
            did = document_id(step)
            target = index.get(did)
            if target is None:
                new = _copy(step)
                docs.append(new)
                index[did] = new
            else:
                _merge_into(target, step, did.kind, ())
        except PatchError as exc:
            raise PatchError(exc.reason, origin=patch.origin, hint=exc.hint) from None
    return docs


def _apply_delete(docs: list[Document], index: dict[DocumentID, Document], sel: _Delete) -> None:
    doc = index.get(sel.doc)
    if doc is None:
        raise PatchError(f"patch delete: document '{sel.doc}' not found")
    if not sel.path:
        if sel.doc == V1ALPHA1:
            raise PatchError("patch delete: can't delete the root of the legacy document")
        del index[sel.doc]
        docs.remove(doc)
        return
    path = ".".join(sel.path)
    if _delete_path(doc, sel.path, sel.key, sel.value):
        return
    if sel.doc.name:
        raise PatchError(
            f"named patch delete: document {sel.doc.api_version}/{sel.doc.kind}: "
            f"failed to delete path '{path}': lookup failed"
        )
    raise PatchError(
        f"patch delete: path '{path}' in document '{sel.doc.api_version}/{sel.doc.kind}': "
        f"failed to delete path '{path}': lookup failed"
    )


def _delete_path(node: Any, path: tuple[str, ...], key: str, value: str) -> bool:
    for i, seg in enumerate(path):
        last = i == len(path) - 1
        if seg.startswith("["):
            if not last:
                raise PatchError(
                    f"patch delete: path '{'.'.join(path)}': searching for complex paths in lists is not supported"
                )
            if not isinstance(node, list):
                return False
            for j, item in enumerate(node):
                if isinstance(item, dict) and key in item and _scalar_text(item[key]) == value:
                    del node[j]
                    return True
            return False
        if not isinstance(node, dict) or node.get(seg) is None:
            return False
        if last:
            del node[seg]
            return True
        node = node[seg]
    return False


# Paths (per document kind) whose value is replaced, not merged: Talos' `merge:"replace"` struct tags.
_REPLACE: frozenset[tuple[str, tuple[str, ...]]] = frozenset(
    {
        ("v1alpha1", ("cluster", "network", "podSubnets")),
        ("v1alpha1", ("cluster", "network", "serviceSubnets")),
        ("v1alpha1", ("cluster", "apiServer", "auditPolicy")),
        ("NetworkRuleConfig", ("ingress",)),
        ("NetworkRuleConfig", ("portSelector", "ports")),
    }
)

_Matcher = Callable[[list[Any], Document], int | None]


def _match_on(field: str) -> _Matcher:
    def match(items: list[Any], new: Document) -> int | None:
        want = new.get(field)
        for i, item in enumerate(items):
            if isinstance(item, dict) and item.get(field) == want:
                return i
        return None

    return match


def _match_device(items: list[Any], new: Document) -> int | None:
    # NetworkDeviceList.Merge: by `interface` name, else by an equal `deviceSelector`, else append.
    if new.get("interface"):
        return _match_on("interface")(items, new)
    if new.get("deviceSelector") is not None:
        for i, item in enumerate(items):
            if isinstance(item, dict) and item.get("deviceSelector") == new["deviceSelector"]:
                return i
    return None


# Lists merged item by item (Talos' `Merge` methods on NetworkDeviceList, VlanList, AdmissionPluginConfigList,
# ConfigFileList). `[]` in a path stands for "any item of the list".
_KEYED: dict[tuple[str, tuple[str, ...]], _Matcher] = {
    ("v1alpha1", ("machine", "network", "interfaces")): _match_device,
    ("v1alpha1", ("machine", "network", "interfaces", "[]", "vlans")): _match_on("vlanId"),
    ("v1alpha1", ("cluster", "apiServer", "admissionControl")): _match_on("name"),
    ("ExtensionServiceConfig", ("configFiles",)): _match_on("mountPath"),
}


def _merge_into(left: Document, right: Document, kind: str, path: tuple[str, ...]) -> None:
    for key, rv in right.items():
        if rv is None:
            continue
        sub = (*path, key)
        lv = left.get(key)
        if lv is None or (kind, sub) in _REPLACE:
            left[key] = _copy(rv)
        elif isinstance(lv, dict):
            if not isinstance(rv, dict):
                raise PatchError(f"cannot merge {_type(rv)} into a mapping at '{'.'.join(sub)}'")
            _merge_into(lv, rv, kind, sub)
        elif isinstance(lv, list):
            if not isinstance(rv, list):
                raise PatchError(f"cannot merge {_type(rv)} into a list at '{'.'.join(sub)}'")
            matcher = _KEYED.get((kind, sub))
            if matcher is None:
                lv.extend(_copy(rv))
                continue
            item_path = (*sub, "[]")
            for item in rv:
                at = matcher(lv, item) if isinstance(item, dict) else None
                if at is None:
                    lv.append(_copy(item))
                else:
                    _merge_into(lv[at], item, kind, item_path)
        elif isinstance(rv, dict | list):
            raise PatchError(f"cannot merge {_type(rv)} into a scalar at '{'.'.join(sub)}'")
        else:
            left[key] = rv


def _type(value: Any) -> str:
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else "a scalar"


def _copy(value: Any) -> Any:
    """Deep copy of YAML data (dicts, lists, scalars); much faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
