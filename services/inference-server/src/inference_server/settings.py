"""Typed server settings, read from `KAITO_*` environment variables and command-line flags
(pydantic-settings' own CLI: kebab-case flags; `--help` lists defaults and variables)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, CliApp, SettingsConfigDict

from kaito_common.presets.chat_templates import chat_template_text

PROG = "python -m inference_server"
AdapterMode = Literal["auto", "separate", "merged"]


class ServerSettings(BaseSettings):
    """Everything the inference server can be told. Flags win over environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="KAITO_",
        extra="ignore",
        frozen=True,
        cli_prog_name=PROG,
        cli_kebab_case=True,
        cli_implicit_flags=True,  # booleans: --fast-decode / --no-fast-decode
        cli_show_env_vars=True,
    )

    model: Path = Field(Path("/workspace/weights"), description="Local model directory")
    served_model_name: str = Field(
        "", description="Model id clients use (empty: the model dir's name)"
    )
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
    max_request_bytes: int = Field(
        8 << 20, ge=1024, description="Largest request body accepted (bytes); larger gets 413"
    )
    chat_template: Path | None = Field(None, description="Jinja chat template file")
    default_chat_template: str | None = Field(
        None,
        description="The preset's chat template (by name, from kaito_common), used when the "
        "model's tokenizer has none",
    )
    adapters_dir: Path = Field(Path("/mnt/adapter"), description="LoRA adapters directory")
    adapter_mode: AdapterMode = Field("auto", description="separate model ids or merged")
    trust_remote_code: bool = Field(False, description="Allow model code from the model dir")
    local_files_only: bool = Field(True, description="Never reach a model hub")
    kaito_config_file: Path | None = Field(
        None,
        description="Kaito's inference_config.yaml (/mnt/config): the vllm engine takes its "
        "`vllm` section as engine arguments, the transformers engine its `transformers` "
        "section as settings (max-model-len, max-num-seqs, ...) over these flags",
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs one replica spans")
    pipeline_parallel_size: int = Field(
        1, ge=1, description="vllm: nodes one replica spans (Ray backend when more than 1)"
    )
    log_level: str = Field("info", description="Log level")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text or JSON (docs/observability.md)"
    )

    @field_validator("default_chat_template")
    @classmethod
    def _known_template(cls, value: str | None) -> str | None:
        if value:
            chat_template_text(value)  # UnknownChatTemplateError (a ValueError) names the known
        return value

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model.name


def parse_settings(argv: Sequence[str] | None = None) -> ServerSettings:
    """Settings from the environment with the command-line flags (default: `sys.argv`) on top."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return CliApp.run(ServerSettings, cli_args=args)
    except ValidationError as err:
        # A usage error, as argparse reports one: exit status 2 with the reason.
        print(f"{PROG}: invalid settings: {err}", file=sys.stderr)
        raise SystemExit(2) from err
