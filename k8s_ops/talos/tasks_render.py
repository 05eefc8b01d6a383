"""Task `talos.render`: every node's machine config, rendered in memory first, then written 0600 (or diffed)."""

from __future__ import annotations

import difflib
import json as _json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from invoke.context import Context
from invoke.tasks import task

from k8s_ops.core.cli import guarded

if TYPE_CHECKING:
    from k8s_ops.core.errors import Problem
    from k8s_ops.core.secret import Secret
    from k8s_ops.talos.inventory import Cluster
    from k8s_ops.talos.render import RenderedConfig

__all__ = ["OutputFile", "masked_diff", "plan_outputs", "render", "semantic_problems", "write_outputs"]

Status = Literal["new", "changed", "unchanged"]


@dataclass(frozen=True)
class OutputFile:
    """Where one rendered config goes and how it compares with what is on disk."""

    config: RenderedConfig
    path: Path
    status: Status
    old: bytes | None


def plan_outputs(configs: Sequence[RenderedConfig], out_dir: Path) -> list[OutputFile]:
    """Compare each rendered config with `<out_dir>/<hostname>.yaml` (reads only)."""
    out: list[OutputFile] = []
    for cfg in configs:
        path = out_dir / cfg.file_name
        try:
            old: bytes | None = path.read_bytes()
        except FileNotFoundError:
            old = None
        status: Status = "new" if old is None else "unchanged" if old == cfg.text else "changed"
        out.append(OutputFile(cfg, path, status, old))
    return out


def _mask(text: str, mask: Sequence[Secret]) -> str:
    for secret in mask:  # longest first (SecretsBundle.mask_values), so no value is half-replaced
        value = secret.reveal_text()
        if value:
            text = text.replace(value, "***")
    return text


def masked_diff(old: bytes | None, new: bytes, path: Path, mask: Sequence[Secret]) -> str:
    """Unified diff of `path` on disk against the rendered bytes, every secret value shown as `***`."""
    before = _mask(old.decode(errors="replace"), mask) if old is not None else ""
    after = _mask(new.decode(), mask)
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=str(path) if old is not None else "/dev/null",
            tofile=f"{path} (rendered)",
        )
    )


def semantic_problems(cluster: Cluster, configs: Sequence[RenderedConfig]) -> list[Problem]:
    """k8s_ops.talos.semantic's checks on each rendered node (secret placement, CNI, installer, hostname …)."""
    from k8s_ops.talos.schematic import installer_image
    from k8s_ops.talos.semantic import NodeExpectations, check_documents

    image = installer_image(cluster)
    problems: list[Problem] = []
    for cfg in configs:
        role: Literal["controlplane", "worker"] = "controlplane" if cfg.role == "controlplane" else "worker"
        expect = NodeExpectations(hostname=cfg.hostname, role=role, installer_image=image)
        problems.extend(check_documents(cfg.documents, expect, file=f"{cfg.file_name} (rendered)"))
    return problems


def _prepare_dir(out_dir: Path, *, default: bool) -> str | None:
    """Create the output dir 0700; tighten our own build dir; return a warning for a user dir open to others."""
    if not out_dir.exists():
        out_dir.mkdir(parents=True, mode=0o700)
        os.chmod(out_dir, 0o700)  # mkdir's mode is filtered by the umask
        return None
    mode = stat.S_IMODE(out_dir.stat().st_mode)
    if mode & 0o077:
        if default:
            os.chmod(out_dir, 0o700)
            return None
        return f"note: {out_dir} is readable by others (mode {mode:04o}); the configs in it are 0600"
    return None


def write_outputs(outputs: Sequence[OutputFile], out_dir: Path, *, default_dir: bool) -> str | None:
    """Write every changed or new file (0600, atomic); returns a warning about the directory, if any."""
    from k8s_ops.core.files import write_private

    warning = _prepare_dir(out_dir, default=default_dir)
    for item in outputs:
        write_private(item.path, item.config.text)  # also re-asserts 0600 on unchanged files
    return warning


def _stale(out_dir: Path, cluster: Cluster) -> list[str]:
    known = {n.hostname for n in cluster.nodes}
    try:
        present = sorted(p.name for p in out_dir.glob("*.yaml"))
    except OSError:
        return []
    return [name for name in present if name.removesuffix(".yaml") not in known]


@task(
    help={
        "cluster": "cluster name (directory under the clusters dir, K8S_OPS_CLUSTERS_DIR overrides it)",
        "node": "render only this node (hostname or address)",
        "out": "output directory (default: build/<cluster>/, git-ignored; K8S_OPS_BUILD_DIR moves build/)",
        "dry-run": "write nothing: show a unified diff against the files on disk, secret values masked as ***",
        "json": "print a JSON summary (node, file, status) instead of text; never secret values",
    }
)
@guarded
def render(
    c: Context,
    cluster: str,
    node: str | None = None,
    out: str | None = None,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Render each node's Talos machine config to build/<cluster>/<hostname>.yaml (0600, in a 0700 dir).

    Reads clusters/<cluster>/cluster.yaml and its patches, decrypts the secrets bundle once, renders every
    node in memory (Talos generator output, then the inventory's settings, then cluster, role-group and node
    patches), checks the results, and only then writes — a bad template or patch leaves every file untouched.
    Output is byte-identical across runs; the summary says which files changed. --dry-run shows the diffs
    with every secret masked.
    """
    from k8s_ops.core import paths
    from k8s_ops.core.errors import ProblemsError
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.render import render_cluster
    from k8s_ops.talos.secrets import load_bundle

    inventory = load_cluster(cluster)
    bundle = load_bundle(inventory)
    configs = render_cluster(inventory, bundle, [node] if node else None)
    found = semantic_problems(inventory, configs)
    if found:
        raise ProblemsError(
            found,
            hint="the rendered configs break a rule the toolkit relies on; fix the patch that causes it",
        )
    default_dir = out is None
    out_dir = paths.build_dir(cluster) if out is None else Path(out).expanduser()
    outputs = plan_outputs(configs, out_dir)
    stale = _stale(out_dir, inventory) if node is None else []
    summary = {
        "cluster": cluster,
        "dir": str(out_dir),
        "dryRun": dry_run,
        "files": [{"node": o.config.hostname, "path": str(o.path), "status": o.status} for o in outputs],
        "stale": stale,
    }
    if dry_run:
        if json:
            print(_json.dumps(summary, indent=2))
            return
        mask = bundle.mask_values()
        for item in outputs:
            if item.status == "unchanged":
                print(f"no changes: {item.path}")
            else:
                print(masked_diff(item.old, item.config.text, item.path, mask), end="")
        print(f"dry run: nothing written ({_counts(outputs)})")
        return

    warning = write_outputs(outputs, out_dir, default_dir=default_dir)
    if json:
        print(_json.dumps(summary, indent=2))
    else:
        print(f"rendered {len(outputs)} config(s) to {out_dir}/ ({_counts(outputs)})")
        for item in outputs:
            print(f"  {item.status:<9} {item.path.name}")
    if warning:
        print(warning)
    for name in stale:
        print(f"note: {out_dir / name} belongs to no node of the inventory (left as is)")


def _counts(outputs: Sequence[OutputFile]) -> str:
    parts = []
    for status in ("new", "changed", "unchanged"):
        n = sum(1 for o in outputs if o.status == status)
        if n:
            parts.append(f"{n} {status}")
    return ", ".join(parts) or "no nodes"
