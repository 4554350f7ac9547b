"""Typed settings of `python -m kaito_common.weights download`: flags, then the environment.

`HF_TOKEN` (the controller injects it from the Workspace's modelAccessSecret) and `HF_ENDPOINT`
are huggingface_hub's own variables; the others are `KAITO_WEIGHTS_*`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ENDPOINT = "https://huggingface.co"


class DownloadSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KAITO_WEIGHTS_", extra="ignore", populate_by_name=True
    )

    repo: str = Field(
        description="Hugging Face repository id, e.g. microsoft/Phi-3-mini-4k-instruct"
    )
    revision: str = Field(description="The commit to download (40 hex digits; a branch works too)")
    dest: Path = Field(description="The weights volume, e.g. /workspace/weights")
    allow_patterns: list[str] = Field(
        default_factory=list, description="Files to fetch; empty: what a model needs"
    )
    trust_remote_code: bool = Field(False, description="Also fetch the model's *.py files")
    token: SecretStr | None = Field(None, validation_alias="HF_TOKEN", description="HF_TOKEN")
    endpoint: str = Field(
        DEFAULT_ENDPOINT,
        validation_alias="HF_ENDPOINT",
        description="The hub (HF_ENDPOINT)",
    )
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus port; 0: off")
    metrics_host: str = "0.0.0.0"
    progress_interval_s: float = Field(5.0, gt=0, description="Seconds between progress lines")
    workers: int = Field(4, ge=1, le=32, description="Files downloaded at once")
    attempts: int = Field(5, ge=1, description="Tries per request before giving up")
    backoff_s: float = Field(1.0, ge=0, description="First wait between tries (doubles)")
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    termination_log: Path | None = Path("/dev/termination-log")

    @property
    def hf_token(self) -> str | None:
        secret = self.token.get_secret_value().strip() if self.token else ""
        return secret or None

    @property
    def hub(self) -> str:
        return self.endpoint.rstrip("/")
