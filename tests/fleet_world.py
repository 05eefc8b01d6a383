"""The fleet test world: the `infra` and `apps` inventories (copies of clusters/, their GitOps repository pointed at
a local bare repository), one simulated cluster per inventory, Flux objects whose statuses the tests set as Flux
would write them, and a real git clone with branches `main` and `release`."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_ops.core import preflight
from tests.sim.simlib.api import Sim
from tests.sim.simlib.controllers.flux import FLUX_CRDS
from tests.sim.simlib.kube import Kube
from tests.sim.simlib.manifests import READY_COLS, crd

REPO = Path(__file__).resolve().parent.parent
CLUSTERS = ("apps", "infra")
FLUX_NS = "flux-system"


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready(
    status: str = "True", reason: str = "ReconciliationSucceeded", message: str = "", ago: float = 300
) -> dict[str, Any]:
    when = datetime.now(UTC) - timedelta(seconds=ago)
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": rfc3339(when),
        "observedGeneration": 1,
    }


@dataclass
class Git:
    """A bare remote and a clone of it, driven with the real git CLI."""

    root: Path
    remote: Path
    clone: Path

    def run(self, *args: str, cwd: Path | None = None, date: str | None = None) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.invalid",
        }
        if date is not None:
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
        done = subprocess.run(
            ["git", *args], cwd=cwd or self.clone, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
        return done.stdout.strip()

    def commit(self, subject: str, *, days_ago: float = 0) -> str:
        when = datetime.now(UTC) - timedelta(days=days_ago)
        (self.clone / "log.txt").open("a").write(subject + "\n")
        self.run("add", "log.txt")
        self.run("commit", "-q", "-m", subject, date=f"@{int(when.timestamp())} +0000")
        return self.run("rev-parse", "HEAD")

    def head(self, ref: str, *, remote: bool = False) -> str:
        where = self.remote if remote else self.clone
        return self.run("rev-parse", f"refs/heads/{ref}", cwd=where)


def make_git(root: Path) -> tuple[Git, dict[str, str]]:
    """main: c1 (also release) → c2 → c3, all pushed; returns the commits by name."""
    remote, clone = root / "remote.git", root / "clone"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(clone)], check=True)
    g = Git(root, remote, clone)
    g.run("remote", "add", "origin", str(remote))
    c = {"c1": g.commit("feat(base): first", days_ago=3)}
    g.run("branch", "release")
    c["c2"] = g.commit("feat(apps): second", days_ago=2)
    c["c3"] = g.commit("fix(apps): third", days_ago=1)
    g.run("push", "-q", "origin", "main", "release")
    return g, c


@dataclass
class Fleet:
    sim: Sim
    git: Git
    commits: dict[str, str]
    clusters_dir: Path
    build: Path

    def kube(self, cluster: str, fn: Any) -> None:
        with self.sim.store.tx() as w:
            fn(Kube(w.clusters[cluster], w.now))

    def flux(
        self,
        cluster: str,
        *,
        git_revision: str | None,
        applied: str | None,
        ready_: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        extra: list[tuple[dict[str, Any], dict[str, Any]]] | None = None,
    ) -> None:
        """Set the root GitRepository's and Kustomization's statuses of `cluster` as Flux writes them."""

        def put(kube: Kube) -> None:
            gr = kube.find("GitRepository", FLUX_NS, "flux-system", group="source.toolkit.fluxcd.io")
            ks = kube.find("Kustomization", FLUX_NS, "flux-system", group="kustomize.toolkit.fluxcd.io")
            assert gr is not None and ks is not None
            gst: dict[str, Any] = {"observedGeneration": 1, "conditions": [ready(message="stored artifact")]}
            if git_revision:
                gst["artifact"] = {
                    "revision": git_revision,
                    "path": "x.tar.gz",
                    "url": "http://x/latest.tar.gz",
                    "digest": "sha256:" + "0" * 64,
                    "lastUpdateTime": rfc3339(datetime.now(UTC)),
                }
            kube.set_status(gr, gst)
            kst: dict[str, Any] = {"observedGeneration": 1}
            if applied:
                kst["lastAppliedRevision"] = applied
                kst["lastAttemptedRevision"] = applied
            kst["conditions"] = [ready_ or ready(message=f"Applied revision: {applied}")]
            if history is not None:
                kst["history"] = history
            kube.set_status(ks, kst)
            for obj, status in extra or []:
                kube.put(obj, manager="test")
                found = kube.find(
                    obj["kind"],
                    obj["metadata"]["namespace"],
                    obj["metadata"]["name"],
                    group=obj["apiVersion"].split("/")[0],
                )
                assert found is not None
                kube.set_status(found, status)

        self.kube(cluster, put)


def _populate(kube: Kube, cluster: str, branch: str, remote: Path) -> None:
    for group, kind, plural, versions, short in [c for comp in FLUX_CRDS.values() for c in comp]:
        kube.put(crd(group, kind, plural, versions=versions, short=short, columns=READY_COLS), manager="test")
    kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FLUX_NS}}, manager="test")
    kube.put(
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "flux-system", "namespace": FLUX_NS},
            "spec": {"interval": "1m", "url": str(remote), "ref": {"branch": branch}},
        },
        manager="test",
    )
    kube.put(
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "flux-system", "namespace": FLUX_NS},
            "spec": {
                "interval": "10m",
                "path": f"./clusters/{cluster}/flux",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            },
        },
        manager="test",
    )


def build_fleet(sim: Sim, tmp: Path, monkeypatch: pytest.MonkeyPatch, *, soak: str | None = None) -> Fleet:
    git, commits = make_git(tmp / "git")
    clusters = tmp / "clusters"
    build = tmp / "build"
    for name in CLUSTERS:
        shutil.copytree(REPO / "clusters" / name, clusters / name)
        f = clusters / name / "cluster.yaml"
        doc = yaml.safe_load(f.read_text())
        text = f.read_text().replace(doc["gitops"]["repository"], str(git.remote))
        if soak is not None and name == "apps":
            text = text.replace(
                f"  branch: {doc['gitops']['branch']}\n",
                f"  branch: {doc['gitops']['branch']}\n  promote:\n    soak: {soak}\n",
            )
        f.write_text(text)
        sim.create(f)
        kc = build / name / "kubeconfig"
        kc.parent.mkdir(parents=True)
        sim.make_ready(name, kubeconfig=kc, talosconfig=build / name / "talosconfig")
        data = yaml.safe_load(kc.read_text())
        data["contexts"][0]["name"] = name  # talos.kubeconfig names the context after the cluster
        data["current-context"] = "elsewhere"
        kc.write_text(yaml.safe_dump(data))
        with sim.store.tx() as w:
            _populate(Kube(w.clusters[name], w.now), name, doc["gitops"]["branch"], git.remote)
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(clusters))
    monkeypatch.setenv("K8S_OPS_BUILD_DIR", str(build))
    monkeypatch.setenv("K8S_OPS_STATE_DIR", str(tmp / "state"))
    monkeypatch.setenv("KUBECONFIG", str(tmp / "stray-kubeconfig"))
    preflight.reset_cache()
    return Fleet(sim, git, commits, clusters, build)
