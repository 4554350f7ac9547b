"""Copies of the chart's default parameter ConfigMaps into a workspace's namespace.

Inference mounts its copy of `inference-params-template`, tuning its copy of
`lora-params-template` or `qlora-params-template` (by `tuning.method`), both at /mnt/config.
"""

from __future__ import annotations

from kaito_common.api import labels as L
from kaito_common.controller.objects import Obj

CONFIG_DIR = "/mnt/config"
# The key of an inference ConfigMap: Kaito's `inference_config.yaml` (the server's config file).
INFERENCE_CONFIG_KEY = "inference_config.yaml"
DEFAULT_INFERENCE_TEMPLATE = "inference-params-template"
TUNING_TEMPLATES = {"lora": "lora-params-template", "qlora": "qlora-params-template"}


def inference_params_name(workspace_name: str) -> str:
    return f"{workspace_name}-inference-params"


def tuning_params_name(workspace_name: str) -> str:
    return f"{workspace_name}-tuning-params"


def params_copy(name: str, workspace_name: str, namespace: str, owner: Obj, template: Obj) -> Obj:
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


def inference_params_copy(workspace_name: str, namespace: str, owner: Obj, template: Obj) -> Obj:
    name = inference_params_name(workspace_name)
    return params_copy(name, workspace_name, namespace, owner, template)


def tuning_params_copy(workspace_name: str, namespace: str, owner: Obj, template: Obj) -> Obj:
    name = tuning_params_name(workspace_name)
    return params_copy(name, workspace_name, namespace, owner, template)
