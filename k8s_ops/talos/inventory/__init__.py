"""The declarative cluster inventory: `clusters/<name>/cluster.yaml` as frozen pydantic models.

Modules: `models` (the pydantic models and derived values), `source` (the YAML file, read in the toolkit's one
YAML dialect, with a line index), `problems` (pydantic errors as Problems), `checks` (cross-field and
cross-cluster rules), `load` (load_cluster, load_all).

Loading never writes anything. Every problem in a cluster file is reported at once as a
`k8s_ops.core.errors.Problem` (file, field path such as `nodes[3].address`, message, YAML line).

YAML keys are camelCase (`talosVersion`, `installDisk`, `nodeCIDR`); Python attributes are snake_case
(`talos_version`, `install_disk`, `node_cidr`). Models accept either spelling.

Layout of a cluster directory::

    clusters/<name>/cluster.yaml            this inventory
    clusters/<name>/patches/*.yaml          config patches (jinja2 allowed), referenced by file name
    clusters/<name>/talos/secrets.sops.yaml the Talos secrets bundle

Patch merge order (strategic merge, later wins; see `Cluster.patch_files`): cluster-wide `patches`,
then the role group's (`controlplane.patches` / `worker.patches`), then the node's own `patches` —
the most specific patch has the last word. Labels/annotations: group first, node values override.
Taints: group taints then node taints; a node taint with the same key and effect replaces the group's.

Networking (`Node.interfaces`, resolved by `Cluster.node_interfaces`):

* No `interfaces`: the renderer emits no link configuration and Talos keeps its default, DHCP on the
  physical links. `address` must then be a DHCP reservation. Static addressing needs an interface.
* With `interfaces`: the FIRST interface is the primary one (it also carries the API VIP on
  controlplanes, see `Cluster.primary_link`). Unless it sets `addresses`/`routes` (or
  `dhcp: true`), it gets the node address with the nodeCIDR prefix (e.g. 10.25.11.11/24) and a
  default route via `network.gateway`. Other interfaces and VLANs get no addresses or routes unless
  given. Validation requires the node address on exactly one link (unless DHCP is used).
* An interface is a bond (`bond.members`: device selectors or link names), a link selected by
  `deviceSelector` (renderer emits a LinkAliasConfig named `name`), or a plain link `name`.
"""

from __future__ import annotations

from k8s_ops.talos.inventory.load import load_all, load_cluster
from k8s_ops.talos.inventory.models import (
    API_PORT,
    CLUSTER_FILE,
    GENERATED_VARS,
    PATCHES_DIR,
    SUPPORTED_TALOS_MINOR,
    Bond,
    Cluster,
    DeviceSelector,
    DiskSelector,
    GatewayAPI,
    GitOps,
    HealthCheck,
    Interface,
    Network,
    Node,
    NodeGroup,
    OnePassword,
    Role,
    Route,
    Schematic,
    Sops,
    Taint,
    Upgrade,
    UserVolume,
    Vlan,
    cluster_vars,
    resolve_interfaces,
)

__all__ = [
    "API_PORT",
    "CLUSTER_FILE",
    "GENERATED_VARS",
    "PATCHES_DIR",
    "SUPPORTED_TALOS_MINOR",
    "Bond",
    "Cluster",
    "DeviceSelector",
    "DiskSelector",
    "GatewayAPI",
    "GitOps",
    "HealthCheck",
    "Interface",
    "Network",
    "Node",
    "NodeGroup",
    "OnePassword",
    "Role",
    "Route",
    "Schematic",
    "Sops",
    "Taint",
    "Upgrade",
    "UserVolume",
    "Vlan",
    "cluster_vars",
    "load_all",
    "load_cluster",
    "resolve_interfaces",
]
