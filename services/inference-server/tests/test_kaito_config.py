"""The Workspace's inference_config.yaml on the transformers engine: its `transformers:` section
overrides the flags; an unknown key stops the server at start, naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from inference_server.__main__ import main
from inference_server.engine.factory import settings_for_engine
from inference_server.kaito_config import KaitoConfigError, with_transformers_section
from inference_server.settings import ServerSettings

from .conftest import MODEL_NAME, serve


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inference_config.yaml"
    path.write_text(text)
    return path


def test_the_section_overrides_the_flags(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "max_probe_steps: 6\nvllm: {gpu-memory-utilization: 0.9}\n"
        "transformers: {max-model-len: 96, max-num-seqs: 4, fast-decode: false}\n",
    )
    settings = ServerSettings(kaito_config_file=path, max_batch_size=32, engine="transformers")
    tuned = settings_for_engine(settings)
    assert (tuned.max_model_len, tuned.max_batch_size, tuned.fast_decode) == (96, 4, False)
    untouched = ServerSettings(kaito_config_file=_config(tmp_path, "vllm: {}\n"))
    assert with_transformers_section(untouched) == untouched


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("transformers: {max-modle-len: 96}\n", "max-modle-len"),
        ("transformers: {max-model-len: lots}\n", "max_model_len"),
        ("transformers: [1, 2]\n", "must be a mapping"),
        ("- a\n- b\n", "must hold a YAML mapping"),
    ],
)
def test_bad_sections_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(KaitoConfigError, match=message) as info:
        with_transformers_section(ServerSettings(kaito_config_file=path))
    assert str(path) in str(info.value)


def test_an_unknown_key_stops_the_server_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, "transformers: {max-num-sequences: 4}\n")
    argv = ["--engine=transformers", f"--kaito-config-file={path}", "--model=/nonexistent"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "max-num-sequences" in err and str(path) in err


def test_max_model_len_96_from_the_file(tiny_model: Path, tmp_path: Path) -> None:
    path = _config(tmp_path, "transformers: {max-model-len: 96}\n")
    settings = settings_for_engine(
        ServerSettings(
            model=tiny_model,
            served_model_name=MODEL_NAME,
            engine="transformers",
            kaito_config_file=path,
            adapters_dir=tmp_path / "no-adapters",
        )
    )
    with serve(settings) as running:
        models = httpx.get(running.url + "/v1/models", timeout=30).json()
        assert models["data"][0]["max_model_len"] == 96
        body = {"model": MODEL_NAME, "prompt": "hello there", "max_tokens": 200}
        response = httpx.post(running.url + "/v1/completions", json=body, timeout=60)
        assert response.status_code == 400, response.text
        assert "96" in response.json()["error"]["message"]
        ok = {"model": MODEL_NAME, "prompt": "hello there", "max_tokens": 8}
        assert httpx.post(running.url + "/v1/completions", json=ok, timeout=60).status_code == 200
