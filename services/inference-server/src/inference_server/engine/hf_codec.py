"""`TextCodec` over a Hugging Face tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class HFTextCodec:
    def __init__(self, tokenizer: Any, extra_eos_ids: Sequence[int] = ()) -> None:
        self._tokenizer = tokenizer
        eos: list[int] = []
        if tokenizer.eos_token_id is not None:
            eos.append(int(tokenizer.eos_token_id))
        eos += [int(i) for i in extra_eos_ids if int(i) not in eos]
        self._eos = tuple(eos)

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return self._eos

    @property
    def vocab_size(self) -> int:
        return len(self._tokenizer)

    @property
    def pad_token_id(self) -> int:
        pad = self._tokenizer.pad_token_id
        return int(pad if pad is not None else (self._eos[0] if self._eos else 0))

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        ids = self._tokenizer.encode(text, add_special_tokens=add_special_tokens)
        return [int(i) for i in ids]

    def decode(self, token_ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(token_ids), skip_special_tokens=True))

    def render_chat(
        self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool
    ) -> str:
        if not getattr(self._tokenizer, "chat_template", None):
            raise ValueError("the model has no chat template; pass --chat-template")
        rendered = self._tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return str(rendered)
