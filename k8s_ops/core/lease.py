"""The cluster-side run lock: a `coordination.k8s.io/v1` Lease, so two operators on two machines are serialised too.

The local flock (`k8s_ops.core.lock`) only sees runs on this machine. Once the cluster's Kubernetes API answers,
a mutating run also holds the Lease `k8s-ops/<cluster>`:

* holderIdentity `user@host <task> (pid N)`, acquireTime/renewTime (RFC 3339 micro-time), leaseDurationSeconds
  `DURATION`; a background thread renews it every `RENEW_EVERY` seconds while the run lasts, and the run clears the
  holder when it ends however it ends (the way client-go's leader election releases: holder emptied). A holder that
  dies (SIGKILL, power loss) stops renewing and its lease expires `DURATION` seconds after its last renewal.
* every write is optimistic: `kubectl create` fails AlreadyExists when someone created it first, `kubectl replace`
  carries the `resourceVersion` read and fails Conflict when someone wrote it since — so of two takers exactly one
  wins, the other reads again and sees the winner.
* expiry: a lease is free when it has no holder, when renewTime + leaseDurationSeconds is in the past by this
  machine's clock, or — client-go's skew-proof rule — when this run has watched it unchanged (same resourceVersion)
  for leaseDurationSeconds. Renewing every DURATION/4 keeps a live holder 45 s clear of the first rule, far above
  the skew of NTP-synchronised machines.
* why a namespace of its own (`k8s-ops`, created when missing, labelled managed-by k8s-ops): the toolkit's state in
  the cluster is then one namespace an admin can find, RBAC-scope (`leases` verbs get/create/update in `k8s-ops`
  only, plus creating the namespace once) and delete; kube-system would need write access to the leases of the
  control plane itself, and `default` mixes it with workloads. Flux never prunes it: it is in no Kustomization's
  inventory.

Before the API exists (no kubeconfig yet, or the API does not answer: a bootstrap) the run holds the local lock
only and says so in one line.

The first look is one round trip: the Lease is read and created at once, each bounded by `ANSWER_WITHIN`. A fresh
cluster: the create fails NotFound (the namespace), so the namespace, then the Lease again; the namespace there
but no Lease: the create wins; a Lease there (every run after the first, since a release keeps it): the read is
judged as above, the create failed AlreadyExists and changed nothing. An answer to either proves the API answers;
only when neither got one does `/readyz` decide between "the API does not answer" (local lock only) and an error
to report. (A create whose answer the timeout cut off may still have been stored; it then lapses like a killed
holder's, DURATION seconds on.)
"""

from __future__ import annotations

import contextlib
import enum
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from k8s_ops.core import paths
from k8s_ops.core.errors import Aborted, ClusterLocked, ToolkitError, last_error_line
from k8s_ops.core.prompt import Confirm, confirm
from k8s_ops.tools import kubectl

if TYPE_CHECKING:
    from k8s_ops.core.command import Command, Result
    from k8s_ops.core.runner import Runner

__all__ = [
    "DURATION",
    "NAMESPACE",
    "RENEW_EVERY",
    "Clock",
    "LeaseHolder",
    "cluster_lease",
    "describe",
    "identity",
]

NAMESPACE = "k8s-ops"
DURATION = 60
"""leaseDurationSeconds: how long after its last renewal a dead holder's lease blocks others."""
RENEW_EVERY = 15.0
"""Seconds between renewals (DURATION/4: three renewals may fail in a row before the lease can expire)."""
POLL = 2.0
"""Seconds between reads while waiting for another machine's lease (client-go's default RetryPeriod)."""
ANSWER_WITHIN = "5s"
"""kubectl --request-timeout of the first look (and of the `/readyz` probe): a silent API means local lock only."""

_RESOURCE = "leases.coordination.k8s.io"
_ETCD_NOSPACE = "etcdserver: mvcc: database space exceeded"
"""What the API server answers to every write while etcd's NOSPACE alarm is raised (see tests/sim/FIDELITY.md)."""


class _Unread(enum.Enum):
    """The Lease is not read yet (None is "read: absent")."""

    UNREAD = enum.auto()


_UNREAD = _Unread.UNREAD

_IDENTITY = re.compile(r"^(?P<who>\S+@\S+) (?P<task>.*) \(pid (?P<pid>\d+)\)$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Clock:
    """Wall-clock time and sleeping, injectable: tests drive a logical clock instead of waiting."""

    now: Callable[[], datetime] = _utcnow
    sleep: Callable[[float], None] = time.sleep


def identity(task: str, user: str, host: str, pid: int) -> str:
    """The holderIdentity written into the Lease: `user@host <task> (pid N)`."""
    return f"{user}@{host} {task} (pid {pid})"


def _micro(t: datetime) -> str:
    """metav1.MicroTime as the API server serialises it: RFC 3339 with microseconds, UTC."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _short(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else "an unknown time"


@dataclass(frozen=True)
class LeaseHolder:
    """The Lease as read: who holds it since when, its last renewal, and the version a write must carry."""

    holder: str
    acquired: datetime | None
    renewed: datetime | None
    duration: int
    transitions: int
    resource_version: str
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> LeaseHolder:
        o = kubectl.Obj(obj)
        duration = o.path("spec", "leaseDurationSeconds", default=None)
        return cls(
            holder=str(o.path("spec", "holderIdentity", default="") or ""),
            acquired=kubectl.parse_time(o.path("spec", "acquireTime", default=None)),
            renewed=kubectl.parse_time(o.path("spec", "renewTime", default=None)),
            duration=int(duration) if isinstance(duration, int) and duration > 0 else DURATION,
            transitions=int(o.path("spec", "leaseTransitions", default=0) or 0),
            resource_version=str(o.path("metadata", "resourceVersion", default="") or ""),
            raw=obj,
        )

    @property
    def expires(self) -> datetime | None:
        return self.renewed + timedelta(seconds=self.duration) if self.renewed is not None else None

    def free(self, now: datetime) -> bool:
        """No holder, or its last renewal is more than leaseDurationSeconds ago by our clock."""
        return not self.holder or self.expires is None or self.expires <= now

    def describe(self) -> str:
        return (
            f"{self.holder or 'nobody'} since {_short(self.acquired)} (last renewed {_short(self.renewed)}, "
            f"expires {_short(self.expires)} unless renewed)"
        )


def describe(cluster: str) -> str:
    """The one `--dry-run` line saying which lock a run of a mutating plan takes (nothing is taken)."""
    from k8s_ops.core.lock import lock_path

    lease = f"the Lease {NAMESPACE}/{cluster} (coordination.k8s.io/v1, {DURATION}s, renewed every {RENEW_EVERY:g}s)"
    where = (
        f"and {lease} when the Kubernetes API answers"
        if paths.kubeconfig_path(cluster).exists()
        else f"only (no kubeconfig yet; {lease} once the API exists)"
    )
    return f"lock: the run takes the lock of cluster {cluster}: {lock_path(cluster)} {where}"


class _Lease:
    """One run's handle on the cluster's Lease: read, take (create / take over), renew, release."""

    def __init__(self, runner: Runner, cluster: str, me: str, clock: Clock) -> None:
        self.runner = runner
        self.cluster = cluster
        self.me = me
        self.clock = clock
        self.held: LeaseHolder | None = None
        self._write = threading.Lock()  # renewals and the release never interleave

    def read(self) -> LeaseHolder | None:
        obj = kubectl.get_or_none(self.runner, self.cluster, _RESOURCE, self.cluster, namespace=NAMESPACE)
        return None if obj is None else LeaseHolder.parse(obj)

    def _manifest(self, spec: Mapping[str, Any], resource_version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.cluster,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "k8s-ops"},
        }
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": dict(spec)}

    def _spec(self, acquired: datetime, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.me,
            "leaseDurationSeconds": DURATION,
            "acquireTime": _micro(acquired),
            "renewTime": _micro(self.clock.now()),
            "leaseTransitions": transitions,
        }

    def _create_command(self, request_timeout: str | None = None) -> Command:
        return kubectl.create(
            self.cluster,
            self._manifest(self._spec(self.clock.now(), 0), None),
            description=f"take the Lease {NAMESPACE}/{self.cluster}",
            request_timeout=request_timeout,
        )

    def create(self, sent: Result | None = None) -> bool:
        """Create the Lease held by us; False when someone created it first. `sent`: the answer to a create
        already sent (the first look), carried on from there."""
        command = self._create_command()
        result = sent if sent is not None else self.runner.run(command, check=False)
        if kubectl.is_not_found(result):  # the namespace does not exist yet: create it, then try once more
            self.runner.run(
                kubectl.apply_manifest(
                    self.cluster,
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "k8s-ops"}},
                    },
                    description=f"create the namespace {NAMESPACE} (the toolkit's run leases)",
                )
            )
            result = self.runner.run(command, check=False)
        if kubectl.is_already_exists(result):
            return False
        if not result.ok:
            raise ToolkitError(f"could not create the Lease {NAMESPACE}/{self.cluster}: {last_error_line(result)}")
        self.held = LeaseHolder.parse(kubectl.parse_object(result))
        return True

    def _replace(self, spec: Mapping[str, Any], resource_version: str, what: str) -> LeaseHolder | None:
        """Write `spec` if the Lease is still at `resource_version`: the stored Lease, or None on Conflict."""
        command = kubectl.replace(
            self.cluster,
            self._manifest(spec, resource_version),
            description=f"{what} the Lease {NAMESPACE}/{self.cluster}",
        )
        result = self.runner.run(command, check=False)
        if kubectl.is_conflict(result):
            return None
        if not result.ok:
            raise ToolkitError(f"could not {what} the Lease {NAMESPACE}/{self.cluster}: {last_error_line(result)}")
        return LeaseHolder.parse(kubectl.parse_object(result))

    def take_over(self, old: LeaseHolder) -> bool:
        """Take a free (or broken) Lease read at `old`; False when another taker wrote it first."""
        taken = self._replace(self._spec(self.clock.now(), old.transitions + 1), old.resource_version, "take over")
        if taken is None:
            return False
        self.held = taken
        return True

    def renew(self) -> str | None:
        """Renew the held Lease; None when renewed, else why it is lost (someone else holds it now)."""
        with self._write:
            held = self.held
            if held is None:
                return "not held"
            for _ in range(3):
                spec = self._spec(held.acquired or self.clock.now(), held.transitions)
                renewed = self._replace(spec, held.resource_version, "renew")
                if renewed is not None:
                    self.held = renewed
                    return None
                current = self.read()  # someone wrote it: still ours (a label edit) or taken over?
                if current is None or current.holder != self.me:
                    self.held = None
                    return f"now held by {current.describe()}" if current is not None else "the Lease was deleted"
                held = current
            return "it keeps changing under us"

    def release(self) -> str | None:
        """Clear the holder (the Lease stays for the next run); None when released, else what happened."""
        with self._write:
            held = self.held
            self.held = None
            if held is None:
                return "the lease was lost during the run"
            spec = {
                "leaseDurationSeconds": DURATION,
                "acquireTime": _micro(self.clock.now()),
                "renewTime": _micro(self.clock.now()),
                "leaseTransitions": held.transitions,
            }
            if self._replace(spec, held.resource_version, "release") is not None:
                return None
            current = self.read()
            if current is not None and current.holder == self.me:
                return "it changed under us; it expires on its own"
            return None  # someone else took it over (it had expired or was broken): nothing of ours to clear


class _Renewer:
    """The background thread renewing the Lease every `every` seconds until stopped."""

    def __init__(self, lease: _Lease, every: float, out: Callable[[str], None]) -> None:
        self.lease = lease
        self.every = every
        self.out = out
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{lease.cluster}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(self.every):
            try:
                lost = self.lease.renew()
            except ToolkitError as exc:  # an API blip: keep the run going, try again next period
                if not failing:
                    self.out(f"warning: could not renew the Lease {NAMESPACE}/{self.lease.cluster}: {exc}; retrying")
                failing = True
                continue
            failing = False
            if lost is not None:
                self.lost = lost
                self.out(
                    f"WARNING: the Lease {NAMESPACE}/{self.lease.cluster} was lost ({lost}): another run may be "
                    "operating this cluster now"
                )
                return


def _api_answers(runner: Runner, cluster: str) -> str | None:
    """None when the cluster's API can hold a Lease, else why not (one line): `/readyz`, asked only when the first
    look got no answer (the API is down, or answered an error worth reporting)."""
    try:
        result = runner.run(kubectl.readyz(cluster, request_timeout=ANSWER_WITHIN), check=False)
    except ToolkitError as exc:
        return last_error_line(exc)
    return None if result.ok else f"the Kubernetes API does not answer: {last_error_line(result)}"


def _answered(result: Result | None) -> bool:
    """The API server answered (the object, or that it or its namespace is missing, or that it exists)."""
    return result is not None and (result.ok or kubectl.is_not_found(result) or kubectl.is_already_exists(result))


def _first_look(lease: _Lease) -> tuple[bool, LeaseHolder | _Unread | None]:
    """Read and create the Lease concurrently (see the module docstring): (did the API answer, the Lease as read or
    _UNREAD when the loop must read it itself). `lease.held` is set when the create won."""

    def run(command: Command) -> Result | None:
        try:
            return lease.runner.run(command, check=False)
        except ToolkitError:  # kubectl missing, a broken kubeconfig: the probe tells what
            return None

    get = kubectl.get(lease.cluster, _RESOURCE, lease.cluster, namespace=NAMESPACE, request_timeout=ANSWER_WITHIN)
    with ThreadPoolExecutor(max_workers=1) as pool:
        creating = pool.submit(run, lease._create_command(request_timeout=ANSWER_WITHIN))
        got = run(get)
        made = creating.result()
    if made is not None and made.ok:  # the create won (the read may have raced it: ours is the Lease now)
        lease.held = LeaseHolder.parse(kubectl.parse_object(made))
        return True, _UNREAD
    if not (_answered(got) or _answered(made)):
        return False, _UNREAD
    if got is not None and got.ok:  # there: its read starts the loop; the create's refusal changed nothing
        return True, LeaseHolder.parse(kubectl.parse_object(got))
    if got is not None and kubectl.is_not_found(got) and made is not None and kubectl.is_not_found(made):
        # the namespace is missing (a Lease create is NotFound only then): create it and the Lease, as `create` does
        lease.create(sent=made)
    return True, _UNREAD  # created by a racer meanwhile, or an error the loop's own read/create reports


@contextlib.contextmanager
def cluster_lease(
    runner: Runner,
    cluster: str,
    me: str,
    *,
    timeout: float = 0.0,
    break_lock: bool = False,
    prompt: Confirm = confirm,
    out: Callable[[str], None] = lambda _: None,
    on_wait: Callable[[LeaseHolder], None] | None = None,
    clock: Clock | None = None,
    renew_every: float = RENEW_EVERY,
) -> Iterator[LeaseHolder | None]:
    """Hold the cluster's Lease for the `with` body (None: the API is not there, the local lock alone guards).

    A Lease held by another live run makes this wait up to `timeout` seconds (reading every POLL seconds) and then
    raise ClusterLocked naming the holder and since when; `on_wait` is called once when it is found busy.
    `break_lock` takes over a Lease that is not expired after the operator types the cluster name (for a holder
    known dead: its renewals would fail Conflict and it warns). `me` is the holderIdentity (see `identity`).
    """
    clock = clock or Clock()
    lease = _Lease(runner, cluster, me, clock)
    why_not: str | None = "no kubeconfig yet"
    current: LeaseHolder | _Unread | None = _UNREAD
    try:
        if paths.kubeconfig_path(cluster).exists():
            answered, current = _first_look(lease)
            why_not = None if answered else _api_answers(runner, cluster)
        if why_not is None and lease.held is None:
            _acquire(lease, current, timeout=timeout, break_lock=break_lock, prompt=prompt, out=out, on_wait=on_wait)
    except ToolkitError as exc:
        if _ETCD_NOSPACE not in str(exc):
            raise
        # etcd refuses the Lease like every other write; the tasks that free the space (etcd-defrag,
        # etcd-alarm-disarm) must still run, so the local lock alone guards them
        out(f"lock: cluster {cluster}: etcd refuses writes (NOSPACE alarm) — local lock only, no cluster-side Lease")
        yield None
        return
    if why_not is not None:
        out(f"lock: cluster {cluster}: {why_not} — local lock only, no cluster-side Lease")
        yield None
        return
    renewer = _Renewer(lease, renew_every, out)
    renewer.start()
    try:
        yield lease.held
    finally:
        renewer.stop()
        try:
            problem = lease.release()
        except ToolkitError as exc:
            problem = f"{exc}; it expires on its own {DURATION}s after its last renewal"
        if problem is not None:
            out(f"note: Lease {NAMESPACE}/{cluster} not released: {problem}")


def _acquire(
    lease: _Lease,
    first: LeaseHolder | _Unread | None,
    *,
    timeout: float,
    break_lock: bool,
    prompt: Confirm,
    out: Callable[[str], None],
    on_wait: Callable[[LeaseHolder], None] | None,
) -> None:
    clock = lease.clock
    deadline = clock.now() + timedelta(seconds=max(timeout, 0.0))
    seen: tuple[str, datetime] | None = None  # (resourceVersion, when we first saw it): client-go's observedTime
    waited = False
    while True:
        current = lease.read() if isinstance(first, _Unread) else first  # the first look's read is the first read
        first = _UNREAD
        now = clock.now()
        if current is None:
            if lease.create():
                return
            continue  # someone created it first: read who
        if seen is None or seen[0] != current.resource_version:
            seen = (current.resource_version, now)
        unchanged_for = (now - seen[1]).total_seconds()
        if current.holder == lease.me or current.free(now) or unchanged_for >= current.duration:
            if lease.take_over(current):
                if current.holder and current.holder != lease.me:
                    out(f"lock: took over the expired Lease {NAMESPACE}/{lease.cluster} of {current.describe()}")
                return
            continue  # another taker won: read who
        if break_lock:
            _confirm_break(lease.cluster, current, prompt)
            if lease.take_over(current):
                out(f"lock: Lease {NAMESPACE}/{lease.cluster} broken (was {current.describe()})")
                return
            continue  # it changed meanwhile: read again, ask again
        if not waited:
            waited = True
            if on_wait is not None:
                on_wait(current)
            if timeout > 0:
                out(f"waiting up to {timeout:.0f}s for the Lease {NAMESPACE}/{lease.cluster}: {current.describe()}")
        if now >= deadline:
            raise ClusterLocked(
                f"cluster {lease.cluster} is locked by another run (Lease {NAMESPACE}/{lease.cluster})",
                current.describe(),
                hint=_hint(current),
            )
        clock.sleep(min(POLL, (deadline - now).total_seconds()))


def _hint(current: LeaseHolder) -> str:
    m = _IDENTITY.match(current.holder)
    who = f"the run of {m['who']} (pid {m['pid']})" if m else "that run"
    return (
        f"wait for it (--lock-timeout SECONDS waits; a dead holder's lease expires at {_short(current.expires)}); "
        f"if {who} is known dead, re-run with --break-lock (asks you to type the cluster name)"
    )


def _confirm_break(cluster: str, current: LeaseHolder, prompt: Confirm) -> None:
    from k8s_ops.core.lock import _pid_alive

    m = _IDENTITY.match(current.holder)
    if m and m["who"].rpartition("@")[2] == socket.gethostname() and _pid_alive(int(m["pid"])):
        raise ClusterLocked(
            f"refusing to break the Lease {NAMESPACE}/{cluster}",
            f"its holder is running on this host: {current.describe()}",
            hint=f"stop pid {m['pid']} first, or wait for it",
        )
    try:
        prompt(
            cluster,
            f"take over the Lease {NAMESPACE}/{cluster} held by {current.describe()} — only if that run is dead",
            yes=False,
        )
    except Aborted as exc:
        raise Aborted(exc.message, hint="--break-lock always asks; run it from a terminal") from None
