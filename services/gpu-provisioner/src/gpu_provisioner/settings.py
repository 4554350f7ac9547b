"""Typed settings, read once from the environment (the names gpu-provisioner's chart uses)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, CliApp, CliSuppress, SettingsConfigDict


class AzureSettings(BaseSettings):
    """The AKS cluster whose agent pools we manage and how to reach ARM."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    subscription_id: str = Field("", validation_alias="ARM_SUBSCRIPTION_ID")
    resource_group: str = Field("", validation_alias="ARM_RESOURCE_GROUP")
    cluster_name: str = Field("", validation_alias="AZURE_CLUSTER_NAME")
    tenant_id: str = Field("", validation_alias="AZURE_TENANT_ID")
    client_id: str = Field("", validation_alias="AZURE_CLIENT_ID")
    location: str = Field("", validation_alias="LOCATION")
    deployment_mode: Literal["managed", "self-hosted"] = Field(
        "self-hosted", validation_alias="DEPLOYMENT_MODE"
    )
    # Tests point this at a local fake ARM; None means the public cloud's endpoint.
    arm_endpoint: str | None = Field(None, validation_alias="ARM_ENDPOINT")
    # A CA bundle (PEM path) to trust for ARM, e.g. the fake's self-signed certificate.
    arm_ca_bundle: str | None = Field(None, validation_alias="ARM_CA_BUNDLE")
    polling_interval_s: float = Field(10.0, gt=0, validation_alias="ARM_POLLING_INTERVAL_S")
    retry_total: int = Field(10, ge=0, validation_alias="ARM_RETRY_TOTAL")
    retry_backoff_factor: float = Field(0.8, ge=0, validation_alias="ARM_RETRY_BACKOFF_FACTOR")
    retry_backoff_max_s: int = Field(60, ge=0, validation_alias="ARM_RETRY_BACKOFF_MAX_S")
    request_timeout_s: float = Field(60.0, gt=0, validation_alias="ARM_REQUEST_TIMEOUT_S")
    # After the pool's operation succeeds, how long to wait for AKS to register its Node.
    node_wait_timeout_s: float = Field(30.0, gt=0, validation_alias="AZURE_NODE_WAIT_TIMEOUT_S")
    node_wait_interval_s: float = Field(1.0, gt=0, validation_alias="AZURE_NODE_WAIT_INTERVAL_S")

    def missing(self) -> list[str]:
        """Names of the required variables that are unset."""
        required = {
            "ARM_SUBSCRIPTION_ID": self.subscription_id,
            "ARM_RESOURCE_GROUP": self.resource_group,
            "AZURE_CLUSTER_NAME": self.cluster_name,
        }
        return [name for name, value in required.items() if not value]


class Settings(BaseSettings):
    """Karpenter-compatible GPU node provisioner. Each flag overrides its environment variable."""

    # Environment names are `GPU_PROVISIONER_*` unless the chart fixes another one; every field
    # is also a kebab-case flag (see `parse_settings`), listed by --help with its default.

    model_config = SettingsConfigDict(
        env_prefix="GPU_PROVISIONER_",
        extra="ignore",
        populate_by_name=True,
        cli_prog_name="gpu-provisioner",
        cli_kebab_case=True,
        cli_implicit_flags=True,  # --flag / --no-flag for booleans
        cli_hide_none_type=True,
        cli_show_env_vars=True,
    )

    cloud: Literal["azure", "kwok"] = Field(
        "azure", description="Where nodes come from: AKS agent pools, or kwok fake nodes"
    )
    kubeconfig: str | None = Field(
        None,
        validation_alias=AliasChoices("GPU_PROVISIONER_KUBECONFIG", "KUBECONFIG"),
        description="Kubeconfig file; unset: the in-cluster configuration",
    )
    metrics_port: int | None = Field(
        8080,
        validation_alias=AliasChoices("GPU_PROVISIONER_METRICS_PORT", "METRICS_PORT"),
        description="Port of /healthz, /readyz and /metrics",
    )
    leader_elect: bool = Field(
        False,
        validation_alias=AliasChoices("GPU_PROVISIONER_LEADER_ELECT", "LEADER_ELECT"),
        description="Run only while holding the leader-election Lease",
    )
    lease_namespace: str = Field(
        "gpu-provisioner",
        validation_alias=AliasChoices("GPU_PROVISIONER_LEASE_NAMESPACE", "SYSTEM_NAMESPACE"),
    )
    lease_name: str = "gpu-provisioner-leader-election"
    log_level: str = Field(
        "INFO", validation_alias=AliasChoices("GPU_PROVISIONER_LOG_LEVEL", "LOG_LEVEL")
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        validation_alias=AliasChoices("GPU_PROVISIONER_LOG_FORMAT", "LOG_FORMAT"),
        description="Log lines as text or JSON (docs/observability.md)",
    )
    request_timeout_s: float = Field(30.0, gt=0, description="Kubernetes API request timeout")
    # Launches run as tasks, so workers are never held by a cloud operation.
    workers: int = Field(
        20,
        ge=1,
        description="Reconcile workers per controller (bounds Kubernetes API calls in flight)",
    )
    max_concurrent_launches: int = Field(
        200, ge=1, description="Launches in flight at once (each one cloud create)"
    )
    gc_interval_s: float = Field(
        120.0, gt=0, description="Period of the instance garbage collector"
    )
    gc_instance_grace_s: float = Field(
        30.0, ge=0, description="Age before an instance without a NodeClaim is deleted"
    )
    node_repair: bool = Field(True, description="Replace nodes that stay NotReady")
    node_repair_after_s: float = Field(
        600.0, gt=0, description="How long a node may be NotReady before it is replaced"
    )
    poll_interval_s: float = Field(
        2.0, gt=0, description="Requeue period while waiting on a drain or an instance deletion"
    )
    launch_backoff_max_s: float = Field(
        300.0, gt=0, description="Cap of the per-claim backoff between launch retries"
    )

    # Read from the ARM_* / AZURE_* environment only (the chart's names); no flags.
    azure: CliSuppress[AzureSettings] = Field(default_factory=AzureSettings)


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Settings from the environment, overridden by the flags in `argv` (default: sys.argv)."""
    return CliApp.run(Settings, cli_args=None if argv is None else list(argv))
