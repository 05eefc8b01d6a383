"""Settings from invoke.yaml reach the library through the environment; the environment wins."""

from __future__ import annotations

import pytest
from invoke.config import Config

from k8s_ops.core import settings


def test_invoke_config_sets_unset_values_and_env_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("K8S_OPS_POLL_INTERVAL", raising=False)
    monkeypatch.setenv("K8S_OPS_CONCURRENCY", "2")
    config = Config(overrides={"k8s_ops": {"poll_interval": 0.25, "concurrency": 9}})
    settings.apply_invoke_config(config)
    assert settings.poll_interval() == 0.25
    assert settings.concurrency() == 2


def test_bad_values_are_errors_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # these used to fall back to the defaults silently (issue #16 §5); tests/test_hardening_inputs.py has the rest
    monkeypatch.setenv("K8S_OPS_TIMEOUT_SCALE", "fast")
    monkeypatch.setenv("K8S_OPS_CONCURRENCY", "0")
    with pytest.raises(settings.SettingError, match="K8S_OPS_TIMEOUT_SCALE"):
        settings.timeout_scale()
    with pytest.raises(settings.SettingError, match="K8S_OPS_CONCURRENCY"):
        settings.concurrency()
