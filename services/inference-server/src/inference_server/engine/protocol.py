"""The engine interface the HTTP layer talks to, and the tokenizer surface it needs."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from inference_server.engine.types import EngineStats, GenerationOutput, GenerationRequest


class TextCodec(Protocol):
    """What the serving layer needs from a tokenizer: text <-> ids and chat rendering."""

    @property
    def eos_token_ids(self) -> tuple[int, ...]: ...

    @property
    def vocab_size(self) -> int:
        """Token ids a prompt may hold are 0 .. vocab_size - 1."""
        ...

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...

    def render_chat(
        self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool
    ) -> str: ...


class Engine(Protocol):
    """A generation engine. `submit` raises engine errors at once (queue full, not ready, unknown
    adapter); the returned stream yields outputs until one carries a finish reason. Closing the
    stream early cancels the request and frees its slot."""

    @property
    def codec(self) -> TextCodec: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def submit(self, request: GenerationRequest) -> AsyncGenerator[GenerationOutput, None]: ...

    def cancel(self, request_id: str) -> None: ...

    def stats(self) -> EngineStats: ...

    async def load_adapter(self, name: str, path: str) -> None: ...

    async def unload_adapter(self, name: str) -> None: ...
