"""Typed settings of the runner, from `KAITO_TUNING_*` environment variables and flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RunnerSettings(BaseSettings):
    """Where things are. Defaults are the paths of the tuning Job's pod; tests override them."""

    model_config = SettingsConfigDict(env_prefix="KAITO_TUNING_", extra="ignore")

    root: Path = Field(Path("/mnt"), description="output_dir must lie under this folder")
    data_dir: Path = Path("/mnt/data")
    config_path: Path = Path("/mnt/config/training_config.yaml")
    output_dir: Path | None = Field(None, description="overrides TrainingArguments.output_dir")
    default_model_path: Path = Field(
        Path("/workspace/tfs/weights"), description="the preset's weights in the image"
    )
    default_target_modules: list[str] | None = Field(
        None, description="LoRA target modules when the config names none (the preset's)"
    )
    model_name: str = Field("", description="preset name, written as sh.kaito.model.name")
    termination_log: Path = Path("/dev/termination-log")
    progress_file: Path | None = Field(
        None, description="progress JSON; default <output_dir>/progress.json"
    )
    metrics_port: int = Field(5000, description="Prometheus port; 0 turns the server off")
    metrics_host: str = "0.0.0.0"
    log_level: str = Field("info", description="Log level")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text or JSON (docs/observability.md)"
    )

    # fetch
    allow_loopback_urls: bool = Field(False, description="tests only: let URLs reach 127.0.0.1")
    allowed_data_networks: list[str] = Field(
        default_factory=list,
        description="operator's allow-list of input URL destinations (CIDRs, host names)",
    )
    fetch_max_bytes: int = 20 * 1024**3
    fetch_attempts: int = 3
    fetch_backoff_seconds: float = 1.0
    fetch_connect_timeout_seconds: float = 10.0
    fetch_read_timeout_seconds: float = 120.0

    # registry
    docker_config: list[Path] = Field(
        default_factory=list, description="docker config JSON files or folders holding one"
    )
    plain_http_registries: list[str] = Field(
        default_factory=list, description="registries spoken to over plain HTTP (loopback always)"
    )
    registry_timeout_seconds: float = 300.0
    ca_file: Path | None = Field(
        None, description="PEM CA bundle trusted besides the default roots (registries, URLs)"
    )

    def resolved_progress_file(self, output_dir: Path) -> Path:
        return self.progress_file or output_dir / "progress.json"
