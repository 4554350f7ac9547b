"""A Hugging Face repository used as a preset: what the hub says about it, and the preset
derived from that (upstream Kaito accepts any repo id as `inference.preset.name`).

`derive_preset` is pure: it applies the sizing rule of the newer catalog presets (docs/presets.md)
to the repository's `config.json` and weights size. `HubModelSource` is the narrow interface to
the hub (`hub_client.HuggingFaceHubSource` in production, a local hub in tests).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

from kaito_common.presets.models import ParamValue, Preset, RuntimeName

# Hugging Face repo ids: "<owner>/<name>", letters, digits, "-", "_", "." (no "--" or ".." and
# no leading/trailing "-" or "." in a part), at most 96 characters for the name.
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
REPO_ID = re.compile(rf"^{_PART}/{_PART}$")

GPU_MEMORY_GIB = 80  # the GPU the GPU count is measured in (A100/H100 80 GiB)
MAX_NODE_GPUS = 8
MEMORY_FACTOR = 1.2  # room for the KV cache over the weights
DISK_BASE_GIB = 80
DEFAULT_TOKEN_LIMIT = 2048
_GIB = 1024**3
# Where configs state the context length, in the order they are read.
_TOKEN_LIMIT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


class HubModelError(Exception):
    """The repository cannot be used as a preset; the message names it and says why."""


class GatedRepoError(HubModelError):
    """The repository is gated and the request had no token (or one it refused)."""


@dataclass(frozen=True)
class ModelFacts:
    """What the hub says about a repository at one commit."""

    repo_id: str
    commit: str  # 40 hex: the commit `revision` named when it was read
    config: dict[str, Any]  # config.json
    weights_bytes: int  # the *.safetensors files together
    gated: bool


class HubModelSource(Protocol):
    async def facts(self, repo_id: str, revision: str, token: str | None) -> ModelFacts:
        """The repository's facts at `revision`; raises `HubModelError` when it cannot be a
        preset (not found, gated without a usable token, no safetensors, no config.json), and
        `OSError` or a timeout when the hub cannot answer now (worth another try)."""
        ...


def is_repo_id(name: str) -> bool:
    """Is `name` written as a Hugging Face repo id (`owner/name`)?"""
    return "--" not in name and ".." not in name and REPO_ID.match(name) is not None


def _text_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The config itself, then a multimodal model's language part (`text_config`)."""
    nested = config.get("text_config") or config.get("llm_config")
    return [config, nested] if isinstance(nested, dict) else [config]


def token_limit(config: dict[str, Any]) -> int:
    for part in _text_configs(config):
        for key in _TOKEN_LIMIT_KEYS:
            value = part.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return DEFAULT_TOKEN_LIMIT


def _dtype(config: dict[str, Any]) -> str:
    for part in _text_configs(config):
        value = part.get("torch_dtype") or part.get("dtype")
        if isinstance(value, str) and value:
            return value
    return "float16"


def _family(repo_id: str, config: dict[str, Any]) -> str:
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type:
        return model_type.lower()
    architectures = config.get("architectures") or []
    if architectures and isinstance(architectures[0], str):
        return architectures[0].lower()
    raise HubModelError(
        f"Hugging Face repository {repo_id}: config.json names neither model_type nor "
        "architectures, so the model cannot be served"
    )


def derive_preset(
    repo_id: str, commit: str, config: dict[str, Any], weights_bytes: int, gated: bool
) -> Preset:
    """The preset of a repository: memory 1.2 x the weights (GiB, rounded up), disk 2 x the
    weights + 80 GiB rounded up to 10 GiB, as many 80 GiB GPUs as that memory needs
    (model-parallel), several nodes when eight such GPUs are not enough."""
    if weights_bytes <= 0:
        raise HubModelError(f"Hugging Face repository {repo_id} has no *.safetensors weights")
    weights_gib = weights_bytes / _GIB
    total = max(1, math.ceil(MEMORY_FACTOR * weights_gib))
    disk = math.ceil((2 * weights_gib + DISK_BASE_GIB) / 10) * 10
    transformers: dict[str, ParamValue] = {"dtype": "auto"}
    if config.get("auto_map"):
        transformers["trust_remote_code"] = True
    runtimes: dict[RuntimeName, dict[str, ParamValue]] = {"transformers": transformers, "vllm": {}}
    return Preset.model_validate(
        {
            "name": repo_id.lower(),
            "family": _family(repo_id, config),
            "source": {"repo": repo_id, "revision": commit, "delivery": "download"},
            "dtype": _dtype(config),
            "disk_gib": disk,
            "gpu_count": math.ceil(total / GPU_MEMORY_GIB),
            "total_gpu_memory_gib": total,
            "per_gpu_memory_gib": 0,
            "multi_node": total > MAX_NODE_GPUS * GPU_MEMORY_GIB,
            "token_limit": token_limit(config),
            "requires_model_access_secret": gated,
            "runtimes": runtimes,
        }
    )


def preset_from_facts(facts: ModelFacts) -> Preset:
    return derive_preset(
        facts.repo_id, facts.commit, facts.config, facts.weights_bytes, facts.gated
    )
