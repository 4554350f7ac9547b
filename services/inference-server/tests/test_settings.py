from __future__ import annotations

from pathlib import Path

import pytest

from inference_server.settings import parse_settings


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAITO_PORT", "6000")
    monkeypatch.setenv("KAITO_MAX_BATCH_SIZE", "4")
    s = parse_settings(["--model", "/m", "--served-model-name", "x", "--port", "7000"])
    assert s.model == Path("/m") and s.model_name == "x"
    assert s.port == 7000 and s.max_batch_size == 4


def test_defaults_and_booleans() -> None:
    s = parse_settings(["--no-local-files-only", "--adapter-mode", "merged"])
    assert s.port == 5000 and s.model == Path("/workspace/weights")
    assert s.model_name == "weights" and not s.local_files_only and s.adapter_mode == "merged"


def test_rejects_bad_choices() -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--adapter-mode", "mixed"])
