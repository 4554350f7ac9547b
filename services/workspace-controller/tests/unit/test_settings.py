from __future__ import annotations

import pytest
from pydantic import ValidationError

from workspace_controller.settings import parse_settings


def test_flags_and_gates() -> None:
    s = parse_settings(
        ["--node-provisioner=byo", "--feature-gates=vLLM=true", "--enable-test-presets"]
    )
    assert s.byo and s.default_runtime == "vllm" and s.enable_test_presets


def test_unknown_gate_is_rejected() -> None:
    with pytest.raises(ValidationError, match="invalid feature gate"):
        parse_settings(["--feature-gates=noSuchGate=true"])


def test_kaito_gate_for_byo() -> None:
    assert parse_settings(["--feature-gates=disableNodeAutoProvisioning=true"]).byo
    assert not parse_settings([]).byo
