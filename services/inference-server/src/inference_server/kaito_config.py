"""Kaito's `inference_config.yaml` (`--kaito-config-file`, the Workspace's `inference.config`
ConfigMap mounted at /mnt/config): one section per engine.

- `vllm:` engine arguments for vLLM (engine/vllm_args.py reads them);
- `transformers:` this server's own settings for the transformers engine, under the names of
  their flags: `max-model-len`, `max-num-seqs` (vLLM's name; also `max-batch-size`),
  `max-queue`, `max-prefill-tokens`, `default-max-tokens`, `dtype`, `fast-decode`,
  `cpu-threads`, `adapter-mode`. They override the flags the controller wrote (the preset's),
  as the `vllm:` section does for vLLM. A key this engine does not know stops the server at
  start, naming the key and the file.

Other top-level keys (`max_probe_steps`, ...) are upstream's and are left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from inference_server.settings import ServerSettings

VLLM_SECTION = "vllm"
TRANSFORMERS_SECTION = "transformers"

# The key as written in the file (kebab or snake case) -> the ServerSettings field.
TRANSFORMERS_KEYS: dict[str, str] = {
    "max_model_len": "max_model_len",
    "max_num_seqs": "max_batch_size",
    "max_batch_size": "max_batch_size",
    "max_queue": "max_queue",
    "max_prefill_tokens": "max_prefill_tokens",
    "default_max_tokens": "default_max_tokens",
    "dtype": "dtype",
    "fast_decode": "fast_decode",
    "cpu_threads": "cpu_threads",
    "adapter_mode": "adapter_mode",
}


class KaitoConfigError(ValueError):
    """The config file cannot be read or holds something this server cannot use."""


def read_document(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KaitoConfigError(f"cannot read the Kaito config file {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise KaitoConfigError(f"the Kaito config file {path} must hold a YAML mapping")
    return document


def section(path: Path | None, name: str) -> dict[str, Any]:
    """The `name` mapping of the file, keys in Python form (`max_model_len`); {} without one."""
    if path is None:
        return {}
    value = read_document(path).get(name) or {}
    if not isinstance(value, dict):
        raise KaitoConfigError(f"`{name}` in {path} must be a mapping of settings")
    return {str(k).lstrip("-").replace("-", "_"): v for k, v in value.items()}


def with_transformers_section(settings: ServerSettings) -> ServerSettings:
    """`settings` with the file's `transformers:` values on top (the transformers engine's)."""
    path = settings.kaito_config_file
    values = section(path, TRANSFORMERS_SECTION)
    unknown = sorted(key for key in values if key not in TRANSFORMERS_KEYS)
    if unknown:
        known = ", ".join(sorted({k.replace("_", "-") for k in TRANSFORMERS_KEYS}))
        names = ", ".join(k.replace("_", "-") for k in unknown)
        raise KaitoConfigError(
            f"{path}: `{TRANSFORMERS_SECTION}` has key(s) the transformers engine does not "
            f"know: {names} (known: {known})"
        )
    if not values:
        return settings
    updates = {TRANSFORMERS_KEYS[key]: value for key, value in values.items()}
    try:
        return ServerSettings.model_validate({**settings.model_dump(), **updates})
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise KaitoConfigError(f"{path}: `{TRANSFORMERS_SECTION}`: {problems}") from err
