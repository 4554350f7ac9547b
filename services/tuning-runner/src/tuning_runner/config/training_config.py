"""Parse `training_config.yaml` section by section into library types.

Kaito flattened each section into `--key value` arguments for `HfArgumentParser`, which silently
dropped unknown keys and breaks on recent peft (Union-typed fields). Here every section is built
from its own type's fields: unknown sections and keys are errors that name them.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tuning_runner.config.sections import CollatorSection, DatasetSection, ModelSection
from tuning_runner.errors import ConfigError

SECTIONS = (
    "ModelConfig",
    "QuantizationConfig",
    "LoraConfig",
    "TrainingArguments",
    "DatasetConfig",
    "DataCollator",
)

M = TypeVar("M", bound=BaseModel)

# Keys Kaito's ConfigMaps carry that only make sense for multi-GPU launches; accepted as-is.
_TRAINING_DEFAULTS: dict[str, Any] = {"output_dir": "/mnt/results", "report_to": "none"}


@dataclass
class TrainingConfig:
    """The parsed sections. Library objects are built later (they need torch); see `build_*`."""

    model: ModelSection
    quantization: dict[str, Any]
    lora: dict[str, Any]
    training: dict[str, Any]
    dataset: DatasetSection
    collator: CollatorSection
    explicit_training_keys: set[str] = field(default_factory=set)

    @property
    def output_dir(self) -> Path:
        return Path(str(self.training["output_dir"]))

    @property
    def quantized(self) -> bool:
        return bool(self.quantization.get("load_in_4bit") or self.quantization.get("load_in_8bit"))


def _allowed_keys_of_dataclass(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init}


def _allowed_keys_of_init(cls: type) -> set[str]:
    params = inspect.signature(cls).parameters
    return {n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD}


def _check_keys(section: str, values: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(
            f"training_config.{section} has unknown key(s) {', '.join(unknown)}; "
            f"remove them or fix their spelling (they are not fields of the section's type)"
        )


def _pydantic_section(section: str, cls: type[M], values: dict[str, Any]) -> M:
    try:
        return cls.model_validate(values)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"])
            if e["type"] == "extra_forbidden":
                problems.append(f"unknown key {where}")
            else:
                problems.append(f"{where}: {e['msg']}")
        raise ConfigError(f"training_config.{section} is invalid: {'; '.join(problems)}") from err


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"training_config.{name} must be a mapping, not {type(value).__name__}")
    return dict(value)


def parse_training_config(text: str, source: str = "training_config.yaml") -> TrainingConfig:
    """Validate the document's structure and keys (no torch needed)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {err}") from err
    if not isinstance(doc, dict) or "training_config" not in doc:
        raise ConfigError(f"{source} must have the top-level key training_config")
    extra_top = sorted(set(doc) - {"training_config"})
    if extra_top:
        raise ConfigError(f"{source} has unknown top-level key(s) {', '.join(extra_top)}")
    body = doc["training_config"] or {}
    if not isinstance(body, dict):
        raise ConfigError(f"{source}: training_config must be a mapping of sections")
    for name in body:
        if name not in SECTIONS:
            raise ConfigError(
                f"Unrecognized section: {name} (in {source}; allowed: {', '.join(SECTIONS)})"
            )

    # Library key sets; imported here so that the module imports without torch.
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig
    from trl.trainer.sft_config import SFTConfig

    quantization = _section(body, "QuantizationConfig")
    _check_keys("QuantizationConfig", quantization, _allowed_keys_of_init(BitsAndBytesConfig))
    for key in ("load_in_4bit", "load_in_8bit"):
        if key in quantization and not isinstance(quantization[key], bool):
            raise ConfigError(f"training_config.QuantizationConfig.{key} must be true or false")
    if quantization.get("load_in_4bit") and quantization.get("load_in_8bit"):
        raise ConfigError(
            "training_config.QuantizationConfig sets both load_in_4bit and load_in_8bit"
        )

    lora = _section(body, "LoraConfig")
    _check_keys("LoraConfig", lora, _allowed_keys_of_dataclass(LoraConfig))

    training_given = _section(body, "TrainingArguments")
    _check_keys("TrainingArguments", training_given, _allowed_keys_of_dataclass(SFTConfig))
    training = {**_TRAINING_DEFAULTS, **training_given}

    return TrainingConfig(
        model=_pydantic_section("ModelConfig", ModelSection, _section(body, "ModelConfig")),
        quantization=quantization,
        lora=lora,
        training=training,
        dataset=_pydantic_section("DatasetConfig", DatasetSection, _section(body, "DatasetConfig")),
        collator=_pydantic_section("DataCollator", CollatorSection, _section(body, "DataCollator")),
        explicit_training_keys=set(training_given),
    )


def check_output_dir(output_dir: Path, root: Path) -> Path:
    """`output_dir` resolved, or a ConfigError when it leaves `root` (`/mnt` in a pod)."""
    resolved = output_dir.resolve() if output_dir.is_absolute() else (root / output_dir).resolve()
    root_resolved = root.resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise ConfigError(
            f"TrainingArguments.output_dir {str(output_dir)!r} is outside {str(root)!r}; "
            f"results must be written under {str(root)!r} (e.g. {str(root / 'results')!r})"
        )
    return resolved


def load_training_config(path: Path) -> TrainingConfig:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"could not read the training config {path}: {err.strerror}") from err
    return parse_training_config(text, str(path))
