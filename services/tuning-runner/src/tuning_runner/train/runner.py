"""The `train` subcommand: config + data folder in, adapter + completion marker out.

The steps, each in its own module: the training arguments and device policy (`arguments.py`),
the data (`dataset.py`), the model with its LoRA adapter (`model.py`), the trainer
(`trainer.py`) and the adapter's publication (`outputs.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_runner.config.training_config import TrainingConfig, check_output_dir
from tuning_runner.logs import log
from tuning_runner.progress import ProgressReporter
from tuning_runner.settings import RunnerSettings
from tuning_runner.train import outputs
from tuning_runner.train.arguments import plan_training, sft_config, without_packing
from tuning_runner.train.dataset import held_out, prepare_data
from tuning_runner.train.model import (
    apply_lora,
    load_model,
    load_tokenizer,
    supports_packed_attention,
)
from tuning_runner.train.trainer import build_trainer, evaluate, quiet_library_output, train


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    final_loss: float | None
    train_tokens: int
    train_seconds: float
    skipped: bool = False


def resolve_output_dir(cfg: TrainingConfig, settings: RunnerSettings) -> Path:
    return check_output_dir(settings.output_dir or cfg.output_dir, settings.root)


def run_training(
    cfg: TrainingConfig, settings: RunnerSettings, reporter: ProgressReporter
) -> TrainResult:
    output_dir = resolve_output_dir(cfg, settings)
    if outputs.is_complete(output_dir):
        log("Skipped training: the adapter is already complete", output_dir=str(output_dir))
        return TrainResult(output_dir, 0, None, 0, 0.0, skipped=True)
    outputs.clear_stale_marker(output_dir)
    quiet_library_output()

    plan = plan_training(cfg, output_dir)
    model_path = cfg.model.pretrained_model_name_or_path or str(settings.default_model_path)
    packable = cfg.model.attn_implementation or supports_packed_attention(cfg, model_path)
    if plan.packing and not packable:
        plan = without_packing(plan, cfg)
        log(
            "Training one example per row: this model's attention cannot be limited to each "
            "packed example",
            model=model_path,
        )
    tokenizer = load_tokenizer(cfg, model_path)
    data = prepare_data(cfg, settings, tokenizer, plan)

    args = sft_config(plan.training)
    model = load_model(cfg, model_path, plan.precision, plan.device, packed_attention=plan.packing)
    model = apply_lora(cfg, model, settings.default_target_modules, args.gradient_checkpointing)
    log(
        "Planned training",
        device=plan.device,
        model_dtype=plan.precision.model_dtype,
        bf16_autocast=plan.precision.bf16,
        gradient_checkpointing=bool(args.gradient_checkpointing),
        steps=args.max_steps if args.max_steps > 0 else None,
    )
    trainer = build_trainer(cfg, plan, args, model, tokenizer, data.packed, reporter)
    result = train(trainer, output_dir)
    if data.eval_rows:
        evaluate(trainer, held_out(cfg, tokenizer, plan, data.eval_rows))

    reporter.update(phase="Saving")
    files = outputs.save_adapter(model, output_dir)
    return _completed(trainer, result, output_dir, files, reporter)


def _completed(
    trainer: Any,
    result: Any,
    output_dir: Path,
    files: list[Path],
    reporter: ProgressReporter,
) -> TrainResult:
    steps = int(trainer.state.global_step)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    final_loss = float(losses[-1]) if losses else float(result.training_loss)
    runtime = float(result.metrics.get("train_runtime", 0.0))
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    reporter.update(phase="Completed", step=steps, loss=final_loss, eta_seconds=0.0)
    log(
        "Completed fine-tuning",
        output_dir=str(output_dir),
        files=",".join(p.name for p in files),
        steps=steps,
        final_loss=round(final_loss, 4),
        train_seconds=round(runtime, 2),
    )
    return TrainResult(output_dir, steps, final_loss, tokens, runtime)
