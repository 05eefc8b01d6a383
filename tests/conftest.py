"""Shared pytest configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.sim.fixtures"]


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes the developer's audit log, caches, backups or build/ — unless it points them itself."""
    base: Path = tmp_path_factory.mktemp("k8s-ops-dirs")
    for name, sub in (("K8S_OPS_STATE_DIR", "state"), ("K8S_OPS_BUILD_DIR", "build")):
        if name not in os.environ:  # a module-scoped fixture may have chosen already
            monkeypatch.setenv(name, str(base / sub))
