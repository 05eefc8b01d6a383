"""The one read layer (kubectl get-or-none / list-or-empty, Obj, dig), partial facts, the one poll adapter, transient
vs permanent errors in waits, and the one last_error_line."""

from __future__ import annotations

import json
import re

import pytest

from k8s_ops.core import errors
from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import (
    CommandFailed,
    CommandTimeout,
    GateFailed,
    Problem,
    ProblemsError,
    ToolkitError,
    last_error_line,
)
from k8s_ops.core.facts import Fact, Partial, dig
from k8s_ops.core.testing import FakeRunner
from k8s_ops.core.wait import NotYet, StopWaiting, wait_check, wait_for, wait_until
from k8s_ops.tools import kubectl
from k8s_ops.tools.kubectl import KubectlOutputError, KubeTarget, Obj

TARGET = KubeTarget.for_cluster("demo")
NOT_FOUND = Result(1, "", 'Error from server (NotFound): deployments.apps "web" not found')


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_OPS_POLL_INTERVAL", "0.001")
    monkeypatch.setenv("K8S_OPS_TIMEOUT_SCALE", "1")


def _obj(**status: object) -> dict[str, object]:
    return {
        "metadata": {"name": "web", "namespace": "apps", "generation": 2, "labels": {"a": "b"}},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, **status},
    }


# --------------------------------------------------------------------------- read layer


def test_dig_reads_through_missing_null_and_non_mapping_levels() -> None:
    doc = {"a": {"b": {"c": 1}, "n": None, "s": "text"}}
    assert dig(doc, "a", "b", "c") == 1
    assert dig(doc, "a", "x", "c") is None
    assert dig(doc, "a", "n", "c", default=0) == 0
    assert dig(doc, "a", "s", "c", default="?") == "?"
    assert dig(None, "a", default={}) == {}


def test_obj_accessor() -> None:
    raw = _obj(conditions=[{"type": "Ready", "status": "True"}, {"type": "Stalled", "status": "False"}])
    obj = Obj(raw)
    assert (obj.name, obj.namespace, dict(obj.labels), dict(obj.annotations)) == ("web", "apps", {"a": "b"}, {})
    assert (obj.generation, obj.observed_generation) == (2, 2)
    assert obj.is_true("Ready") and not obj.is_true("Stalled") and not obj.is_true("Available")
    assert obj.condition("Stalled") == {"type": "Stalled", "status": "False"}
    assert obj.status("conditions", default=[])[0]["type"] == "Ready"
    assert obj.path("spec", "replicas") == 2
    empty = Obj({})
    assert (empty.name, empty.namespace, empty.generation, empty.observed_generation) == ("", "", 0, 0)


def test_get_or_none_and_list_or_empty() -> None:
    runner = FakeRunner(
        {
            re.compile(r"get deployments web "): Result(0, json.dumps(_obj())),
            re.compile(r"get deployments gone "): NOT_FOUND,
            re.compile(r"get pods --namespace apps"): Result(0, json.dumps({"kind": "List", "items": [_obj()]})),
            re.compile(r"get widgets\.example\.io"): Result(1, "", "error: the server doesn't have a resource type"),
            re.compile(r"get nodes"): Result(1, "", "Unable to connect to the server: dial tcp: i/o timeout"),
            re.compile(r"get secrets"): Result(0, "not json"),
        }
    )
    assert Obj(kubectl.get_or_none(runner, TARGET, "deployments", "web", namespace="apps") or {}).name == "web"
    assert kubectl.get_or_none(runner, TARGET, "deployments", "gone", namespace="apps") is None
    assert [Obj(o).name for o in kubectl.list_or_empty(runner, TARGET, "pods", namespace="apps")] == ["web"]
    assert kubectl.list_or_empty(runner, TARGET, "widgets.example.io", all_namespaces=True) == []
    with pytest.raises(CommandFailed, match="i/o timeout"):
        kubectl.list_or_empty(runner, TARGET, "nodes")
    with pytest.raises(KubectlOutputError):
        kubectl.get_or_none(runner, TARGET, "secrets", "x", namespace="apps")


def test_deployment_and_daemonset_probes() -> None:
    ready = _obj(conditions=[{"type": "Available", "status": "True"}], readyReplicas=2, updatedReplicas=2)
    ds = _obj(desiredNumberScheduled=3, numberReady=2, updatedNumberScheduled=3)
    runner = FakeRunner(
        {
            re.compile(r"get deployments web "): Result(0, json.dumps(ready)),
            re.compile(r"get deployments slow "): Result(0, json.dumps(_obj(readyReplicas=1))),
            re.compile(r"get daemonsets cilium "): Result(0, json.dumps(ds)),
            re.compile(r"get daemonsets gone "): NOT_FOUND,
        }
    )
    assert kubectl.deployment_problem(runner, TARGET, "web", "apps") is None
    assert kubectl.deployment_problem(runner, TARGET, "slow", "apps") == "Deployment apps/slow: 1/2 ready, 0/2 updated"
    assert kubectl.daemonset_problem(runner, TARGET, "cilium", "kube-system") == (
        "DaemonSet kube-system/cilium: 2/3 ready, 3/3 updated"
    )
    assert kubectl.daemonset_problem(runner, TARGET, "gone", "x") == "DaemonSet x/gone does not exist yet"


def test_readiness_probes_report_the_api_error_in_one_line() -> None:
    down = Result(1, "", "E1206 memcache.go:265\nUnable to connect to the server: dial tcp: i/o timeout\n")
    runner = FakeRunner({re.compile(r"get (nodes|customresourcedefinitions)"): down})
    assert kubectl.nodes_problem(runner, TARGET, ["a"], ready=True) == (
        "Kubernetes API: Unable to connect to the server: dial tcp: i/o timeout"
    )
    assert kubectl.crd_problem(runner, TARGET, ["x"]) == kubectl.nodes_problem(runner, TARGET, ["a"], ready=False)


def test_ready_condition_problem() -> None:
    assert kubectl.ready_condition_problem(None, "root ks") == "root ks does not exist"
    stale = _obj(conditions=[{"type": "Ready", "status": "True"}], observedGeneration=1)
    assert kubectl.ready_condition_problem(stale, "ks") == "ks: current generation not reconciled yet"
    failing = _obj(conditions=[{"type": "Ready", "status": "False", "reason": "Failed", "message": "boom"}])
    assert kubectl.ready_condition_problem(failing, "ks") == "ks not Ready (Failed: boom)"


def test_readyz_one_definition() -> None:
    plain = kubectl.readyz(TARGET)
    assert plain.argv[-4:] == ("--request-timeout=5s", "get", "--raw", "/readyz")
    assert plain.description == "ask the API server /readyz"
    via = kubectl.readyz(TARGET, server="https://10.0.0.1:6443")
    assert via.argv[5:8] == ("--server", "https://10.0.0.1:6443", "--request-timeout=5s")
    assert via.description == "ask https://10.0.0.1:6443 /readyz"
    assert kubectl.server_url("10.0.0.1") == "https://10.0.0.1:6443"
    assert kubectl.server_url("fd00::1") == "https://[fd00::1]:6443"


# --------------------------------------------------------------------------- facts


def _read() -> Command:
    return Command(argv=("talosctl", "version"), description="read versions")


def _per_node(result: Result) -> Partial[str]:
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return Partial(values, None if result.ok else last_error_line(result))


def test_partial_fact_keeps_what_answered() -> None:
    fact = Fact(_read(), _per_node, partial=True)
    runner = FakeRunner({("talosctl", "version"): Result(1, "a=v1.12.0\n", "b: connection refused\n")})
    read = fact.gather(runner)
    assert read.get("a") == "v1.12.0" and read.get("b") is None
    assert read.error == "b: connection refused"


def test_plain_fact_raises_and_try_gather_says_none() -> None:
    fact = Fact(_read(), lambda r: r.stdout)
    runner = FakeRunner({("talosctl", "version"): Result(1, "", "unreachable")})
    with pytest.raises(CommandFailed):
        fact.gather(runner)
    assert fact.try_gather(runner) is None
    assert Fact.with_default(_read(), lambda r: r.stdout, "d").gather(runner) == "d"


# --------------------------------------------------------------------------- waits


def test_wait_for_retries_transient_errors() -> None:
    answers: list[Exception | str] = [CommandFailed("kubectl get nodes", 1, "refused"), CommandTimeout("x", 5), "ok"]

    def probe() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for("nodes", probe, timeout=5) == "ok"


@pytest.mark.parametrize(
    "error",
    [KubectlOutputError("kubectl did not print JSON"), ProblemsError([Problem("f", "x", "bad")]), ToolkitError("?")],
)
def test_wait_for_fails_at_once_on_a_permanent_error(error: ToolkitError) -> None:
    calls = []

    def probe() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        wait_for("nodes", probe, timeout=60)
    assert calls == [1]


def test_wait_for_times_out_with_the_last_detail_and_stops_on_stop_waiting() -> None:
    def failing() -> None:
        raise CommandFailed("kubectl get nodes", 1, "first\nUnable to connect to the server")

    with pytest.raises(GateFailed, match=r"last seen: Unable to connect to the server$"):
        wait_for("nodes", failing, timeout=0.01)

    def stop() -> None:
        raise StopWaiting("job failed")

    with pytest.raises(GateFailed, match=r"^nodes: job failed$"):
        wait_for("nodes", stop, timeout=60)


def test_the_poll_adapter_and_its_check() -> None:
    problems = iter(["1/3 ready", "2/3 ready", None])
    wait_until("pods", lambda: next(problems), timeout=5)
    with pytest.raises(GateFailed, match="last seen: never"):
        wait_until("pods", lambda: "never", timeout=0.01)

    seen: list[object] = []

    def probe(runner: object) -> str | None:
        seen.append(runner)
        return None

    check = wait_check("pods Ready", probe, timeout=600, show_timeout=True)
    assert check.description == "pods Ready (timeout 10m)"
    assert wait_check("x", lambda r: None, timeout=30, show_timeout=True).description == "x (timeout 30s)"
    assert wait_check("x", lambda r: None, timeout=30).description == "x"
    runner = FakeRunner()
    check.run(runner)
    assert seen == [runner]


def test_not_yet_is_retried() -> None:
    left = [NotYet("later")]

    def probe() -> bool:
        if left:
            raise left.pop()
        return True

    assert wait_for("x", probe, timeout=5) is True


# --------------------------------------------------------------------------- errors


def test_last_error_line() -> None:
    assert last_error_line(Result(1, "out\n", "warn\nrpc error: unavailable\n\n")) == "rpc error: unavailable"
    assert last_error_line(Result(1, "only stdout\n", "")) == "only stdout"
    assert last_error_line(Result(3, "", "")) == "exit 3"
    assert last_error_line(Result(3, "", ""), "no answer") == "no answer"
    assert last_error_line(CommandFailed("talosctl x", 1, "a\nb: refused")) == "b: refused"
    assert last_error_line(GateFailed("g", "d")) == "g: d"
    assert last_error_line(ToolkitError("")) == "ToolkitError"
    assert last_error_line("") == "no answer"


def test_the_error_tree_documents_every_toolkit_error() -> None:
    import importlib
    import pkgutil

    import k8s_ops

    # every module, so an error class added anywhere is held to the tree
    for info in pkgutil.walk_packages(k8s_ops.__path__, "k8s_ops."):
        importlib.import_module(info.name)

    def subclasses(cls: type) -> set[type]:
        out: set[type] = set()
        sub: type
        for sub in cls.__subclasses__():
            out |= {sub, *subclasses(sub)}
        return out

    doc = errors.__doc__ or ""
    missing = sorted(c.__name__ for c in subclasses(ToolkitError) if c.__module__.startswith("k8s_ops"))
    missing = [name for name in missing if not re.search(rf"\+ {name}\b", doc)]
    assert missing == []
