"""Typed settings, read once from the environment (the names gpu-provisioner's chart uses)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    """Everything the process needs; `GPU_PROVISIONER_*` unless the chart fixes another name."""

    model_config = SettingsConfigDict(
        env_prefix="GPU_PROVISIONER_", extra="ignore", populate_by_name=True
    )

    cloud: Literal["azure", "kwok"] = "azure"
    kubeconfig: str | None = Field(
        None, validation_alias=AliasChoices("GPU_PROVISIONER_KUBECONFIG", "KUBECONFIG")
    )
    metrics_port: int | None = Field(
        8080, validation_alias=AliasChoices("GPU_PROVISIONER_METRICS_PORT", "METRICS_PORT")
    )
    leader_elect: bool = Field(
        False, validation_alias=AliasChoices("GPU_PROVISIONER_LEADER_ELECT", "LEADER_ELECT")
    )
    lease_namespace: str = Field(
        "gpu-provisioner",
        validation_alias=AliasChoices("GPU_PROVISIONER_LEASE_NAMESPACE", "SYSTEM_NAMESPACE"),
    )
    lease_name: str = "gpu-provisioner-leader-election"
    log_level: str = Field(
        "INFO", validation_alias=AliasChoices("GPU_PROVISIONER_LOG_LEVEL", "LOG_LEVEL")
    )
    request_timeout_s: float = Field(30.0, gt=0)
    # Reconcile workers per controller. Launches run as tasks, so workers are never held by a
    # cloud operation; these bound the Kubernetes API calls in flight.
    workers: int = Field(20, ge=1)
    # Launches in flight at once (each is one cloud create awaiting its operation).
    max_concurrent_launches: int = Field(200, ge=1)
    gc_interval_s: float = Field(120.0, gt=0)
    gc_instance_grace_s: float = Field(30.0, ge=0)
    node_repair: bool = True
    node_repair_after_s: float = Field(600.0, gt=0)
    # Requeue period while waiting on a drain or an instance deletion.
    poll_interval_s: float = Field(2.0, gt=0)
    # Cap of the per-claim backoff between launch retries.
    launch_backoff_max_s: float = Field(300.0, gt=0)
    kwok_node_registration_delay_s: float = Field(0.0, ge=0)

    azure: AzureSettings = Field(default_factory=AzureSettings)
