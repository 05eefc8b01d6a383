"""The Secrets the bootstrap creates besides sops-age and the git credentials (issue 14 §3): `onepassword.connect`
(the 1Password Connect credentials file and access token) and `bootstrap.secrets` (1Password items or SOPS files),
read once in preflight, applied over stdin in the secrets stage, never shown."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError

from k8s_ops.bootstrap import stages
from k8s_ops.bootstrap.charts import load_charts
from k8s_ops.bootstrap.credentials import ExtraSecret, connect_credentials_value, extra_secrets
from k8s_ops.core.errors import ProblemsError, SecretError
from k8s_ops.core.secret import Secret
from k8s_ops.talos import secrets as talos_secrets
from k8s_ops.talos.inventory import Cluster, load_cluster
from k8s_ops.talos.inventory.models import BootstrapSection, OnePasswordConnect
from k8s_ops.tools.kubectl import KubeTarget
from k8s_ops.tools.sops import Sops

REPO = Path(__file__).resolve().parent.parent
CREDS = '{"verifier":{"salt":"x"},"encCredentials":{"data":"c2VjcmV0LWNvbm5lY3Q"},"version":"2","deviceUuid":"d1"}'
TOKEN = "connect-access-token-abcdef0123456789"


@dataclass
class Reader:
    """A 1Password field reader (the `SdkStore.field` surface) over a dict; a missing field is a SecretError."""

    fields: Mapping[tuple[str, str], str]

    def field(self, title: str, field: str) -> Secret:
        if (title, field) not in self.fields:
            raise SecretError(f"1Password: op://vault/{title}/{field} could not be resolved: itemNotFound")
        return Secret(self.fields[(title, field)])


READER = Reader({("connect", "credentials"): CREDS, ("connect", "token"): f"  {TOKEN}\n", ("cf", "tok"): "cf-123"})


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    shutil.copytree(REPO / "clusters" / "demo", tmp_path / "clusters" / "demo")
    monkeypatch.setenv("K8S_OPS_CLUSTERS_DIR", str(tmp_path / "clusters"))
    for var in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    talos_secrets.clear_cache()
    yield tmp_path / "clusters" / "demo"
    talos_secrets.clear_cache()


def _with(demo: Path, extra: str) -> Cluster:
    vault = "onepassword:\n  vault: k8s-ops-demo\n"
    text = (REPO / "clusters" / "demo" / "cluster.yaml").read_text().replace(vault, vault + extra)
    (demo / "cluster.yaml").write_text(text)
    return load_cluster("demo")


CONNECT = "  connect:\n    credentials: {item: connect, field: credentials}\n    token: {item: connect, field: token}\n"


def test_connect_credentials_are_stored_base64_whatever_form_the_field_holds() -> None:
    as_json = connect_credentials_value(Secret(CREDS), "item x")
    assert base64.b64decode(as_json.reveal()).decode() == CREDS
    as_b64 = connect_credentials_value(Secret(base64.b64encode(CREDS.encode())), "item x")
    assert as_b64.reveal() == as_json.reveal()
    with pytest.raises(SecretError) as info:
        connect_credentials_value(Secret("hunter2-not-a-credentials-file"), "1Password item 'connect' field 'c'")
    assert "item 'connect' field 'c'" in info.value.message and "hunter2" not in str(info.value)
    with pytest.raises(SecretError):
        connect_credentials_value(Secret(base64.b64encode(b"[1, 2]")), "x")  # JSON, but not a credentials object


def test_connect_defaults_are_the_charts_and_a_shared_secret_name_merges(demo: Path) -> None:
    cluster = _with(demo, CONNECT)
    (creds, token) = extra_secrets(cluster, None, READER)
    assert (creds.namespace, creds.name, list(creds.data)) == ("external-secrets", "op-credentials",
                                                                 ["1password-credentials.json"])  # fmt: skip
    assert (token.name, list(token.data), token.data["token"].reveal_text()) == ("onepassword-token", ["token"], TOKEN)
    assert "connect/credentials" in creds.source and CREDS not in repr(creds) and TOKEN not in repr(token)

    shared = _with(
        demo,
        CONNECT + "    credentialsSecret: {name: onepassword-secret, key: 1password-credentials.json}\n"
        "    tokenSecret: {name: onepassword-secret, key: token}\n",
    )
    (one,) = extra_secrets(shared, None, READER)
    assert one.name == "onepassword-secret" and sorted(one.data) == ["1password-credentials.json", "token"]


def test_1password_sources_without_1password_are_refused_naming_the_fix(demo: Path) -> None:
    cluster = _with(demo, CONNECT)
    with pytest.raises(SecretError) as info:
        extra_secrets(cluster, None, None)
    assert "OP_SERVICE_ACCOUNT_TOKEN" in (info.value.hint or "")
    bad = Reader({("connect", "credentials"): CREDS})  # the token's field is not there
    with pytest.raises(SecretError, match="connect/token"):
        extra_secrets(cluster, None, bad)


def test_bootstrap_secrets_from_1password_and_from_a_sops_file(demo: Path) -> None:
    key = talos_secrets.age_key_for(load_cluster("demo"))
    recipient = key.recipients()[0]
    cipher = Sops().encrypt(b"api-token: s3cr3t-from-sops\nnote_unencrypted: TEST-ONLY\n", filename="x.yaml",
                            recipients=[recipient])  # fmt: skip
    (demo / "bootstrap" / "tunnel.sops.yaml").write_bytes(cipher)
    cluster = _with(
        demo,
        "bootstrap:\n  secrets:\n"
        "    - {name: cloudflare, namespace: network, onepassword: {token: {item: cf, field: tok}}}\n"
        "    - {name: tunnel, namespace: network, sops: bootstrap/tunnel.sops.yaml}\n",
    )
    cf, tunnel = extra_secrets(cluster, key, READER)
    assert cf.data["token"].reveal_text() == "cf-123" and cf.purpose == "bootstrap.secrets"
    assert dict((k, v.reveal_text()) for k, v in tunnel.data.items()) == {"api-token": "s3cr3t-from-sops"}
    assert tunnel.source.endswith("bootstrap/tunnel.sops.yaml")
    (demo / "bootstrap" / "tunnel.sops.yaml").unlink()
    with pytest.raises(ProblemsError, match=r"tunnel\.sops\.yaml"):
        extra_secrets(cluster, key, READER)


def test_the_models_name_bad_entries() -> None:
    with pytest.raises(ValidationError, match="exactly one of"):
        BootstrapSection.model_validate({"secrets": [{"name": "a", "namespace": "b"}]})
    with pytest.raises(ValidationError, match="exactly one of"):
        both = {"name": "a", "namespace": "b", "sops": "x.sops.yaml", "onepassword": {"k": {"item": "i", "field": "f"}}}
        BootstrapSection.model_validate({"secrets": [both]})
    with pytest.raises(ValidationError, match="listed twice"):
        BootstrapSection.model_validate({"secrets": [{"name": "a", "namespace": "b", "sops": "x"}] * 2})
    with pytest.raises(ValidationError, match="not a Kubernetes object name"):
        BootstrapSection.model_validate({"secrets": [{"name": "-rm", "namespace": "b", "sops": "x"}]})
    with pytest.raises(ValidationError, match="not a Secret data key"):
        OnePasswordConnect.model_validate({"credentials": {"item": "i", "field": "f"}, "token": {"item": "i",
                                           "field": "f"}, "tokenSecret": {"name": "t", "key": "a/b"}})  # fmt: skip


def test_the_secrets_stage_applies_them_over_stdin_after_their_namespace(demo: Path) -> None:
    from k8s_ops.bootstrap.charts import render_all_values

    cluster = _with(demo, CONNECT)
    charts = load_charts()
    extras = tuple(extra_secrets(cluster, None, READER))
    ctx = stages.Context(
        cluster=cluster,
        charts=charts,
        values=render_all_values(cluster, charts),
        kube=KubeTarget(demo / "kubeconfig", "demo"),
        age_key=Secret("AGE-SECRET-KEY-1XYZ"),
        extras=extras,
    )
    steps = stages.secrets_steps(ctx)
    descriptions = [s.description for s in steps]
    ns = descriptions.index(next(d for d in descriptions if d.startswith("namespace external-secrets")))
    creds = descriptions.index(next(d for d in descriptions if "Secret external-secrets/op-credentials" in d))
    assert ns < creds and "[onepassword.connect]" in descriptions[creds] and "values masked" in descriptions[creds]
    (command,) = steps[creds].commands
    assert isinstance(command.stdin, Secret) and command.argv[-1] == "-"
    doc = json.loads(command.stdin.reveal())
    assert base64.b64decode(base64.b64decode(doc["data"]["1password-credentials.json"])).decode() == CREDS
    shown = "\n".join(json.dumps(s.to_json()) + s.description for s in steps)
    assert TOKEN not in shown and CREDS not in shown and base64.b64encode(TOKEN.encode()).decode() not in shown


def test_extra_secret_holds_values_masked() -> None:
    e = ExtraSecret("ns", "n", {"k": Secret("value-never-shown")}, "src", "bootstrap.secrets")
    assert "value-never-shown" not in repr(e)
