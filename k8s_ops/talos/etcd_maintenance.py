"""etcd maintenance through the Talos API: status report, defragmentation, alarm disarm. Facts in, plans out.

What talosctl shows and does (siderolabs/talos v1.12.11 cmd/talosctl/cmd/talos/etcd.go, recorded in
tests/sim/FIDELITY.md): `etcd status` prints per member DB SIZE and IN USE with go-humanize (SI units) and the
in-use share of the file as a percentage; LEADER is the member ID of the raft leader; ERRORS carries every alarm
of the cluster (etcd's Status appends its whole alarm store). `etcd defrag` refuses several nodes. `etcd alarm
list|disarm` answer for the whole cluster.

Decisions:

* **Defragment** only members whose in-use/DB-size ratio is below the threshold (default 0.5: Talos' etcd
  maintenance guide calls a database "heavily fragmented" below it), one member at a time, followers first and the
  leader last (defragmenting the leader stalls writes for the whole cluster while it runs; doing it last means
  at most one leader pause, after every follower is compact). Before each member and after it, a health gate:
  every controlplane's member answers, they agree on a leader, and no error other than an alarm is reported
  (alarms are what a defragmentation may be for). A guard re-reads the member just before defragmenting it.
* **Disarm** refuses while the cause persists: CORRUPT is never disarmed here (a corrupt member must be replaced,
  disarming only hides it), and NOSPACE is refused while any member's database file is still within 5 % of the
  space quota (talosctl's sizes have three significant digits, and etcd raises NOSPACE again at the next write
  that would grow the file past the quota). After disarming, a check confirms no alarm came back.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from k8s_ops.core.errors import GateFailed, ToolkitError, last_error_line
from k8s_ops.core.facts import Fact
from k8s_ops.core.plan import Check, Plan, Step
from k8s_ops.core.wait import wait_check
from k8s_ops.talos import facts
from k8s_ops.tools.talosctl import EtcdAlarm, EtcdStatus, Talosctl, parse_etcd_alarms

if TYPE_CHECKING:
    from k8s_ops.core.runner import Runner
    from k8s_ops.talos.inventory import Cluster, Node
    from k8s_ops.talos.lifecycle import Env

__all__ = [
    "DEFAULT_QUOTA",
    "DEFAULT_THRESHOLD",
    "EtcdReport",
    "MemberReport",
    "gather_report",
    "plan_alarm_disarm",
    "plan_defrag",
    "plan_status",
    "report_json",
    "report_table",
]

DEFAULT_THRESHOLD: Final = 0.5
DEFAULT_QUOTA: Final = 2 * 1024**3  # etcd's default quota-backend-bytes ("2 GiB by default", Talos docs)
QUOTA_MARGIN: Final = 0.95


@dataclass(frozen=True)
class MemberReport:
    """One controlplane's etcd member: its status row, or why it did not answer."""

    node: Node
    status: EtcdStatus | None
    error: str | None = None

    @property
    def fragmentation(self) -> float | None:
        r = self.status.in_use_ratio if self.status else None
        return None if r is None else max(0.0, 1.0 - r)


@dataclass(frozen=True)
class EtcdReport:
    """Every controlplane's member and the cluster's alarms (None when no member could list them)."""

    members: tuple[MemberReport, ...]
    alarms: tuple[EtcdAlarm, ...] | None
    alarm_error: str | None = None

    @property
    def leader(self) -> str | None:
        leaders = {m.status.leader for m in self.members if m.status and m.status.leader}
        return leaders.pop() if len(leaders) == 1 else None

    def problem(self) -> str | None:
        """Why etcd is not healthy enough for maintenance, or None (alarms alone do not count)."""
        bad = []
        for m in self.members:
            if m.status is None:
                bad.append(f"{m.node.hostname}: did not answer ({m.error or 'no status row'})")
                continue
            errors = [e for e in m.status.errors.split(", ") if e and "alarm:" not in e]
            if errors:
                bad.append(f"{m.node.hostname}: {', '.join(errors)}")
            if m.status.learner:
                bad.append(f"{m.node.hostname}: still a learner")
        leaders = {m.status.leader for m in self.members if m.status}
        if len(leaders) > 1:
            bad.append(f"members disagree on the leader ({', '.join(sorted(leaders))})")
        elif leaders and not next(iter(leaders)).strip("0"):
            bad.append("no leader")
        return "; ".join(bad) or None


def _alarms_fact(tctl: Talosctl, address: str) -> Fact[list[EtcdAlarm]]:
    return Fact(tctl.etcd_alarms(address), lambda r: parse_etcd_alarms(r.stdout))


def gather_report(runner: Runner, tctl: Talosctl, cluster: Cluster) -> EtcdReport:
    """Read `etcd status` of every controlplane and `etcd alarm list` via the first that answers."""
    cps = list(cluster.controlplanes)
    statuses = facts.etcd_status(tctl, [str(n.address) for n in cps]).gather(runner)
    members = tuple(
        MemberReport(n, statuses.get(str(n.address)), None if statuses.get(str(n.address)) else statuses.error)
        for n in cps
    )
    answering = next((m for m in members if m.status is not None), None)
    if answering is None:
        return EtcdReport(members, None, "no etcd member answered")
    try:
        alarms = _alarms_fact(tctl, str(answering.node.address)).gather(runner)
    except ToolkitError as exc:
        return EtcdReport(members, None, last_error_line(exc))
    return EtcdReport(members, tuple(alarms))


# --------------------------------------------------------------------------- status


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def report_table(report: EtcdReport) -> str:
    """A rich table, one row per member: NODE, ADDRESS, MEMBER, LEADER, DB SIZE, IN USE, FRAGMENTED, RAFT INDEX,
    ALARMS, ERRORS; then the alarm list."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    cols = ("NODE", "ADDRESS", "MEMBER", "LEADER", "DB SIZE", "IN USE", "FRAGMENTED", "RAFT INDEX", "ALARMS", "ERRORS")
    for col in cols:
        table.add_column(col, no_wrap=col != "ERRORS")
    for m in report.members:
        s = m.status
        if s is None:
            table.add_row(
                m.node.hostname, str(m.node.address), "-", "-", "-", "-", "-", "-", "-", m.error or "no answer"
            )
            continue
        table.add_row(
            m.node.hostname,
            str(m.node.address),
            s.member,
            "yes" if s.is_leader else "no",
            _human(s.db_size),
            _human(s.in_use) + (f" ({_pct(s.in_use_ratio)})" if s.in_use_ratio is not None else ""),
            _pct(m.fragmentation),
            "-" if s.raft_index is None else str(s.raft_index),
            ", ".join(_member_alarms(report, s.member)) or "-",
            ", ".join(e for e in s.errors.split(", ") if e and "alarm:" not in e) or "-",
        )
    buf = io.StringIO()
    console = Console(file=buf, width=200, highlight=False, color_system=None)
    console.print(table)
    if report.alarms is None:
        buf.write(f"alarms: unknown ({report.alarm_error})\n")
    elif report.alarms:
        buf.write("alarms: " + ", ".join(f"{a.alarm} on member {a.member}" for a in report.alarms) + "\n")
    else:
        buf.write("alarms: none\n")
    return buf.getvalue()


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _member_alarms(report: EtcdReport, member: str) -> list[str]:
    return [a.alarm for a in report.alarms or () if a.member == member]


def report_json(report: EtcdReport) -> dict[str, Any]:
    def member(m: MemberReport) -> dict[str, Any]:
        s = m.status
        return {
            "node": m.node.hostname,
            "address": str(m.node.address),
            "answered": s is not None,
            "error": m.error,
            "member": s.member if s else None,
            "leader": s.is_leader if s else None,
            "dbSize": s.db_size if s else None,
            "inUse": s.in_use if s else None,
            "inUseRatio": s.in_use_ratio if s else None,
            "fragmentation": m.fragmentation,
            "raftIndex": s.raft_index if s else None,
            "raftTerm": s.raft_term if s else None,
            "raftAppliedIndex": s.raft_applied_index if s else None,
            "learner": s.learner if s else None,
            "alarms": _member_alarms(report, s.member) if s else [],
            "errors": [e for e in s.errors.split(", ") if e] if s else [],
        }

    return {
        "members": [member(m) for m in report.members],
        "leader": report.leader,
        "alarms": None if report.alarms is None else [{"member": a.member, "alarm": a.alarm} for a in report.alarms],
        "alarmError": report.alarm_error,
        "healthy": report.problem() is None,
        "problem": report.problem(),
    }


def plan_status(env: Env, cell: list[EtcdReport]) -> Plan:
    """A read-only plan: one step whose check reads the report into `cell` (the task prints it)."""
    n = len(env.cluster.controlplanes)

    def read(runner: Runner) -> None:
        cell.append(gather_report(runner, env.tctl, env.cluster))

    step = Step(f"read etcd status of {n} member(s) and the cluster's alarms", before=(Check("etcd status", read),))
    return Plan("etcd status", env.cluster.name, (step,))


# --------------------------------------------------------------------------- defrag


def _health_probe(env: Env) -> Callable[[Runner], str | None]:
    def probe(runner: Runner) -> str | None:
        return gather_report(runner, env.tctl, env.cluster).problem()

    return probe


def _health_gate(env: Env, when: str) -> Check:
    return wait_check(
        f"etcd healthy {when}: every member answers, one leader, no errors besides alarms",
        _health_probe(env),
        timeout=env.timeouts.hold,
    )


def plan_defrag(env: Env, report: EtcdReport, *, threshold: float = DEFAULT_THRESHOLD) -> Plan:
    """Defragment the fragmented members, followers first and the leader last, gated before and after each."""
    if not 0 < threshold <= 1:
        raise ToolkitError(f"--threshold {threshold:g} must be a ratio in (0, 1] (in use / DB size)")
    leader = report.leader
    followers = [m for m in report.members if not (m.status and m.status.member == leader)]
    ordered = [*followers, *[m for m in report.members if m.status and m.status.member == leader]]
    steps: list[Step] = []
    todo = 0
    for m in ordered:
        host, addr = m.node.hostname, str(m.node.address)
        role = "leader" if m.status and m.status.member == leader else "follower"
        ratio = m.status.in_use_ratio if m.status else None
        if m.status is not None and ratio is not None and ratio >= threshold:
            steps.append(
                Step(
                    f"defragment etcd on {host} ({role})",
                    noop=f"in use {_pct(ratio)} of its database, not below {_pct(threshold)}",
                    node=host,
                )
            )
            continue
        todo += 1
        what = f"in use {_pct(ratio)} of {_human(m.status.db_size)}" if m.status else "status unknown"
        steps.append(
            Step(
                f"defragment etcd on {host} ({role}, {what})",
                before=(_health_gate(env, f"before {host}"),),
                guard=_still_fragmented(env, m.node, threshold),
                commands=(env.tctl.etcd_defrag(addr, host=host),),
                after=(_health_gate(env, f"after {host}"),),
                node=host,
                destructive=True,
            )
        )
    notes = [
        f"threshold: defragment members whose in-use/DB-size ratio is below {threshold:g}",
        "order: followers first, the leader last; one member at a time",
        f"leader: {next((m.node.hostname for m in report.members if m.status and m.status.is_leader), 'unknown')}",
    ]
    if not todo:
        notes.append("no member is fragmented enough: nothing to do")
    return Plan(
        "defragment etcd",
        env.cluster.name,
        tuple(steps),
        notes=tuple(notes),
        resume_hint=f"re-run `{env.rerun('talos.etcd-defrag')}`: members already compact are skipped",
    )


def _still_fragmented(env: Env, node: Node, threshold: float) -> Callable[[Runner], str | None]:
    def guard(runner: Runner) -> str | None:
        addr = str(node.address)
        st = facts.etcd_status(env.tctl, [addr]).gather(runner).get(addr)
        if st is not None and st.in_use_ratio is not None and st.in_use_ratio >= threshold:
            return f"in use {_pct(st.in_use_ratio)} now, not below {_pct(threshold)}"
        return None

    return guard


# --------------------------------------------------------------------------- alarms


def disarm_refusal(report: EtcdReport, quota: int) -> str | None:
    """Why disarming now would be wrong (the cause persists), or None."""
    if report.alarms is None:
        return f"cannot read etcd's alarms: {report.alarm_error}"
    corrupt = [a for a in report.alarms if a.alarm == "CORRUPT"]
    if corrupt:
        members = ", ".join(a.member for a in corrupt)
        return (
            f"CORRUPT alarm on member(s) {members}: disarming does not repair the data; replace the member "
            "(`talosctl etcd remove-member`, then reset and re-join the node)"
        )
    if any(a.alarm == "NOSPACE" for a in report.alarms):
        full = [
            f"{m.node.hostname} {_human(m.status.db_size)}"
            for m in report.members
            if m.status is not None and m.status.db_size is not None and m.status.db_size >= quota * QUOTA_MARGIN
        ]
        unknown = [m.node.hostname for m in report.members if m.status is None or m.status.db_size is None]
        if full:
            return (
                f"NOSPACE persists: database file still at the {_human(quota)} quota on {', '.join(full)}; etcd "
                "would raise the alarm again at the next write"
            )
        if unknown:
            return f"NOSPACE: cannot tell whether the space was freed on {', '.join(unknown)} (no status)"
    return None


def plan_alarm_disarm(env: Env, report: EtcdReport, *, quota: int = DEFAULT_QUOTA) -> Plan:
    """Disarm etcd's alarms once their cause is gone (see the module docstring); refuse otherwise."""
    if report.alarms is not None and not report.alarms:
        step = Step("disarm etcd alarms", noop="etcd reports no alarm")
        return Plan("disarm etcd alarms", env.cluster.name, (step,))
    refusal = disarm_refusal(report, quota)
    if refusal is not None:
        raise ToolkitError(
            f"refusing to disarm etcd alarms: {refusal}",
            hint=f"free space first: `{env.rerun('talos.etcd-defrag')}` (compaction runs in kube-apiserver), or raise "
            "cluster.etcd.extraArgs.quota-backend-bytes and pass --quota-bytes",
        )
    source = next(m for m in report.members if m.status is not None)
    addr = str(source.node.address)
    alarms = ", ".join(f"{a.alarm} on {a.member}" for a in report.alarms or ())

    def recheck(runner: Runner) -> None:
        again = disarm_refusal(gather_report(runner, env.tctl, env.cluster), quota)
        if again is not None:
            raise GateFailed("the alarm's cause is gone", again)

    def none_back(runner: Runner) -> None:
        left = _alarms_fact(env.tctl, addr).gather(runner)
        if left:
            raise GateFailed(
                "no alarm after disarming", ", ".join(f"{a.alarm} on {a.member}" for a in left) + " raised again"
            )

    step = Step(
        f"disarm etcd alarms ({alarms}) via {source.node.hostname}",
        before=(Check("the alarms' cause is gone (no CORRUPT, databases below the quota)", recheck),),
        commands=(env.tctl.etcd_alarm_disarm(addr),),
        after=(Check("etcd reports no alarm afterwards", none_back),),
        node=source.node.hostname,
    )
    notes = (f"space quota assumed: {quota} bytes (--quota-bytes)",)
    return Plan("disarm etcd alarms", env.cluster.name, (step,), notes=notes)
