"""Shared fixtures for kaito-common's own tests."""

from __future__ import annotations

from collections.abc import Callable
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


def _kaito_nodeclaim(name: str) -> dict[str, Any]:
    """A NodeClaim as the workspace controller writes it for the seed's Workspace."""
    sku = "Standard_NC6s_v3"
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "metadata": {
            "name": name,
            "labels": {
                "karpenter.sh/nodepool": "kaito",
                "kaito.sh/workspace": "workspace-tuning-phi-3",
                "kaito.sh/workspacenamespace": "default",
                "app": "tuning-phi-3",
            },
            "annotations": {"karpenter.sh/do-not-disrupt": "true"},
        },
        "spec": {
            "nodeClassRef": {"group": "kaito.sh", "kind": "KaitoNodeClass", "name": "default"},
            "taints": [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
            "requirements": [
                {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["kaito"]},
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [sku]},
                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                {"key": "karpenter.azure.com/sku-name", "operator": "In", "values": [sku]},
            ],
            "resources": {"requests": {"storage": "80Gi"}},
        },
    }


@pytest.fixture
def kaito_nodeclaim() -> Callable[[str], dict[str, Any]]:
    """Builds a Kaito-style NodeClaim manifest with the given name."""
    return _kaito_nodeclaim
