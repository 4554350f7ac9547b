"""The copy of the chart's default inference parameters a workspace mounts at /mnt/config."""

from __future__ import annotations

from typing import Any

from kaito_common.api import labels as L

DEFAULT_INFERENCE_TEMPLATE = "inference-params-template"


def inference_params_name(workspace_name: str) -> str:
    return f"{workspace_name}-inference-params"


def inference_params_copy(
    workspace_name: str, namespace: str, owner: dict[str, Any], template: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": inference_params_name(workspace_name),
            "namespace": namespace,
            "labels": {L.LABEL_WORKSPACE: workspace_name},
            "ownerReferences": [owner],
        },
        "data": dict(template.get("data") or {}),
    }
