"""The command line: the flags the image smoke test and operators pass override the environment."""

from __future__ import annotations

import pytest

from gpu_provisioner.settings import parse_settings


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_PROVISIONER_CLOUD", "azure")
    monkeypatch.setenv("METRICS_PORT", "9000")
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", "sub")
    settings = parse_settings(
        ["--cloud=kwok", "--kubeconfig=/kube/config", "--metrics-port=8081", "--leader-elect"]
    )
    assert settings.cloud == "kwok" and settings.kubeconfig == "/kube/config"
    assert settings.metrics_port == 8081 and settings.leader_elect is True
    assert settings.azure.subscription_id == "sub", "azure settings still come from the env"


def test_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPU_PROVISIONER_KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBECONFIG", "/from/env")
    monkeypatch.setenv("LEADER_ELECT", "true")
    settings = parse_settings([])
    assert settings.kubeconfig == "/from/env" and settings.leader_elect is True
    assert (
        settings.node_repair is True and parse_settings(["--no-node-repair"]).node_repair is False
    )


def test_help_names_defaults_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--help"])
    out = capsys.readouterr().out
    assert "--metrics-port" in out and "METRICS_PORT" in out and "(default: 8080)" in out
