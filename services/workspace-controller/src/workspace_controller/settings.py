"""Typed settings of the workspace controller, from `KAITO_WC_*` environment variables and flags.

Flags win over the environment. Unknown feature gates are rejected at start, like Kaito does.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kaito_common.urlguard import URLPolicy
from workspace_controller.manifests.plan import DEFAULT_RUNNER_IMAGE, DEFAULT_SERVER_IMAGE
from workspace_controller.manifests.runner_access import RunnerAccess

NodeProvisionerMode = Literal["karpenter-nodeclaims", "byo"]

# Feature gate name -> default. Kaito's gates that this controller understands.
KNOWN_FEATURE_GATES: dict[str, bool] = {
    # Default runtime of workspaces without a `kaito.sh/runtime` annotation: vllm when on.
    "vLLM": False,
    # Kaito's name for bring-your-own-nodes mode; same effect as --node-provisioner=byo.
    "disableNodeAutoProvisioning": False,
}


def split_list(text: str) -> list[str]:
    """`a, b,,c` -> [a, b, c]."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_feature_gates(text: str) -> dict[str, bool]:
    """`a=true,b=false` -> {a: True, b: False} over the defaults; unknown names are an error."""
    gates = dict(KNOWN_FEATURE_GATES)
    unknown: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in KNOWN_FEATURE_GATES:
            unknown.append(name)
            continue
        if not sep or value.strip().lower() not in ("true", "false"):
            raise ValueError(f"feature gate {name} needs =true or =false, got {part!r}")
        gates[name] = value.strip().lower() == "true"
    if unknown:
        known = ", ".join(sorted(KNOWN_FEATURE_GATES))
        raise ValueError(f"invalid feature gate(s) {', '.join(unknown)}; known gates: {known}")
    return gates


class ControllerSettings(BaseSettings):
    """Everything the workspace controller can be told."""

    model_config = SettingsConfigDict(env_prefix="KAITO_WC_", extra="ignore", frozen=True)

    kubeconfig: str | None = Field(None, description="Kubeconfig file (default: in-cluster)")
    node_provisioner: NodeProvisionerMode = Field(
        "karpenter-nodeclaims", description="karpenter-nodeclaims, or byo (existing nodes only)"
    )
    node_class_group: str = Field("kaito.sh", description="NodeClaim nodeClassRef group")
    node_class_kind: str = Field("KaitoNodeClass", description="NodeClaim nodeClassRef kind")
    node_class_name: str = Field("default", description="NodeClaim nodeClassRef name")
    preset_registry: str = Field(
        "mcr.microsoft.com/aks/kaito", description="Registry of the preset model images"
    )
    preset_image_tag: str = Field("0.1.0", description="Tag of the preset model images")
    inference_server_image: str = Field(
        DEFAULT_SERVER_IMAGE,
        description="Inference server image: pods of presets whose weights come in a model image",
    )
    tuning_runner_image: str = Field(
        DEFAULT_RUNNER_IMAGE,
        description="Tuning runner image: the tuning Job's fetch/push steps, adapter pulls",
    )
    tuning_metrics_port: int = Field(
        5000, ge=1, le=65535, description="Port of the trainer's Prometheus progress gauges"
    )
    tuning_requeue_s: float = Field(
        15.0, gt=0, description="Look again (and read progress) while a tuning Job runs"
    )
    tuning_progress_timeout_s: float = Field(
        2.0, gt=0, description="Timeout of one progress read from a trainer pod"
    )
    tuning_backoff_limit: int = Field(
        2,
        ge=0,
        description="Retries of a tuning pod that failed for another reason than the runner",
    )
    feature_gates: str = Field("", description="Comma-separated gate=true|false")
    release_namespace: str = Field(
        "kaito-workspace", description="Namespace of the default ConfigMaps (params templates)"
    )
    metrics_port: int = Field(8080, ge=0, description="Health (/healthz /readyz) and /metrics")
    webhook_port: int = Field(9443, ge=0, description="HTTPS port of the validating webhook")
    webhook_host: str = Field("0.0.0.0", description="Listen address of the webhook")
    webhook_cert_dir: str = Field(
        "", description="Directory with tls.crt/tls.key (and ca.crt); empty: generate at start"
    )
    webhook_url: str = Field(
        "", description="Register the webhook by URL (host processes) instead of a Service"
    )
    webhook_service_name: str = Field("workspace-controller", description="Webhook Service")
    webhook_service_namespace: str = Field("kaito-workspace", description="Its namespace")
    webhook_config_name: str = Field(
        "validation.workspace.kaito.sh", description="ValidatingWebhookConfiguration name"
    )
    register_webhook: bool = Field(True, description="Create/update the webhook configuration")
    webhook_timeout_s: int = Field(5, ge=1, le=30, description="API server's webhook timeout")
    leader_election: bool = Field(False, description="Elect a leader on a Lease")
    leader_election_namespace: str = Field("kaito-workspace", description="Lease namespace")
    enable_test_presets: bool = Field(False, description="Accept the test-tiny-* presets")
    allow_loopback_urls: bool = Field(False, description="Tests only: loopback tuning URLs")
    tuning_allowed_data_networks: str = Field(
        "",
        description="Comma-separated CIDRs/host names that tuning input URLs may reach although "
        "private (e.g. an in-cluster MinIO); metadata addresses stay refused",
    )
    tuning_plain_http_registries: str = Field(
        "",
        description="Comma-separated registries (host[:port]) the tuning Job and adapter "
        "pulls speak plain HTTP to",
    )
    tuning_ca_bundle_config_map: str = Field(
        "",
        description="ConfigMap (key ca.crt) in each workspace's namespace whose CAs the tuning "
        "runner trusts for registries and input URLs",
    )
    max_concurrent_reconciles: int = Field(5, ge=1, description="Reconciles at once")
    nodes_requeue_s: float = Field(3.0, gt=0, description="Look again while nodes come up")
    inference_requeue_s: float = Field(5.0, gt=0, description="Look again while pods come up")
    request_timeout_s: float = Field(30.0, gt=0, description="Timeout of each API request")
    log_level: str = Field("info", description="Log level")

    @field_validator("feature_gates")
    @classmethod
    def _known_gates(cls, value: str) -> str:
        parse_feature_gates(value)
        return value

    @field_validator("tuning_allowed_data_networks")
    @classmethod
    def _valid_allow_list(cls, value: str) -> str:
        URLPolicy.with_allow_list(split_list(value))
        return value

    @property
    def url_policy(self) -> URLPolicy:
        """The webhook's check of tuning input URLs (the runner's fetch applies the same)."""
        return URLPolicy.with_allow_list(
            split_list(self.tuning_allowed_data_networks), allow_loopback=self.allow_loopback_urls
        )

    @property
    def runner_access(self) -> RunnerAccess:
        return RunnerAccess(
            allowed_data_networks=tuple(split_list(self.tuning_allowed_data_networks)),
            plain_http_registries=tuple(split_list(self.tuning_plain_http_registries)),
            ca_bundle_config_map=self.tuning_ca_bundle_config_map or None,
        )

    @property
    def gates(self) -> dict[str, bool]:
        return parse_feature_gates(self.feature_gates)

    @property
    def byo(self) -> bool:
        return self.node_provisioner == "byo" or self.gates["disableNodeAutoProvisioning"]

    @property
    def default_runtime(self) -> str:
        return "vllm" if self.gates["vLLM"] else "transformers"


def _flag_kwargs(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _flag_kwargs(inner[0])
    if origin is Literal:
        return {"type": str, "choices": list(typing.get_args(annotation))}
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    return {"type": annotation}


def parse_settings(argv: Sequence[str] | None = None) -> ControllerSettings:
    """Settings from the environment, overridden by any command-line flags given."""
    parser = argparse.ArgumentParser(prog="workspace-controller", description=__doc__)
    for name, info in ControllerSettings.model_fields.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            help=info.description,
            **_flag_kwargs(info.annotation),
        )
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    return ControllerSettings(**given)
