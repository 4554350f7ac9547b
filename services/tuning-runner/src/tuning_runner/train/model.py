"""Load the base model and tokenizer (local files only by default) and wrap them with LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tuning_runner.config.training_config import TrainingConfig
from tuning_runner.errors import ConfigError, ModelLoadError
from tuning_runner.logs import log
from tuning_runner.train import packed_attention as packed_sdpa
from tuning_runner.train.precision import PrecisionPlan


def _chat_template(value: str) -> str:
    """Kaito's rule: inline when it looks like a template, else a file path."""
    if any(c in value for c in "{}\n"):
        return value.encode().decode("unicode_escape") if "\\n" in value else value
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"ModelConfig.chat_template {value!r} is neither a template nor a file")
    return path.read_text()


def _source(cfg: TrainingConfig) -> dict[str, Any]:
    """Where `from_pretrained` may look, as ModelConfig says (every load uses the same)."""
    return {
        "local_files_only": cfg.model.local_files_only,
        "trust_remote_code": cfg.model.trust_remote_code,
        "revision": cfg.model.revision,
    }


def load_tokenizer(cfg: TrainingConfig, model_path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_path, **_source(cfg))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"loading the tokenizer from {model_path} failed: {err}") from err
    if cfg.model.chat_template:
        tok.chat_template = _chat_template(cfg.model.chat_template)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def quantization_config(cfg: TrainingConfig, plan: PrecisionPlan) -> Any:
    if not cfg.quantized:
        return None
    from transformers import BitsAndBytesConfig

    values = dict(cfg.quantization)
    if plan.compute_dtype is not None and "bnb_4bit_compute_dtype" in values:
        values["bnb_4bit_compute_dtype"] = plan.compute_dtype
    try:
        return BitsAndBytesConfig(**values)  # type: ignore[no-untyped-call]
    except (TypeError, ValueError) as err:
        raise ConfigError(f"training_config.QuantizationConfig is invalid: {err}") from err


def supports_packed_attention(cfg: TrainingConfig, model_path: str) -> bool:
    """Whether the model's class takes an attention function by name (transformers' attention
    interface), which packed rows need (`packed_attention.py`). Falcon's, for one, does not."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(model_path, **_source(cfg))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"reading the model's config from {model_path} failed: {err}") from err
    model_class = AutoModelForCausalLM._model_mapping.get(type(config), None)
    return bool(getattr(model_class, "_supports_attention_backend", False))


def load_model(
    cfg: TrainingConfig,
    model_path: str,
    plan: PrecisionPlan,
    device: str,
    *,
    packed_attention: bool = False,
) -> Any:
    """`packed_attention`: unless `ModelConfig.attn_implementation` names one, attend within each
    packed example only (see `packed_attention.py`)."""
    from transformers import AutoModelForCausalLM

    quant = quantization_config(cfg, plan)
    kwargs: dict[str, Any] = {**_source(cfg), "dtype": plan.model_dtype}
    if cfg.model.attn_implementation:
        kwargs["attn_implementation"] = cfg.model.attn_implementation
    elif packed_attention:
        kwargs["attn_implementation"] = packed_sdpa.register()
    if cfg.model.cache_dir:
        kwargs["cache_dir"] = cfg.model.cache_dir
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device if device != "cpu" else "cpu"}
    elif device != "cpu" and cfg.model.device_map is not None:
        kwargs["device_map"] = cfg.model.device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    except (OSError, ValueError, RuntimeError, ImportError) as err:
        raise ModelLoadError(
            f"loading the model from {model_path} failed: {err}; check "
            "ModelConfig.pretrained_model_name_or_path and that the weights are in the image"
        ) from err
    # Packed batches need the mask built from position ids, which only happens without a cache.
    model.config.use_cache = False
    return model


def apply_lora(cfg: TrainingConfig, model: Any, default_targets: list[str] | None, gc: bool) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    values = {"task_type": "CAUSAL_LM", **cfg.lora}
    if "target_modules" not in values and default_targets:
        values["target_modules"] = default_targets
    try:
        lora = LoraConfig(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"training_config.LoraConfig is invalid: {err}") from err
    if cfg.quantized:
        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model,
            use_gradient_checkpointing=gc,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    try:
        peft_model = get_peft_model(model, lora)
    except ValueError as err:
        raise ConfigError(f"applying LoraConfig to the model failed: {err}") from err
    trainable, total = peft_model.get_nb_trainable_parameters()
    log(
        "Applied LoRA",
        r=lora.r,
        alpha=lora.lora_alpha,
        target_modules=",".join(sorted(lora.target_modules or [])),
        trainable_params=trainable,
        total_params=total,
    )
    return peft_model


def device_name() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
