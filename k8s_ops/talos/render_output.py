"""Where `talos.render` puts the rendered configs: the write plan (one 0600 file per node in a 0700 directory, diffs
with secrets masked by `FileWrite`), the directory's mode, files of nodes no longer in the inventory, and the
semantic checks that gate any write."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from k8s_ops.core.plan import FileWrite, Plan, Step

if TYPE_CHECKING:
    from k8s_ops.core.errors import Problem
    from k8s_ops.core.secret import Secret
    from k8s_ops.talos.inventory import Cluster
    from k8s_ops.talos.render import RenderedConfig

__all__ = ["counts", "plan_render", "prepare_dir", "semantic_problems", "stale_files", "status_of"]

Status = Literal["new", "changed", "unchanged"]


def status_of(write: FileWrite) -> Status:
    """new / changed / unchanged: the rendered bytes against the file on disk (reads only)."""
    old = write.current()
    return "new" if old is None else "unchanged" if old == write.content else "changed"


def plan_render(
    cluster: str,
    configs: Sequence[RenderedConfig],
    out_dir: Path,
    mask: Sequence[Secret],
    *,
    notes: Sequence[str] = (),
) -> Plan:
    """One step per node writing `<out_dir>/<hostname>.yaml` (0600); a no-op when the bytes and mode already match."""
    steps = []
    for cfg in configs:
        write = FileWrite(out_dir / cfg.file_name, cfg.text, mode=0o600, mask=tuple(mask))
        status = status_of(write)
        noop = None
        if status == "unchanged" and stat.S_IMODE(write.path.stat().st_mode) == 0o600:
            noop = "same bytes on disk"
        steps.append(Step(f"write {cfg.file_name} ({status})", writes=(write,), noop=noop, node=cfg.hostname))
    return Plan("render the machine configs", cluster, tuple(steps), notes=tuple(notes))


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


def prepare_dir(out_dir: Path, *, default: bool) -> str | None:
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


def stale_files(out_dir: Path, cluster: Cluster) -> list[str]:
    """`*.yaml` files in `out_dir` that belong to no node of the inventory (left as they are)."""
    known = {n.hostname for n in cluster.nodes}
    try:
        present = sorted(p.name for p in out_dir.glob("*.yaml"))
    except OSError:
        return []
    return [name for name in present if name.removesuffix(".yaml") not in known]


def counts(statuses: Sequence[Status]) -> str:
    """e.g. `2 new, 3 unchanged`."""
    parts = [f"{statuses.count(s)} {s}" for s in ("new", "changed", "unchanged") if statuses.count(s)]
    return ", ".join(parts) or "no nodes"
