"""Workspace and NodeClaim models: parse what users and the API server write, serialise back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from kaito_common.api import NodeClaim, Workspace
from kaito_common.api.conditions import find_condition, is_true


def test_seed_manifest_parses(seed_manifest: dict[str, Any]) -> None:
    ws = Workspace.model_validate(seed_manifest)
    assert ws.api_version == "kaito.sh/v1alpha1"
    assert ws.metadata.name == "workspace-tuning-phi-3"
    assert ws.resource.instance_type == "Standard_NC6s_v3"
    assert ws.resource.label_selector.match_labels == {"app": "tuning-phi-3"}
    assert ws.inference is None
    assert ws.tuning is not None
    assert ws.tuning.method == "qlora"
    assert ws.tuning.preset.name == "phi-3-mini-128k-instruct"
    assert ws.tuning.input.urls and ws.tuning.input.urls[0].startswith("https://huggingface.co/")
    assert ws.tuning.output.image_push_secret == "ACR_REGISTRY_SECRET_HERE"


def test_seed_manifest_round_trips(seed_manifest: dict[str, Any]) -> None:
    out = Workspace.model_validate(seed_manifest).to_dict()
    # What the user wrote comes back unchanged, plus the schema's default node count.
    expected = dict(seed_manifest)
    expected["resource"] = {"count": 1, **seed_manifest["resource"]}
    assert out == expected


def test_serialises_camel_case_and_omits_empties() -> None:
    ws = Workspace.model_validate(
        {
            "metadata": {"name": "ws", "namespace": "default"},
            "resource": {
                "instanceType": "Standard_NC12s_v3",
                "labelSelector": {"matchLabels": {"apps": "falcon"}},
                "preferredNodes": ["node-a"],
            },
            "inference": {
                "preset": {
                    "name": "falcon-7b",
                    "accessMode": "private",
                    "presetOptions": {"image": "r.example/f:1", "imagePullSecrets": ["s"]},
                },
                "adapters": [
                    {"source": {"name": "a", "image": "r.example/a:1"}, "strength": "0.5"}
                ],
            },
        }
    )
    out = ws.to_dict()
    assert out["resource"]["preferredNodes"] == ["node-a"]
    assert out["inference"]["preset"]["presetOptions"]["imagePullSecrets"] == ["s"]
    assert out["inference"]["adapters"][0] == {
        "source": {"name": "a", "image": "r.example/a:1"},
        "strength": "0.5",
    }
    assert "tuning" not in out and "status" not in out
    assert "template" not in out["inference"] and "config" not in out["inference"]
    assert ws.spec_fields().keys() == {"resource", "inference"}


def test_status_and_conditions_parse() -> None:
    ws = Workspace.model_validate(
        {
            "resource": {"labelSelector": {}},
            "inference": {"preset": {"name": "phi-4"}},
            "status": {
                "workerNodes": ["n1"],
                "targetNodeCount": 1,
                "state": "Ready",
                "conditions": [
                    {
                        "type": "ResourceReady",
                        "status": "True",
                        "reason": "WorkspaceResourceStatusSuccess",
                        "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                        "observedGeneration": 2,
                    }
                ],
            },
        }
    )
    assert ws.status is not None
    assert is_true(ws.status.conditions, "ResourceReady")
    assert not is_true(ws.status.conditions, "InferenceReady")
    cond = find_condition(ws.status.conditions, "ResourceReady")
    assert cond is not None and cond.observed_generation == 2
    assert ws.to_dict()["status"]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_label_selector_is_required() -> None:
    with pytest.raises(ValidationError, match="labelSelector"):
        Workspace.model_validate({"resource": {}, "inference": {"preset": {"name": "phi-4"}}})


def test_nodeclaim_round_trips_with_provider_id(
    kaito_nodeclaim: Callable[[str], dict[str, Any]],
) -> None:
    data = kaito_nodeclaim("ws1a2b3c4d5")
    data["status"] = {"providerID": "kwok://ws1a2b3c4d5", "imageID": "img", "nodeName": "n1"}
    claim = NodeClaim.model_validate(data)
    assert claim.status is not None and claim.status.provider_id == "kwok://ws1a2b3c4d5"
    out = claim.to_dict()
    assert out["status"]["providerID"] == "kwok://ws1a2b3c4d5"
    assert out["status"]["imageID"] == "img"
    assert out["spec"]["nodeClassRef"] == data["spec"]["nodeClassRef"]
    assert out["spec"]["requirements"] == data["spec"]["requirements"]
    assert out["spec"]["expireAfter"] == "720h"
