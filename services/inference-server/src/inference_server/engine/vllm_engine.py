"""vLLM's async engine behind the same interface (GPU images, where `vllm` is installed).

vLLM is imported lazily: this module imports fine without it, and the factory picks this engine
only when `vllm` is importable. Continuous batching, paging and LoRA are vLLM's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from inference_server.engine import adapters as adapter_ops
from inference_server.engine.errors import (
    AdapterConflictError,
    AdapterNotFoundError,
    EngineNotReadyError,
    QueueFullError,
)
from inference_server.engine.hf_codec import HFTextCodec
from inference_server.engine.types import (
    AdapterInfo,
    EngineStats,
    FinishReason,
    GenerationOutput,
    GenerationRequest,
)
from inference_server.settings import ServerSettings

log = logging.getLogger(__name__)


class VllmEngine:
    def __init__(self, settings: ServerSettings, environ: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._environ = dict(environ or {})
        self._engine: Any = None
        self._codec: HFTextCodec | None = None
        self._not_ready_reason = "Model is loading"
        self._adapters: dict[str, tuple[AdapterInfo, int]] = {}
        self._next_lora_id = 1
        self._running = 0
        self._waiting = 0
        self._max_model_len = settings.max_model_len
        self._pending_aborts: set[asyncio.Future[Any]] = set()

    @property
    def codec(self) -> HFTextCodec:
        if self._codec is None:
            raise EngineNotReadyError(self._not_ready_reason)
        return self._codec

    async def start(self) -> None:
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        s = self._settings
        found = adapter_ops.discover_adapters(s.adapters_dir)
        if found and s.adapter_mode == "merged":
            raise AdapterConflictError("merged adapters are not supported by the vllm engine")
        args = AsyncEngineArgs(
            model=str(s.model),
            served_model_name=[s.model_name],
            dtype=s.dtype,
            max_num_seqs=s.max_batch_size,
            max_model_len=s.max_model_len or None,
            trust_remote_code=s.trust_remote_code,
            enable_lora=True,
            max_loras=max(1, len(found)),
        )
        self._engine = AsyncLLMEngine.from_engine_args(args)
        tokenizer = await self._engine.get_tokenizer()
        self._codec = HFTextCodec(tokenizer)
        config = await self._engine.get_model_config()
        self._max_model_len = int(config.max_model_len)
        for info in found:
            await self.load_adapter(info.name, info.path)
        log.info("Started vLLM engine model=%s adapters=%s", s.model, [a.name for a in found])

    async def stop(self) -> None:
        if self._engine is not None and hasattr(self._engine, "shutdown"):
            self._engine.shutdown()

    def submit(self, request: GenerationRequest) -> AsyncGenerator[GenerationOutput, None]:
        if self._engine is None:
            raise EngineNotReadyError(self._not_ready_reason)
        if request.adapter is not None and request.adapter not in self._adapters:
            raise AdapterNotFoundError(f"adapter {request.adapter!r} is not loaded")
        if self._waiting >= self._settings.max_queue:
            raise QueueFullError(f"{self._waiting} requests are already waiting; retry later")
        self._waiting += 1
        return self._stream(request)

    async def _stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationOutput, None]:
        from vllm import SamplingParams as VllmSampling
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        p = request.sampling
        params = VllmSampling(
            max_tokens=p.max_tokens,
            temperature=p.temperature,
            top_k=p.top_k if p.top_k > 0 else -1,
            top_p=p.top_p,
            repetition_penalty=p.repetition_penalty,
            seed=p.seed,
            stop=list(p.stop) or None,
            min_tokens=p.min_tokens,
            ignore_eos=p.ignore_eos,
        )
        lora = None
        if request.adapter is not None:
            info, lora_id = self._adapters[request.adapter]
            lora = LoRARequest(info.name, lora_id, info.path)
        prompt = TokensPrompt(prompt_token_ids=list(request.prompt_token_ids))
        sent_text, sent_tokens, started = 0, 0, False
        finished = False
        try:
            async for out in self._engine.generate(
                prompt, params, request.request_id, lora_request=lora
            ):
                choice = out.outputs[0]
                queue_time = None
                if not started:
                    started = True
                    self._waiting -= 1
                    self._running += 1
                    queue_time = time.monotonic() - request.arrival_time
                reason: FinishReason | None = None
                if out.finished:
                    reason = "length" if choice.finish_reason == "length" else "stop"
                    finished = True
                yield GenerationOutput(
                    request_id=request.request_id,
                    token_ids=tuple(choice.token_ids[sent_tokens:]),
                    text=choice.text[sent_text:],
                    prompt_tokens=len(request.prompt_token_ids),
                    completion_tokens=len(choice.token_ids),
                    finish_reason=reason,
                    queue_time_s=queue_time,
                )
                sent_text, sent_tokens = len(choice.text), len(choice.token_ids)
        finally:
            if started:
                self._running -= 1
            else:
                self._waiting -= 1
            if not finished:
                await self._engine.abort(request.request_id)

    def cancel(self, request_id: str) -> None:
        if self._engine is not None:
            task = asyncio.ensure_future(self._engine.abort(request_id))
            self._pending_aborts.add(task)
            task.add_done_callback(self._pending_aborts.discard)

    def stats(self) -> EngineStats:
        return EngineStats(
            ready=self._engine is not None,
            not_ready_reason="" if self._engine is not None else self._not_ready_reason,
            num_running=self._running,
            num_waiting=self._waiting,
            kv_cache_usage=0.0,
            max_model_len=self._max_model_len,
            adapters=tuple(info for info, _ in self._adapters.values()),
        )

    async def load_adapter(self, name: str, path: str) -> None:
        from vllm.lora.request import LoRARequest

        if name in self._adapters:
            raise AdapterConflictError(f"adapter {name!r} is already loaded")
        lora_id, self._next_lora_id = self._next_lora_id, self._next_lora_id + 1
        await self._engine.add_lora(LoRARequest(name, lora_id, path))
        self._adapters[name] = (AdapterInfo(name=name, path=path), lora_id)

    async def unload_adapter(self, name: str) -> None:
        if name not in self._adapters:
            raise AdapterNotFoundError(f"adapter {name!r} is not loaded")
        _, lora_id = self._adapters.pop(name)
        await self._engine.remove_lora(lora_id)
