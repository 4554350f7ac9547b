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

# Presets from upstream Kaito v0.12's catalog: (repo, pinned commit, token limit, multi-node,
# total GiB = ceil(1.2 x upstream's weights size), vLLM only, gated).
UPSTREAM_PRESETS = {
    "llama-3.3-70b-instruct": (
        "meta-llama/Llama-3.3-70B-Instruct",
        "6f6073b423013f6a7d4d9f39144961bfbfbc386b",
        131072,
        True,
        158,
        False,
        True,
    ),
    "deepseek-r1-0528": (
        "deepseek-ai/DeepSeek-R1-0528",
        "4236a6af538feda4548eca9ab308586007567f52",
        163840,
        True,
        770,
        True,
        False,
    ),
    "deepseek-v3-0324": (
        "deepseek-ai/DeepSeek-V3-0324",
        "e9b33add76883f293d6bf61f6bd89b497e80e335",
        163840,
        True,
        770,
        True,
        False,
    ),
    "ministral-3-3b-instruct": (
        "mistralai/Ministral-3-3B-Instruct-2512",
        "83e15808ff6a115f18ff8e68123db3ab35035714",
        262144,
        False,
        6,
        False,
        False,
    ),
    "ministral-3-8b-instruct": (
        "mistralai/Ministral-3-8B-Instruct-2512",
        "df904c183734f8760042c708d3629a4ed68b103a",
        262144,
        False,
        12,
        False,
        False,
    ),
    "ministral-3-14b-instruct": (
        "mistralai/Ministral-3-14B-Instruct-2512",
        "6aa4534f7bb46d16753bd12a08b32810a06b7a14",
        262144,
        False,
        18,
        False,
        False,
    ),
    "mistral-large-3-675b-instruct": (
        "mistralai/Mistral-Large-3-675B-Instruct-2512",
        "7f13ed24ab52a2a1c35bb26a749ef9d891ee98dd",
        294912,
        True,
        762,
        True,
        False,
    ),
    "phi-2": (
        "microsoft/phi-2",
        "ef382358ec9e382308935a992d908de099b64c23",
        2048,
        False,
        7,
        False,
        False,
    ),
    "gemma-3-4b-instruct": (
        "google/gemma-3-4b-it",
        "093f9f388b31de276ce2de164bdc2081324b9767",
        131072,
        False,
        10,
        False,
        False,
    ),
    "gemma-3-27b-instruct": (
        "google/gemma-3-27b-it",
        "005ad3404e59d6023443cb575daa05336842228a",
        131072,
        False,
        62,
        False,
        False,
    ),
    "gpt-oss-20b": (
        "openai/gpt-oss-20b",
        "db6852caddef0cf0c1f729034ed700c84eab376e",
        131072,
        False,
        31,
        True,
        False,
    ),
    "gpt-oss-120b": (
        "openai/gpt-oss-120b",
        "b5c939de8f754692c1647ca79fbf85e8c1e70f8a",
        131072,
        True,
        146,
        True,
        False,
    ),
}


def test_catalog_holds_the_spec_presets() -> None:
    catalog = default_catalog()
    assert set(catalog.presets) == set(SPEC_PRESETS) | set(UPSTREAM_PRESETS)
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


def test_catalog_holds_upstream_v012_presets() -> None:
    catalog = default_catalog()
    for name, (repo, commit, tokens, multi, total, vllm_only, gated) in UPSTREAM_PRESETS.items():
        preset = catalog.preset(name)
        assert preset is not None, name
        assert (preset.source.repo, preset.source.revision) == (repo, commit), name
        assert preset.source.delivery == "download", name
        assert (preset.token_limit, preset.multi_node) == (tokens, multi), name
        assert preset.total_gpu_memory_gib == total, name
        assert preset.per_gpu_memory_gib == 0, name
        assert "vllm" in preset.runtimes, name
        assert ("transformers" not in preset.runtimes) == vllm_only, name
        assert preset.requires_model_access_secret == gated, name
        assert not preset.tuning.supported and not preset.tuning.methods, name
        assert preset.gpu_count >= 1 and preset.disk_gib > total / 1.2, name


def test_every_real_preset_pins_a_commit() -> None:
    for preset in default_catalog().presets.values():
        revision = preset.source.revision
        assert len(revision) == 40 and all(c in "0123456789abcdef" for c in revision), preset.name


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


@pytest.mark.parametrize(
    ("sku", "gpus", "total", "model"),
    [
        ("g5.xlarge", 1, 24, "A10G"),
        ("g5.12xlarge", 4, 96, "A10G"),
        ("g5.16xlarge", 1, 24, "A10G"),
        ("g5.48xlarge", 8, 192, "A10G"),
        ("g6.xlarge", 1, 24, "L4"),
        ("g6.48xlarge", 8, 192, "L4"),
        ("g6e.xlarge", 1, 48, "L40S"),
        ("g6e.12xlarge", 4, 192, "L40S"),
        ("g6e.48xlarge", 8, 384, "L40S"),
        ("p4d.24xlarge", 8, 320, "A100 40GB"),
        ("p4de.24xlarge", 8, 640, "A100 80GB"),
        ("p5.48xlarge", 8, 640, "H100"),
        ("p5en.48xlarge", 8, 1128, "H200"),
        ("Standard_NCC40ads_H100_v5", 1, 94, "H100 NVL"),
        ("Standard_ND96asr_A100_v4", 8, 320, "A100 40GB"),
    ],
)
def test_aws_and_current_azure_sku_facts(sku: str, gpus: int, total: float, model: str) -> None:
    entry = default_catalog().sku(sku.upper())
    assert entry is not None
    assert (entry.gpu_count, entry.total_gpu_memory_gib, entry.gpu_model) == (gpus, total, model)


@pytest.mark.parametrize(
    ("preset", "sku", "count", "fits"),
    [
        ("gpt-oss-20b", "Standard_NC40ads_H100_v5", 1, True),
        ("gpt-oss-20b", "g6e.xlarge", 1, True),
        ("gpt-oss-20b", "g5.xlarge", 1, False),
        ("gpt-oss-120b", "Standard_NC80adis_H100_v5", 1, True),
        ("gpt-oss-120b", "Standard_NC40ads_H100_v5", 2, True),
        ("llama-3.3-70b-instruct", "p4de.24xlarge", 1, True),
        ("llama-3.3-70b-instruct", "g5.48xlarge", 1, True),
        ("llama-3.3-70b-instruct", "Standard_NC24ads_A100_v4", 1, False),
        ("llama-3.3-70b-instruct", "Standard_NC24ads_A100_v4", 2, True),
        ("deepseek-r1-0528", "Standard_ND96isr_H200_v5", 1, True),
        ("deepseek-r1-0528", "Standard_ND96isr_H100_v5", 1, False),
        ("deepseek-r1-0528", "Standard_ND96isr_H100_v5", 2, True),
        ("mistral-large-3-675b-instruct", "p5e.48xlarge", 1, True),
        ("ministral-3-3b-instruct", "g5.xlarge", 1, True),
        ("ministral-3-14b-instruct", "g6.xlarge", 1, True),
        ("gemma-3-4b-instruct", "Standard_NV36ads_A10_v5", 1, True),
        ("gemma-3-27b-instruct", "Standard_NV72ads_A10_v5", 1, False),
        ("gemma-3-27b-instruct", "Standard_NC24ads_A100_v4", 1, True),
        ("phi-2", "Standard_NC6s_v3", 1, True),
    ],
)
def test_upstream_presets_fit(preset: str, sku: str, count: int, fits: bool) -> None:
    catalog = default_catalog()
    entry, model = catalog.sku(sku), catalog.preset(preset)
    assert entry is not None and model is not None
    assert (inference_fit_errors(entry, model, count) == []) == fits


def test_llama_70b_on_one_a100_names_the_shortfall() -> None:
    catalog = default_catalog()
    sku, preset = catalog.sku("Standard_NC24ads_A100_v4"), catalog.preset("llama-3.3-70b-instruct")
    assert sku is not None and preset is not None
    assert inference_fit_errors(sku, preset) == [
        "Insufficient number of GPUs: Instance type Standard_NC24ads_A100_v4 provides 1, "
        "but preset llama-3.3-70b-instruct requires at least 2",
        "Insufficient total GPU memory: Instance type Standard_NC24ads_A100_v4 has a total of "
        "80Gi, but preset llama-3.3-70b-instruct requires at least 158Gi",
    ]


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
