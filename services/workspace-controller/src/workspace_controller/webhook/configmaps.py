"""Checks of the ConfigMaps a Workspace names (they need a read of the cluster)."""

from __future__ import annotations

from typing import Any, Protocol

import yaml

from kaito_common.controller import objects
from kaito_common.controller.objects import Obj
from kaito_common.presets import Catalog
from workspace_controller.manifests.configmap import INFERENCE_CONFIG_KEY as INFERENCE_KEY

TUNING_KEY = "training_config.yaml"
TUNING_SECTIONS = frozenset(
    {
        "ModelConfig",
        "QuantizationConfig",
        "LoraConfig",
        "TrainingArguments",
        "DatasetConfig",
        "DataCollator",
    }
)


class ConfigMapReader(Protocol):
    """Reads one ConfigMap; None when it does not exist."""

    async def get(self, namespace: str, name: str) -> Obj | None: ...


def _not_found(name: str, namespace: str) -> str:
    return f"ConfigMap '{name}' specified in 'config' not found in namespace '{namespace}'"


def check_inference_config(
    config_map: Obj | None, name: str, namespace: str, token_limit: int | None = None
) -> list[str]:
    path = "inference.config"
    if config_map is None:
        return [f"{path}: {_not_found(name, namespace)}"]
    text = (config_map.get("data") or {}).get(INFERENCE_KEY)
    if text is None:
        return [f"{path}: ConfigMap '{name}' has no key {INFERENCE_KEY}"]
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return [f"{path}: {INFERENCE_KEY} in ConfigMap '{name}' is not valid YAML: {err}"]
    return _check_max_model_len(
        document, f"{path}: {INFERENCE_KEY} in ConfigMap '{name}'", token_limit
    )


def _check_max_model_len(document: Any, where: str, token_limit: int | None) -> list[str]:
    """Each engine section's max-model-len: a positive integer within the preset's token limit."""
    errors: list[str] = []
    if not isinstance(document, dict):
        return errors
    for section in ("vllm", "transformers"):
        values = document.get(section)
        if not isinstance(values, dict):
            continue
        value = values.get("max-model-len", values.get("max_model_len"))
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            errors.append(
                f"{where}: {section}.max-model-len must be a positive integer, got {value!r}"
            )
        elif token_limit is not None and value > token_limit:
            errors.append(
                f"{where}: {section}.max-model-len {value} is larger than the preset's token "
                f"limit {token_limit}"
            )
    return errors


def _bool_or_none(value: Any) -> bool:
    return value is None or isinstance(value, bool)


def check_tuning_config(
    config_map: Obj | None, name: str, namespace: str, method: str
) -> list[str]:
    path = "tuning.config"
    if config_map is None:
        return [f"{path}: {_not_found(name, namespace)}"]
    text = (config_map.get("data") or {}).get(TUNING_KEY)
    if text is None:
        return [f"{path}: ConfigMap '{name}' has no key {TUNING_KEY}"]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return [f"{path}: {TUNING_KEY} in ConfigMap '{name}' is not valid YAML: {err}"]
    if not isinstance(data, dict) or not isinstance(data.get("training_config"), dict):
        return [f"{path}: {TUNING_KEY} must have the top-level key training_config"]
    training = data["training_config"]
    errors = [
        f"{path}: Unrecognized section: {section}"
        for section in sorted(set(training) - TUNING_SECTIONS)
    ]
    quant = training.get("QuantizationConfig") or {}
    four, eight = quant.get("load_in_4bit"), quant.get("load_in_8bit")
    if not _bool_or_none(four) or not _bool_or_none(eight):
        errors.append(f"{path}: load_in_4bit and load_in_8bit must be booleans")
    elif four and eight:
        errors.append(f"{path}: load_in_4bit and load_in_8bit cannot both be true")
    elif method == "lora" and (four or eight):
        errors.append(
            f"{path}: lora does not quantize: load_in_4bit and load_in_8bit must be false"
        )
    elif method == "qlora" and not (four or eight):
        errors.append(f"{path}: qlora needs load_in_4bit or load_in_8bit to be true")
    output_dir = (training.get("TrainingArguments") or {}).get("output_dir")
    if output_dir is not None:
        parts = str(output_dir).split("/")
        if not str(output_dir).startswith("/mnt/") or ".." in parts or len(parts) < 3:
            errors.append(
                f"{path}: Invalid output_dir specified: '{output_dir}', must be a directory "
                "under /mnt"
            )
    return errors


async def check_config_maps(
    obj: Obj, reader: ConfigMapReader, catalog: Catalog | None = None
) -> list[str]:
    namespace = objects.namespace(obj)
    inference = obj.get("inference") or {}
    tuning = obj.get("tuning") or {}
    errors: list[str] = []
    if inference.get("config"):
        name = str(inference["config"])
        preset = (
            catalog.preset(str((inference.get("preset") or {}).get("name") or ""))
            if catalog
            else None
        )
        limit = preset.token_limit if preset is not None else None
        config_map = await reader.get(namespace, name)
        errors += check_inference_config(config_map, name, namespace, limit)
    if tuning.get("config"):
        name = str(tuning["config"])
        method = str(tuning.get("method") or "").lower()
        errors += check_tuning_config(await reader.get(namespace, name), name, namespace, method)
    return errors
