"""Typed server settings, read from `KAITO_*` environment variables and command-line flags."""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

AdapterMode = Literal["auto", "separate", "merged"]


class ServerSettings(BaseSettings):
    """Everything the inference server can be told. Flags win over environment variables."""

    model_config = SettingsConfigDict(env_prefix="KAITO_", extra="ignore", frozen=True)

    model: Path = Field(Path("/workspace/weights"), description="Local model directory")
    served_model_name: str = Field("", description="Model id clients use (default: dir name)")
    host: str = Field("0.0.0.0", description="Listen address")
    port: int = Field(5000, description="Listen port")
    engine: Literal["auto", "transformers", "vllm"] = Field(
        "auto", description="Engine: vllm when installed and on GPU, else transformers"
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="dtype")
    device: str = Field("auto", description="cpu, cuda, cuda:N or auto")
    max_batch_size: int = Field(32, ge=1, description="Requests decoded together")
    max_queue: int = Field(256, ge=0, description="Waiting requests before answering 429")
    max_model_len: int = Field(0, ge=0, description="Context length (0: the model's)")
    max_prefill_tokens: int = Field(
        256,
        ge=1,
        description="Prompt tokens (padded) prefilled per step; smaller chunks let requests that "
        "arrive together get their first token sooner while the others decode",
    )
    fast_decode: bool = Field(
        True,
        description="Decode Llama-style fp32 CPU models with fused, pre-packed weights while no "
        "adapter is loaded (the generic transformers forward otherwise)",
    )
    cpu_threads: int = Field(
        0,
        ge=0,
        description="torch CPU threads; 0: as many as torch would use, fewer while other "
        "processes keep cores busy (re-checked every second)",
    )
    default_max_tokens: int = Field(256, ge=1, description="max_tokens when a request sets none")
    chat_template: Path | None = Field(None, description="Jinja chat template file")
    adapters_dir: Path = Field(Path("/mnt/adapter"), description="LoRA adapters directory")
    adapter_mode: AdapterMode = Field("auto", description="separate model ids or merged")
    trust_remote_code: bool = Field(False, description="Allow model code from the model dir")
    local_files_only: bool = Field(True, description="Never reach a model hub")
    log_level: str = Field("info", description="Log level")

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model.name


def _flag_type(annotation: Any) -> tuple[Any, dict[str, Any]]:
    """argparse keyword arguments for a settings field's annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _flag_type(inner[0])
    if origin is Literal:
        return str, {"choices": list(typing.get_args(annotation))}
    if annotation is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    return annotation, {}


def parse_settings(argv: Sequence[str] | None = None) -> ServerSettings:
    """Build settings from the environment, then apply any command-line flags given."""
    parser = argparse.ArgumentParser(prog="inference-server", description=__doc__)
    for name, info in ServerSettings.model_fields.items():
        kind, extra = _flag_type(info.annotation)
        if kind is not None:
            extra["type"] = kind
        parser.add_argument(
            "--" + name.replace("_", "-"), dest=name, default=None, help=info.description, **extra
        )
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    return ServerSettings(**given)
