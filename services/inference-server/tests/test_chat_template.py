"""The preset's chat template is used when the model's tokenizer has none (as upstream Kaito
does), never over the model's own; an unknown template name stops the server at start."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from inference_server.engine.chat_template import choose_chat_template
from inference_server.settings import ServerSettings, parse_settings

MESSAGES = [{"role": "user", "content": "What is Kubernetes?"}]


def _without_template(model: Path, target: Path) -> Path:
    shutil.copytree(model, target)
    (target / "chat_template.jinja").unlink(missing_ok=True)
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
    return target


def test_a_tokenizer_without_a_template_gets_the_presets(tiny_model: Path, tmp_path: Path) -> None:
    model = _without_template(tiny_model, tmp_path / "no-template")
    tokenizer = AutoTokenizer.from_pretrained(str(model), local_files_only=True)
    assert not tokenizer.chat_template
    settings = ServerSettings(model=model, default_chat_template="phi-3")
    assert choose_chat_template(tokenizer, settings) == "the preset's phi-3"
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert text == "<|user|>\nWhat is Kubernetes?<|end|>\n<|assistant|>\n"


def test_the_models_own_template_wins(tiny_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model), local_files_only=True)
    own = tokenizer.chat_template
    assert own
    settings = ServerSettings(model=tiny_model, default_chat_template="chatml")
    assert choose_chat_template(tokenizer, settings) == "the model's tokenizer"
    assert tokenizer.chat_template == own


def test_an_unknown_template_name_stops_the_server(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings([f"--model={tiny_model}", "--default-chat-template=vicuna"])
    assert exited.value.code == 2
    assert "no chat template named 'vicuna'" in capsys.readouterr().err
