"""The training arguments: the config's TrainingArguments with the runner's device policy.

On CPU the runner trains without gradient checkpointing and with packed rows of at most
`CPU_PACKED_ROW_TOKENS`, unless the config names those settings; bf16 falls back to float32 where
the hardware lacks it (`precision.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tuning_runner.config.training_config import TrainingConfig
from tuning_runner.errors import ConfigError
from tuning_runner.train.model import device_name
from tuning_runner.train.precision import PrecisionPlan, announce, bf16_supported, plan_precision

DEFAULT_MAX_LENGTH = 1024
# On CPU, packed rows of up to 1024 tokens: attention is per example (packed_attention.py), so a
# longer row costs about the same per token on one core, and its larger matrices keep two cores
# busier (benchmark, 2 cores: 768 -> 1024 tokens ~+5-15% tokens/s); peak memory grows with the
# row (activations), ~+60 MiB from 768 to 1024 tokens.
CPU_PACKED_ROW_TOKENS = 1024


@dataclass(frozen=True)
class TrainingPlan:
    """How this run trains: where, in which precision, with which rows."""

    device: str
    precision: PrecisionPlan
    training: dict[str, Any]  # SFTConfig keyword arguments
    max_length: int  # tokens an example keeps
    row_tokens: int  # tokens of a packed row
    packing: bool


def plan_training(cfg: TrainingConfig, output_dir: Path) -> TrainingPlan:
    training = dict(cfg.training)
    explicit = cfg.explicit_training_keys
    device = device_name()
    precision = plan_precision(
        model_dtype=cfg.model.torch_dtype,
        compute_dtype=cfg.quantization.get("bnb_4bit_compute_dtype"),
        bf16=bool(training.get("bf16", True)),  # SFTConfig's default is bf16
        supported=bf16_supported(),
    )
    announce(precision, device)
    training.update(output_dir=str(output_dir), bf16=precision.bf16, remove_unused_columns=False)
    if device == "cpu":
        training["use_cpu"] = True
    # Counts tokens that are not the pad id: the padding that keeps batch shapes fixed is left out.
    training.setdefault("include_num_input_tokens_seen", "non_padding")
    training.setdefault("gradient_checkpointing_kwargs", {"use_reentrant": False})
    training.setdefault("dataloader_pin_memory", False)
    # A pod's log is no terminal: progress comes as log lines from callback.py instead.
    training.setdefault("disable_tqdm", True)
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
    return TrainingPlan(device, precision, training, max_length, row_tokens, packing)


def without_packing(plan: TrainingPlan, cfg: TrainingConfig) -> TrainingPlan:
    """The plan with one example per row: for a model whose attention cannot be limited to each
    packed example (packed rows would let examples attend to each other)."""
    training = dict(plan.training)
    if "train_sampling_strategy" not in cfg.explicit_training_keys:
        training["train_sampling_strategy"] = "group_by_length"
    return replace(plan, training=training, packing=False)


def sft_config(values: dict[str, Any]) -> Any:
    """TRL's SFTConfig for `values`; a ConfigError names what it rejected."""
    from trl.trainer.sft_config import SFTConfig

    try:
        return SFTConfig(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"training_config.TrainingArguments is invalid: {err}") from err
