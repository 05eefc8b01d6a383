"""k8s_ops.day2.pause without a cluster: the selection, the record (0600, union, never resumes what was paused
before), the bracket other runbooks put around their steps, and the recovery it gives a plan."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from k8s_ops.core.errors import ToolkitError
from k8s_ops.core.plan import Plan, Step
from k8s_ops.day2.pause import (
    Pausable,
    PauseRecord,
    Selection,
    is_paused,
    parse_groups,
    pause_bracket,
    plan_pause,
    plan_resume,
    read_record,
    record_path,
)
from k8s_ops.tools.kubectl import KubeTarget

TARGET = KubeTarget(Path("/k/kubeconfig"), "lab")


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("K8S_OPS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_groups_and_selection_are_checked() -> None:
    assert parse_groups("keda, flux") == ("flux", "keda")
    with pytest.raises(ToolkitError, match="--pause: unknown argo"):
        parse_groups("flux,argo")
    with pytest.raises(ToolkitError, match="nothing selected"):
        Selection(())
    sel = Selection(("flux",), namespaces=("media",), exclude=("kube-system",))
    assert sel.kinds == ("kustomization", "helmrelease")
    assert sel.selects("helmrelease", "media") and not sel.selects("helmrelease", "db")
    assert not sel.selects("scaledobject", "media")
    with pytest.raises(ToolkitError):
        Selection(("flux",), namespaces=("Bad_NS",))


def test_is_paused_reads_each_kind_its_own_way() -> None:
    assert is_paused("kustomization", {"spec": {"suspend": True}})
    assert not is_paused("helmrelease", {"spec": {}})
    assert is_paused("replicationsource", {"spec": {"paused": True}})
    assert is_paused("scaledobject", {"metadata": {"annotations": {"autoscaling.keda.sh/paused": "true"}}})
    assert is_paused("scaledobject", {"metadata": {"annotations": {"autoscaling.keda.sh/paused-replicas": "0"}}})
    assert not is_paused("scaledobject", {"metadata": {"annotations": {"autoscaling.keda.sh/paused": "false"}}})


def _found() -> list[Pausable]:
    return [
        Pausable("kustomization", "flux-system", "apps"),
        Pausable("helmrelease", "media", "plex", paused=True),  # paused by someone else
        Pausable("replicationsource", "media", "plex"),
        Pausable("scaledobject", "media", "plex"),
    ]


def test_bracket_pauses_running_objects_records_them_first_and_resumes_only_them(state: Path) -> None:
    bracket = pause_bracket("lab", TARGET, _found())
    record = record_path("lab")
    first = bracket.before[0]
    assert first.writes[0].path == record and first.writes[0].mode == 0o600
    recorded = json.loads(first.writes[0].content)["paused"]
    assert {(e["kind"], e["name"]) for e in recorded} == {
        ("kustomization", "apps"),
        ("replicationsource", "plex"),
        ("scaledobject", "plex"),
    }
    assert bracket.before[2].noop == "paused already: left as it is"
    argvs = [c.argv for s in bracket.before for c in s.commands]
    assert any(a[-4:-2] == ("--type", "merge") and '{"spec":{"paused":true}}' in a for a in argvs)
    # every pause is undone by the recovery, latest first
    plan = Plan("upgrade", "lab", (*bracket.before, Step("upgrade"), *bracket.after), on_failure="")
    undos = [u.done for u in plan.undos(plan.steps[:5])]
    assert undos == [
        "resumed autoscaling of ScaledObject media/plex",
        "unpaused ReplicationSource media/plex",
        "resumed Kustomization flux-system/apps",
    ]
    resumed = [c.description for s in bracket.after for c in s.commands]
    assert resumed == [
        "resume Kustomization flux-system/apps",
        "unpause ReplicationSource media/plex",
        "resume autoscaling of ScaledObject media/plex",
    ]
    assert "HelmRelease" not in " ".join(resumed)
    assert json.loads(bracket.after[-1].writes[0].content)["paused"] == []


def test_record_is_a_union_and_written_0600(state: Path) -> None:
    record = record_path("lab")
    earlier = PauseRecord(record).with_([Pausable("helmrelease", "media", "plex")])
    earlier.write().apply(None)  # type: ignore[arg-type]
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    assert read_record("lab").items == (Pausable("helmrelease", "media", "plex", True),)
    bracket = pause_bracket("lab", TARGET, _found())
    content = json.loads(bracket.before[0].writes[0].content)["paused"]
    assert len(content) == 4  # the earlier run's HelmRelease stays recorded
    record.write_text("{not json")
    with pytest.raises(ToolkitError, match="not a pause record"):
        read_record("lab")


def test_resume_skips_what_someone_else_resumed_or_deleted(state: Path) -> None:
    record = PauseRecord(record_path("lab")).with_(
        [Pausable("kustomization", "flux-system", "apps"), Pausable("scaledobject", "media", "gone")]
    )
    sel = Selection(("flux", "keda"))
    plan = plan_resume("lab", TARGET, record, [Pausable("kustomization", "flux-system", "apps", paused=False)], sel)
    assert [s.noop for s in plan.steps[:2]] == [
        "not paused any more (resumed by someone else)",
        "gone from the cluster",
    ]
    assert json.loads(plan.steps[-1].writes[0].content)["paused"] == []
    empty = plan_pause("lab", TARGET, [], Selection(("keda",)))
    assert empty.steps[0].noop == "nothing of keda found"
