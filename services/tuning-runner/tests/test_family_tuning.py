"""Tuning, every preset family: LoRA and QLoRA with the catalog's target modules for the family
(Phi-3's fused `qkv_proj`/`gate_up_proj`, Falcon's `query_key_value`..., Llama's separate
projections) lower the loss on a small dataset, and the adapter the tuning runner wrote loads
into the inference server and changes what it generates.

Tiny models of each family's architecture (kaito_testing.tiny_model); the tuning runner's own
training loop (tuning_runner.train.runner) on the CPU, bitsandbytes' NF4 for QLoRA.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open

from inference_server.engine.transformers_engine import TransformersEngine
from inference_server.engine.types import GenerationRequest, SamplingParams
from inference_server.settings import ServerSettings
from kaito_common.presets import default_catalog
from kaito_testing.tiny_model import cached_tiny_model

from .conftest import runner_settings, train_recording_losses, training_yaml

# family -> (tiny model arch, the catalog preset whose target modules it trains with): every
# family with a tunable preset (upstream's catalog tunes no Llama, Gemma or gpt-oss preset).
FAMILIES = {
    "phi3": ("phi3", "phi-3-mini-4k-instruct"),
    "phi4": ("phi4", "phi-4"),
    "phi4-mini": ("phi4-mini", "phi-4-mini-instruct"),
    "qwen2": ("qwen2", "qwen2.5-coder-7b-instruct"),
    "mistral": ("mistral", "mistral-7b"),
    "falcon-7b": ("falcon", "falcon-7b"),
    "falcon-40b": ("falcon-40b", "falcon-40b"),
}


def _train(model: Path, tmp: Path, modules: list[str], quantized: bool) -> tuple[list[float], Path]:
    # What the controller passes: the preset's target modules (the config names none).
    settings = runner_settings(tmp, rows=64, default_target_modules=modules)
    schedule = {"per_device_train_batch_size": 2, "max_steps": 12, "learning_rate": 0.01,
                "max_length": 128}  # fmt: skip
    text = training_yaml(
        model, settings.root / "results", quantized=quantized, extra_training=schedule
    )
    losses, result = train_recording_losses(tmp, settings, text)
    return losses, result.output_dir


PROMPTS = [(1, 20, 31, 42, 53, 64), (1, 5, 6, 7), (1, 100, 200, 300, 400)]


async def _generate(engine: TransformersEngine, adapter: str | None) -> list[list[int]]:
    """Greedy continuations of a few prompts, with the adapter or the base model."""
    sampling = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
    outputs = []
    for i, prompt in enumerate(PROMPTS):
        tokens: list[int] = []
        async for out in engine.submit(
            GenerationRequest(f"r{i}-{adapter}", prompt, sampling, adapter=adapter)
        ):
            tokens.extend(out.token_ids)
        outputs.append(tokens)
    return outputs


@pytest.mark.parametrize("method", ["lora", "qlora"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_family_trains_with_its_modules_and_the_adapter_is_served(
    family: str, method: str, tmp_path: Path
) -> None:
    arch, preset_name = FAMILIES[family]
    preset = default_catalog().preset(preset_name)
    assert preset is not None and preset.tuning is not None
    modules = list(preset.tuning.target_modules)
    cache = Path.home() / ".cache" / "kaito-inference-tests" / "families"
    model = cached_tiny_model(cache, arch=arch)

    losses, output = _train(model, tmp_path, modules, quantized=method == "qlora")
    assert len(losses) >= 10, losses
    head, tail = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert tail < head * 0.95, (family, method, losses)
    adapter_config = json.loads((output / "adapter_config.json").read_text())
    assert sorted(adapter_config["target_modules"]) == sorted(modules)
    # Every module the catalog names exists in the family's layout (peft trains the ones it
    # finds and only fails when none match).
    trained = safe_open(str(output / "adapter_model.safetensors"), "pt").keys()
    missing = [m for m in modules if not any(f".{m}.lora_A" in key for key in trained)]
    assert not missing, f"{preset_name}'s target modules {missing} are not in its model"

    adapters = tmp_path / "adapters"
    shutil.copytree(output, adapters / "tuned")
    settings = ServerSettings(model=model, max_model_len=128, adapters_dir=adapters)
    engine = TransformersEngine(settings)
    await engine.start()
    try:
        await engine.wait_ready(120)
        base, tuned = await _generate(engine, None), await _generate(engine, "tuned")
    finally:
        await engine.stop()
    assert tuned != base, (family, method)
