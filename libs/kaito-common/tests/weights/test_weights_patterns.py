"""Which repository files the download fetches."""

from __future__ import annotations

import pytest

from kaito_common.weights.patterns import allow_patterns, select_files

# The files of a Phi-3 repository on the hub, plus what a download must leave out.
REPO = [
    ".gitattributes",
    "README.md",
    "config.json",
    "configuration_phi3.py",
    "modeling_phi3.py",
    "generation_config.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "consolidated.pth",
    "model.gguf",
    "onnx/model.onnx",
    "original/consolidated.00.safetensors",
    "original/tokenizer.model",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "added_tokens.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "cl100k.tiktoken",
]


def test_defaults_fetch_what_a_model_needs_and_nothing_else() -> None:
    chosen = select_files(REPO, allow_patterns([], trust_remote_code=False))
    assert chosen == sorted(
        [
            "config.json",
            "generation_config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "special_tokens_map.json",
            "tokenizer.json",
            "tokenizer.model",
            "tokenizer_config.json",
            "added_tokens.json",
            "chat_template.jinja",
            "vocab.json",
            "merges.txt",
            "cl100k.tiktoken",
        ]
    )


def test_remote_code_adds_the_python_files() -> None:
    chosen = select_files(REPO, allow_patterns([], trust_remote_code=True))
    assert {"configuration_phi3.py", "modeling_phi3.py"} <= set(chosen)


@pytest.mark.parametrize("pattern", ["*", "*.bin", "original/", "*.pth", "onnx/*", "*.gguf"])
def test_deny_list_wins_over_explicit_patterns(pattern: str) -> None:
    chosen = select_files(REPO, allow_patterns([pattern], trust_remote_code=False))
    assert not [
        p
        for p in chosen
        if p.endswith((".bin", ".pth", ".gguf", ".onnx")) or p.startswith("original/")
    ]


def test_explicit_patterns_replace_the_defaults() -> None:
    assert select_files(REPO, allow_patterns(["*.json"], trust_remote_code=True)) == sorted(
        p for p in REPO if p.endswith(".json")
    )
