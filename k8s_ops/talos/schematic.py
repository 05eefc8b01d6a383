"""Image Factory schematic: canonical YAML, the offline ID, the installer image, and the upload.

The factory's schematic ID is `sha256(yaml.Marshal(schematic))` of its Go struct (siderolabs/image-factory
`pkg/schematic/schematic.go`, checked at 26b95cac). We reproduce that byte stream here:

* 4-space indent, block style, `omitempty` on everything but `customization` (so the empty schematic is
  `customization: {}`), field order `owner, overlay, customization` and, inside customization,
  `embeddedMachineConfiguration, extraKernelArgs, meta, systemExtensions, bootloader, secureboot, diskImage`.
* Scalars follow the factory's YAML library. Since 2025-11 (image-factory e881e4b) that is go.yaml.in/yaml/v4
  (rc.6, `Marshal` = v3 defaults), before it gopkg.in/yaml.v3; both give the same bytes except for YAML 1.1
  booleans (`off`, `yes`, `y`, ...), base-60 floats (`1:30`) and `<<`, which v4 single-quotes and v3
  double-quoted. We follow v4. A string that would resolve to another type (bool, int, float, null,
  timestamp) is double-quoted; a string the emitter may not write plain (indicator first, `: ` or ` #`
  inside, leading or trailing space, ...) is single-quoted; tabs or non-printable characters force double
  quotes. Both libraries were checked by differential tests (tests/test_schematic.py).
* The factory neither sorts nor de-duplicates `officialExtensions` (the POST handler hashes the decoded struct
  as is), so order matters and is kept as given; the inventory rejects duplicates.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from k8s_ops.core.errors import Problem, ProblemsError, ToolkitError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_FACTORY_URL",
    "INSTALLER_REGISTRY",
    "NOT_SCHEMATIC_EXTENSIONS",
    "Schematic",
    "extension_name",
    "extensions_mismatch",
    "go_yaml_scalar",
    "installer_image",
    "installer_image_for",
    "schematic_for",
    "schematic_id",
    "schematic_yaml",
    "upload_schematic",
]

DEFAULT_FACTORY_URL = "https://factory.talos.dev"
INSTALLER_REGISTRY = "factory.talos.dev"
_INDENT = "    "


class _SchematicSpec(Protocol):
    @property
    def extensions(self) -> Sequence[str]: ...
    @property
    def extra_kernel_args(self) -> Sequence[str]: ...


class _ClusterLike(Protocol):
    """What this module needs from `k8s_ops.talos.inventory.Cluster`."""

    @property
    def schematic(self) -> _SchematicSpec: ...
    @property
    def talos_version(self) -> str: ...


# --- Go YAML (go.yaml.in/yaml/v4, Marshal) scalar emulation ---------------------------------------------

_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_BASE60_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_OLD_BOOLS = frozenset(
    ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off", "OFF"]
)
_RESOLVE_MAP = frozenset(
    {"", "~", "<<", "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL"}
    | {".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF"}
)
_DOT_FLOAT = re.compile(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_TIMESTAMP = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{1,2})-(?P<d>[0-9]{1,2})"
    r"(?:(?:[Tt](?P<h>[0-9]{1,2}):(?P<mi>[0-9]{1,2}):(?P<s>[0-9]{1,2})(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2}))"
    r"|(?: (?P<h2>[0-9]{1,2}):(?P<mi2>[0-9]{1,2}):(?P<s2>[0-9]{1,2})(?:\.[0-9]+)?))?"
)
_INT64 = (-(2**63), 2**64 - 1)  # ParseInt, then ParseUint


def _go_parse_int(s: str) -> bool:
    """strconv.ParseInt(s, 0, 64) / ParseUint succeed? (base prefixes 0x, 0o, 0b, legacy 0-octal)."""
    m = re.fullmatch(r"([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)", s)
    if not m:
        return False
    sign, body = m.groups()
    low = body.lower()
    if low.startswith(("0x", "0o", "0b")):
        value = int(low[2:], {"x": 16, "o": 8, "b": 2}[low[1]])
    elif body.startswith("0"):
        value = int(body, 8)
    else:
        value = int(body)
    value = -value if sign == "-" else value
    return _INT64[0] <= value <= _INT64[1]


def _resolves_non_str(s: str) -> bool:
    """Go YAML `resolve("", s)` returns a tag other than !!str (the case that forces quoting)."""
    if s in _RESOLVE_MAP:  # the map is consulted only for these first characters (hint table)
        return s == "" or s[0] in "+-.yYnNtTfFoO~"
    first = s[0]
    if first == ".":
        return bool(_DOT_FLOAT.fullmatch(s)) and _go_float_ok(s)
    if first in "+-0123456789":
        if _is_timestamp(s):
            return True
        plain = s.replace("_", "")
        return _go_parse_int(plain) or (bool(_YAML_FLOAT.match(plain)) and _go_float_ok(plain))
    return False


def _go_float_ok(s: str) -> bool:
    """strconv.ParseFloat succeeds (overflow to infinity is an ErrRange error)."""
    try:
        value = float(s)
    except ValueError:
        return False
    return not math.isinf(value)


def _is_timestamp(s: str) -> bool:
    """Go YAML parseTimestamp: `2006-1-2`, `2006-1-2T15:4:5[.9]Z07:00`, `2006-1-2 15:4:5[.9]`."""
    import datetime

    m = _TIMESTAMP.fullmatch(s)
    if not m:
        return False
    g = {k: int(v) for k, v in m.groupdict().items() if v}
    y, mo, d = g["y"], g["mo"], g["d"]
    hh, mi, ss = g.get("h", g.get("h2", 0)), g.get("mi", g.get("mi2", 0)), g.get("s", g.get("s2", 0))
    try:
        datetime.datetime(y, mo, d, hh, mi, ss)
    except ValueError:
        return False
    return True


def _printable(ch: str) -> bool:
    o = ord(ch)
    return o == 0x0A or 0x20 <= o <= 0x7E or 0xA0 <= o <= 0xD7FF or (0xE000 <= o <= 0xFFFD and o != 0xFEFF)


_BREAKS = "\r\n\x85\u2028\u2029"


def _block_plain_allowed(s: str) -> tuple[bool, bool]:
    """(block plain allowed, single-quoted allowed) from yaml_emitter_analyze_scalar, block context."""
    if s == "":
        return True, True
    block_ind = s.startswith(("---", "..."))
    special = tabs = line_breaks = False
    leading = s[0] == " " or s[0] in _BREAKS
    trailing = s[-1] == " " or s[-1] in _BREAKS
    space_break = break_space = False
    prev_space = prev_break = False
    preceded_ws = True
    for i, ch in enumerate(s):
        followed_ws = i + 1 >= len(s) or s[i + 1] in " \t"
        if i == 0:
            if ch in "#,[]{}&*!|>'\"%@`" or (ch in "?:-" and followed_ws):
                block_ind = True
        elif (ch == ":" and followed_ws) or (ch == "#" and preceded_ws):
            block_ind = True
        if ch == "\t":
            tabs = True
        elif not _printable(ch):
            special = True
        if ch == " ":
            break_space = break_space or prev_break
            prev_space, prev_break = True, False
        elif ch in _BREAKS:
            line_breaks = True
            space_break = space_break or prev_space
            prev_space, prev_break = False, True
        else:
            prev_space = prev_break = False
        preceded_ws = ch in " \t" or ch in _BREAKS or ch == "\x00"
    plain = not (leading or trailing or break_space or space_break or tabs or special or line_breaks or block_ind)
    single = not (break_space or space_break or tabs or special)
    return plain, single


def _double_quoted(s: str) -> str:
    escapes = {
        "\x00": "0", "\x07": "a", "\x08": "b", "\t": "t", "\n": "n", "\x0b": "v", "\x0c": "f", "\r": "r",
        "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\xa0": "_", "\u2028": "L", "\u2029": "P",
    }  # fmt: skip
    out = ['"']
    for ch in s:
        o = ord(ch)
        if not _printable(ch) or ch in _BREAKS or ch in '"\\' or o == 0xFEFF:
            if ch in escapes:
                out.append("\\" + escapes[ch])
            elif o <= 0xFF:
                out.append(f"\\x{o:02X}")
            elif o <= 0xFFFF:
                out.append(f"\\u{o:04X}")
            else:
                out.append(f"\\U{o:08X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_yaml_scalar(s: str) -> str:
    """How go.yaml.in/yaml/v4 `Marshal` writes a Go `string` in block context (single-line strings only)."""
    if any(ch in s for ch in "\n\u2028\u2029"):
        # Go YAML would write a literal block or a folded quoted scalar; no schematic value we build is multi-line.
        raise ValueError(f"multi-line strings are not supported in a schematic: {s!r}")
    plain_ok, single_ok = _block_plain_allowed(s)
    # v4's representer single-quotes YAML 1.1 compatibility values (v3 double-quoted them) ...
    yaml11 = s in _OLD_BOOLS or s == "<<" or bool(_BASE60_FLOAT.match(s))
    # ... and its desolver double-quotes (QuoteLegacy) a string that would read back as another type.
    typed = not yaml11 and _resolves_non_str(s)
    if not yaml11 and not typed and plain_ok:
        return s
    if not typed and single_ok:
        return "'" + s.replace("'", "''") + "'"
    return _double_quoted(s)


# --- the schematic ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schematic:
    """The parts of an Image Factory schematic the toolkit sets (the rest stays empty, i.e. omitted)."""

    extensions: tuple[str, ...] = ()
    extra_kernel_args: tuple[str, ...] = ()

    def to_yaml(self) -> bytes:
        """The canonical bytes the factory hashes (Go YAML Marshal of its struct)."""
        custom: list[str] = []
        if self.extra_kernel_args:
            custom.append(f"{_INDENT}extraKernelArgs:")
            custom += [f"{_INDENT * 2}- {go_yaml_scalar(a)}" for a in self.extra_kernel_args]
        if self.extensions:
            custom.append(f"{_INDENT}systemExtensions:")
            custom.append(f"{_INDENT * 2}officialExtensions:")
            custom += [f"{_INDENT * 3}- {go_yaml_scalar(e)}" for e in self.extensions]
        lines = ["customization:", *custom] if custom else ["customization: {}"]
        return ("\n".join(lines) + "\n").encode()

    @property
    def id(self) -> str:
        """sha256 hex of the canonical YAML: the ID the factory returns for this schematic."""
        return hashlib.sha256(self.to_yaml()).hexdigest()


def schematic_for(cluster: _ClusterLike) -> Schematic:
    """The cluster's schematic (extensions and kernel args in inventory order)."""
    spec = cluster.schematic
    return Schematic(tuple(spec.extensions), tuple(spec.extra_kernel_args))


def schematic_yaml(cluster: _ClusterLike) -> bytes:
    """The canonical schematic YAML of the cluster (what `--upload` POSTs)."""
    return schematic_for(cluster).to_yaml()


def schematic_id(cluster: _ClusterLike) -> str:
    """The Image Factory schematic ID of the cluster, computed offline."""
    return schematic_for(cluster).id


def _version_tag(version: str) -> str:
    return version if version.startswith("v") else f"v{version}"


def installer_image_for(schematic: Schematic, talos_version: str) -> str:
    """`factory.talos.dev/metal-installer/<id>:<vX.Y.Z>`."""
    return f"{INSTALLER_REGISTRY}/metal-installer/{schematic.id}:{_version_tag(talos_version)}"


def installer_image(cluster: _ClusterLike) -> str:
    """The metal installer image for the cluster's schematic and Talos version (used by render and upgrade)."""
    return installer_image_for(schematic_for(cluster), cluster.talos_version)


# --- installed extensions ---------------------------------------------------------------------------

#: Extension statuses a node reports that are not schematic extensions: the Image Factory's `schematic` marker
#: (its version is the schematic ID) and the `modules.dep` layer Talos builds for extension kernel modules.
NOT_SCHEMATIC_EXTENSIONS = frozenset({"schematic", "modules.dep"})


def extension_name(official: str) -> str:
    """`siderolabs/iscsi-tools` -> `iscsi-tools`: the manifest name the installed extension reports
    (`talosctl get extensions`, spec.metadata.name)."""
    return official.rsplit("/", 1)[-1]


def extensions_mismatch(wanted: Sequence[str], installed: Iterable[str]) -> str | None:
    """How the installed extension names differ from the schematic's `wanted` official extensions, or None.

    `missing a, b; unexpected c` — order-insensitive (the installed order is the layer order, not the list's).
    """
    want = {extension_name(e) for e in wanted}
    have = {n for n in installed if n not in NOT_SCHEMATIC_EXTENSIONS}
    parts = []
    if missing := sorted(want - have):
        parts.append("missing " + ", ".join(missing))
    if extra := sorted(have - want):
        parts.append("unexpected " + ", ".join(extra))
    return "; ".join(parts) or None


# --- upload -----------------------------------------------------------------------------------------


def factory_url() -> str:
    """`K8S_OPS_IMAGE_FACTORY`, else the public factory."""
    return (os.environ.get("K8S_OPS_IMAGE_FACTORY") or DEFAULT_FACTORY_URL).rstrip("/")


def _new_client() -> httpx.Client:
    """The HTTP client used when none is given (the one seam tests replace with a MockTransport client)."""
    import httpx

    return httpx.Client(timeout=30.0)


def upload_schematic(schematic: Schematic, *, client: httpx.Client | None = None, base_url: str | None = None) -> str:
    """POST the schematic to `<factory>/schematics` and check the returned ID equals the offline one.

    `client` is the test seam (an `httpx.Client` with a `MockTransport`); by default a short-lived client is used.
    """
    import httpx

    url = f"{(base_url or factory_url()).rstrip('/')}/schematics"
    body = schematic.to_yaml()
    expected = schematic.id
    own = client is None
    http = client if client is not None else _new_client()
    try:
        response = http.post(url, content=body, headers={"Content-Type": "application/yaml"})
    except httpx.HTTPError as exc:
        raise ToolkitError(f"Image Factory upload to {url} failed: {exc}") from exc
    finally:
        if own:
            http.close()
    if response.status_code not in (200, 201):
        detail = response.text.strip()[:500]
        raise ToolkitError(f"Image Factory rejected the schematic: HTTP {response.status_code} from {url}: {detail}")
    try:
        got = response.json()["id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolkitError(f"Image Factory answered {url} without a schematic id: {response.text[:200]!r}") from exc
    if got != expected:
        raise ProblemsError(
            [Problem("schematic", "id", f"Image Factory returned {got}, offline computation gave {expected}")],
            hint="the canonical YAML emulation diverged from the factory's; do not use the offline ID",
        )
    return str(got)
