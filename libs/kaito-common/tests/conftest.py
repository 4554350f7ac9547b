"""Shared fixtures for kaito-common's own tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def seed_example_path() -> Path:
    return REPO_ROOT / "examples" / "kaito_workspace_tuning_phi_3.yaml"


@pytest.fixture
def seed_manifest(seed_example_path: Path) -> dict[str, Any]:
    """The seed document's tuning Workspace, exactly as a user applies it."""
    data = yaml.safe_load(seed_example_path.read_text())
    assert isinstance(data, dict)
    return data
