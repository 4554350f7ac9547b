"""The preset and SKU catalogs: contents, lookup, fit rules with Kaito's messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaito_common.presets import (
    CatalogError,
    default_catalog,
    inference_fit_errors,
    load_catalog,
    tuning_fit_errors,
)

SPEC_PRESETS = {
    # name: (disk GiB, GPUs, total GiB, multi-node, tuning methods)
    "phi-3-mini-4k-instruct": (80, 1, 9, False, {"qlora": 16, "lora": 24}),
    "phi-3-mini-128k-instruct": (80, 1, 9, False, {"qlora": 16, "lora": 24}),
    "phi-3-medium-4k-instruct": (120, 1, 28, False, {"qlora": 40, "lora": 80}),
    "phi-3-medium-128k-instruct": (120, 1, 28, False, {"qlora": 40, "lora": 80}),
    "phi-3.5-mini-instruct": (70, 1, 8, False, {"qlora": 16, "lora": 24}),
    "phi-4": (150, 1, 40, False, {"qlora": 40, "lora": 70}),
    "phi-4-mini-instruct": (70, 1, 8, False, {"qlora": 16, "lora": 24}),
    "falcon-7b": (90, 1, 14, False, {"qlora": 16}),
    "falcon-7b-instruct": (90, 1, 14, False, {}),
    "falcon-40b": (280, 2, 90, True, {"qlora": 16}),
    "falcon-40b-instruct": (280, 2, 90, True, {}),
    "mistral-7b": (90, 1, 14, False, {"qlora": 16}),
    "mistral-7b-instruct": (90, 1, 16, False, {}),
    "qwen2.5-coder-7b-instruct": (110, 1, 24, False, {"qlora": 24}),
    "qwen2.5-coder-32b-instruct": (230, 1, 70, True, {"qlora": 70}),
    "deepseek-r1-distill-llama-8b": (90, 1, 16.5, False, {}),
    "deepseek-r1-distill-qwen-14b": (120, 1, 25.7, False, {}),
    "llama-3.1-8b-instruct": (110, 1, 22, True, {}),
}


def test_catalog_holds_the_spec_presets() -> None:
    catalog = default_catalog()
    assert set(catalog.presets) == set(SPEC_PRESETS)
    for name, (disk, gpus, total, multi, methods) in SPEC_PRESETS.items():
        preset = catalog.preset(name)
        assert preset is not None
        got = (preset.disk_gib, preset.gpu_count, preset.total_gpu_memory_gib, preset.multi_node)
        assert got == (disk, gpus, total, multi), name
        assert dict(preset.tuning.methods) == methods, name
        assert preset.tuning.supported == bool(methods), name
    llama = catalog.preset("llama-3.1-8b-instruct")
    assert llama is not None and llama.requires_model_access_secret
    phi3 = catalog.preset("phi-3-mini-128k-instruct")
    assert phi3 is not None
    assert phi3.tuning.target_modules == ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
    assert phi3.runtimes["transformers"] == {"dtype": "auto", "trust_remote_code": True}


def test_lookup_is_case_insensitive() -> None:
    catalog = default_catalog()
    assert catalog.preset("Phi-3-Mini-4K-Instruct") is catalog.preset("phi-3-mini-4k-instruct")
    sku = catalog.sku("standard_nc6s_v3")
    assert sku is not None and sku.name == "Standard_NC6s_v3"
    assert catalog.sku("Standard_NC6s_v99") is None


@pytest.mark.parametrize(
    ("sku", "gpus", "total"),
    [
        ("Standard_NC6s_v3", 1, 16),
        ("Standard_NC24rs_v3", 4, 64),
        ("Standard_NC64as_T4_v3", 4, 64),
        ("Standard_NV72ads_A10_v5", 2, 48),
        ("Standard_NC96ads_A100_v4", 4, 320),
        ("Standard_ND96asr_v4", 8, 320),
        ("Standard_ND96amsr_A100_v4", 8, 640),
        ("Standard_NC80adis_H100_v5", 2, 188),
        ("Standard_ND96isr_H200_v5", 8, 1128),
    ],
)
def test_sku_facts(sku: str, gpus: int, total: float) -> None:
    entry = default_catalog().sku(sku)
    assert entry is not None
    assert (entry.gpu_count, entry.total_gpu_memory_gib) == (gpus, total)
    assert entry.per_gpu_memory_gib == total / gpus


def test_seed_qlora_fits_nc6s_v3() -> None:
    catalog = default_catalog()
    sku = catalog.sku("Standard_NC6s_v3")
    preset = catalog.preset("phi-3-mini-128k-instruct")
    assert sku is not None and preset is not None
    assert tuning_fit_errors(sku, preset, "qlora") == []
    assert inference_fit_errors(sku, preset) == []


def test_phi4_does_not_fit_nc6s_v3() -> None:
    catalog = default_catalog()
    sku = catalog.sku("Standard_NC6s_v3")
    preset = catalog.preset("phi-4")
    assert sku is not None and preset is not None
    message = (
        "Insufficient total GPU memory: Instance type Standard_NC6s_v3 has a total of 16Gi, "
        "but preset phi-4 requires at least 40Gi"
    )
    assert inference_fit_errors(sku, preset) == [message]
    assert tuning_fit_errors(sku, preset, "qlora") == [message]


def test_lora_needs_more_than_qlora() -> None:
    catalog = default_catalog()
    sku = catalog.sku("Standard_NC6s_v3")
    preset = catalog.preset("phi-3-mini-4k-instruct")
    assert sku is not None and preset is not None
    assert tuning_fit_errors(sku, preset, "lora") == [
        "Insufficient total GPU memory: Instance type Standard_NC6s_v3 has a total of 16Gi, "
        "but preset phi-3-mini-4k-instruct requires at least 24Gi"
    ]
    big = catalog.sku("Standard_NC12s_v3")  # 2 x 16Gi: enough in total, not per GPU
    assert big is not None
    assert tuning_fit_errors(big, preset, "lora") == [
        "Insufficient per GPU memory: Instance type Standard_NC12s_v3 provides 16Gi per GPU, "
        "but preset phi-3-mini-4k-instruct requires at least 24Gi per GPU"
    ]


def test_gpu_count_and_multi_node_fit() -> None:
    catalog = default_catalog()
    falcon40 = catalog.preset("falcon-40b")
    nc6 = catalog.sku("Standard_NC6s_v3")
    nc96 = catalog.sku("Standard_NC96ads_A100_v4")
    assert falcon40 is not None and nc6 is not None and nc96 is not None
    assert inference_fit_errors(nc96, falcon40) == []
    errors = inference_fit_errors(nc6, falcon40, node_count=2)
    assert errors == [
        "Insufficient number of GPUs: Instance type Standard_NC6s_v3 provides 1, "
        "but preset falcon-40b requires at least 2",
        "Insufficient total GPU memory: Instance type Standard_NC6s_v3 has a total of 32Gi, "
        "but preset falcon-40b requires at least 90Gi",
    ]
    deepseek = catalog.preset("deepseek-r1-distill-llama-8b")
    assert deepseek is not None
    assert inference_fit_errors(nc6, deepseek)[0].endswith("requires at least 16.5Gi")


def test_test_family_only_on_request() -> None:
    assert default_catalog().preset("test-tiny-llama") is None
    tiny = default_catalog(include_test=True).preset("test-tiny-llama")
    assert tiny is not None and tiny.test_only and tiny.gpu_count == 0
    nc6 = default_catalog().sku("Standard_NC6s_v3")
    assert nc6 is not None
    assert inference_fit_errors(nc6, tiny) == []
    assert tuning_fit_errors(nc6, tiny, "qlora") == []


def test_user_catalog_extends_and_overrides(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        """
skus:
  - {name: Standard_NC8ads_A10_v9, gpu_count: 1, total_gpu_memory_gib: 24, gpu_model: A10}
presets:
  - name: my-model
    family: custom
    source: {repo: me/my-model}
    disk_gib: 50
    gpu_count: 1
    total_gpu_memory_gib: 12
    token_limit: 8192
"""
    )
    catalog = load_catalog(extra_files=[extra])
    assert catalog.sku("standard_nc8ads_a10_v9") is not None
    assert catalog.preset("my-model") is not None
    assert catalog.preset("phi-4") is not None


def test_bad_user_catalog_names_the_problem(tmp_path: Path) -> None:
    extra = tmp_path / "bad.yaml"
    extra.write_text("presets:\n  - name: x\n    family: f\n    diskGiB: 3\n")
    with pytest.raises(CatalogError, match=r"(?s)bad.yaml.*diskGiB"):
        load_catalog(extra_files=[extra])
    extra.write_text("models: []\n")
    with pytest.raises(CatalogError, match="unknown top-level keys"):
        load_catalog(extra_files=[extra])
