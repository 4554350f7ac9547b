"""Copies of the chart's default parameter ConfigMaps into a workspace's namespace.

Inference mounts `inference-params-template` at /mnt/config; tuning mounts
`lora-params-template` or `qlora-params-template` (by `tuning.method`).
"""

from __future__ import annotations

from typing import Any

from kaito_common.api import labels as L

DEFAULT_INFERENCE_TEMPLATE = "inference-params-template"
TUNING_TEMPLATES = {"lora": "lora-params-template", "qlora": "qlora-params-template"}


def inference_params_name(workspace_name: str) -> str:
    return f"{workspace_name}-inference-params"


def tuning_params_name(workspace_name: str) -> str:
    return f"{workspace_name}-tuning-params"


def params_copy(
    name: str, workspace_name: str, namespace: str, owner: dict[str, Any], template: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {L.LABEL_WORKSPACE: workspace_name},
            "ownerReferences": [owner],
        },
        "data": dict(template.get("data") or {}),
    }


def inference_params_copy(
    workspace_name: str, namespace: str, owner: dict[str, Any], template: dict[str, Any]
) -> dict[str, Any]:
    name = inference_params_name(workspace_name)
    return params_copy(name, workspace_name, namespace, owner, template)


def tuning_params_copy(
    workspace_name: str, namespace: str, owner: dict[str, Any], template: dict[str, Any]
) -> dict[str, Any]:
    name = tuning_params_name(workspace_name)
    return params_copy(name, workspace_name, namespace, owner, template)
