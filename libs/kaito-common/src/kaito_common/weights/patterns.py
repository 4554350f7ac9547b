"""Which files of a repository a model needs: config, tokenizer, chat template, safetensors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatch

DEFAULT_ALLOW_PATTERNS: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "*.tiktoken",
    "chat_template.jinja",
    "chat_template.json",
    "*.safetensors",
    "model.safetensors.index.json",
)
REMOTE_CODE_PATTERNS: tuple[str, ...] = ("*.py",)
"""The model's own code, fetched only with --trust-remote-code (auto_map in config.json)."""

DENY_PATTERNS: tuple[str, ...] = (
    "*.bin",
    "*.pt",
    "*.pth",
    "*.gguf",
    "*.onnx",
    "*.msgpack",
    "*.h5",
    "original/*",
)
"""Never fetched, whatever the allow patterns: pickled or other-framework copies of the
weights, and upstream's original checkpoints (`original/`)."""


def allow_patterns(explicit: Sequence[str], trust_remote_code: bool) -> tuple[str, ...]:
    """The patterns in force: the ones given, else the defaults (plus `*.py` for remote code)."""
    if explicit:
        return tuple(explicit)
    return DEFAULT_ALLOW_PATTERNS + (REMOTE_CODE_PATTERNS if trust_remote_code else ())


def _matches(path: str, patterns: Iterable[str]) -> bool:
    # A pattern ending in "/" means everything under that folder, as in huggingface_hub.
    return any(fnmatch(path, p + "*" if p.endswith("/") else p) for p in patterns)


def select_files(paths: Iterable[str], allow: Sequence[str]) -> list[str]:
    """The repository paths an allow pattern matches and no deny pattern does, sorted."""
    return sorted(p for p in paths if _matches(p, allow) and not _matches(p, DENY_PATTERNS))
