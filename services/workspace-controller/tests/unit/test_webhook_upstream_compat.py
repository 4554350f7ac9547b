"""Manifests written the way upstream Kaito v0.12 documents them pass the webhook here, and the
upstream keys we do not act on are refused (never silently ignored). docs/compatibility.md."""

from __future__ import annotations

from typing import Any

import pytest
from wc_helpers.workspaces import phi3, tuning

from kaito_common.api.workspace import Workspace
from kaito_common.presets import default_catalog
from workspace_controller.webhook.rules import (
    RuleContext,
    admission_warnings,
    validate_create,
    validate_update,
)
from workspace_controller.webhook.server import WorkspaceValidator, review_response

CTX = RuleContext(catalog=default_catalog(include_test=True))
Obj = dict[str, Any]


def inference(preset: str, sku: str, **options: Any) -> Obj:
    obj = phi3()
    obj["resource"]["instanceType"] = sku
    obj["inference"]["preset"] = {"name": preset}
    if options:
        obj["inference"]["preset"]["presetOptions"] = options
    return obj


@pytest.mark.parametrize(
    ("preset", "sku"),
    [
        ("gemma-3-4b-instruct", "g5.4xlarge"),
        ("gemma-3-27b-instruct", "Standard_NC24ads_A100_v4"),
        ("gpt-oss-20b", "Standard_NC40ads_H100_v5"),
        ("gpt-oss-120b", "p5.48xlarge"),
        ("ministral-3-3b-instruct", "g6.xlarge"),
        ("ministral-3-8b-instruct", "g6e.xlarge"),
        ("ministral-3-14b-instruct", "Standard_NV36ads_A10_v5"),
        ("deepseek-r1-0528", "Standard_ND96isr_H200_v5"),
        ("deepseek-v3-0324", "p5en.48xlarge"),
        ("mistral-large-3-675b-instruct", "p5e.48xlarge"),
        ("phi-2", "Standard_NC6s_v3"),
    ],
)
def test_newer_upstream_presets_are_accepted(preset: str, sku: str) -> None:
    assert validate_create(inference(preset, sku), CTX) == []


def test_gated_preset_with_its_secret_is_accepted() -> None:
    obj = inference("llama-3.3-70b-instruct", "p4de.24xlarge", modelAccessSecret="hf-token")
    assert validate_create(obj, CTX) == []
    del obj["inference"]["preset"]["presetOptions"]
    assert validate_create(obj, CTX) == [
        "inference.preset.presetOptions.modelAccessSecret: This preset is private and requires "
        "a modelAccessSecret with HF_TOKEN key under presetOptions to download the model"
    ]


def test_gated_preset_from_a_volume_needs_no_secret() -> None:
    obj = inference("llama-3.1-8b-instruct", "Standard_NC24ads_A100_v4")
    obj["metadata"]["annotations"] = {
        "kaito.sh/weights-source": "volume",
        "kaito.sh/weights-volume-claim": "llama-weights",
    }
    assert validate_create(obj, CTX) == []
    obj["inference"]["preset"]["presetOptions"] = {"modelAccessSecret": "hf-token"}
    (error,) = validate_create(obj, CTX)
    assert "does not require a modelAccessSecret" in error
    assert "its weights come from a volume" in error


def test_ungated_download_may_carry_a_secret() -> None:
    # Upstream accepts a token for a downloaded preset (e.g. to lift hub rate limits).
    obj = inference("gemma-3-4b-instruct", "g5.4xlarge", modelAccessSecret="hf-token")
    assert validate_create(obj, CTX) == []


@pytest.mark.parametrize("method", ["QLoRA", "qlora", "LoRA", "Lora"])
def test_tuning_method_in_any_case(method: str) -> None:
    obj = tuning()
    obj["resource"]["instanceType"] = "Standard_NC24ads_A100_v4"
    obj["tuning"]["method"] = method
    assert validate_create(obj, CTX) == []
    assert Workspace.model_validate(obj).tuning is not None
    assert Workspace.model_validate(obj).tuning.method == method.lower()  # type: ignore[union-attr]


def test_tuning_method_case_change_is_no_change() -> None:
    old, new = tuning(), tuning()
    old["tuning"]["method"] = "qlora"
    new["tuning"]["method"] = "QLoRA"
    new["tuning"]["output"]["image"] = "myacr.azurecr.io/adapter:0.0.2"
    assert validate_update(old, new, CTX) == []
    new["tuning"]["method"] = "lora"
    assert "tuning.method: field is immutable" in validate_update(old, new, CTX)


def test_unknown_azure_gpu_size_is_accepted_with_a_warning() -> None:
    obj = inference("phi-4", "Standard_NC8ads_A10_v9")
    assert validate_create(obj, CTX) == []  # no fit check: its GPUs are unknown
    (warning,) = admission_warnings(obj, CTX)
    assert warning.startswith("resource.instanceType: Standard_NC8ads_A10_v9 is not in the SKU")
    assert admission_warnings(phi3(), CTX) == []


@pytest.mark.parametrize("sku", ["g5.5xlarge", "Standard_E8s_v5", "p3.2xlarge"])
def test_other_unknown_sizes_are_refused(sku: str) -> None:
    errors = validate_create(inference("phi-3-mini-4k-instruct", sku), CTX)
    assert any(f"Unsupported instance type {sku}. Supported SKUs: " in e for e in errors)


@pytest.mark.parametrize(
    ("annotations", "labels"),
    [
        ({"kaito.sh/performance-mode": "balanced"}, {}),
        ({"kaito.sh/disable-benchmark": "true"}, {}),
        ({"kaito.sh/run-benchmark": "false"}, {}),
        ({"kaito.sh/use-local-weights": "false"}, {}),
        ({"kaito.sh/enablelb": "True", "kaito.sh/node-image-family": "ubuntu"}, {}),
    ],
)
def test_upstream_annotations_whose_meaning_holds_are_accepted(
    annotations: dict[str, str], labels: dict[str, str]
) -> None:
    obj = phi3()
    obj["metadata"]["annotations"] = annotations
    obj["metadata"]["labels"] = labels
    assert validate_create(obj, CTX) == []


def test_performance_mode_value_is_checked() -> None:
    obj = phi3()
    obj["metadata"]["annotations"] = {"kaito.sh/performance-mode": "fast"}
    (error,) = validate_create(obj, CTX)
    assert "'fast' is not one of balanced, interactivity, throughput" in error


def test_vllm_only_preset_without_the_vllm_gate_is_refused() -> None:
    off = RuleContext(catalog=CTX.catalog, vllm_gate=False)
    errors = validate_create(inference("gpt-oss-20b", "Standard_NC40ads_H100_v5"), off)
    assert errors == [
        "inference.preset.name: preset gpt-oss-20b runs only on vllm, not on transformers "
        "(the vLLM feature gate is off in this controller)"
    ]


async def test_review_carries_the_warning() -> None:
    class NoConfigMaps:
        async def get(self, namespace: str, name: str) -> Obj | None:
            return None

    validator = WorkspaceValidator(CTX, NoConfigMaps())
    request = {"operation": "CREATE", "object": inference("phi-4", "Standard_ND40rs_v9")}
    assert await validator.errors(request) == []
    warnings = validator.warnings(request)
    review = review_response("u1", [], warnings)
    assert review["response"]["allowed"] is True
    assert review["response"]["warnings"] == warnings and len(warnings) == 1
    assert "warnings" not in review_response("u2", ["x"], warnings)["response"]
