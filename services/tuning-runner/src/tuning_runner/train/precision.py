"""Choose the compute dtype: bf16 where the hardware has it, otherwise float32 (said in the log)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tuning_runner.logs import warn


def bf16_supported() -> bool:
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


@dataclass(frozen=True)
class PrecisionPlan:
    model_dtype: str  # for from_pretrained
    compute_dtype: str | None  # bnb_4bit_compute_dtype after the fallback
    bf16: bool  # TrainingArguments.bf16 after the fallback
    fell_back: bool


def plan_precision(
    model_dtype: str, compute_dtype: str | None, bf16: bool, supported: bool
) -> PrecisionPlan:
    """Replace every bf16 request by float32 when `supported` is false."""
    wants_bf16 = bf16 or model_dtype == "bfloat16" or compute_dtype == "bfloat16"
    if supported or not wants_bf16:
        return PrecisionPlan(model_dtype, compute_dtype, bf16, False)
    return PrecisionPlan(
        model_dtype="float32" if model_dtype == "bfloat16" else model_dtype,
        compute_dtype="float32" if compute_dtype == "bfloat16" else compute_dtype,
        bf16=False,
        fell_back=True,
    )


def announce(plan: PrecisionPlan, device: str) -> None:
    if plan.fell_back:
        warn(
            "Fell back to float32 because this hardware lacks bf16 support",
            device=device,
            model_dtype=plan.model_dtype,
            compute_dtype=plan.compute_dtype,
        )
