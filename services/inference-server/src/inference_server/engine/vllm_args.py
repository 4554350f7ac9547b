"""vLLM engine arguments from the server settings, the adapters found and Kaito's config file.

Pure: no vLLM import. The `vllm:` section of `inference_config.yaml` holds vLLM's command-line
arguments (`gpu-memory-utilization: 0.9`); they override what the settings imply, except the
model and its served name, which the server owns. Keys the installed vLLM does not know are
dropped with a warning (an old template must not keep the pod from starting).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from inference_server.engine.types import AdapterInfo
from inference_server.kaito_config import VLLM_SECTION, section
from inference_server.settings import ServerSettings

log = logging.getLogger(__name__)

OWNED_BY_SERVER = frozenset({"model", "served_model_name", "tokenizer"})
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM can preallocate for


def read_vllm_section(path: Path | None) -> dict[str, Any]:
    """The `vllm` mapping of an inference_config.yaml, keys in Python form (`max_model_len`)."""
    return section(path, VLLM_SECTION)


def lora_rank(adapters: Sequence[AdapterInfo]) -> int:
    """The smallest rank vLLM accepts that fits every adapter's `r` (16 when none says)."""
    wanted = 16
    for info in adapters:
        try:
            config = json.loads((Path(info.path) / "adapter_config.json").read_text())
            wanted = max(wanted, int(config.get("r", 0)))
        except (OSError, ValueError, TypeError):
            continue
    return next((r for r in LORA_RANKS if r >= wanted), LORA_RANKS[-1])


def engine_arguments(
    settings: ServerSettings,
    adapters: Sequence[AdapterInfo],
    config: dict[str, Any],
    known: Collection[str],
) -> dict[str, Any]:
    """Keyword arguments for vLLM's `AsyncEngineArgs`; `known` lists the fields it has."""
    s = settings
    args: dict[str, Any] = {
        "model": str(s.model),
        "served_model_name": [s.model_name],
        "tokenizer": str(s.model),
        "dtype": s.dtype,
        "max_num_seqs": s.max_batch_size,
        "trust_remote_code": s.trust_remote_code,
        "tensor_parallel_size": s.tensor_parallel_size,
        "pipeline_parallel_size": s.pipeline_parallel_size,
        # Our /metrics exports vLLM's metric names itself; vLLM's own loggers would only log.
        "disable_log_stats": True,
    }
    if s.max_model_len:
        args["max_model_len"] = s.max_model_len
    if s.pipeline_parallel_size > 1:
        args["distributed_executor_backend"] = "ray"
    if adapters:
        args.update(enable_lora=True, max_loras=len(adapters), max_lora_rank=lora_rank(adapters))
    for key, value in config.items():
        if key in OWNED_BY_SERVER:
            log.warning("Ignoring vllm config key %r: the server sets it from its flags", key)
            continue
        args[key] = value
    dropped = sorted(k for k in args if k not in known)
    if dropped:
        log.warning("Ignoring vllm config keys the installed vLLM does not accept keys=%s", dropped)
    return {k: v for k, v in args.items() if k in known}
