"""Does a preset fit a GPU SKU? Returns Kaito's messages, one per failed rule."""

from __future__ import annotations

from kaito_common.presets.models import GPUSku, Preset


def gib(value: float) -> str:
    """A GiB amount as a person writes it: 16Gi, 16.5Gi."""
    return f"{value:g}Gi"


def inference_fit_errors(sku: GPUSku, preset: Preset, node_count: int = 1) -> list[str]:
    """Why ``preset`` cannot serve on ``node_count`` nodes of ``sku``; empty when it fits."""
    errors: list[str] = []
    total = sku.total_gpu_memory_gib * node_count
    model_parallel = preset.per_gpu_memory_gib == 0
    if sku.gpu_count < preset.gpu_count and not (
        model_parallel and total >= preset.total_gpu_memory_gib
    ):
        errors.append(
            f"Insufficient number of GPUs: Instance type {sku.name} provides {sku.gpu_count}, "
            f"but preset {preset.name} requires at least {preset.gpu_count}"
        )
    if sku.per_gpu_memory_gib < preset.per_gpu_memory_gib:
        errors.append(
            f"Insufficient per GPU memory: Instance type {sku.name} provides "
            f"{gib(sku.per_gpu_memory_gib)} per GPU, but preset {preset.name} requires at least "
            f"{gib(preset.per_gpu_memory_gib)} per GPU"
        )
    if total < preset.total_gpu_memory_gib:
        errors.append(
            f"Insufficient total GPU memory: Instance type {sku.name} has a total of {gib(total)}, "
            f"but preset {preset.name} requires at least {gib(preset.total_gpu_memory_gib)}"
        )
    return errors


def tuning_fit_errors(sku: GPUSku, preset: Preset, method: str) -> list[str]:
    """Why ``preset`` cannot be tuned with ``method`` on one node of ``sku``; empty when it fits.

    Tuning runs on a single node and needs the method's memory on each GPU it uses.
    """
    required_per_gpu = preset.tuning.methods.get(method)  # type: ignore[call-overload]
    if required_per_gpu is None:
        return []
    gpus = max(preset.gpu_count, 1)
    required_total = required_per_gpu * gpus
    if sku.total_gpu_memory_gib < required_total:
        return [
            f"Insufficient total GPU memory: Instance type {sku.name} has a total of "
            f"{gib(sku.total_gpu_memory_gib)}, but preset {preset.name} requires at least "
            f"{gib(required_total)}"
        ]
    if sku.per_gpu_memory_gib < required_per_gpu:
        return [
            f"Insufficient per GPU memory: Instance type {sku.name} provides "
            f"{gib(sku.per_gpu_memory_gib)} per GPU, but preset {preset.name} requires at least "
            f"{gib(required_per_gpu)} per GPU"
        ]
    return []
