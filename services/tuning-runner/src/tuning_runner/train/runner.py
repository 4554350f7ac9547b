"""The `train` subcommand: config + data folder in, adapter + completion marker out."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_runner.config.training_config import TrainingConfig, check_output_dir
from tuning_runner.data.examples import tokenize_rows
from tuning_runner.data.loading import load_rows
from tuning_runner.data.packing import PaddingFreeCollator, RowDataset, pack_examples
from tuning_runner.errors import ConfigError, TrainingError
from tuning_runner.logs import log
from tuning_runner.progress import ProgressReporter
from tuning_runner.settings import RunnerSettings
from tuning_runner.train import outputs
from tuning_runner.train.callback import ProgressCallback
from tuning_runner.train.model import apply_lora, device_name, load_model, load_tokenizer
from tuning_runner.train.precision import announce, bf16_supported, plan_precision

DEFAULT_MAX_LENGTH = 1024
# On CPU, packed rows of up to 1024 tokens: attention is per example (packed_attention.py), so a
# longer row costs about the same per token on one core, and its larger matrices keep two cores
# busier (benchmark, 2 cores: 768 -> 1024 tokens ~+5-15% tokens/s); peak memory grows with the
# row (activations), ~+60 MiB from 768 to 1024 tokens.
CPU_PACKED_ROW_TOKENS = 1024


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


def dataset_location(cfg: TrainingConfig, settings: RunnerSettings) -> Path:
    if not cfg.dataset.dataset_path:
        return settings.data_dir
    path = Path(cfg.dataset.dataset_path)
    # Kaito reads `/mnt/<dataset_path>`: a relative path is taken under the root.
    return path if path.is_absolute() else settings.root / path


def _sft_config(values: dict[str, Any]) -> Any:
    from trl.trainer.sft_config import SFTConfig

    try:
        return SFTConfig(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"training_config.TrainingArguments is invalid: {err}") from err


def run_training(
    cfg: TrainingConfig, settings: RunnerSettings, reporter: ProgressReporter
) -> TrainResult:
    output_dir = resolve_output_dir(cfg, settings)
    if outputs.is_complete(output_dir):
        log("Skipped training: the adapter is already complete", output_dir=str(output_dir))
        return TrainResult(output_dir, 0, None, 0, 0.0, skipped=True)
    outputs.clear_stale_marker(output_dir)

    training = dict(cfg.training)
    explicit = cfg.explicit_training_keys
    device = device_name()
    plan = plan_precision(
        model_dtype=cfg.model.torch_dtype,
        compute_dtype=cfg.quantization.get("bnb_4bit_compute_dtype"),
        bf16=bool(training.get("bf16", True)),  # SFTConfig's default is bf16
        supported=bf16_supported(),
    )
    announce(plan, device)
    training.update(output_dir=str(output_dir), bf16=plan.bf16, remove_unused_columns=False)
    if device == "cpu":
        training["use_cpu"] = True
    # Counts tokens that are not the pad id: the padding that keeps batch shapes fixed is left out.
    training.setdefault("include_num_input_tokens_seen", "non_padding")
    training.setdefault("gradient_checkpointing_kwargs", {"use_reentrant": False})
    training.setdefault("dataloader_pin_memory", False)
    max_length = int(training.get("max_length") or DEFAULT_MAX_LENGTH)
    packing = bool(training["packing"]) if "packing" in explicit else True
    if not packing and "train_sampling_strategy" not in explicit:
        # Unpacked rows are batched with rows of similar length (padding-free either way; on
        # CPU similar lengths mean fewer attention slice widths per batch).
        training["train_sampling_strategy"] = "group_by_length"
    row_tokens = max_length
    if device == "cpu":
        if "max_length" not in explicit:
            row_tokens = min(max_length, CPU_PACKED_ROW_TOKENS)
        if "gradient_checkpointing" not in explicit:
            # SFTConfig turns checkpointing on; on CPU, recomputing activations costs about a
            # third of every step, and a CPU-sized model's activations for one row are small.
            training["gradient_checkpointing"] = False

    model_path = cfg.model.pretrained_model_name_or_path or str(settings.default_model_path)
    tokenizer = load_tokenizer(cfg, model_path)

    location = dataset_location(cfg, settings)
    loaded = load_rows(location, cfg.dataset.dataset_extension)
    rows = loaded.rows
    if cfg.dataset.shuffle_dataset:
        random.Random(cfg.dataset.shuffle_seed).shuffle(rows)
    eval_rows: list[dict[str, Any]] = []
    if cfg.dataset.train_test_split < 1.0:
        cut = max(1, int(len(rows) * cfg.dataset.train_test_split))
        rows, eval_rows = rows[:cut], rows[cut:]
    data = tokenize_rows(tokenizer, rows, cfg.dataset, max_length)
    seed = cfg.dataset.shuffle_seed
    packed = pack_examples(data.examples, row_tokens, packing=packing, seed=seed)
    log(
        "Loaded dataset",
        files=",".join(p.name for p in loaded.files),
        format=loaded.format,
        shape=data.shape,
        rows=len(rows),
        eval_rows=len(eval_rows),
        examples=len(data.examples),
        truncated=data.truncated,
        dropped_without_labels=data.dropped,
        packing=packing,
        sampling=training.get("train_sampling_strategy", "random"),
        batch_rows=len(packed),
        max_length=max_length,
        packed_row_tokens=row_tokens,
    )
    if cfg.collator.mlm:
        log("Turned off DataCollator.mlm: causal language model training has no masked tokens")

    args = _sft_config(training)
    model = load_model(cfg, model_path, plan, device, packed_attention=True)
    model = apply_lora(cfg, model, settings.default_target_modules, args.gradient_checkpointing)
    log(
        "Planned training",
        device=device,
        model_dtype=plan.model_dtype,
        bf16_autocast=plan.bf16,
        gradient_checkpointing=bool(args.gradient_checkpointing),
        steps=args.max_steps if args.max_steps > 0 else None,
    )

    from transformers import Trainer
    from transformers.trainer_utils import get_last_checkpoint

    pad_id = int(tokenizer.pad_token_id or 0)
    # Packed batches all get the same length, so every step has the same shapes.
    fixed = row_tokens * args.per_device_train_batch_size if packing else None
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=RowDataset(packed),
        data_collator=PaddingFreeCollator(cfg.collator.pad_to_multiple_of, pad_id, fixed),
        processing_class=tokenizer,  # its pad id tells the token count what is padding
        callbacks=[ProgressCallback(reporter)],
    )
    resume = None
    if output_dir.is_dir():
        resume = get_last_checkpoint(str(output_dir))  # type: ignore[no-untyped-call]
    if resume:
        log("Resumed from checkpoint", checkpoint=resume)
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    except (RuntimeError, ValueError) as err:
        raise TrainingError(f"training stopped with an error: {err}") from err

    if eval_rows:
        eval_data = tokenize_rows(tokenizer, eval_rows, cfg.dataset, max_length)
        eval_packed = pack_examples(eval_data.examples, row_tokens, packing=packing)
        metrics = trainer.evaluate(eval_dataset=RowDataset(eval_packed))
        log("Evaluated held-out rows", eval_loss=round(float(metrics.get("eval_loss", 0.0)), 4))

    reporter.update(phase="Saving")
    staging = outputs.staging_dir(output_dir)
    try:
        model.save_pretrained(str(staging))
        files = outputs.publish_adapter(staging, output_dir)
    except OSError as err:
        raise TrainingError(f"writing the adapter to {output_dir} failed: {err}") from err
    finally:
        outputs.remove_staging(staging)
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
