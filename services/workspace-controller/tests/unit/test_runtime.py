"""The runtime choice (vLLM by default where it can run), its pod flags and its webhook rules."""

from __future__ import annotations

from typing import Any

import pytest
from wc_helpers.workspaces import phi3

from kaito_common.api.workspace import Workspace
from kaito_common.presets import default_catalog
from workspace_controller.inference.plan import inference_plan
from workspace_controller.inference.runtime import select_runtime
from workspace_controller.manifests.images import ImageSettings, vllm_variant
from workspace_controller.webhook.rules import RuleContext, validate_create

CATALOG = default_catalog(include_test=True)
CTX = RuleContext(catalog=CATALOG, test_presets=True)
Obj = dict[str, Any]


def _preset(name: str) -> Any:
    preset = CATALOG.preset(name)
    assert preset is not None
    return preset


@pytest.mark.parametrize(
    ("annotation", "preset", "gate", "expected"),
    [
        (None, "phi-3-mini-4k-instruct", True, "vllm"),
        (None, "phi-3-mini-4k-instruct", False, "transformers"),
        ("transformers", "phi-3-mini-4k-instruct", True, "transformers"),
        ("vllm", "phi-3-mini-4k-instruct", False, "vllm"),
        # Test presets have no vLLM runtime and need no GPU: transformers.
        (None, "test-tiny-llama", True, "transformers"),
    ],
)
def test_select_runtime(annotation: str | None, preset: str, gate: bool, expected: str) -> None:
    assert select_runtime(annotation, _preset(preset), gate) == expected


def _command(obj: Obj, runtime: str, config_map: str | None = "cfg") -> list[str]:
    ws = Workspace.model_validate(obj)
    assert ws.inference is not None and ws.inference.preset is not None
    plan = inference_plan(
        ws,
        _preset(ws.inference.preset.name),
        CATALOG.sku(ws.resource.instance_type or ""),
        runtime=runtime,
        revision="1",
        images=ImageSettings(),
        config_map=config_map,
        provisioned=True,
    )
    return list(plan.command)


def test_vllm_command_follows_upstreams_runtime() -> None:
    obj = phi3()
    command = _command(obj, "vllm")
    sku = CATALOG.sku(obj["resource"]["instanceType"])
    assert sku is not None
    assert "--engine=vllm" in command
    assert f"--tensor-parallel-size={sku.gpu_count}" in command
    assert not any(f.startswith("--pipeline-parallel-size") for f in command)
    assert "--kaito-config-file=/mnt/config/inference_config.yaml" in command
    assert "--dtype=float16" in command and "--max-model-len=4096" in command
    assert not any("kaito-config-file" in f for f in _command(obj, "vllm", config_map=None))
    # The transformers engine reads the same file (its `transformers:` section), no vLLM flags.
    transformers = _command(obj, "transformers")
    assert "--engine=transformers" in transformers
    assert "--kaito-config-file=/mnt/config/inference_config.yaml" in transformers
    assert not any(f.startswith("--tensor-parallel") for f in transformers)


def test_multi_node_preset_gets_pipeline_parallelism() -> None:
    obj = phi3()
    obj["resource"]["count"] = 2
    obj["inference"]["preset"]["name"] = "falcon-40b"
    obj["resource"]["instanceType"] = "Standard_NC24ads_A100_v4"
    assert _preset("falcon-40b").multi_node
    assert "--pipeline-parallel-size=2" in _command(obj, "vllm")


def test_vllm_server_image_is_the_server_images_vllm_build() -> None:
    assert vllm_variant("r.io/kaito/inference-server:1.0") == "r.io/kaito/inference-server-vllm:1.0"
    assert vllm_variant("localhost:5000/inference-server") == "localhost:5000/inference-server-vllm"
    assert vllm_variant("r.io/s@sha256:ab") == "r.io/s-vllm@sha256:ab"
    images = ImageSettings(server="r.io/inference-server:2")
    assert images.server_for("vllm") == "r.io/inference-server-vllm:2"
    assert images.server_for("transformers") == "r.io/inference-server:2"
    assert ImageSettings(server_vllm="x/y:1").server_for("vllm") == "x/y:1"


def test_adapter_strength_below_one_is_refused_on_vllm_only() -> None:
    obj = phi3()
    obj["inference"]["adapters"] = [{"source": {"name": "a", "image": "r/a:1"}, "strength": "0.5"}]
    errors = validate_create(obj, CTX)
    assert any("adapter strength 0.5 is not supported by the vLLM runtime" in e for e in errors)
    obj["metadata"]["annotations"] = {"kaito.sh/runtime": "transformers"}
    assert validate_create(obj, CTX) == []
    obj["metadata"]["annotations"] = {}
    off = RuleContext(catalog=CATALOG, test_presets=True, vllm_gate=False)
    assert validate_create(obj, off) == []
    # The CRD's default strength (1.0) is what vLLM serves anyway.
    obj["inference"]["adapters"][0]["strength"] = "1.0"
    assert validate_create(obj, CTX) == []


def test_multi_node_presets_need_vllm() -> None:
    obj = phi3()
    obj["inference"]["preset"]["name"] = "falcon-40b"
    obj["resource"]["instanceType"] = "Standard_NC24ads_A100_v4"
    obj["resource"]["count"] = 2
    obj["metadata"]["annotations"] = {"kaito.sh/runtime": "transformers"}
    errors = validate_create(obj, CTX)
    assert any("only the vllm runtime supports" in e for e in errors), errors


def test_vllm_annotation_needs_a_preset_with_a_vllm_runtime() -> None:
    obj = phi3()
    obj["inference"]["preset"]["name"] = "test-tiny-llama"
    obj["metadata"]["annotations"] = {"kaito.sh/runtime": "vllm"}
    errors = validate_create(obj, CTX)
    assert any("has no vLLM runtime" in e for e in errors), errors
