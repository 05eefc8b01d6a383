"""Which system extensions an installer image carries: Image Factory schematic IDs the simulator knows.

A factory image names its schematic only by ID (`factory.talos.dev/metal-installer/<sha256>:<tag>`), and a
sha256 cannot be inverted, so each cluster keeps a map ID -> official extensions (`cluster["schematics"]`),
filled from the inventory's `schematic` at `sim create` and by `sim set-schematic`. An image whose ID is not in
the map installs no extensions (what the generic installer gives).

The ID is computed like the factory does (sha256 of Go `yaml.Marshal` of the schematic: 4-space indent,
`customization:` with `extraKernelArgs` then `systemExtensions.officialExtensions`). The simulator does not
import the toolkit, so only the simple case is reproduced: every value a plain scalar (letters, digits,
`._/=,+-`, not number-like). Anything else is not registered; tell the simulator with `sim set-schematic`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .util import JSON

_PLAIN = r"^[A-Za-z][A-Za-z0-9._/=,+-]*$"  # re.compile'd on first use (cached by re)
_TYPED = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n", "inf", "nan"})


def _plain(value: str) -> bool:
    return bool(re.match(_PLAIN, value)) and value.lower() not in _TYPED


def schematic_id(extensions: Sequence[str], kernel_args: Sequence[str] = ()) -> str | None:
    """The factory's ID of a schematic with these official extensions and kernel args (None: not simple)."""
    if not all(_plain(v) for v in (*extensions, *kernel_args)):
        return None
    lines = ["customization:"]
    if kernel_args:
        lines += ["    extraKernelArgs:", *(f"        - {a}" for a in kernel_args)]
    if extensions:
        lines += ["    systemExtensions:", "        officialExtensions:", *(f"            - {e}" for e in extensions)]
    if len(lines) == 1:
        lines = ["customization: {}"]
    import hashlib  # local: each simulated call is a fresh interpreter, and few need it

    return hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()


def register(cluster: JSON, sid: str, extensions: Sequence[str]) -> None:
    cluster.setdefault("schematics", {})[sid] = list(extensions)


def extension_statuses(cluster: JSON, n: JSON) -> list[JSON]:
    """`ExtensionStatus` specs of a node: its image's schematic extensions, then the factory's `schematic`
    marker (version = the schematic ID) for a factory image. The manifest name is the official name's last
    path segment (`siderolabs/iscsi-tools` -> `iscsi-tools`)."""
    sid = n.get("schematic")
    if not n.get("installed_image") or not sid:
        return []
    out: list[JSON] = [
        {
            "image": f"{i:03d}-{official.rsplit('/', 1)[-1]}.sqsh",
            "metadata": {
                "name": official.rsplit("/", 1)[-1],
                "version": n["talos_version"],
                "author": "Sidero Labs",
                "description": f"{official} (simulated)",
                "compatibility": {"talos": {"version": f">= {n['talos_version']}"}},
            },
        }
        for i, official in enumerate((cluster.get("schematics") or {}).get(sid, []))
    ]
    out.append({"image": "", "metadata": {"name": "schematic", "version": sid}})
    return out
