"""The rehearsed disaster (issue 14 §5), end to end against the simulator, a real S3 API on loopback and the
1Password SDK fake.

In order, one world for the module: the demo cluster, with `onepassword.connect` and `backups.etcd` pointing at the
loopback S3 server, is bootstrapped by `bootstrap.cluster` (which ends by pushing the age key and the secrets bundle
to 1Password); objects are created; `talos.etcd-snapshot --upload` puts a verified snapshot off-box. Then the
disaster: every node back to maintenance, and this machine gone — a fresh checkout holding only what git holds (no
age key, no kubeconfig/talosconfig, no local snapshots, a new HOME) with the fake 1Password and the bucket.
`bootstrap.dr-check` reports what is there; a newer snapshot with one flipped byte is refused by
`bootstrap.rebuild --recover-from latest` (dry run and real run) before anything is pulled, applied or recovered;
once it is gone, the rebuild recovers: the objects are back, the Connect Secrets exist, Flux is Ready.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit
from onepassword import ItemCategory, ItemCreateParams, ItemField, ItemFieldType, ItemSection

from k8s_ops.bootstrap import tasks as bootstrap_tasks
from k8s_ops.core import paths
from k8s_ops.core import preflight as tools
from k8s_ops.talos import secrets as talos_secrets
from k8s_ops.talos import tasks as talos_tasks
from tests.bootstrap_world import World, bootstrap_world
from tests.op_fake import FakeOnePassword
from tests.s3_server import ACCESS_KEY, S3, SECRET_KEY, s3_server  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
CONNECT_JSON = json.dumps(
    {"verifier": {"salt": "c2FsdA", "localHash": "aGFzaA"}, "encCredentials": {"kid": "drill", "enc": "A256GCM",
     "data": "ZHJpbGwtY29ubmVjdC1jcmVkZW50aWFscy0xMjM0NTY3ODkw"}, "version": "2", "deviceUuid": "drilldevice0001",
     "uniqueKey": {"kid": "drill-unique-key-0001"}}, separators=(",", ":")
)  # fmt: skip
CONNECT_TOKEN = "eyJhbGciOiJFUzI1NiJ9.drill-connect-access-token-0123456789abcdef"
CONNECT_YAML = """onepassword:
  vault: k8s-ops-demo
  connect:
    credentials: {item: onepassword-connect, field: 1password-credentials.json}
    token: {item: onepassword-connect, field: token}
"""


@dataclass
class Drill:
    world: World
    s3: S3
    ctx: Context
    mp: pytest.MonkeyPatch

    def bootstrap_task(self, name: str, **kw: Any) -> None:
        getattr(bootstrap_tasks, name)(self.ctx, cluster="demo", **kw)


def _add_connect_items(fake: FakeOnePassword) -> None:
    fields = [
        ItemField(id=k, title=k, field_type=ItemFieldType.CONCEALED, value=v, section_id="")
        for k, v in (("1password-credentials.json", CONNECT_JSON), ("token", CONNECT_TOKEN))
    ]
    fake.create(
        ItemCreateParams(
            category=ItemCategory.PASSWORD,
            vault_id=fake.vault_id("k8s-ops-demo"),
            title="onepassword-connect",
            fields=fields,
            sections=[ItemSection(id="", title="")],
        )
    )


def _inventory_text(s3: S3) -> str:
    text = (REPO / "clusters" / "demo" / "cluster.yaml").read_text()
    assert "onepassword:\n  vault: k8s-ops-demo\n" in text
    return text.replace("onepassword:\n  vault: k8s-ops-demo\n", CONNECT_YAML) + s3.backups_yaml(prefix="etcd")


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> Iterator[Drill]:  # noqa: F811
    import urllib.request

    tmp = tmp_path_factory.mktemp("dr-drill")
    with urllib.request.urlopen(urllib.request.Request(f"{s3_server}/moto-api/reset", method="POST"), timeout=10):
        pass
    s3 = S3(s3_server)
    mp = pytest.MonkeyPatch()
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        mp.delenv(var, raising=False)
    mp.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    s3.client().create_bucket(Bucket=s3.bucket)
    with bootstrap_world(tmp) as world:
        (world.clusters / "demo" / "cluster.yaml").write_text(_inventory_text(s3))
        _add_connect_items(world.onepassword)
        world.secrets += [CONNECT_TOKEN, CONNECT_JSON, base64.b64encode(CONNECT_JSON.encode()).decode()]
        ctx = Context(Config(overrides={"k8s_ops": {"runner": lambda: world.runner}}))
        try:
            yield Drill(world, s3, ctx, mp)
        finally:
            mp.undo()


def _connect_secrets_ok(world: World) -> None:
    creds = world.sim.get_object("Secret", "op-credentials", "external-secrets")
    token = world.sim.get_object("Secret", "onepassword-token", "external-secrets")
    assert creds is not None and token is not None
    # the connect chart's own template stores the credentials file base64-encoded (OP_SESSION reads that)
    stored = base64.b64decode(creds["data"]["1password-credentials.json"])
    assert json.loads(base64.b64decode(stored)) == json.loads(CONNECT_JSON)
    assert base64.b64decode(token["data"]["token"]).decode() == CONNECT_TOKEN


def _flux_ready(world: World) -> bool:
    root = world.sim.get_object("Kustomization", "flux-system", "flux-system")
    return root is not None and any(
        c["type"] == "Ready" and c["status"] == "True" for c in root.get("status", {}).get("conditions", [])
    )


def _mutations(calls: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for c in calls:
        argv = c["argv"]
        if (
            c["tool"] == "talosctl" and ("bootstrap" in argv or ("apply-config" in argv and "--dry-run" not in argv))
        ) or (c["tool"] in ("kubectl", "helm") and any(w in argv for w in ("apply", "create", "upgrade", "delete"))):
            out.append([c["tool"], *argv])
    return out


# --------------------------------------------------------------------------- before the disaster


def test_a_bootstrapped_cluster_with_objects_a_connect_secret_and_an_offbox_snapshot(
    drill: Drill, capsys: pytest.CaptureFixture[str]
) -> None:
    from k8s_ops import onepassword as op
    from k8s_ops.talos.inventory import load_cluster

    world = drill.world
    drill.bootstrap_task("cluster", dry_run=True)
    planned = capsys.readouterr().out
    assert "after the plan: age-key and talos-secrets missing in 1Password; the run asks" in planned
    assert "Secret external-secrets/op-credentials (keys: 1password-credentials.json; values masked" in planned
    assert CONNECT_TOKEN not in planned and CONNECT_JSON not in planned and "drilldevice0001" not in planned
    drill.bootstrap_task("cluster", yes=True)
    out = capsys.readouterr().out
    _connect_secrets_ok(world)
    assert _flux_ready(world)
    # bootstrap.cluster ended by pushing the age key and the secrets bundle (missing in 1Password), --yes confirming
    assert "push age-key,talos-secrets" in out
    items = {s.kind.value: s for s in op.status(load_cluster("demo"))}
    assert all(s.remote_sha256 is not None and s.remote_sha256 == s.local_sha256 for s in items.values()), items

    world.kubectl("create", "configmap", "dr-marker", "-n", "default", "--from-literal=k=v")
    world.kubectl("create", "namespace", "payments")
    world.kubectl("create", "configmap", "ledger", "-n", "payments", "--from-literal=balance=42")
    talos_tasks.etcd_snapshot(drill.ctx, cluster="demo", upload=True)
    keys = drill.s3.objects("etcd/demo/")
    assert len(keys) == 2 and keys[0].endswith(".db") and keys[1] == keys[0] + ".json"


# --------------------------------------------------------------------------- the disaster


def _fresh_checkout(drill: Drill, tmp: Path) -> Path:
    """A new machine: the repository as git holds it (no age key), a new HOME, no build or state directory."""
    src = drill.world.clusters / "demo"
    checkout = tmp / "checkout" / "clusters"
    shutil.copytree(src, checkout / "demo", ignore=shutil.ignore_patterns("*.agekey"))
    (tmp / "home").mkdir()
    env = {
        "K8S_OPS_CLUSTERS_DIR": str(checkout),
        "K8S_OPS_BUILD_DIR": str(tmp / "build"),
        "K8S_OPS_STATE_DIR": str(tmp / "state"),
        "HOME": str(tmp / "home"),
        "XDG_CONFIG_HOME": str(tmp / "home" / ".config"),
    }
    for k, v in env.items():
        drill.mp.setenv(k, v)
    tools.reset_cache()
    talos_secrets.clear_cache()
    return checkout


def test_after_the_wipe_a_fresh_checkout_knows_it_can_recover(
    drill: Drill, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    world = drill.world
    world.sim.wipe("demo")
    assert world.sim.get_object("ConfigMap", "dr-marker", "default") is None
    checkout = _fresh_checkout(drill, tmp_path_factory.mktemp("new-laptop"))
    assert not (checkout / "demo" / "demo.agekey").exists() and not paths.kubeconfig_path("demo").exists()

    drill.bootstrap_task("dr_check", json=True)
    doc = json.loads(capsys.readouterr().out)
    status = {f["check"]: (f["status"], f["detail"]) for f in doc["findings"]}
    assert doc["recoverable"] is True, status
    assert status["age-key"][0] == "ok" and "not on this machine" in status["age-key"][1]
    assert (
        status["talos-secrets"] == ("ok", status["talos-secrets"][1])
        and "byte-equal to git" in status["talos-secrets"][1]
    )
    assert status["kubeconfig"][0] == status["talosconfig"][0] == "ok"
    assert status["deploy-key"][0] == "ok" and "1Password item 'sops-age-key-demo'" in status["deploy-key"][1]
    assert status["connect"][0] == "ok" and "external-secrets/op-credentials" in status["connect"][1]
    assert status["etcd-snapshot"][0] == "ok" and status["etcd-snapshot"][1].startswith("etcd/demo/")
    assert status["inventory"][0] == status["charts"][0] == "ok"
    drill.bootstrap_task("dr_check")
    table = capsys.readouterr().out
    assert "disaster recovery readiness: demo" in table and "FAIL" not in table
    assert CONNECT_TOKEN not in table and CONNECT_JSON not in table


def test_a_corrupted_snapshot_is_refused_before_anything_is_pulled_applied_or_recovered(
    drill: Drill, capsys: pytest.CaptureFixture[str]
) -> None:
    world = drill.world
    client = drill.s3.client()
    good = drill.s3.objects("etcd/demo/")[0]
    data = bytearray(client.get_object(Bucket=drill.s3.bucket, Key=good)["Body"].read())
    data[len(data) // 2] ^= 0x01  # one flipped bit, same size: its copied sidecar still lists it as verified
    bad = "etcd/demo/29991231T235959Z.db"
    client.put_object(Bucket=drill.s3.bucket, Key=bad, Body=bytes(data))
    sidecar = client.get_object(Bucket=drill.s3.bucket, Key=good + ".json")["Body"].read()
    client.put_object(Bucket=drill.s3.bucket, Key=bad + ".json", Body=sidecar)
    mark = len(world.calls())

    for dry in (True, False):
        with pytest.raises(Exit):
            drill.bootstrap_task("rebuild", recover_from="latest", dry_run=dry, yes=True)
        err = capsys.readouterr().err
        assert "29991231T235959Z.db" in err and "corrupt" in err
    assert _mutations(world.calls(mark)) == []
    assert not paths.default_age_key_file().exists()  # phase 1 (the 1Password pull) never started
    assert not list((paths.backups_dir("demo") / "recovery").glob("*.db"))  # the corrupt download is not kept
    with pytest.raises(Exit):
        drill.bootstrap_task("rebuild", recover_from="etcd/demo/no-such.db", dry_run=True)
    assert "does not exist" in capsys.readouterr().err
    client.delete_object(Bucket=drill.s3.bucket, Key=bad)
    client.delete_object(Bucket=drill.s3.bucket, Key=bad + ".json")


def test_rebuild_recovers_from_the_latest_offbox_snapshot(drill: Drill, capsys: pytest.CaptureFixture[str]) -> None:
    world = drill.world
    mark = len(world.calls())
    drill.bootstrap_task("rebuild", recover_from="latest", dry_run=True)
    out = capsys.readouterr().out
    assert "recover from: s3://etcd-backups/etcd/demo/" in out and "verified: SHA-256 trailer and sidecar" in out
    assert _mutations(world.calls(mark)) == []

    drill.bootstrap_task("rebuild", recover_from="latest", yes=True)  # phase 1 (pull), then phase 2 (rebuild)
    calls = world.calls(mark)
    (boot,) = [c for c in calls if c["tool"] == "talosctl" and "bootstrap" in c["argv"]]
    recovered = Path(boot["argv"][boot["argv"].index("--recover-from") + 1])
    assert recovered.parent == paths.backups_dir("demo") / "recovery" and recovered.stat().st_mode & 0o777 == 0o600
    assert world.sim.get_object("ConfigMap", "dr-marker", "default") is not None
    ledger = world.sim.get_object("ConfigMap", "ledger", "payments")
    assert ledger is not None and ledger["data"] == {"balance": "42"}
    _connect_secrets_ok(world)
    assert _flux_ready(world)

    argv_text = "\n".join(" ".join(c["argv"]) for c in world.calls())
    audit = (paths.state_dir() / "audit.log").read_text()
    for secret in world.secrets:
        assert secret not in argv_text and secret not in audit
