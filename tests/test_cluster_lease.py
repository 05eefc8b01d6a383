"""The cluster-side run lock (k8s_ops.core.lease): a coordination.k8s.io/v1 Lease in namespace k8s-ops.

Against the simulator (`lab`: a running demo cluster, 3 controlplanes). "Another machine" is a Lease written into the
simulator with another holder, or a second process with its own state dir (so the local flock cannot see it).
Lease time is driven by a logical clock (`Logical`) wherever expiry matters — no sleeps, no timing asserts.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.core import paths
from k8s_ops.core.command import Command, Result
from k8s_ops.core.errors import Aborted, ClusterLocked, GateFailed
from k8s_ops.core.execute import Interrupted
from k8s_ops.core.lease import DURATION, NAMESPACE, Clock, LeaseHolder, _Lease, cluster_lease, identity
from k8s_ops.core.pipeline import LOCK_HELP, locked
from k8s_ops.core.plan import Action, Plan, Step
from k8s_ops.core.prompt import answering
from k8s_ops.core.runner import SubprocessRunner
from k8s_ops.core.testing import FakeRunner
from k8s_ops.talos import tasks as talos_tasks
from tests.sim.simlib.api import Sim
from tests.test_fleet_merge import fleet  # noqa: F401 — clusters with kubeconfigs and talosconfigs to merge
from tests.test_lifecycle_sim import lab, node_of, talosctl_calls  # noqa: F401 — the lifecycle simulator fixture

REPO = Path(__file__).resolve().parent.parent
OTHER = "ops@laptop-2 talos.upgrade-cluster (pid 4242)"
CP1, CP2 = "10.5.0.11", "10.5.0.12"


def kc(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The simulated kubectl against the demo cluster, with the toolkit's kubeconfig."""
    argv = ["kubectl", "--kubeconfig", str(paths.kubeconfig_path("demo")), "--context", "demo", *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)


def lease_doc(holder: str, renewed: datetime, *, duration: int = DURATION, rv: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "demo", "namespace": NAMESPACE}
    if rv:
        meta["resourceVersion"] = rv
    stamp = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    spec = {"holderIdentity": holder, "leaseDurationSeconds": duration, "acquireTime": stamp, "renewTime": stamp}
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}


def put_lease(holder: str, renewed: datetime, *, duration: int = DURATION) -> None:
    """Write the Lease as another machine would (namespace created if missing)."""
    kc("create", "namespace", NAMESPACE)
    done = kc("apply", "-f", "-", stdin=json.dumps(lease_doc(holder, renewed, duration=duration)))
    assert done.returncode == 0, done.stderr


def lease() -> LeaseHolder | None:
    got = kc("get", "leases.coordination.k8s.io", "demo", "--namespace", NAMESPACE, "-o", "json")
    return LeaseHolder.parse(json.loads(got.stdout)) if got.returncode == 0 else None


class Logical:
    """A logical clock for the lease: `sleep` advances it (and runs `on_sleep`), nothing waits."""

    def __init__(self, start: datetime) -> None:
        self.t = start
        self.sleeps = 0
        self.on_sleep: Callable[[Logical], None] | None = None

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.t += timedelta(seconds=seconds)
        if self.on_sleep is not None:
            self.on_sleep(self)

    @property
    def clock(self) -> Clock:
        return Clock(self.now, self.sleep)


def _plan(ran: list[str], probe: Callable[[], None] = lambda: None) -> Plan:
    def act(_: object) -> None:
        probe()
        ran.append("ran")

    return Plan("do a thing", "demo", (Step("s", prepare=(Action("touch", "x", run=act),)),))


def _run_locked(plan: Plan, **kwargs: Any) -> None:
    from k8s_ops.core.pipeline import run

    with locked(plan, SubprocessRunner(), **kwargs):
        run(plan, SubprocessRunner(), yes=True)


# --------------------------------------------------------------------------- the simulator honours the API


@pytest.mark.usefixtures("lab")
def test_sim_kubectl_create_of_an_existing_object_fails_already_exists() -> None:
    kc("create", "namespace", NAMESPACE)
    doc = json.dumps(lease_doc(OTHER, datetime.now(UTC)))
    first = kc("create", "-f", "-", "-o", "json", stdin=doc)
    assert first.returncode == 0 and json.loads(first.stdout)["metadata"]["resourceVersion"]
    second = kc("create", "-f", "-", stdin=doc)
    assert second.returncode == 1
    assert second.stderr.startswith(
        'Error from server (AlreadyExists): error when creating "STDIN": '
        'leases.coordination.k8s.io "demo" already exists'
    )


@pytest.mark.usefixtures("lab")
def test_sim_kubectl_create_in_a_missing_namespace_is_not_found_naming_the_namespace() -> None:
    missing = kc("create", "-f", "-", "-o", "json", stdin=json.dumps(lease_doc(OTHER, datetime.now(UTC))))
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith(
        f'Error from server (NotFound): error when creating "STDIN": namespaces "{NAMESPACE}" not found'
    )
    assert lease() is None  # and the read of a Lease in a missing namespace is plain NotFound (None)


@pytest.mark.usefixtures("lab")
def test_sim_kubectl_replace_checks_the_resource_version() -> None:
    now = datetime.now(UTC)
    missing = kc("replace", "-f", "-", stdin=json.dumps(lease_doc(OTHER, now, rv="1")))
    assert missing.returncode == 1 and "(NotFound)" in missing.stderr and "error when replacing" in missing.stderr
    put_lease(OTHER, now)
    held = lease()
    assert held is not None
    rv = held.resource_version
    ok = kc("replace", "-f", "-", "-o", "json", stdin=json.dumps(lease_doc("me", now, rv=rv)))
    assert ok.returncode == 0
    stored = json.loads(ok.stdout)
    assert stored["spec"]["holderIdentity"] == "me" and stored["metadata"]["resourceVersion"] != rv
    stale = kc("replace", "-f", "-", stdin=json.dumps(lease_doc("someone-else", now, rv=rv)))
    assert stale.returncode == 1
    assert stale.stderr.startswith(
        'Error from server (Conflict): error when replacing "STDIN": Operation cannot be fulfilled on '
        'leases.coordination.k8s.io "demo": the object has been modified; please apply your changes to the latest '
        "version and try again"
    )
    assert (lease() or pytest.fail("gone")).holder == "me"  # the stale write changed nothing
    unconditional = kc("replace", "-f", "-", stdin=json.dumps(lease_doc("someone-else", now)))
    assert unconditional.returncode == 1
    assert "(Invalid)" in unconditional.stderr and "metadata.resourceVersion" in unconditional.stderr


# --------------------------------------------------------------------------- optimistic concurrency


@pytest.mark.usefixtures("lab")
def test_two_takers_of_an_expired_lease_exactly_one_wins() -> None:
    put_lease(OTHER, datetime.now(UTC) - timedelta(minutes=10))
    seen = lease()
    assert seen is not None and seen.free(datetime.now(UTC))
    a = _Lease(SubprocessRunner(), "demo", "a@host-a t (pid 1)", Clock())
    b = _Lease(SubprocessRunner(), "demo", "b@host-b t (pid 2)", Clock())
    won = [a.take_over(seen), b.take_over(seen)]  # both read the same version
    assert won == [True, False]
    after = lease()
    assert after is not None and after.holder == "a@host-a t (pid 1)" and after.transitions == seen.transitions + 1


@pytest.mark.usefixtures("lab")
def test_two_creators_exactly_one_wins() -> None:
    kc("create", "namespace", NAMESPACE)
    a = _Lease(SubprocessRunner(), "demo", "a@host-a t (pid 1)", Clock())
    b = _Lease(SubprocessRunner(), "demo", "b@host-b t (pid 2)", Clock())
    assert [a.create(), b.create()] == [True, False]
    assert (lease() or pytest.fail("gone")).holder == "a@host-a t (pid 1)"


class _Looking:
    """The real runner, noting each kubectl verb (after the global flags); its first two calls must meet (a
    Barrier): made one after the other they would break it, so passing proves the first look is one round trip."""

    def __init__(self) -> None:
        self.inner = SubprocessRunner()
        self.calls: list[list[str]] = []
        self.meet = threading.Barrier(2, timeout=60)
        self._lock = threading.Lock()

    def run(self, command: Command, *, check: bool = True) -> Result:
        argv = command.display_argv()
        with self._lock:
            self.calls.append(argv)
            first = len(self.calls) <= 2
        if first:
            self.meet.wait()
        return self.inner.run(command, check=check)

    @property
    def verbs(self) -> list[str]:
        return [next(a for a in argv[5:] if not a.startswith("--")) for argv in self.calls]


def _looked(take: Callable[[_Looking], None]) -> list[str]:
    """The kubectl verbs of one acquisition: the first look (read and create at once, sorted), then the rest."""
    looking = _Looking()
    take(looking)
    assert not any("/readyz" in argv for argv in looking.calls)  # the first look's answers say the API answers
    return [*sorted(looking.verbs[:2]), "|", *looking.verbs[2:]]


@pytest.mark.usefixtures("lab")
def test_the_first_look_reads_and_creates_at_once_so_each_common_case_costs_fewest_round_trips() -> None:
    me = "me@here t (pid 1)"

    def hold(runner: _Looking) -> None:
        with cluster_lease(runner, "demo", me, renew_every=3600) as held:  # no renewal among the counted calls
            assert held is not None and held.holder == me and (lease() or pytest.fail("gone")).holder == me
            runner.calls.append(["kubectl", "-", "-", "-", "-", "released:"])  # the release follows this mark

    # a fresh cluster: the create is NotFound (no namespace yet), so the namespace, then the Lease again
    assert _looked(hold) == ["create", "get", "|", "apply", "create", "released:", "replace"]
    # every later run finds the released Lease: its read is the loop's first read, the create's refusal changed nothing
    assert _looked(hold) == ["create", "get", "|", "replace", "released:", "replace"]
    assert (lease() or pytest.fail("gone")).transitions == 1 and (lease() or pytest.fail("gone")).holder == ""
    # the namespace is there but not the Lease (an admin created and RBAC-scoped it): the create wins at once
    assert kc("delete", "leases.coordination.k8s.io", "demo", "--namespace", NAMESPACE).returncode == 0
    assert _looked(hold) == ["create", "get", "|", "released:", "replace"]
    # held by another run: its read names the holder, nothing is written
    put_lease(OTHER, datetime.now(UTC))

    def refused(runner: _Looking) -> None:
        with pytest.raises(ClusterLocked, match="ops@laptop-2"), cluster_lease(runner, "demo", me):
            pytest.fail("took a live lease")

    assert _looked(refused) == ["create", "get", "|"]
    assert (lease() or pytest.fail("gone")).holder == OTHER


def test_a_first_look_without_an_answer_asks_readyz_and_an_api_that_answers_is_then_locked_as_usual() -> None:
    kubeconfig = paths.kubeconfig_path("demo")
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text("apiVersion: v1\n")
    slow = Result(1, "", "Unable to connect to the server: net/http: request canceled (Client.Timeout exceeded)")
    stored = lease_doc("me", datetime.now(UTC), rv="7")
    runner = FakeRunner({
        re.compile(r"--request-timeout=5s (get|create) --filename|--request-timeout=5s get leases"): slow,
        re.compile(r"get --raw /readyz"): Result(0, "ok"),
        re.compile(r"^kubectl \S+ \S+ --context demo get leases"): Result(1, "", NOT_FOUND_LEASE),
        re.compile(r"^kubectl \S+ \S+ --context demo create --filename"): Result(0, json.dumps(stored)),
        re.compile(r"replace --filename"): Result(0, json.dumps(stored)),
    })  # fmt: skip
    notes: list[str] = []
    with cluster_lease(runner, "demo", "me", out=notes.append) as held:
        assert held is not None and held.holder == "me"
    assert notes == []
    verbs = [" ".join(a[5:7]) for a in runner.argvs]
    assert sorted(verbs[:2]) == ["--request-timeout=5s create", "--request-timeout=5s get"]
    # /readyz answered: the API is there, so the usual read and create (without the first look's timeout)
    assert verbs[2:] == ["--request-timeout=5s get", "get leases.coordination.k8s.io", "create --filename",
                         "replace --filename"]  # fmt: skip


NOT_FOUND_LEASE = 'Error from server (NotFound): leases.coordination.k8s.io "demo" not found'


# --------------------------------------------------------------------------- another machine's lease


def test_held_lock_has_its_own_error_class_and_exit_code() -> None:
    from k8s_ops.core.errors import ToolkitError

    assert issubclass(ClusterLocked, ToolkitError) and not issubclass(ClusterLocked, GateFailed)
    assert ClusterLocked.exit_code == 75
    others = {ToolkitError.exit_code, GateFailed.exit_code, Aborted.exit_code, Interrupted.exit_code, 129, 143}
    assert ClusterLocked.exit_code not in others  # a wrapper can tell "someone else is operating" from a failure


def test_a_live_lease_of_another_machine_blocks_a_reboot_naming_holder_and_since(
    lab: Sim,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    put_lease(OTHER, since)
    before = lab.node(CP2)["boot_id"]
    capsys.readouterr()
    with pytest.raises(Exit) as exc:
        talos_tasks.reboot_node(Context(), cluster="demo", node="demo-cp-2", yes=True)
    assert exc.value.code == 75
    err = capsys.readouterr().err
    assert f"cluster demo is locked by another run (Lease {NAMESPACE}/demo): {OTHER} since " in err
    assert since.strftime("%Y-%m-%dT%H:%M:%SZ") in err
    assert "--break-lock" in err and "--lock-timeout" in err
    assert lab.node(CP2)["boot_id"] == before and talosctl_calls(lab, "reboot") == []
    assert (lease() or pytest.fail("gone")).holder == OTHER  # untouched


def test_an_expired_lease_is_taken_over_and_released_after_the_run(
    lab: Sim,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    put_lease(OTHER, datetime.now(UTC) - timedelta(minutes=10))
    talos_tasks.reboot_node(Context(), cluster="demo", node="demo-wk-1", yes=True)
    err = capsys.readouterr().err
    assert f"took over the expired Lease {NAMESPACE}/demo of {OTHER}" in err
    after = lease()
    assert after is not None and after.holder == "" and after.transitions == 1  # released: holder cleared
    assert len(talosctl_calls(lab, "reboot")) == 1


@pytest.mark.usefixtures("lab")
def test_a_second_run_waits_for_the_lease_then_proceeds() -> None:
    put_lease(OTHER, datetime.now(UTC))
    clock = Logical(datetime.now(UTC))
    holders: list[str] = []

    def other_finishes(c: Logical) -> None:  # the other machine renews twice, then releases
        if c.sleeps <= 2:
            put_lease(OTHER, c.t)
        else:
            put_lease("", c.t)

    clock.on_sleep = other_finishes
    ran: list[str] = []
    _run_locked(_plan(ran, lambda: holders.append((lease() or pytest.fail("gone")).holder)), timeout=600,
                clock=clock.clock)  # fmt: skip
    assert ran == ["ran"] and clock.sleeps == 3
    assert holders[0].endswith(f"do a thing (pid {os.getpid()})")
    assert (lease() or pytest.fail("gone")).holder == ""


@pytest.mark.usefixtures("lab")
def test_a_renewed_lease_makes_the_wait_time_out_naming_the_holder() -> None:
    start = datetime.now(UTC)
    put_lease(OTHER, start)
    clock = Logical(start)
    clock.on_sleep = lambda c: put_lease(OTHER, c.t)  # alive: renews every time we look
    notes: list[str] = []
    me = "me@here t (pid 1)"
    with (
        pytest.raises(ClusterLocked) as exc,
        cluster_lease(SubprocessRunner(), "demo", me, timeout=30, out=notes.append, clock=clock.clock),
    ):
        pytest.fail("took a live lease")
    assert OTHER in str(exc.value) and exc.value.exit_code == 75
    assert clock.t - start == timedelta(seconds=30) and clock.sleeps == 15  # the whole timeout, read every 2 s
    assert len(notes) == 1 and notes[0].startswith(f"waiting up to 30s for the Lease {NAMESPACE}/demo: {OTHER} since ")


@pytest.mark.usefixtures("lab")
def test_a_lease_never_renewed_is_free_after_watching_it_for_its_duration_whatever_its_clock_says() -> None:
    # client-go's rule: the holder's renewTime is on its own clock (here an hour ahead), so expiry is also measured
    # from when *we* saw the record last change
    start = datetime.now(UTC)
    put_lease(OTHER, start + timedelta(hours=1))
    clock = Logical(start)
    notes: list[str] = []
    ran: list[str] = []
    with cluster_lease(SubprocessRunner(), "demo", "me@here t (pid 1)", timeout=300, out=notes.append,
                       clock=clock.clock) as held:  # fmt: skip
        ran.append("ran")
        assert held is not None and held.holder == "me@here t (pid 1)"
    assert clock.t - start >= timedelta(seconds=DURATION) and clock.t - start < timedelta(seconds=DURATION + 5)
    assert any("took over the expired Lease" in n for n in notes)


@pytest.mark.usefixtures("lab")
def test_break_lock_takes_over_a_live_lease_only_after_the_typed_cluster_name() -> None:
    put_lease(OTHER, datetime.now(UTC))
    ran: list[str] = []
    with pytest.raises(Aborted):
        _run_locked(_plan(ran), break_lock=True, prompt=answering("wrong"))
    with pytest.raises(Aborted):
        _run_locked(_plan(ran), break_lock=True, prompt=answering(None))  # no terminal: never broken silently
    assert ran == [] and (lease() or pytest.fail("gone")).holder == OTHER
    _run_locked(_plan(ran), break_lock=True, prompt=answering("demo"))
    assert ran == ["ran"]
    after = lease()
    assert after is not None and after.holder == "" and after.transitions == 1


@pytest.mark.usefixtures("lab")
def test_break_lock_refuses_a_lease_whose_holder_runs_on_this_host() -> None:
    alive = identity("talos.reboot-node", "ops", socket.gethostname(), os.getpid())  # e.g. another state dir
    put_lease(alive, datetime.now(UTC))
    ran: list[str] = []
    with pytest.raises(ClusterLocked, match="refusing to break the Lease"):
        _run_locked(_plan(ran), break_lock=True, prompt=answering("demo"))
    assert ran == [] and (lease() or pytest.fail("gone")).holder == alive


# --------------------------------------------------------------------------- renewal, release, a killed holder


@pytest.mark.usefixtures("lab")
def test_the_lease_is_renewed_while_the_run_lasts_and_released_when_it_fails() -> None:
    me = "me@here t (pid 1)"
    versions: list[str] = []
    with pytest.raises(RuntimeError), cluster_lease(SubprocessRunner(), "demo", me, renew_every=0.01) as held:
        assert held is not None
        versions.append(held.resource_version)
        for _ in range(2000):  # until the background thread has renewed it (bounded; no timing assert)
            now = lease()
            assert now is not None and now.holder == me
            if now.resource_version != versions[0]:
                versions.append(now.resource_version)
                break
            threading.Event().wait(0.01)
        raise RuntimeError("the run failed")
    assert len(versions) == 2, "never renewed"
    assert (lease() or pytest.fail("gone")).holder == ""  # released although the body raised


@pytest.mark.usefixtures("lab")
def test_a_lost_lease_is_reported_and_not_cleared_at_the_end() -> None:
    notes: list[str] = []
    lost = threading.Event()

    def out(line: str) -> None:
        notes.append(line)
        if "was lost" in line:
            lost.set()

    with cluster_lease(SubprocessRunner(), "demo", "me@here t (pid 1)", renew_every=0.01, out=out):
        put_lease(OTHER, datetime.now(UTC))  # someone broke it
        assert lost.wait(60)
    assert any(f"now held by {OTHER}" in n for n in notes)
    assert (lease() or pytest.fail("gone")).holder == OTHER  # its lease, not ours to release


_HOLDER = textwrap.dedent(
    """
    import sys
    from k8s_ops.core.pipeline import LOCK_HELP, locked
    from k8s_ops.core.plan import Action, Plan, Step
    from k8s_ops.core.runner import SubprocessRunner

    plan = Plan("hold the lock", "demo", (Step("s", prepare=(Action("touch", "x", run=lambda _: None),)),))
    with locked(plan, SubprocessRunner()):
        print("HELD", flush=True)
        sys.stdin.read()  # until killed
    """
)


def _other_machine_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["K8S_OPS_STATE_DIR"] = str(tmp_path / "other-machine-state")  # its own local lock: only the Lease is shared
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.mark.usefixtures("lab")
def test_a_killed_holders_lease_blocks_until_it_expires_then_is_taken_over(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=_other_machine_env(tmp_path), cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "HELD"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    held = lease()
    assert held is not None and held.holder.endswith(f"hold the lock (pid {proc.pid})")  # never released
    ran: list[str] = []
    with pytest.raises(ClusterLocked, match=f"pid {proc.pid}"):
        _run_locked(_plan(ran))
    assert held.expires is not None
    later = Logical(held.expires + timedelta(seconds=1))  # a minute on: the dead holder renewed nothing
    _run_locked(_plan(ran), clock=later.clock)
    assert ran == ["ran"] and later.sleeps == 0
    assert (lease() or pytest.fail("gone")).transitions == 1


# --------------------------------------------------------------------------- the done-when


class _Paused:
    """Machine A's runner: stops before `talosctl reboot` until released, so A holds the lock mid-operation, and
    notes what the simulated cluster looks like when A releases its Lease (the last thing A does)."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.inner = SubprocessRunner()
        self.reached = threading.Event()
        self.go = threading.Event()
        self.at_release: tuple[list[str], str] | None = None

    def run(self, command: Command, *, check: bool = True) -> Result:
        argv = command.display_argv()
        if argv[:2] == ["talosctl", "reboot"]:
            self.reached.set()
            assert self.go.wait(300)
        if "replace" in argv and b'"holderIdentity"' not in (command.stdin or b""):  # type: ignore[operator]
            self.at_release = ([node_of(c) for c in talosctl_calls(self.sim, "reboot")], self.sim.node(CP1)["stage"])
        return self.inner.run(command, check=check)


def _reboot_elsewhere(tmp_path: Path, node: str, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "invoke", "talos.reboot-node", "--cluster", "demo", "--node", node, "--yes", *extra]
    return subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=_other_machine_env(tmp_path), cwd=REPO)  # fmt: skip


def _start_reboot_a(paused: _Paused, errors: list[BaseException]) -> threading.Thread:
    ctx = Context(Config(overrides={"k8s_ops": {"runner": lambda: paused}}))

    def a() -> None:
        try:
            talos_tasks.reboot_node(ctx, cluster="demo", node="demo-cp-1", yes=True)
        except BaseException as exc:  # surfaced to the test
            errors.append(exc)
            paused.reached.set()

    thread = threading.Thread(target=a)
    thread.start()
    assert paused.reached.wait(300) and not errors
    return thread


def test_two_concurrent_controlplane_reboots_on_two_machines_are_serialised_and_quorum_holds(
    lab: Sim,  # noqa: F811
    tmp_path: Path,
) -> None:
    paused, errors = _Paused(lab), list[BaseException]()
    a = _start_reboot_a(paused, errors)  # machine A holds the lock, about to take demo-cp-1 down
    holder = (lease() or pytest.fail("no lease")).holder
    assert holder.endswith(f"(pid {os.getpid()})") and "reboot" in holder
    cp2_before = lab.node(CP2)["boot_id"]

    fast = _reboot_elsewhere(tmp_path, "demo-cp-2")  # machine B, no --lock-timeout: fails naming A
    _, err = fast.communicate(timeout=300)
    assert fast.returncode == 75, err
    assert f"cluster demo is locked by another run (Lease {NAMESPACE}/demo): {holder} since " in err

    waiting = _reboot_elsewhere(tmp_path, "demo-cp-2", "--lock-timeout", "600")  # machine B waits
    assert waiting.stderr is not None
    lines: list[str] = []
    for line in waiting.stderr:
        lines.append(line)
        if line.startswith("waiting up to 600s for the Lease"):
            break
    assert lines and lines[-1].startswith("waiting up to 600s"), "".join(lines)
    assert lab.node(CP2)["boot_id"] == cp2_before and talosctl_calls(lab, "reboot") == []

    paused.go.set()  # A reboots demo-cp-1, waits for it and the health gate, then releases
    a.join(300)
    assert not errors
    _, rest = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, "".join(lines) + rest
    reboots = [node_of(c) for c in talosctl_calls(lab, "reboot")]
    # quorum: B could take demo-cp-2 down only after A released — and when A released, demo-cp-1 was back running
    assert paused.at_release == ([CP1], "running") and reboots == [CP1, CP2]
    assert {lab.node(a)["stage"] for a in (CP1, CP2)} == {"running"} and lab.node(CP2)["boot_id"] != cp2_before
    assert (lease() or pytest.fail("gone")).holder == ""


# --------------------------------------------------------------------------- dry run, no API, every task


@pytest.mark.usefixtures("lab")
def test_dry_run_says_which_lock_in_one_line_and_takes_none(capsys: pytest.CaptureFixture[str]) -> None:
    put_lease(OTHER, datetime.now(UTC))  # held elsewhere: a dry run neither waits nor fails
    talos_tasks.reboot_node(Context(), cluster="demo", node="demo-cp-2", dry_run=True)
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("lock: ")]
    assert len(lines) == 1 and out.rstrip().endswith(lines[0])
    assert "lock of cluster demo" in lines[0] and f"Lease {NAMESPACE}/demo" in lines[0]
    assert str(paths.state_dir() / "locks" / "demo.lock") in lines[0]
    talos_tasks.reboot_node(Context(), cluster="demo", node="demo-cp-2", dry_run=True, json=True)
    captured = capsys.readouterr()
    json.loads(captured.out)  # stdout stays the plan
    assert "lock: the run takes the lock of cluster demo" in captured.err
    assert not (paths.state_dir() / "locks" / "demo.holder.json").exists()
    assert (lease() or pytest.fail("gone")).holder == OTHER
    talos_tasks.health(Context(), cluster="demo", dry_run=True)  # read-only: no lock line
    assert "lock: " not in capsys.readouterr().out


def test_without_kubeconfig_or_api_the_run_holds_the_local_lock_only_and_says_so(tmp_path: Path) -> None:
    notes: list[str] = []
    with cluster_lease(FakeRunner(), "demo", "me", out=notes.append) as held:  # no kubeconfig: no command at all
        assert held is None
    assert notes == ["lock: cluster demo: no kubeconfig yet — local lock only, no cluster-side Lease"]
    kubeconfig = paths.kubeconfig_path("demo")
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text("apiVersion: v1\n")
    refused = Result(1, "", "The connection to the server 10.5.0.10:6443 was refused - did you specify the right host?")
    runner = FakeRunner({re.compile(r"^kubectl .* --request-timeout=5s (get|create) "): refused})
    notes.clear()
    with cluster_lease(runner, "demo", "me", out=notes.append) as held:
        assert held is None
    assert len(notes) == 1 and "the Kubernetes API does not answer" in notes[0] and "local lock only" in notes[0]
    # the first look (read and create at once) got no answer, so /readyz decided — nothing else was tried
    first, probe = runner.argvs[:2], runner.argvs[2:]
    assert sorted(a[5:7] for a in first) == [["--request-timeout=5s", "create"], ["--request-timeout=5s", "get"]]
    assert [a[5:] for a in probe] == [["--request-timeout=5s", "get", "--raw", "/readyz"]]


READ_ONLY = {
    "bootstrap.dr-check",
    "fleet.status",
    "gitops.lint",
    "gitops.validate",
    "op.status",
    "talos.etcd-status",
    "talos.health",
    "talos.validate",
    "volsync.status",
}
"""The tasks that only read (status, health, validation, lint, checks): the only ones without the lock options. Every
other task — and so every new one — must carry them; a task lands here only if it can never change anything."""


def test_every_task_but_the_read_only_ones_has_the_lock_options_with_the_shared_help() -> None:
    from tasks import ns

    assert set(ns.task_names) >= READ_ONLY  # a renamed read-only task fails here instead of passing silently
    missing = [n for n in sorted(ns.task_names) if n not in READ_ONLY and not _has_lock_options(ns[n].body)]
    assert missing == [], f"tasks without --lock-timeout/--break-lock (add them, or list a read-only task): {missing}"
    for name in ns.task_names:  # wherever the options exist, their help is the one text of core/pipeline.py
        if "lock_timeout" in _params(ns[name].body):
            assert ns[name].help.get("lock-timeout") == LOCK_HELP["lock-timeout"], name
            assert ns[name].help.get("break-lock") == LOCK_HELP["break-lock"], name


def test_the_read_only_allowlist_is_read_only() -> None:
    # a read-only task that grew the options (it may mutate now) leaves the allowlist, so the list stays short
    from tasks import ns

    assert [n for n in sorted(READ_ONLY) if _has_lock_options(ns[n].body)] == []


@pytest.mark.usefixtures("fleet")
def test_fleet_merges_lock_the_fleets_local_files_not_a_cluster_and_take_no_lease(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # before: the dry run said "lock of cluster fleet … the Lease k8s-ops/fleet once the API exists" — no such cluster
    from k8s_ops.core.lock import cluster_lock
    from k8s_ops.fleet import tasks as fleet_tasks

    fleet_tasks.talosconfig_merge(Context(), dry_run=True)
    out = capsys.readouterr().out
    path = paths.state_dir() / "locks" / "_fleet.lock"
    assert [ln for ln in out.splitlines() if ln.startswith("lock: ")] == [
        f"lock: the run takes the lock of the fleet (local files): {path} (local files only: no cluster, so no "
        "cluster-side Lease)"
    ]
    assert f"Lease {NAMESPACE}/" not in out
    fake = FakeRunner()
    ctx = Context(Config(overrides={"k8s_ops": {"runner": lambda: fake}}))
    with cluster_lock("fleet", "another merge", local=True), pytest.raises(Exit):  # another merge holds it
        fleet_tasks.kubeconfig_merge(ctx)
    assert "the fleet (local files) is locked by another run" in capsys.readouterr().err
    with cluster_lock("fleet", "a cluster named fleet"):  # a cluster's lock is another lock
        fleet_tasks.kubeconfig_merge(ctx)
    assert fake.calls == []  # no API asked for a Lease
    assert "local lock only" not in capsys.readouterr().err


def _has_lock_options(fn: Callable[..., object]) -> bool:
    return {"lock_timeout", "break_lock"} <= set(_params(fn))


def _params(fn: Callable[..., object]) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_identity_names_user_host_task_and_pid() -> None:
    assert identity("reboot node demo-cp-1", "ops", "laptop", 42) == "ops@laptop reboot node demo-cp-1 (pid 42)"
