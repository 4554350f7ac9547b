"""Workspace objects for the unit tests."""

from __future__ import annotations

import copy
from typing import Any

PHI3: dict[str, Any] = {
    "apiVersion": "kaito.sh/v1beta1",
    "kind": "Workspace",
    "metadata": {
        "name": "workspace-phi-3-mini",
        "namespace": "default",
        "uid": "0b2e6f10-0000-4000-8000-000000000001",
        "generation": 1,
    },
    "resource": {
        "count": 1,
        "instanceType": "Standard_NC6s_v3",
        "labelSelector": {"matchLabels": {"apps": "phi-3"}},
    },
    "inference": {"preset": {"name": "phi-3-mini-4k-instruct"}},
}

TUNING: dict[str, Any] = {
    "apiVersion": "kaito.sh/v1alpha1",
    "kind": "Workspace",
    "metadata": {
        "name": "workspace-tuning-phi-3",
        "namespace": "default",
        "uid": "0b2e6f10-0000-4000-8000-000000000002",
    },
    "resource": {
        "instanceType": "Standard_NC6s_v3",
        "labelSelector": {"matchLabels": {"app": "tuning-phi-3"}},
    },
    "tuning": {
        "preset": {"name": "phi-3-mini-128k-instruct"},
        "method": "qlora",
        "input": {"urls": ["https://huggingface.co/datasets/x/resolve/main/train.parquet"]},
        "output": {"image": "myacr.azurecr.io/adapter:0.0.1", "imagePushSecret": "acr-secret"},
    },
}


def phi3(**changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(PHI3)
    obj.update(changes)
    return obj


def tuning() -> dict[str, Any]:
    return copy.deepcopy(TUNING)


def tuning_volume() -> dict[str, Any]:
    """A tuning workspace that reads a volume and writes to a volume (no fetch, no push)."""
    obj = tuning()
    obj["metadata"]["name"] = "tuning-volumes"
    obj["tuning"]["method"] = "lora"
    obj["tuning"]["input"] = {"volumeSource": {"persistentVolumeClaim": {"claimName": "data"}}}
    obj["tuning"]["output"] = {"volumeSource": {"persistentVolumeClaim": {"claimName": "out"}}}
    return obj
