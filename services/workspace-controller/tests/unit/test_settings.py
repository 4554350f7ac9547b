from __future__ import annotations

import pytest
from pydantic import ValidationError

from workspace_controller.manifests.runner_access import RunnerAccess
from workspace_controller.settings import parse_settings


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


def test_unknown_gate_is_rejected() -> None:
    with pytest.raises(ValidationError, match="invalid feature gate"):
        parse_settings(["--feature-gates=noSuchGate=true"])


def test_kaito_gate_for_byo() -> None:
    assert parse_settings(["--feature-gates=disableNodeAutoProvisioning=true"]).byo
    assert not parse_settings([]).byo


def test_tuning_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = parse_settings([])
    assert defaults.tuning_runner_image == "mcr.microsoft.com/aks/kaito/tuning-runner:0.1.0"
    assert (defaults.tuning_metrics_port, defaults.tuning_backoff_limit) == (5000, 2)
    monkeypatch.setenv("KAITO_WC_TUNING_RUNNER_IMAGE", "reg.io/runner:2")
    s = parse_settings(["--tuning-metrics-port=9100", "--tuning-requeue-s=1.5"])
    assert s.tuning_runner_image == "reg.io/runner:2"
    assert s.tuning_metrics_port == 9100 and s.tuning_requeue_s == 1.5
    with pytest.raises(ValidationError):
        parse_settings(["--tuning-metrics-port=0"])


def test_inference_server_image_from_flag_and_default() -> None:
    default = parse_settings([]).inference_server_image
    assert default == "mcr.microsoft.com/aks/kaito/inference-server:0.1.0"
    chosen = parse_settings(["--inference-server-image=reg.io/server:3"])
    assert chosen.inference_server_image == "reg.io/server:3"


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
