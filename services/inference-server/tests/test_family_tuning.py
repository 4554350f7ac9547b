"""Tuning, every preset family: LoRA and QLoRA with the catalog's target modules for the family
(Phi-3's fused `qkv_proj`/`gate_up_proj`, Falcon's `query_key_value`..., Llama's separate
projections) lower the loss on a small dataset, and the adapter the tuning runner wrote loads
into the inference server and changes what it generates.

Tiny models of each family's architecture (kaito_testing.tiny_model); the tuning runner's own
training loop (tuning_runner.train.runner) on the CPU, bitsandbytes' NF4 for QLoRA.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from safetensors import safe_open

from inference_server.engine.transformers_engine import TransformersEngine
from inference_server.engine.types import GenerationRequest, SamplingParams
from inference_server.settings import ServerSettings
from kaito_common.presets import default_catalog
from kaito_testing.tiny_model import cached_tiny_model
from tuning_runner.config.training_config import parse_training_config
from tuning_runner.progress import ProgressReporter
from tuning_runner.settings import RunnerSettings
from tuning_runner.train.runner import run_training

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
WORDS = [
    "pod",
    "node",
    "gpu",
    "model",
    "adapter",
    "tensor",
    "batch",
    "token",
    "layer",
    "weight",
    "cluster",
    "image",
]


def _rows(n: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    rows = []
    for _ in range(n):
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6)))
        answer = "kaito says " + " ".join(sorted(question.split()))
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return rows


def _train(model: Path, tmp: Path, modules: list[str], quantized: bool) -> tuple[list[float], Path]:
    root = tmp / "mnt"
    (root / "data").mkdir(parents=True)
    (root / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(64)))
    output = root / "results"
    lora: dict[str, Any] = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}
    model_config: dict[str, Any] = {
        "torch_dtype": "bfloat16",
        "local_files_only": True,
        "pretrained_model_name_or_path": str(model),
    }
    doc: dict[str, Any] = {
        "training_config": {
            "ModelConfig": model_config,
            "LoraConfig": lora,
            "TrainingArguments": {
                "output_dir": str(output),
                "save_strategy": "no",
                "per_device_train_batch_size": 2,
                "max_steps": 12,
                "learning_rate": 0.01,
                "logging_steps": 1,
                "max_length": 128,
            },
            "DatasetConfig": {"shuffle_dataset": True, "train_test_split": 1},
        }
    }
    if quantized:
        doc["training_config"]["QuantizationConfig"] = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_compute_dtype": "bfloat16",
            "bnb_4bit_use_double_quant": True,
        }
    settings = RunnerSettings(
        root=root,
        data_dir=root / "data",
        termination_log=tmp / "termination-log",
        metrics_port=0,
        # What the controller passes: the preset's target modules (the config names none).
        default_target_modules=modules,
    )
    reporter = ProgressReporter(tmp / "progress.json")
    losses: list[float] = []
    original = reporter.update

    def record(**changes: object) -> None:
        if "loss" in changes and changes.get("phase") is None:
            losses.append(float(changes["loss"]))  # type: ignore[arg-type]
        original(**changes)

    reporter.update = record  # type: ignore[method-assign]
    result = run_training(parse_training_config(yaml.safe_dump(doc)), settings, reporter)
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
