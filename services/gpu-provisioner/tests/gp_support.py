"""Helpers shared by the gpu-provisioner tests (a module of its own: several test folders have a
conftest, and `from conftest import ...` would pick whichever one pytest imported first)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gpu_provisioner.app import Provisioner
from gpu_provisioner.settings import AzureSettings, Settings
from kaito_common.controller.objects import Obj
from kaito_testing.fakearm import FakeArm

REPO = Path(__file__).resolve().parents[3]
CRD = REPO / "crds" / "karpenter.sh_nodeclaims.yaml"
TEST_LABEL = "gpu-provisioner.test/run"


def claim_name() -> str:
    """Kaito's shape: `ws` + 9 hex characters (a valid AKS pool name)."""
    return "ws" + secrets.token_hex(5)[:9]


def kaito_nodeclaim(
    name: str,
    *,
    sku: str = "Standard_NC12s_v3",
    storage: str = "120Gi",
    workspace: str = "ws-a",
    namespace: str = "default",
    image_family: str | None = None,
    extra_labels: dict[str, str] | None = None,
) -> Obj:
    """A NodeClaim as the workspace controller writes it."""
    annotations = {"karpenter.sh/do-not-disrupt": "true"}
    if image_family:
        annotations["kaito.sh/node-image-family"] = image_family
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "metadata": {
            "name": name,
            "labels": {
                "karpenter.sh/nodepool": "kaito",
                "kaito.sh/workspace": workspace,
                "kaito.sh/workspacenamespace": namespace,
                TEST_LABEL: "true",
                **(extra_labels or {}),
            },
            "annotations": annotations,
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
            "resources": {"requests": {"storage": storage}},
        },
    }


def condition(obj: Obj | None, type_: str) -> Obj | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def is_ready(obj: Obj | None) -> bool:
    cond = condition(obj, "Ready")
    return cond is not None and cond.get("status") == "True"


def azure_settings(arm: FakeArm, **overrides: Any) -> AzureSettings:
    values: dict[str, Any] = {
        "subscription_id": arm.subscription,
        "resource_group": arm.resource_group,
        "cluster_name": arm.cluster,
        "location": arm.location,
        "arm_endpoint": arm.endpoint,
        "arm_ca_bundle": str(arm.ca_bundle),
        "polling_interval_s": 0.1,
        "retry_total": 3,
        "retry_backoff_factor": 0.05,
        "retry_backoff_max_s": 1,
        "node_wait_timeout_s": 10.0,
        "node_wait_interval_s": 0.1,
    }
    values.update(overrides)
    return AzureSettings.model_validate(values)


def provisioner_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "cloud": "kwok",
        "metrics_port": 0,
        "poll_interval_s": 0.2,
        "gc_interval_s": 3600.0,
        "launch_backoff_max_s": 2.0,
    }
    values.update(overrides)
    return Settings.model_validate(values)


StartProvisioner = Callable[..., Awaitable[Provisioner]]
