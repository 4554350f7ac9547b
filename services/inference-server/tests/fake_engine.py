"""An in-memory engine for the HTTP-layer tests: one character per token, echoes the prompt back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from inference_server.engine.errors import EngineNotReadyError
from inference_server.engine.types import EngineStats, GenerationOutput, GenerationRequest


class CharCodec:
    """Token id = Unicode code point; id 0 is EOS."""

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return (0,)

    @property
    def vocab_size(self) -> int:
        return 0xD800  # code points below the surrogates: every id decodes to a character

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in token_ids if i)

    def render_chat(
        self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool
    ) -> str:
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
        return text + ("assistant: " if add_generation_prompt else "")


class FakeEngine:
    def __init__(self, *, ready: bool = True, max_model_len: int = 256) -> None:
        self.ready = ready
        self.max_model_len = max_model_len
        self.cancelled: list[str] = []
        self._codec = CharCodec()

    @property
    def codec(self) -> CharCodec:
        return self._codec

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def submit(self, request: GenerationRequest) -> AsyncGenerator[GenerationOutput, None]:
        if not self.ready:
            raise EngineNotReadyError("Model is loading")
        return self._echo(request)

    async def _echo(self, request: GenerationRequest) -> AsyncGenerator[GenerationOutput, None]:
        prompt = request.prompt_token_ids
        n = request.sampling.max_tokens or self.max_model_len
        for i in range(n):
            await asyncio.sleep(0)
            token = prompt[i % len(prompt)]
            yield GenerationOutput(
                request_id=request.request_id,
                token_ids=(token,),
                text=chr(token),
                prompt_tokens=len(prompt),
                completion_tokens=i + 1,
                finish_reason="length" if i == n - 1 else None,
            )

    def cancel(self, request_id: str) -> None:
        self.cancelled.append(request_id)

    def stats(self) -> EngineStats:
        return EngineStats(
            ready=self.ready,
            not_ready_reason="" if self.ready else "Model is loading",
            num_running=0,
            num_waiting=0,
            kv_cache_usage=0.0,
            max_model_len=self.max_model_len,
        )

    async def load_adapter(self, name: str, path: str) -> None:
        raise NotImplementedError

    async def unload_adapter(self, name: str) -> None:
        raise NotImplementedError
