"""Typed settings of the workspace controller, from `KAITO_WC_*` environment variables and flags.

Each setting is a kebab-case flag (`--node-provisioner=byo`, booleans as `--leader-election` /
`--no-leader-election`) and an environment variable (`KAITO_WC_NODE_PROVISIONER`); flags win over
the environment. `--help` lists both with their defaults. Unknown feature gates are rejected at
start, like Kaito does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, CliApp, NoDecode, SettingsConfigDict

from kaito_common.urlguard import URLPolicy
from workspace_controller.manifests.images import (
    DEFAULT_IMAGE_REGISTRY,
    DEFAULT_IMAGE_TAG,
    RUNNER_IMAGE_NAME,
    SERVER_IMAGE_NAME,
    project_image,
    vllm_variant,
)
from workspace_controller.manifests.runner_access import RunnerAccess

NodeProvisionerMode = Literal["karpenter-nodeclaims", "byo"]
# Upstream Kaito's names: its gpu-provisioner (AKS agent pools) and Karpenter both fulfil the
# NodeClaims the controller creates, which is what karpenter-nodeclaims means here.
NODE_PROVISIONER_ALIASES: dict[str, str] = {
    "azure-gpu-provisioner": "karpenter-nodeclaims",
    "karpenter": "karpenter-nodeclaims",
}

# Feature gate name -> default. Kaito's gates that this controller understands.
KNOWN_FEATURE_GATES: dict[str, bool] = {
    # vLLM serves presets that have a vLLM runtime and need GPUs (inference/runtime.py); off:
    # transformers unless a workspace's `kaito.sh/runtime` annotation says vllm. On upstream too.
    "vLLM": True,
    # Kaito's name for bring-your-own-nodes mode; same effect as --node-provisioner=byo.
    "disableNodeAutoProvisioning": False,
}


def split_list(text: str) -> list[str]:
    """`a, b,,c` -> [a, b, c]."""
    return [part.strip() for part in text.split(",") if part.strip()]


# Upstream Kaito's other gates: accepted so that upstream values install, but what they turn on
# does not exist here yet (a warning at start says so when one is set to true).
UPSTREAM_ONLY_GATES = frozenset(
    {"enableInferenceSetController", "gatewayAPIInferenceExtension", "ensureNodeClass"}
)


def _gate_items(text: str) -> list[tuple[str, bool]]:
    items: list[tuple[str, bool]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or value.strip().lower() not in ("true", "false"):
            raise ValueError(f"feature gate {name.strip()} needs =true or =false, got {part!r}")
        items.append((name.strip(), value.strip().lower() == "true"))
    return items


def parse_feature_gates(text: str) -> dict[str, bool]:
    """`a=true,b=false` over the defaults. Names this controller does not know are left out
    (`feature_gate_warnings` tells of them), as upstream Kaito's controller does."""
    gates = dict(KNOWN_FEATURE_GATES)
    for name, value in _gate_items(text):
        if name in KNOWN_FEATURE_GATES:
            gates[name] = value
    return gates


def feature_gate_warnings(text: str) -> list[str]:
    """One line per gate that was given but changes nothing here."""
    warnings: list[str] = []
    known = ", ".join(sorted(KNOWN_FEATURE_GATES))
    for name, value in _gate_items(text):
        if name in UPSTREAM_ONLY_GATES:
            if value:
                warnings.append(
                    f"feature gate {name}=true is upstream Kaito's and not supported here yet; "
                    "ignored (docs/compatibility.md)"
                )
        elif name not in KNOWN_FEATURE_GATES:
            warnings.append(f"unknown feature gate {name} ignored; known gates: {known}")
    return warnings


class ControllerSettings(BaseSettings):
    """Everything the workspace controller can be told."""

    model_config = SettingsConfigDict(
        env_prefix="KAITO_WC_",
        extra="ignore",
        frozen=True,
        cli_prog_name="workspace-controller",
        cli_kebab_case=True,
        cli_implicit_flags=True,  # --flag / --no-flag for booleans
        cli_hide_none_type=True,
        cli_show_env_vars=True,
    )

    kubeconfig: str | None = Field(
        None, description="Kubeconfig file; unset: the in-cluster configuration"
    )
    node_provisioner: NodeProvisionerMode = Field(
        "karpenter-nodeclaims",
        description="karpenter-nodeclaims, or byo (existing nodes only); upstream's "
        "azure-gpu-provisioner and karpenter mean karpenter-nodeclaims",
    )
    node_class_group: str = Field("kaito.sh", description="NodeClaim nodeClassRef group")
    node_class_kind: str = Field("KaitoNodeClass", description="NodeClaim nodeClassRef kind")
    node_class_name: str = Field("default", description="NodeClaim nodeClassRef name")
    image_registry: str = Field(
        DEFAULT_IMAGE_REGISTRY,
        min_length=1,
        description="Registry holding the project's images (`make images-push REGISTRY=`): "
        "the runtime images <registry>/<name>:<tag> and the weights images, unless named below",
    )
    image_tag: str = Field(
        DEFAULT_IMAGE_TAG, min_length=1, description="Tag of the project's images"
    )
    image_pull_secrets: Annotated[list[str], NoDecode] = Field(
        [],
        description="Comma-separated image pull Secrets (names, in each workspace's namespace) "
        "put on the inference and tuning pods",
    )
    preset_registry: str = Field(
        "",
        description="Registry of the weights images <registry>/kaito-model-<preset>:<tag> "
        "(empty: --image-registry)",
    )
    preset_image_tag: str = Field("", description="Tag of the weights images (empty: --image-tag)")
    inference_server_image: str = Field(
        "",
        description="Inference server image (empty: <image-registry>/inference-server:<image-tag>)",
    )
    inference_server_vllm_image: str = Field(
        "",
        description="Inference server on vLLM, for pods served by vLLM "
        "(empty: the inference server image's repository with -vllm appended, same tag)",
    )
    tuning_runner_image: str = Field(
        "",
        description="Tuning runner image: the tuning Job's steps, adapter pulls "
        "(empty: <image-registry>/tuning-runner:<image-tag>)",
    )
    weights_cache_storage_class: str = Field(
        "",
        description="StorageClass of a PVC per workspace that keeps downloaded weights across "
        "pods (empty: an emptyDir, downloaded again by each new pod)",
    )
    weights_cache_size: str = Field(
        "", description="Size of that PVC, e.g. 100Gi (empty: the preset's disk need)"
    )
    hf_endpoint: str = Field(
        "",
        pattern=r"^(https?://.+)?$",
        description="The Hugging Face hub presets downloaded at start come from, as HF_ENDPOINT "
        "(empty: https://huggingface.co); a mirror, or a proxy speaking the hub's API",
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
    feature_gates_from_values: str = Field(
        "",
        description="Gates from the umbrella chart's top-level featureGates (where upstream's "
        "chart has them), as gate=true|false; --feature-gates wins for a gate both name",
    )
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
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text or JSON (docs/observability.md)"
    )

    @field_validator("node_provisioner", mode="before")
    @classmethod
    def _upstream_provisioner_names(cls, value: object) -> object:
        return NODE_PROVISIONER_ALIASES.get(value, value) if isinstance(value, str) else value

    @field_validator("feature_gates", "feature_gates_from_values")
    @classmethod
    def _known_gates(cls, value: str) -> str:
        parse_feature_gates(value)
        return value

    @field_validator("image_pull_secrets", mode="before")
    @classmethod
    def _split_pull_secrets(cls, value: object) -> object:
        """`a,b` (flag or environment) or a repeated flag -> [a, b]."""
        if isinstance(value, str):
            return split_list(value)
        if isinstance(value, list):
            return [name for item in value for name in split_list(str(item))]
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
            log_format=self.log_format,
        )

    @property
    def all_feature_gates(self) -> str:
        """The chart's top-level gates, then --feature-gates (the later wins per gate)."""
        return ",".join(filter(None, (self.feature_gates_from_values, self.feature_gates)))

    @property
    def gates(self) -> dict[str, bool]:
        return parse_feature_gates(self.all_feature_gates)

    @property
    def byo(self) -> bool:
        return self.node_provisioner == "byo" or self.gates["disableNodeAutoProvisioning"]

    @property
    def vllm_gate(self) -> bool:
        return self.gates["vLLM"]

    @property
    def server_image(self) -> str:
        return self.inference_server_image or project_image(
            self.image_registry, SERVER_IMAGE_NAME, self.image_tag
        )

    @property
    def vllm_server_image(self) -> str:
        return self.inference_server_vllm_image or vllm_variant(self.server_image)

    @property
    def runner_image(self) -> str:
        return self.tuning_runner_image or project_image(
            self.image_registry, RUNNER_IMAGE_NAME, self.image_tag
        )

    @property
    def weights_image_registry(self) -> str:
        return self.preset_registry or self.image_registry

    @property
    def weights_image_tag(self) -> str:
        return self.preset_image_tag or self.image_tag


def parse_settings(argv: Sequence[str] | None = None) -> ControllerSettings:
    """Settings from the environment, overridden by the flags in `argv` (default: sys.argv)."""
    return CliApp.run(ControllerSettings, cli_args=None if argv is None else list(argv))
