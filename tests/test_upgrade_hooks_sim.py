"""Hooks, pauses and Alertmanager silences around a rolling upgrade, end to end against the simulator.

Hooks are argv run on the operator machine (this interpreter writing to a log file); the pause objects are the day-2
world's Flux Kustomizations and HelmRelease and its VolSync ReplicationSource; the Alertmanager is a small local HTTP
server in a thread."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from pydantic import ValidationError

from tests.sim.simlib.api import Sim
from tests.sim.simlib.kube import Kube
from tests.test_day2_sim import _populate
from tests.test_lifecycle_sim import failing, lab, node_of, talosctl_calls, task
from tests.test_upgrade_gates_sim import set_upgrade

__all__ = ["lab"]

HOOK = (
    "import os, sys\n"
    "name = sys.argv[2]\n"
    "with open(sys.argv[1], 'a') as fh:\n"
    "    fh.write(f\"{name} {os.environ.get('NODE', '-')} {os.environ.get('NODE_ADDRESS', '-')} "
    "{os.environ.get('ROLE', '-')}\\n\")\n"
    "if name == 'pre-node' and os.environ.get('NODE') == os.environ.get('FAIL_ON'):\n"
    "    sys.exit(4)\n"
    "if name == 'pre-node' and os.environ.get('NODE') == os.environ.get('INTERRUPT_ON'):\n"
    "    os.kill(os.getppid(), __import__('signal').SIGINT)\n"
)


def hook(log: Path, name: str, **extra: Any) -> dict[str, Any]:
    return {"command": [sys.executable, "-c", HOOK, str(log), name], **extra}


def logged(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_hooks_run_in_order_and_always_post_hooks_run_on_failure(
    lab: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "hooks.log"
    set_upgrade(
        hooks={
            "preCluster": [hook(log, "pre-cluster")],
            "preNode": [hook(log, "pre-node")],
            "postNode": [hook(log, "post-node", always=True), hook(log, "post-node-ok")],
            "postCluster": [hook(log, "post-cluster", always=True)],
        }
    )
    task("upgrade-cluster", only="demo-wk-1", dry_run=True)
    out = capsys.readouterr().out
    assert "pre-cluster hooks" in out and "after demo-wk-1: post-node hooks" in out
    assert "on failure of any step" in out  # the always hooks are the recovery, shown in the dry run
    task("upgrade-cluster", only="demo-wk-1")
    assert logged(log) == [
        "pre-cluster - - -",
        "pre-node demo-wk-1 10.5.0.14 worker",
        "post-node demo-wk-1 10.5.0.14 worker",
        "post-node-ok demo-wk-1 10.5.0.14 worker",
        "post-cluster - - -",
    ]
    log.unlink()
    # A failing pre-node hook stops before demo-wk-2 is touched; the always post-hooks run as the recovery.
    monkeypatch.setenv("FAIL_ON", "demo-wk-2")
    err = failing("upgrade-cluster", capsys, only="demo-wk-1,demo-wk-2")
    assert [node_of(a) for a in talosctl_calls(lab, "upgrade")] == ["10.5.0.14"]  # demo-wk-2 untouched
    assert logged(log) == [
        "pre-cluster - - -",
        "pre-node demo-wk-2 10.5.0.15 worker",
        "post-node demo-wk-2 10.5.0.15 worker",
        "post-cluster - - -",
    ]
    assert "recovered: ran the postNode hooks marked always for demo-wk-2; ran the postCluster hooks" in err


# --------------------------------------------------------------------------- pauses


@pytest.fixture
def flux(lab: Sim) -> Iterator[Sim]:
    """The lab plus the day-2 world's Flux and VolSync objects; the `flux-system` Kustomization suspended already."""
    with lab.store.tx() as tx:
        kube = Kube(tx.clusters["demo"], tx.now)
        _populate(kube)
        ks = kube.find("Kustomization", "flux-system", "flux-system")
        assert ks is not None
        ks["spec"]["suspend"] = True
    yield lab


def suspended(sim: Sim) -> dict[str, bool]:
    objs = {
        "ks/flux-system": sim.get_object("Kustomization", "flux-system", "flux-system"),
        "ks/plex": sim.get_object("Kustomization", "plex", "flux-system"),
        "hr/plex": sim.get_object("HelmRelease", "plex", "media"),
        "rs/plex": sim.get_object("ReplicationSource", "plex", "media"),
    }
    out = {}
    for key, o in objs.items():
        assert o is not None, key
        out[key] = bool(o["spec"].get("suspend") or o["spec"].get("paused"))
    return out


RUNNING = {"ks/flux-system": True, "ks/plex": False, "hr/plex": False, "rs/plex": False}


def pauses(sim: Sim) -> list[str]:
    """The objects this run paused, from the tools' call log."""
    flux = [a for a in (c["argv"] for c in sim.calls("flux")) if "suspend" in a]
    out = [f"{a[a.index('suspend') + 1]}/{a[a.index('suspend') + 2]}" for a in flux]
    kubectl = [a for a in (c["argv"] for c in sim.calls("kubectl")) if "patch" in a and '{"spec":{"paused":true}}' in a]
    out += [a[a.index("patch") + 2] for a in kubectl]
    return out


def test_pause_suspends_only_what_runs_and_resumes_it_after_success_failure_and_ctrl_c(
    flux: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "hooks.log"
    set_upgrade(hooks={"preNode": [hook(log, "pre-node")]}, pause=["flux", "volsync"])
    task("upgrade-cluster", only="demo-wk-1", dry_run=True)
    out = capsys.readouterr().out
    assert "suspend Kustomization flux-system/flux-system: skipped — paused already" in out
    assert "resume HelmRelease media/plex" in out and "unpause ReplicationSource media/plex" in out
    # success
    task("upgrade-cluster", only="demo-wk-1")
    assert sorted(pauses(flux)) == ["helmrelease/plex", "kustomization/plex", "plex"]
    assert suspended(flux) == RUNNING  # resumed; the one paused before stays paused
    # failure: a pre-node hook fails, the recovery resumes what the run paused
    monkeypatch.setenv("FAIL_ON", "demo-wk-2")
    err = failing("upgrade-cluster", capsys, only="demo-wk-2")
    assert "recovered:" in err and "resumed HelmRelease media/plex" in err
    assert suspended(flux) == RUNNING
    # Ctrl-C during the pre-node hook: the recovery still resumes them
    monkeypatch.delenv("FAIL_ON")
    monkeypatch.setenv("INTERRUPT_ON", "demo-wk-2")
    err = failing("upgrade-cluster", capsys, only="demo-wk-2")
    assert "interrupted" in err and "resumed HelmRelease media/plex" in err
    assert suspended(flux) == RUNNING
    assert [node_of(a) for a in talosctl_calls(flux, "upgrade")] == ["10.5.0.14"]


# --------------------------------------------------------------------------- Alertmanager


class _Alertmanager(BaseHTTPRequestHandler):
    events: ClassVar[list[tuple[str, str, Any, str | None]]] = []

    def _reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        self.events.append(("POST", self.path, body, self.headers.get("Authorization")))
        self._reply(200, {"silenceID": "5947eba9-c472-42c4-88fe-ad9b8cd781b0"})

    def do_DELETE(self) -> None:
        self.events.append(("DELETE", self.path, None, self.headers.get("Authorization")))
        self._reply(200, {})

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def alertmanager() -> Iterator[str]:
    _Alertmanager.events = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Alertmanager)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_alert_silence_is_created_for_the_node_and_expired_when_it_is_back(
    lab: Sim, alertmanager: str, capsys: pytest.CaptureFixture[str]
) -> None:
    set_upgrade(alertmanager={"url": alertmanager, "matchers": {"instance": "{node}", "cluster": "demo"}})
    task("upgrade-cluster", only="demo-wk-1", dry_run=True)
    assert f"alertmanager-silence {alertmanager}/api/v2/silences (matchers=cluster=demo,instance=demo-wk-1" in (
        capsys.readouterr().out
    )
    task("upgrade-cluster", only="demo-wk-1")
    (post, delete) = _Alertmanager.events
    assert post[0] == "POST" and post[1] == "/api/v2/silences"
    assert {(m["name"], m["value"]) for m in post[2]["matchers"]} == {("instance", "demo-wk-1"), ("cluster", "demo")}
    assert post[2]["createdBy"] == "k8s-ops" and post[2]["endsAt"] > post[2]["startsAt"]
    assert delete[:2] == ("DELETE", "/api/v2/silence/5947eba9-c472-42c4-88fe-ad9b8cd781b0")
    err = capsys.readouterr().err
    assert err.index("alertmanager-silence") < err.index("$ talosctl upgrade") < err.index("alertmanager-expire")


def test_a_silence_for_an_alertmanager_service_goes_through_the_api_server_proxy_with_the_kubeconfig_token(
    alertmanager: str, tmp_path: Path
) -> None:
    # the local server plays the API server: the silence reaches it on the service proxy path, authenticated
    # with the kubeconfig context's bearer token
    from k8s_ops.talos.hooks import SilenceMemo, silence_create, silence_expire
    from k8s_ops.talos.inventory import load_cluster
    from k8s_ops.talos.inventory.models import Alertmanager
    from k8s_ops.tools.kubectl import KubeTarget

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "demo", "cluster": {"server": alertmanager}}],
                "users": [{"name": "admin@demo", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "demo", "context": {"cluster": "demo", "user": "admin@demo"}}],
                "current-context": "demo",
            }
        )
    )
    am = Alertmanager.model_validate({"service": {"namespace": "monitoring", "name": "alertmanager-operated",
                                                  "port": "web"}})  # fmt: skip
    node = load_cluster("demo").workers[0]
    memo = SilenceMemo()
    kube = KubeTarget(kubeconfig, "demo")
    create = silence_create(am, node, memo, minutes=5, why="test", kube=kube)
    proxy = "/api/v1/namespaces/monitoring/services/http:alertmanager-operated:web/proxy"
    assert create.display().startswith(f"alertmanager-silence {proxy}/api/v2/silences")
    create.apply(None)  # type: ignore[arg-type]
    silence_expire(am, node, memo, kube=kube).apply(None)  # type: ignore[arg-type]
    (post, delete) = _Alertmanager.events
    assert post[1] == f"{proxy}/api/v2/silences" and post[3] == "Bearer t0ken"
    assert delete[1] == f"{proxy}/api/v2/silence/5947eba9-c472-42c4-88fe-ad9b8cd781b0" and delete[3] == "Bearer t0ken"
    with pytest.raises(ValidationError, match="exactly one of `url`"):
        Alertmanager.model_validate({"url": alertmanager, "service": {"name": "alertmanager-operated"}})


def test_kubectl_and_job_hooks_run_against_the_cluster_and_a_failing_job_hook_stops_first(
    lab: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_upgrade_gates_sim import write_job

    job = write_job("drain-check")
    set_upgrade(
        hooks={
            "preCluster": [
                {"kubectl": ["annotate", "node", "demo-wk-1", "example.com/rollout=started", "--overwrite"]}
            ],
            "preNode": [{"job": job, "timeout": 60}],
        }
    )
    lab.fault("job-fails", cluster="demo", match="default/drain-check", message="osd.3 is down")
    err = failing("upgrade-cluster", capsys, only="demo-wk-1")
    node = lab.get_object("Node", "demo-wk-1")
    assert node is not None and node["metadata"]["annotations"]["example.com/rollout"] == "started"
    assert "preNode hook for demo-wk-1: Job default/drain-check" in err and "osd.3 is down" in err
    assert talosctl_calls(lab, "upgrade") == []
    lab.clear_faults()
    task("upgrade-cluster", only="demo-wk-1")
    assert [node_of(a) for a in talosctl_calls(lab, "upgrade")] == ["10.5.0.14"]


MEET = (
    "import os, pathlib, sys, time\n"
    "here = pathlib.Path(sys.argv[1])\n"
    "(here / os.environ['NODE']).touch()\n"
    "deadline = time.monotonic() + 60\n"
    "while len(list(here.iterdir())) < 2:\n"
    "    if time.monotonic() > deadline:\n"
    "        sys.exit('the other node of the batch never ran its hook alongside')\n"
    "    time.sleep(0.02)\n"
)


def test_a_batchs_node_hooks_run_concurrently(lab: Sim, tmp_path: Path) -> None:
    # each hook waits until the batch's other node ran the same hook: run one after the other, they would fail
    pre, post = tmp_path / "pre", tmp_path / "post"
    pre.mkdir()
    post.mkdir()
    set_upgrade(
        hooks={
            "preNode": [{"command": [sys.executable, "-c", MEET, str(pre)]}],
            "postNode": [{"command": [sys.executable, "-c", MEET, str(post)]}],
        }
    )
    task("upgrade-cluster", role="worker", max_unavailable=2)
    assert sorted(p.name for p in pre.iterdir()) == sorted(p.name for p in post.iterdir()) == ["demo-wk-1", "demo-wk-2"]
    assert sorted(node_of(a) for a in talosctl_calls(lab, "upgrade")) == ["10.5.0.14", "10.5.0.15"]
