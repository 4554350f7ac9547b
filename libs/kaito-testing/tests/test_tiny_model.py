"""The tiny-model factory builds models the real loading code reads, deterministically."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaito_testing.tiny_model import build_tiny_model, cached_tiny_model, tiny_model_dir


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


def test_loads_with_auto_classes_and_every_token_decodes(llama_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    model = AutoModelForCausalLM.from_pretrained(llama_dir)
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.bos_token == "<s>" and tokenizer.eos_token == "</s>"
    assert tokenizer.pad_token == "<pad>"
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        assert text, token_id
        assert "\ufffd" not in text, token_id
    ids = tokenizer("Hello, world! 42")["input_ids"]
    assert tokenizer.decode(ids) == "Hello, world! 42"


def test_chat_template_marks_assistant_tokens(llama_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi there"},
    ]
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    mask = out["assistant_masks"]
    masked = [t for t, m in zip(out["input_ids"], mask, strict=True) if m]
    assert tokenizer.decode(masked) == "hi there</s>"
    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>\n")


def test_same_seed_same_weights_other_seed_differs(tmp_path: Path) -> None:
    a = build_tiny_model(tmp_path / "a", hidden_size=32, num_layers=1, num_heads=2, seed=3)
    b = build_tiny_model(tmp_path / "b", hidden_size=32, num_layers=1, num_heads=2, seed=3)
    c = build_tiny_model(tmp_path / "c", hidden_size=32, num_layers=1, num_heads=2, seed=4)
    weights = [(p / "model.safetensors").read_bytes() for p in (a, b, c)]
    assert weights[0] == weights[1]
    assert weights[0] != weights[2]
    assert (a / "tokenizer.json").read_bytes() == (c / "tokenizer.json").read_bytes()


def test_phi3_has_fused_projections(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    path = build_tiny_model(
        tmp_path / "phi", hidden_size=32, num_layers=1, num_heads=2, arch="phi3"
    )
    model = AutoModelForCausalLM.from_pretrained(path)
    names = {name for name, _ in model.named_modules()}
    assert any(name.endswith("qkv_proj") for name in names)
    assert any(name.endswith("gate_up_proj") for name in names)


def test_silenced_special_tokens_never_win_greedy(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    path = build_tiny_model(
        tmp_path / "s", hidden_size=32, num_layers=1, num_heads=2, silence_special_tokens=True
    )
    model = AutoModelForCausalLM.from_pretrained(path)
    out = model.generate(torch.tensor([[1, 40, 50]]), max_new_tokens=40, do_sample=False)
    assert out.shape[1] == 43
    assert not set(out[0, 3:].tolist()) & {0, 1, 2, 3}


def test_cache_reuses_the_built_directory(tmp_path: Path) -> None:
    first = cached_tiny_model(tmp_path, hidden_size=32, num_layers=1, num_heads=2)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again = cached_tiny_model(tmp_path, hidden_size=32, num_layers=1, num_heads=2)
    assert again == first
    assert (again / "model.safetensors").stat().st_mtime_ns == stamp
    other = cached_tiny_model(tmp_path, hidden_size=32, num_layers=1, num_heads=2, seed=9)
    assert other != first
