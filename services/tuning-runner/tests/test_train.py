"""LoRA and QLoRA training with real transformers/peft/bitsandbytes on a tiny model."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from tuning_runner.config.training_config import parse_training_config
from tuning_runner.progress import ProgressReporter
from tuning_runner.settings import RunnerSettings
from tuning_runner.train.outputs import COMPLETION_MARKER
from tuning_runner.train.runner import run_training

from .conftest import runner_settings, train_recording_losses, training_yaml


def _run(tmp_path: Path, settings: RunnerSettings, yaml_text: str) -> tuple[float, float, Path]:
    losses, result = train_recording_losses(tmp_path, settings, yaml_text)
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["phase"] == "Completed" and progress["step"] == result.steps
    assert progress["total_steps"] == result.steps and progress["tokens_per_second"] > 0
    return losses[0], losses[-1], result.output_dir


def test_lora_lowers_the_loss_and_the_adapter_changes_the_model(
    tiny_model: Path, tmp_path: Path
) -> None:
    settings = runner_settings(tmp_path)
    out = settings.root / "results"
    first, last, output_dir = _run(tmp_path, settings, training_yaml(tiny_model, out))
    assert last < first * 0.9, (first, last)
    assert sorted(p.name for p in output_dir.iterdir() if p.name != "progress.json") == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        COMPLETION_MARKER,
    ]
    adapter_config = json.loads((output_dir / "adapter_config.json").read_text())
    assert adapter_config["r"] == 8 and adapter_config["peft_type"] == "LORA"

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    ids = torch.tensor([[1, 20, 30, 40, 50]])
    with torch.no_grad():
        before = base(ids).logits.clone()
        tuned = PeftModel.from_pretrained(base, str(output_dir)).eval()
        after = tuned(ids).logits
    assert not torch.allclose(before, after, atol=1e-4)


def test_qlora_quantizes_to_nf4_on_cpu_and_lowers_the_loss(
    tiny_model: Path, tmp_path: Path
) -> None:
    import bitsandbytes as bnb

    from tuning_runner.train.model import load_model
    from tuning_runner.train.precision import plan_precision

    settings = runner_settings(tmp_path)
    text = training_yaml(tiny_model, settings.root / "results", quantized=True)
    cfg = parse_training_config(text)
    model = load_model(
        cfg, str(tiny_model), plan_precision("bfloat16", "bfloat16", True, True), "cpu"
    )
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized, "no Linear4bit layer: bitsandbytes did not quantize on CPU"
    assert quantized[0].weight.dtype == torch.uint8
    assert quantized[0].weight.quant_state.quant_type == "nf4"
    del model

    first, last, output_dir = _run(tmp_path, settings, text)
    assert last < first, (first, last)
    assert (output_dir / COMPLETION_MARKER).is_file()


def test_8bit_quantizes_on_cpu_and_lowers_the_loss(tiny_model: Path, tmp_path: Path) -> None:
    import bitsandbytes as bnb

    from tuning_runner.train.model import load_model
    from tuning_runner.train.precision import plan_precision

    settings = runner_settings(tmp_path)
    text = training_yaml(tiny_model, settings.root / "results", eight_bit=True)
    cfg = parse_training_config(text)
    model = load_model(cfg, str(tiny_model), plan_precision("bfloat16", None, True, True), "cpu")
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear8bitLt)]
    assert quantized, "no Linear8bitLt layer: bitsandbytes did not quantize on CPU"
    assert quantized[0].weight.dtype == torch.int8
    del model

    first, last, output_dir = _run(tmp_path, settings, text)
    assert last < first, (first, last)
    assert (output_dir / COMPLETION_MARKER).is_file()


def test_unpacked_rows_train_in_length_grouped_batches(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = runner_settings(tmp_path, rows=60)
    extra = {"packing": False, "per_device_train_batch_size": 4, "max_steps": 6}
    text = training_yaml(tiny_model, settings.root / "results", extra_training=extra)
    with caplog.at_level(logging.INFO, logger="tuning_runner"):
        first, last, output_dir = _run(tmp_path, settings, text)
    assert "packing=False sampling=group_by_length" in caplog.text
    assert last < first, (first, last)
    assert (output_dir / COMPLETION_MARKER).is_file()


def test_resumes_from_the_last_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    settings = runner_settings(tmp_path, rows=60)
    out = settings.root / "results"
    steps = {"save_strategy": "steps", "save_steps": 2}
    cfg = parse_training_config(
        training_yaml(tiny_model, out, extra_training={**steps, "max_steps": 2})
    )
    run_training(cfg, settings, ProgressReporter(None))
    assert (out / "checkpoint-2").is_dir()
    # The pod died after the checkpoint but before the adapter: only checkpoints remain.
    for name in ("adapter_config.json", "adapter_model.safetensors", COMPLETION_MARKER):
        (out / name).unlink()
    cfg = parse_training_config(
        training_yaml(tiny_model, out, extra_training={**steps, "max_steps": 4})
    )
    reporter = ProgressReporter(None)
    result = run_training(cfg, settings, reporter)
    assert result.steps == 4 and (out / COMPLETION_MARKER).is_file()
    history = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]
    shutil.rmtree(out)
