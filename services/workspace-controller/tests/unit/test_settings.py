from __future__ import annotations

import pytest
from pydantic import ValidationError

from workspace_controller.manifests.runner_access import RunnerAccess
from workspace_controller.settings import feature_gate_warnings, parse_settings


def test_flags_and_gates() -> None:
    s = parse_settings(
        ["--node-provisioner=byo", "--feature-gates=vLLM=true", "--enable-test-presets"]
    )
    assert s.byo and s.vllm_gate and s.enable_test_presets


def test_vllm_gate_is_on_by_default_and_names_the_vllm_server_image() -> None:
    default = parse_settings([])
    assert default.vllm_gate
    assert not parse_settings(["--feature-gates=vLLM=false"]).vllm_gate
    s = parse_settings(["--inference-server-image=reg.io/kaito/inference-server:1.2"])
    assert s.vllm_server_image == "reg.io/kaito/inference-server-vllm:1.2"
    s = parse_settings(["--inference-server-vllm-image=other.io/vllm:3"])
    assert s.vllm_server_image == "other.io/vllm:3"


def test_unknown_and_upstream_only_gates_are_ignored_with_a_warning() -> None:
    """As upstream's controller: an unknown gate does not stop the controller."""
    text = "noSuchGate=true,gatewayAPIInferenceExtension=true,ensureNodeClass=false,vLLM=false"
    settings = parse_settings([f"--feature-gates={text}"])
    assert not settings.vllm_gate
    warnings = feature_gate_warnings(settings.feature_gates)
    assert len(warnings) == 2
    assert warnings[0].startswith("unknown feature gate noSuchGate ignored")
    assert "gatewayAPIInferenceExtension=true is upstream Kaito's" in warnings[1]
    with pytest.raises(ValidationError, match="needs =true or =false"):
        parse_settings(["--feature-gates=vLLM=maybe"])


def test_gates_from_the_charts_top_level_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """The umbrella chart's top-level featureGates arrive in the environment; --feature-gates
    wins for a gate both name."""
    monkeypatch.setenv("KAITO_WC_FEATURE_GATES_FROM_VALUES", "vLLM=false,noSuchGate=true")
    settings = parse_settings([])
    assert not settings.vllm_gate
    assert feature_gate_warnings(settings.all_feature_gates)[0].startswith("unknown feature gate")
    assert parse_settings(["--feature-gates=vLLM=true"]).vllm_gate
    monkeypatch.setenv("KAITO_WC_FEATURE_GATES_FROM_VALUES", "disableNodeAutoProvisioning=true")
    assert parse_settings([]).byo


def test_kaito_gate_for_byo() -> None:
    assert parse_settings(["--feature-gates=disableNodeAutoProvisioning=true"]).byo
    assert not parse_settings([]).byo


def test_tuning_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = parse_settings([])
    assert defaults.runner_image == "localhost/kaito/tuning-runner:dev"
    assert (defaults.tuning_metrics_port, defaults.tuning_backoff_limit) == (5000, 2)
    monkeypatch.setenv("KAITO_WC_TUNING_RUNNER_IMAGE", "reg.io/runner:2")
    s = parse_settings(["--tuning-metrics-port=9100", "--tuning-requeue-s=1.5"])
    assert s.runner_image == "reg.io/runner:2"
    assert s.tuning_metrics_port == 9100 and s.tuning_requeue_s == 1.5
    with pytest.raises(ValidationError):
        parse_settings(["--tuning-metrics-port=0"])


def test_inference_server_image_from_flag_and_default() -> None:
    default = parse_settings([]).server_image
    assert default == "localhost/kaito/inference-server:dev"
    chosen = parse_settings(["--inference-server-image=reg.io/server:3"])
    assert chosen.server_image == "reg.io/server:3"


def test_one_registry_and_tag_name_every_runtime_and_weights_image() -> None:
    # The defaults are what `make images` builds; no third-party registry is named.
    defaults = parse_settings([])
    assert (defaults.image_registry, defaults.image_tag) == ("localhost/kaito", "dev")
    assert (defaults.weights_image_registry, defaults.weights_image_tag) == (
        "localhost/kaito",
        "dev",
    )
    s = parse_settings(["--image-registry=myacr.azurecr.io/kaito/", "--image-tag=0.1.0"])
    assert s.server_image == "myacr.azurecr.io/kaito/inference-server:0.1.0"
    assert s.vllm_server_image == "myacr.azurecr.io/kaito/inference-server-vllm:0.1.0"
    assert s.runner_image == "myacr.azurecr.io/kaito/tuning-runner:0.1.0"
    assert (s.weights_image_registry, s.weights_image_tag) == ("myacr.azurecr.io/kaito/", "0.1.0")
    # Each can still be named on its own.
    s = parse_settings(
        [
            "--image-registry=r.io/k",
            "--tuning-runner-image=other.io/runner:1",
            "--preset-registry=weights.io/models",
            "--preset-image-tag=7",
        ]
    )
    assert s.runner_image == "other.io/runner:1"
    assert s.server_image == "r.io/k/inference-server:dev"
    assert (s.weights_image_registry, s.weights_image_tag) == ("weights.io/models", "7")
    with pytest.raises(ValidationError):
        parse_settings(["--image-registry="])


def test_image_pull_secrets_and_weights_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = parse_settings([])
    assert defaults.image_pull_secrets == []
    assert (defaults.weights_cache_storage_class, defaults.weights_cache_size) == ("", "")
    s = parse_settings(
        [
            "--image-pull-secrets=acr-pull, other",
            "--weights-cache-storage-class=managed-csi",
            "--weights-cache-size=100Gi",
        ]
    )
    assert s.image_pull_secrets == ["acr-pull", "other"]
    assert (s.weights_cache_storage_class, s.weights_cache_size) == ("managed-csi", "100Gi")
    monkeypatch.setenv("KAITO_WC_IMAGE_PULL_SECRETS", "from-env")
    assert parse_settings([]).image_pull_secrets == ["from-env"]


def test_runner_access_is_off_by_default_and_validated() -> None:
    defaults = parse_settings([])
    assert defaults.runner_access == RunnerAccess()
    assert defaults.url_policy.allowed_networks == () and not defaults.url_policy.allowed_hosts
    s = parse_settings(
        [
            "--tuning-allowed-data-networks=10.96.0.0/12,minio.storage.svc",
            "--tuning-plain-http-registries=registry.kaito.svc:5000, 192.0.2.2:5000",
            "--tuning-ca-bundle-config-map=internal-ca",
        ]
    )
    assert s.runner_access == RunnerAccess(
        allowed_data_networks=("10.96.0.0/12", "minio.storage.svc"),
        plain_http_registries=("registry.kaito.svc:5000", "192.0.2.2:5000"),
        ca_bundle_config_map="internal-ca",
    )
    assert s.url_policy.allowed_hosts == frozenset({"minio.storage.svc"})
    with pytest.raises(ValidationError, match="allow-list entry"):
        parse_settings(["--tuning-allowed-data-networks=metadata.google.internal"])


@pytest.mark.parametrize("upstream", ["azure-gpu-provisioner", "karpenter"])
def test_upstreams_node_provisioner_names(upstream: str) -> None:
    settings = parse_settings([f"--node-provisioner={upstream}"])
    assert settings.node_provisioner == "karpenter-nodeclaims" and not settings.byo
