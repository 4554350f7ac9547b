"""Which engine serves an inference Workspace, and the engine flags that follow from its nodes.

Like upstream Kaito since v0.4, vLLM is the default wherever it can run: the `vLLM` feature gate
is on, the preset's catalog entry has a vLLM runtime, and the preset needs GPUs. Test presets
(no vLLM entry, CPU only) and CPU-only presets use transformers. The `kaito.sh/runtime`
annotation overrides the choice; the webhook refuses the combinations that cannot work
(`runtime_errors`).
"""

from __future__ import annotations

from kaito_common.api import labels as L
from kaito_common.presets import Preset

RUNTIMES = (L.RUNTIME_TRANSFORMERS, L.RUNTIME_VLLM)


def select_runtime(annotation: str | None, preset: Preset | None, vllm_gate: bool) -> str:
    """The runtime of an inference Workspace: the annotation's, else vLLM where it can run."""
    if annotation:
        return annotation
    if vllm_gate and preset is not None and has_vllm(preset) and preset.gpu_count > 0:
        return L.RUNTIME_VLLM
    return L.RUNTIME_TRANSFORMERS


def has_vllm(preset: Preset) -> bool:
    return L.RUNTIME_VLLM in preset.runtimes


def parallelism_flags(gpus_per_node: int, nodes: int, multi_node: bool) -> list[str]:
    """vLLM's parallelism as upstream sets it: tensor parallel over the GPUs of one node,
    pipeline parallel over the nodes of a multi-node preset (vLLM then uses Ray)."""
    flags = [f"--tensor-parallel-size={max(1, gpus_per_node)}"]
    if multi_node and nodes > 1:
        flags.append(f"--pipeline-parallel-size={nodes}")
    return flags


def runtime_errors(runtime: str, preset: Preset, adapter_strengths: list[str | None]) -> list[str]:
    """Webhook errors of a runtime choice. `adapter_strengths`: each adapter's `strength`."""
    errors: list[str] = []
    where = f"metadata.annotations[{L.ANNOTATION_RUNTIME}]"
    if runtime == L.RUNTIME_VLLM and not has_vllm(preset):
        errors.append(
            f"{where}: preset {preset.name} has no vLLM runtime; use {L.RUNTIME_TRANSFORMERS}"
        )
    if preset.multi_node and runtime != L.RUNTIME_VLLM:
        errors.append(
            f"{where}: preset {preset.name} runs on several nodes, which only the "
            f"{L.RUNTIME_VLLM} runtime supports"
        )
    if runtime == L.RUNTIME_VLLM:
        errors.extend(
            f"inference.adapters[{i}].strength: adapter strength {strength} is not supported by "
            "the vLLM runtime (it serves each adapter at full strength as a model of its own); "
            f"use 1.0 or set the {L.ANNOTATION_RUNTIME}: {L.RUNTIME_TRANSFORMERS} annotation"
            for i, strength in enumerate(adapter_strengths)
            if not _full_strength(strength)
        )
    return errors


def _full_strength(strength: str | None) -> bool:
    """No strength, or 1.0 (the CRD's default): what vLLM does anyway."""
    if strength is None:
        return True
    try:
        return float(strength) == 1.0
    except ValueError:
        return True  # validate_adapters reports it
