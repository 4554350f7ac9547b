"""A Hugging Face repository as a preset: the derivation rule, and the facts read from a hub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaito_common.presets import default_catalog, inference_fit_errors
from kaito_common.presets.hub_client import HuggingFaceHubSource
from kaito_common.presets.hub_model import HubModelError, derive_preset, is_repo_id
from kaito_testing.hfhub import LocalHub

GIB = 1024**3
COMMIT = "a" * 40

PHI3_CONFIG: dict[str, Any] = {
    "architectures": ["Phi3ForCausalLM"],
    "model_type": "phi3",
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}
LLAMA_REMOTE_CODE_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "max_position_embeddings": 8192,
    "torch_dtype": "float16",
    "auto_map": {"AutoModelForCausalLM": "modeling_custom.CustomLlama"},
}


def test_phi3_like_repository() -> None:
    # Phi-4-mini-instruct: 7.15 GiB of weights (upstream's figure) -> 8Gi, 1 GPU, disk 100Gi.
    preset = derive_preset(
        "microsoft/Phi-4-mini-instruct", COMMIT, PHI3_CONFIG, int(7.15 * GIB), False
    )
    assert preset.name == "microsoft/phi-4-mini-instruct"
    assert preset.source.repo == "microsoft/Phi-4-mini-instruct"
    assert preset.source.revision == COMMIT
    assert preset.source.delivery == "download"
    assert preset.family == "phi3"
    assert preset.dtype == "bfloat16"
    assert preset.token_limit == 131072
    assert preset.total_gpu_memory_gib == 9  # ceil(1.2 x 7.15) = ceil(8.58)
    assert preset.gpu_count == 1
    assert preset.per_gpu_memory_gib == 0
    assert preset.disk_gib == 100  # 2 x 7.15 + 80 = 94.3 -> 100
    assert not preset.multi_node
    assert preset.runtimes == {"transformers": {"dtype": "auto"}, "vllm": {}}
    assert not preset.tuning.supported
    assert not preset.requires_model_access_secret


def test_llama_like_repository_with_remote_code_and_gate() -> None:
    # Llama 3.3 70B: 131.42 GiB -> 158Gi on two 80 GiB GPUs, the catalog preset's figures.
    preset = derive_preset(
        "meta-llama/Llama-3.3-70B-Instruct", COMMIT, LLAMA_REMOTE_CODE_CONFIG,
        int(131.42 * GIB), True,
    )  # fmt: skip
    catalog = default_catalog().preset("llama-3.3-70b-instruct")
    assert catalog is not None
    assert preset.total_gpu_memory_gib == catalog.total_gpu_memory_gib == 158
    assert preset.gpu_count == catalog.gpu_count == 2
    assert preset.disk_gib == catalog.disk_gib == 350
    assert preset.runtimes["transformers"] == {"dtype": "auto", "trust_remote_code": True}
    assert preset.requires_model_access_secret
    assert preset.token_limit == 8192
    assert not preset.multi_node  # 158Gi fits eight 80 GiB GPUs


def test_sizes_beyond_one_node_and_fit() -> None:
    preset = derive_preset("org/huge", COMMIT, PHI3_CONFIG, 700 * GIB, False)
    assert preset.total_gpu_memory_gib == 840
    assert preset.gpu_count == 11
    assert preset.multi_node
    h100x8 = default_catalog().sku("Standard_ND96isr_H100_v5")
    assert h100x8 is not None
    assert inference_fit_errors(h100x8, preset, 1)
    assert not inference_fit_errors(h100x8, preset, 2)


def test_tiny_weights_round_up_and_defaults() -> None:
    config = {"architectures": ["MyForCausalLM"], "text_config": {"max_position_embeddings": 4096}}
    preset = derive_preset("org/tiny", COMMIT, config, 1000, False)
    assert preset.total_gpu_memory_gib == 1
    assert preset.gpu_count == 1
    assert preset.disk_gib == 90  # 80Gi and a few bytes, rounded up to 10Gi
    assert preset.family == "myforcausallm"
    assert preset.token_limit == 4096
    assert preset.dtype == "float16"
    assert derive_preset("org/tiny", COMMIT, {"model_type": "x"}, 1, False).token_limit == 2048


def test_refusals_name_the_repository() -> None:
    with pytest.raises(HubModelError, match=r"org/none has no \*\.safetensors"):
        derive_preset("org/none", COMMIT, PHI3_CONFIG, 0, False)
    with pytest.raises(HubModelError, match=r"org/odd: config\.json names neither"):
        derive_preset("org/odd", COMMIT, {}, GIB, False)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("microsoft/Phi-4-mini-instruct", True),
        ("Qwen/Qwen3-0.6B", True),
        ("example-org/tiny_chat.v1", True),
        ("phi-4", False),
        ("org/", False),
        ("/name", False),
        ("a/b/c", False),
        ("org/na--me", False),
        ("org/-name", False),
        ("org/name.", False),
        ("org/na me", False),
    ],
)
def test_repo_id_syntax(name: str, valid: bool) -> None:
    assert is_repo_id(name) is valid


@pytest.fixture
def hub(tmp_path: Path) -> Any:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(LLAMA_REMOTE_CODE_CONFIG))
    (model / "model-00001-of-00002.safetensors").write_bytes(b"\0" * 3000)
    (model / "model-00002-of-00002.safetensors").write_bytes(b"\0" * 2000)
    (model / "tokenizer.json").write_text("{}")
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}")
    with LocalHub() as server:
        server.add_repo("example-org/tiny-chat", model, commit="b" * 40)
        server.add_repo("example-org/gated", model, commit="c" * 40, gated=True, tokens=["ok"])
        server.add_repo("example-org/no-weights", no_weights)
        yield server


async def test_hub_source_reads_commit_gate_sizes_and_config(hub: LocalHub) -> None:
    source = HuggingFaceHubSource(hub.url, timeout_s=5)
    facts = await source.facts("example-org/tiny-chat", "main", None)
    assert facts.commit == "b" * 40
    assert facts.weights_bytes == 5000
    assert facts.config == LLAMA_REMOTE_CODE_CONFIG
    assert not facts.gated
    gated = await source.facts("example-org/gated", "main", "ok")
    assert gated.gated and gated.commit == "c" * 40


async def test_hub_source_errors(hub: LocalHub) -> None:
    source = HuggingFaceHubSource(hub.url, timeout_s=5)
    with pytest.raises(HubModelError, match="example-org/missing not found at http"):
        await source.facts("example-org/missing", "main", None)
    with pytest.raises(HubModelError, match="example-org/gated is gated: it needs"):
        await source.facts("example-org/gated", "main", None)
    with pytest.raises(HubModelError, match="example-org/tiny-chat has no revision"):
        await source.facts("example-org/tiny-chat", "d" * 40, None)
    with pytest.raises(HubModelError, match=r"example-org/no-weights at .* no \*\.safetensors"):
        await source.facts("example-org/no-weights", "main", None)
