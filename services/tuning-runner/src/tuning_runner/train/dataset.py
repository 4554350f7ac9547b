"""The rows the trainer sees: loaded, shuffled, split into train and held-out, tokenized, packed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_runner.config.training_config import TrainingConfig
from tuning_runner.data.examples import tokenize_rows
from tuning_runner.data.loading import load_rows
from tuning_runner.data.packing import PackedRow, pack_examples
from tuning_runner.logs import log
from tuning_runner.settings import RunnerSettings
from tuning_runner.train.arguments import TrainingPlan


@dataclass
class TrainingData:
    packed: list[PackedRow]
    eval_rows: list[dict[str, Any]]  # held out, tokenized only if training gets that far


def dataset_location(cfg: TrainingConfig, settings: RunnerSettings) -> Path:
    if not cfg.dataset.dataset_path:
        return settings.data_dir
    path = Path(cfg.dataset.dataset_path)
    # Kaito reads `/mnt/<dataset_path>`: a relative path is taken under the root.
    return path if path.is_absolute() else settings.root / path


def prepare_data(
    cfg: TrainingConfig, settings: RunnerSettings, tokenizer: Any, plan: TrainingPlan
) -> TrainingData:
    loaded = load_rows(dataset_location(cfg, settings), cfg.dataset.dataset_extension)
    rows = loaded.rows
    if cfg.dataset.shuffle_dataset:
        random.Random(cfg.dataset.shuffle_seed).shuffle(rows)
    eval_rows: list[dict[str, Any]] = []
    if cfg.dataset.train_test_split < 1.0:
        cut = max(1, int(len(rows) * cfg.dataset.train_test_split))
        rows, eval_rows = rows[:cut], rows[cut:]
    data = tokenize_rows(tokenizer, rows, cfg.dataset, plan.max_length)
    seed = cfg.dataset.shuffle_seed
    packed = pack_examples(data.examples, plan.row_tokens, packing=plan.packing, seed=seed)
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
        packing=plan.packing,
        sampling=plan.training.get("train_sampling_strategy", "random"),
        batch_rows=len(packed),
        max_length=plan.max_length,
        packed_row_tokens=plan.row_tokens,
    )
    if cfg.collator.mlm:
        log("Turned off DataCollator.mlm: causal language model training has no masked tokens")
    return TrainingData(packed, eval_rows)


def held_out(
    cfg: TrainingConfig, tokenizer: Any, plan: TrainingPlan, rows: list[dict[str, Any]]
) -> list[PackedRow]:
    """The held-out rows, tokenized and packed like the training rows (not shuffled)."""
    data = tokenize_rows(tokenizer, rows, cfg.dataset, plan.max_length)
    return pack_examples(data.examples, plan.row_tokens, packing=plan.packing)
