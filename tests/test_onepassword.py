"""op.push / op.pull / op.status end to end against the in-memory 1Password (tests/op_fake.py).

The fake is plugged in at one seam, `k8s_ops.onepassword.sdk.client_class`. "Machines" are separate checkout,
build, state and config directories sharing one 1Password account: two laptops, or a laptop and a rebuild.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from k8s_ops.core import paths
from k8s_ops.core.errors import SecretError
from k8s_ops.onepassword import Action, Kind, SyncRefused, api, is_configured, sdk
from k8s_ops.onepassword import tasks as op_tasks
from k8s_ops.onepassword.state import state_path
from k8s_ops.onepassword.sync import Standing
from k8s_ops.talos.inventory import load_cluster
from tests.op_fake import FakeOnePassword

ENV_DIRS = ("K8S_OPS_CLUSTERS_DIR", "K8S_OPS_BUILD_DIR", "K8S_OPS_STATE_DIR", "XDG_CONFIG_HOME", "HOME")


@dataclass(frozen=True)
class Cl:
    """The two things this package reads from an inventory Cluster."""

    name: str = "infra"
    age_key_file: Path | None = None


def age_key() -> bytes:
    ident = pyrage.x25519.Identity.generate()
    return f"# created: 2026-01-01T00:00:00Z\n# public key: {ident.to_public()}\n{ident}\n".encode()


def sops_bundle(marker: str = "a") -> bytes:
    return (
        f"cluster:\n    id: ENC[AES256_GCM,data:{marker}Q==,iv:aXY=,tag:dGFn,type:str]\n"
        "sops:\n    age:\n        - recipient: age1qqq\n          enc: |\n"
        "            -----BEGIN AGE ENCRYPTED FILE-----\n            YWdl\n"
        "            -----END AGE ENCRYPTED FILE-----\n"
        '    lastmodified: "2026-11-26T11:57:26Z"\n    version: 3.11.0\n'
    ).encode()


class Machine:
    def __init__(self, root: Path, fake: FakeOnePassword, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.fake, self.mp = root, fake, monkeypatch
        for d in ("clusters", "build", "state", "config", "home"):
            (root / d).mkdir(parents=True, exist_ok=True)

    def use(self) -> Machine:
        for env, d in zip(ENV_DIRS, ("clusters", "build", "state", "config", "home"), strict=True):
            self.mp.setenv(env, str(self.root / d))
        return self

    def path(self, kind: Kind, cluster: str = "infra") -> Path:
        self.use()
        return {
            Kind.KUBECONFIG: paths.kubeconfig_path(cluster),
            Kind.TALOSCONFIG: paths.talosconfig_path(cluster),
            Kind.AGE_KEY: paths.default_age_key_file(),
            Kind.TALOS_SECRETS: paths.secrets_bundle_path(cluster),
        }[kind]

    def write(self, kind: Kind, data: bytes, cluster: str = "infra") -> Path:
        p = self.path(kind, cluster)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def read(self, kind: Kind, cluster: str = "infra") -> bytes | None:
        p = self.path(kind, cluster)
        return p.read_bytes() if p.exists() else None

    def _run(self, fn: Any, what: Any, cluster: Cl, **kw: Any) -> Any:
        self.use()
        with sdk.open_store("k8s", token=self.fake.token) as store:
            return fn(cluster, what, store=store, **kw)

    def push(self, what: Any = "all", cluster: Cl = Cl(), **kw: Any) -> list[api.ItemResult]:
        return list(self._run(api.push, what, cluster, **kw))

    def pull(self, what: Any = "all", cluster: Cl = Cl(), **kw: Any) -> list[api.ItemResult]:
        return list(self._run(api.pull, what, cluster, **kw))

    def status(self, what: Any = "all", cluster: Cl = Cl()) -> dict[str, api.ItemStatus]:
        return {s.title: s for s in self._run(api.status, what, cluster)}


def install_fake(monkeypatch: pytest.MonkeyPatch) -> FakeOnePassword:
    """The SDK client replaced by the in-memory fake (vault "k8s"); no token and no age key in the environment."""
    fake = FakeOnePassword(vaults=("k8s",))
    monkeypatch.setattr(sdk, "client_class", lambda: fake.Client)
    for var in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "OP_SERVICE_ACCOUNT_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return fake


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeOnePassword:
    return install_fake(monkeypatch)


@pytest.fixture
def laptop(tmp_path: Path, fake: FakeOnePassword, monkeypatch: pytest.MonkeyPatch) -> Machine:
    return Machine(tmp_path / "laptop", fake, monkeypatch).use()


@pytest.fixture
def other(tmp_path: Path, fake: FakeOnePassword, monkeypatch: pytest.MonkeyPatch) -> Machine:
    return Machine(tmp_path / "other", fake, monkeypatch)


def by_title(results: list[api.ItemResult]) -> dict[str, Action]:
    return {r.title: r.action for r in results}


def full_set(m: Machine) -> dict[Kind, bytes]:
    files = {
        Kind.KUBECONFIG: b"apiVersion: v1\nkind: Config\nclusters: []\n",
        Kind.TALOSCONFIG: b"context: infra\ncontexts:\n  infra: {}\n",
        Kind.AGE_KEY: age_key(),
        Kind.TALOS_SECRETS: sops_bundle(),
    }
    for kind, data in files.items():
        m.write(kind, data)
    return files


# ---------------------------------------------------------------- round trips

CONTENTS = {
    "trailing-newlines": b"apiVersion: v1\nkind: Config\n\n\n",
    "crlf": b"apiVersion: v1\r\nkind: Config\r\n",
    "unicode": "users:\n- name: ünïcødé ✓ 日本語\n".encode(),
    "no-trailing-newline": b"apiVersion: v1\nkind: Config",
    "lone-cr-tabs-nul": b"a\rb\tc\x00d\n",
    "binary": bytes(range(256)) * 3,
}


@pytest.mark.parametrize("name", list(CONTENTS))
def test_round_trip_is_byte_exact(name: str, laptop: Machine, other: Machine, fake: FakeOnePassword) -> None:
    data = CONTENTS[name]
    laptop.write(Kind.KUBECONFIG, data)
    laptop.write(Kind.TALOSCONFIG, data[::-1])
    assert by_title(laptop.push("kubeconfig,talosconfig")) == {
        "kubeconfig-infra": Action.CREATE,
        "talosconfig-infra": Action.CREATE,
    }
    assert "\n" not in fake.field_value("kubeconfig-infra", "content")  # 1Password kept one line
    pulled = other.pull("kubeconfig,talosconfig")
    assert all(r.action is Action.WRITE and r.done for r in pulled)
    assert other.read(Kind.KUBECONFIG) == data and other.read(Kind.TALOSCONFIG) == data[::-1]
    assert stat.S_IMODE(other.path(Kind.KUBECONFIG).stat().st_mode) == 0o600


def test_all_four_for_a_rebuild(laptop: Machine, other: Machine, fake: FakeOnePassword) -> None:
    files = full_set(laptop)
    results = laptop.push()
    assert [r.title for r in results] == [
        "kubeconfig-infra",
        "talosconfig-infra",
        "sops-age-key-infra",
        "talos-secrets-infra",
    ]
    assert all(r.reference == f"op://k8s/{r.title}/content" for r in results)
    public = files[Kind.AGE_KEY].split(b"public key: ")[1].split(b"\n")[0].decode()
    assert fake.field_value("sops-age-key-infra", "public-key") == public
    assert fake.field_value("talos-secrets-infra", "kind") == "talos-secrets"

    # A rebuild from scratch: nothing local but the token.
    assert all(r.action is Action.WRITE for r in other.pull(only_missing=True))
    for kind, data in files.items():
        assert other.read(kind) == data, kind
    assert other.path(Kind.AGE_KEY) == other.root / "config" / "k8s-ops" / "age.agekey"
    # Both machines now agree, and know it.
    assert {s.state for s in other.status().values()} == {Standing.IN_SYNC}


def test_state_file_holds_digests_only(laptop: Machine) -> None:
    files = full_set(laptop)
    laptop.push()
    path = state_path("infra")
    assert path == laptop.root / "state" / "onepassword" / "infra.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    for data in files.values():
        assert data.decode() not in text and base64.b64encode(data).decode() not in text
    from k8s_ops.onepassword.store import sha256_hex

    recorded = json.loads(text)["items"]["k8s/kubeconfig-infra"]
    assert recorded["sha256"] == sha256_hex(files[Kind.KUBECONFIG]) and recorded["op"] == "push"


def test_push_skips_unchanged_content(laptop: Machine, fake: FakeOnePassword) -> None:
    full_set(laptop)
    laptop.push()
    before = fake.snapshot()
    fake.calls.clear()
    assert {r.action for r in laptop.push()} == {Action.UNCHANGED}
    assert fake.snapshot() == before
    assert "items.put" not in fake.calls and "items.create" not in fake.calls


# ---------------------------------------------------------------- no silent clobbering


def test_two_laptops_cannot_clobber_each_other(laptop: Machine, other: Machine, fake: FakeOnePassword) -> None:
    laptop.write(Kind.KUBECONFIG, b"v1\n")
    laptop.push("kubeconfig")
    other.pull("kubeconfig")
    other.write(Kind.KUBECONFIG, b"v2 from the other laptop\n")
    assert by_title(other.push("kubeconfig")) == {"kubeconfig-infra": Action.UPDATE}  # it had synced v1

    laptop.write(Kind.KUBECONFIG, b"v3 from the first laptop\n")
    with pytest.raises(SyncRefused) as err:
        laptop.push("kubeconfig")
    assert "changed since this machine last synced" in str(err.value)
    assert base64.b64decode(fake.field_value("kubeconfig-infra", "content")) == b"v2 from the other laptop\n"
    st = laptop.status("kubeconfig")["kubeconfig-infra"]
    assert st.state is Standing.DIVERGED

    assert by_title(laptop.push("kubeconfig", force=True)) == {"kubeconfig-infra": Action.UPDATE}
    assert base64.b64decode(fake.field_value("kubeconfig-infra", "content")) == b"v3 from the first laptop\n"
    # Now the other laptop is behind, and its unpushed edit would be lost: it must not pull silently.
    other.write(Kind.KUBECONFIG, b"v4 unpushed\n")
    with pytest.raises(SyncRefused, match="local file changed since the last sync"):
        other.pull("kubeconfig")
    assert other.read(Kind.KUBECONFIG) == b"v4 unpushed\n"


def test_fresh_laptop_never_overwrites_an_unknown_copy(laptop: Machine, other: Machine) -> None:
    laptop.write(Kind.TALOSCONFIG, b"the real one\n")
    laptop.push("talosconfig")
    other.write(Kind.TALOSCONFIG, b"a stale local copy\n")  # never synced on this machine
    with pytest.raises(SyncRefused, match="never synced"):
        other.push("talosconfig")
    with pytest.raises(SyncRefused, match="never synced"):
        other.pull("talosconfig")


def test_pull_follows_the_other_laptop_when_local_is_untouched(laptop: Machine, other: Machine) -> None:
    laptop.write(Kind.KUBECONFIG, b"v1\n")
    laptop.push("kubeconfig")
    other.pull("kubeconfig")
    other.write(Kind.KUBECONFIG, b"v2\n")
    other.push("kubeconfig")
    assert laptop.status("kubeconfig")["kubeconfig-infra"].state is Standing.REMOTE_NEWER
    assert by_title(laptop.pull("kubeconfig")) == {"kubeconfig-infra": Action.WRITE}
    assert laptop.read(Kind.KUBECONFIG) == b"v2\n"


def test_a_push_racing_another_laptop_fails_cleanly(laptop: Machine, other: Machine, fake: FakeOnePassword) -> None:
    laptop.write(Kind.KUBECONFIG, b"v1\n")
    laptop.push("kubeconfig")
    other.pull("kubeconfig")
    laptop.write(Kind.KUBECONFIG, b"v2 laptop\n")
    other.write(Kind.KUBECONFIG, b"v2 other\n")

    def other_pushes_now(call: str) -> None:
        if call == "items.put":  # the laptop decided to update; the other machine gets there first
            fake.on_call = None
            # Another process: its own thread, so its own event loop.
            t = threading.Thread(target=other.push, args=("kubeconfig",))
            t.start()
            t.join()
            laptop.use()

    fake.on_call = other_pushes_now
    with pytest.raises(SecretError, match="itemStatusIncorrectItemVersion"):
        laptop.push("kubeconfig")
    assert base64.b64decode(fake.field_value("kubeconfig-infra", "content")) == b"v2 other\n"
    with pytest.raises(SyncRefused):  # and a re-run now refuses instead of clobbering
        laptop.push("kubeconfig")


def test_a_refusal_changes_nothing(laptop: Machine, other: Machine, fake: FakeOnePassword) -> None:
    other.write(Kind.KUBECONFIG, b"theirs\n")
    other.push("kubeconfig")
    laptop.write(Kind.KUBECONFIG, b"mine\n")
    laptop.write(Kind.TALOSCONFIG, b"new\n")
    before = fake.snapshot()
    with pytest.raises(SyncRefused) as err:
        laptop.push("kubeconfig,talosconfig")
    assert fake.snapshot() == before  # talosconfig was fine, but nothing is half-done
    assert not state_path("infra").exists()
    assert [r.action for r in err.value.results] == [Action.REFUSE, Action.CREATE]
    assert "refused for 1 item(s); nothing was changed" in str(err.value)


def test_missing_files_on_either_side(laptop: Machine, fake: FakeOnePassword) -> None:
    laptop.write(Kind.KUBECONFIG, b"k\n")
    with pytest.raises(SyncRefused) as err:
        laptop.push("kubeconfig,talosconfig")
    assert "talosconfig-infra" in str(err.value) and "no local file" in str(err.value)
    assert fake.items == {}
    done = laptop.push("kubeconfig,talosconfig", missing_ok=True)
    assert by_title(done) == {"kubeconfig-infra": Action.CREATE, "talosconfig-infra": Action.MISSING}

    laptop.path(Kind.KUBECONFIG).unlink()
    with pytest.raises(SyncRefused, match="not in 1Password"):
        laptop.pull("kubeconfig,talosconfig")
    assert laptop.read(Kind.KUBECONFIG) is None
    laptop.pull("kubeconfig,talosconfig", missing_ok=True)
    assert laptop.read(Kind.KUBECONFIG) == b"k\n"


# ---------------------------------------------------------------- pull details


def test_pull_replaces_files_atomically_with_0600(laptop: Machine, other: Machine) -> None:
    laptop.write(Kind.KUBECONFIG, b"v1\n")
    laptop.push("kubeconfig")
    other.pull("kubeconfig")
    target = other.path(Kind.KUBECONFIG)
    os.chmod(target, 0o644)
    inode = target.stat().st_ino
    laptop.write(Kind.KUBECONFIG, b"v2\n")
    laptop.push("kubeconfig")
    other.pull("kubeconfig")
    assert target.read_bytes() == b"v2\n"
    assert target.stat().st_ino != inode  # renamed into place, never written in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["kubeconfig"]  # no temp files left


def test_secrets_bundle_is_restored_only_when_missing(laptop: Machine, other: Machine) -> None:
    laptop.write(Kind.TALOS_SECRETS, sops_bundle("a"))
    laptop.push("talos-secrets")
    other.write(Kind.TALOS_SECRETS, sops_bundle("b"))  # the checkout's committed bundle
    assert by_title(other.pull("talos-secrets")) == {"talos-secrets-infra": Action.KEEP}
    assert other.read(Kind.TALOS_SECRETS) == sops_bundle("b")
    assert by_title(other.pull("talos-secrets", force=True)) == {"talos-secrets-infra": Action.WRITE}
    assert other.read(Kind.TALOS_SECRETS) == sops_bundle("a")


def test_plaintext_bundle_is_never_pushed(laptop: Machine, fake: FakeOnePassword) -> None:
    laptop.write(Kind.TALOS_SECRETS, b"cluster:\n  id: abc\n  secret: hunter2\n")
    with pytest.raises(SyncRefused, match="not SOPS-encrypted"):
        laptop.push("talos-secrets")
    assert fake.items == {}


def test_only_missing_keeps_existing_files(laptop: Machine, other: Machine) -> None:
    laptop.write(Kind.KUBECONFIG, b"remote kube\n")
    laptop.write(Kind.TALOSCONFIG, b"remote talos\n")
    laptop.push("kubeconfig,talosconfig")
    other.write(Kind.KUBECONFIG, b"local kube\n")
    assert by_title(other.pull("kubeconfig,talosconfig", only_missing=True)) == {
        "kubeconfig-infra": Action.KEEP,
        "talosconfig-infra": Action.WRITE,
    }
    assert other.read(Kind.KUBECONFIG) == b"local kube\n" and other.read(Kind.TALOSCONFIG) == b"remote talos\n"


def test_damaged_item_is_not_pulled_and_force_push_repairs_it(laptop: Machine, fake: FakeOnePassword) -> None:
    laptop.write(Kind.KUBECONFIG, b"good\n")
    laptop.push("kubeconfig")
    fake.set_field("kubeconfig-infra", "content", base64.b64encode(b"good").decode())  # hand edit lost "\n"
    laptop.path(Kind.KUBECONFIG).unlink()
    with pytest.raises(SyncRefused, match="does not match its sha256"):
        laptop.pull("kubeconfig", force=True)
    assert laptop.read(Kind.KUBECONFIG) is None
    laptop.write(Kind.KUBECONFIG, b"good\n")
    with pytest.raises(SyncRefused, match="unusable"):
        laptop.push("kubeconfig")
    assert by_title(laptop.push("kubeconfig", force=True)) == {"kubeconfig-infra": Action.UPDATE}
    assert laptop.status("kubeconfig")["kubeconfig-infra"].state is Standing.IN_SYNC


# ---------------------------------------------------------------- the age key


def test_age_key_items_are_per_cluster(laptop: Machine, other: Machine, fake: FakeOnePassword) -> None:
    infra_key, apps_key = age_key(), age_key()
    laptop.write(Kind.AGE_KEY, infra_key)
    laptop.push("age-key", cluster=Cl("infra"))
    laptop.write(Kind.AGE_KEY, apps_key)
    laptop.push("age-key", cluster=Cl("apps"))
    assert len(fake.items_titled("sops-age-key-infra")) == len(fake.items_titled("sops-age-key-apps")) == 1

    other.pull("age-key", cluster=Cl("infra"))
    assert other.read(Kind.AGE_KEY) == infra_key
    # A different key for apps would replace infra's at the same default path: refused, never silent.
    with pytest.raises(SyncRefused, match="never synced"):
        other.pull("age-key", cluster=Cl("apps"))
    assert other.read(Kind.AGE_KEY) == infra_key


def test_age_key_locations(laptop: Machine, other: Machine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Push from the inventory's sops.ageKeyFile (relative to the cluster dir, resolved by the inventory).
    key = age_key()
    inventory_key = laptop.root / "clusters" / "infra" / "age.agekey"
    inventory_key.parent.mkdir(parents=True)
    inventory_key.write_bytes(key)
    (result,) = laptop.push("age-key", cluster=Cl(age_key_file=inventory_key))
    assert result.action is Action.CREATE and result.location == str(inventory_key)

    # Pull to $SOPS_AGE_KEY_FILE when set.
    target = tmp_path / "keys" / "infra.agekey"
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(target))
    (pulled,) = other.pull("age-key")
    assert pulled.location == str(target) and target.read_bytes() == key
    assert not other.path(Kind.AGE_KEY).exists()


def test_inline_sops_age_key_is_what_gets_pushed(
    laptop: Machine, fake: FakeOnePassword, monkeypatch: pytest.MonkeyPatch
) -> None:
    laptop.write(Kind.AGE_KEY, age_key())  # a stale default file: sops would not use it
    inline = age_key()
    monkeypatch.setenv("SOPS_AGE_KEY", inline.decode())
    (result,) = laptop.push("age-key")
    assert result.location == "$SOPS_AGE_KEY"
    assert base64.b64decode(fake.field_value("sops-age-key-infra", "content")) == inline


# ---------------------------------------------------------------- dry run and status


def test_dry_run_changes_nothing(laptop: Machine, other: Machine, fake: FakeOnePassword) -> None:
    full_set(laptop)
    preview = laptop.push(dry_run=True)
    assert {r.action for r in preview} == {Action.CREATE} and not any(r.done for r in preview)
    assert fake.items == {} and not state_path("infra").exists()
    laptop.push()
    preview = other.pull(dry_run=True)
    assert {r.action for r in preview} == {Action.WRITE}
    assert all(other.read(k) is None for k in Kind) and not state_path("infra").exists()


def test_status_reports_digests_and_which_is_newer(laptop: Machine, other: Machine) -> None:
    laptop.write(Kind.KUBECONFIG, b"v1\n")
    laptop.write(Kind.TALOSCONFIG, b"t1\n")
    laptop.push("kubeconfig,talosconfig")
    laptop.write(Kind.TALOSCONFIG, b"t2 local edit\n")
    laptop.write(Kind.TALOS_SECRETS, sops_bundle())
    st = laptop.status()
    assert st["kubeconfig-infra"].state is Standing.IN_SYNC
    assert st["kubeconfig-infra"].local_sha256 == st["kubeconfig-infra"].remote_sha256 is not None
    assert (st["talosconfig-infra"].state, st["talosconfig-infra"].newer) == (Standing.LOCAL_NEWER, "local")
    assert st["talos-secrets-infra"].state is Standing.LOCAL_ONLY
    assert st["sops-age-key-infra"].state is Standing.ABSENT
    other.pull("kubeconfig")
    other.write(Kind.KUBECONFIG, b"v2\n")
    other.push("kubeconfig")
    kube = laptop.status("kubeconfig")["kubeconfig-infra"]
    assert (kube.state, kube.newer, kube.basis) == (Standing.REMOTE_NEWER, "1password", "last sync")


# ---------------------------------------------------------------- tasks and the bootstrap API


CLUSTER_YAML = """\
name: {name}
id: 7
domain: lab.internal
talosVersion: v1.12.0
kubernetesVersion: v1.35.0
endpoint: 10.7.0.10
network:
  nodeCIDR: 10.7.0.0/24
  gateway: 10.7.0.1
  nameservers: [10.7.0.1]
  podCIDR: 10.70.0.0/16
  serviceCIDR: 10.71.0.0/16
gitops: {{repository: "ssh://git@example.test/lab.git", branch: main, path: clusters/{name}/flux}}
onepassword: {{vault: {vault}}}
nodes:
  - {{hostname: lab-cp-1, address: 10.7.0.11, role: controlplane, installDisk: /dev/vda}}
"""


@pytest.fixture
def lab(laptop: Machine, fake: FakeOnePassword, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[Kind, bytes]]:
    d = laptop.root / "clusters" / "lab"
    d.mkdir(parents=True)
    (d / "cluster.yaml").write_text(CLUSTER_YAML.format(name="lab", vault="k8s"))
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", fake.token)
    files = {Kind.KUBECONFIG: b"kube: secret-kube-value\n", Kind.TALOSCONFIG: b"talos: secret-talos-value\r\n"}
    for kind, data in files.items():
        laptop.write(kind, data, cluster="lab")
    yield files


def assert_no_secrets(text: str, files: dict[Kind, bytes], token: str) -> None:
    for data in files.values():
        assert data.decode().strip() not in text
        assert base64.b64encode(data).decode() not in text
    assert token not in text


def test_tasks_push_status_pull(
    lab: dict[Kind, bytes], laptop: Machine, fake: FakeOnePassword, capsys: pytest.CaptureFixture[str]
) -> None:
    op_tasks.push(Context(), cluster="lab", what="kubeconfig,talosconfig", dry_run=True)
    out = capsys.readouterr().out
    assert out.startswith("Plan: op.push (1Password vault 'k8s') — cluster lab (2 steps, 0 no-op)\n")
    assert "[1] create kubeconfig-lab (" in out and "    op push kubeconfig (vault k8s)" in out and fake.items == {}
    assert "note: kubeconfig-lab: op://k8s/kubeconfig-lab/content" in out

    op_tasks.push(Context(), cluster="lab", what="kubeconfig,talosconfig")
    out = capsys.readouterr().out
    assert "op://k8s/kubeconfig-lab/content" in out and "op://k8s/talosconfig-lab/content" in out
    assert_no_secrets(out, lab, fake.token)

    op_tasks.status(Context(), cluster="lab")
    out = capsys.readouterr().out
    assert "in sync" in out and "sops-age-key-lab" in out
    assert_no_secrets(out, lab, fake.token)

    laptop.path(Kind.KUBECONFIG, "lab").unlink()
    op_tasks.pull(Context(), cluster="lab", what="kubeconfig", json=True)
    out = capsys.readouterr().out
    (row,) = json.loads(out)
    assert row["action"] == "write" and row["done"] is True
    assert laptop.read(Kind.KUBECONFIG, "lab") == lab[Kind.KUBECONFIG]
    assert_no_secrets(out, lab, fake.token)


def test_task_errors_are_clean(
    lab: dict[Kind, bytes],
    laptop: Machine,
    fake: FakeOnePassword,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("OP_SERVICE_ACCOUNT_TOKEN")
    with pytest.raises(Exit) as ex:
        op_tasks.push(Context(), cluster="lab")
    assert ex.value.code == 1 and "OP_SERVICE_ACCOUNT_TOKEN is not set" in capsys.readouterr().err

    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", "not-a-token")
    with pytest.raises(Exit):
        op_tasks.status(Context(), cluster="lab")
    err = capsys.readouterr().err
    assert "service account token had invalid format" in err and "not-a-token" not in err

    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", fake.token)
    (laptop.root / "clusters" / "lab" / "cluster.yaml").write_text(CLUSTER_YAML.format(name="lab", vault="Homelab"))
    with pytest.raises(Exit):
        op_tasks.pull(Context(), cluster="lab")
    assert "vault 'Homelab' not found; vaults this service account can access: 'k8s'" in capsys.readouterr().err

    with pytest.raises(Exit):
        op_tasks.push(Context(), cluster="lab", what="kubeconfig,nope")
    assert "unknown item 'nope'" in capsys.readouterr().err


def test_task_refusal_shows_every_item_and_exits_non_zero(
    lab: dict[Kind, bytes], fake: FakeOnePassword, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Exit) as ex:
        op_tasks.push(Context(), cluster="lab")  # no age key, no secrets bundle on this machine yet
    captured = capsys.readouterr()
    assert ex.value.code == 1 and fake.items == {}
    assert "refused, nothing was changed" in captured.out and "would create" in captured.out
    assert "sops-age-key-lab" in captured.err and "talos-secrets-lab" in captured.err
    with pytest.raises(Exit):
        op_tasks.push(Context(), cluster="lab", dry_run=True)
    assert "would refuse or miss" in capsys.readouterr().err


def test_bootstrap_api(
    lab: dict[Kind, bytes], laptop: Machine, fake: FakeOnePassword, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = load_cluster("lab")
    assert is_configured(cluster)
    results = api.push(cluster, "kubeconfig,talosconfig")  # opens the inventory's vault with the env token
    assert {r.action for r in results} == {Action.CREATE}
    laptop.path(Kind.TALOSCONFIG, "lab").unlink()
    assert by_title(api.pull(cluster, "kubeconfig,talosconfig", only_missing=True)) == {
        "kubeconfig-lab": Action.UNCHANGED,
        "talosconfig-lab": Action.WRITE,
    }
    monkeypatch.delenv("OP_SERVICE_ACCOUNT_TOKEN")
    assert not is_configured(cluster)
