"""vLLM's async engine (`AsyncLLM`) behind the same interface as the transformers engine.

vLLM is imported lazily: this module imports without it, and only `--engine vllm` (or `auto` on
a GPU where vLLM is installed) picks it. Continuous batching, paging and LoRA are vLLM's own;
tokenization and chat templates stay ours (the model's Hugging Face tokenizer), so both engines
see the same prompt ids. vLLM runs its engine core in child processes and takes a minute or more
to start on a CPU: the model loads in a background thread and /health answers 503 until then.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from pathlib import Path
from typing import Any

from inference_server.engine import adapters as adapter_ops
from inference_server.engine.chat_template import choose_chat_template
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
    SamplingParams,
)
from inference_server.engine.vllm_args import engine_arguments, read_vllm_section
from inference_server.settings import ServerSettings

log = logging.getLogger(__name__)

OPENMP_RUNTIME = "libiomp5.so"  # shipped in the venv by vLLM's CPU build (intel-openmp)


def preload_openmp(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to re-exec with when vLLM's CPU build needs its OpenMP runtime preloaded.

    vLLM's CPU kernels expect Intel's OpenMP loaded before torch's; None when nothing is to do
    (GPU build, or already preloaded)."""
    runtime = Path(sys.prefix) / "lib" / OPENMP_RUNTIME
    preloaded = environ.get("LD_PRELOAD", "")
    if not runtime.is_file() or str(runtime) in preloaded.split(":"):
        return None
    env = dict(environ)
    env["LD_PRELOAD"] = ":".join(p for p in (str(runtime), preloaded) if p)
    return env


def _vllm_sampling(p: SamplingParams) -> Any:
    from vllm import SamplingParams as VllmSampling
    from vllm.sampling_params import RequestOutputKind

    return VllmSampling(
        max_tokens=p.max_tokens,
        temperature=p.temperature,
        top_k=p.top_k if p.top_k > 0 else 0,
        top_p=p.top_p,
        repetition_penalty=p.repetition_penalty,
        seed=p.seed,
        stop=list(p.stop) or None,
        min_tokens=p.min_tokens,
        ignore_eos=p.ignore_eos,
        output_kind=RequestOutputKind.DELTA,
    )


def _stats_logger(sink: Callable[[Any, Any], None]) -> Any:
    """A vLLM stat logger class that hands each scheduler/iteration record to `sink`."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class _Sink(StatLoggerBase):  # type: ignore[misc]
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            pass

        def record(
            self,
            scheduler_stats: Any,
            iteration_stats: Any,
            mm_cache_stats: Any = None,
            engine_idx: int = 0,
        ) -> None:
            sink(scheduler_stats, iteration_stats)

        def log_engine_initialized(self) -> None:
            pass

    return _Sink


class VllmEngine:
    def __init__(self, settings: ServerSettings, environ: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._environ = dict(environ or {})
        self._engine: Any = None
        self._codec: HFTextCodec | None = None
        self._not_ready_reason = "Model is loading"
        self._adapters: dict[str, tuple[AdapterInfo, int]] = {}
        self._lora_enabled = False
        self._next_lora_id = 1
        self._running = 0
        self._waiting = 0
        self._kv_cache_usage = 0.0
        self._max_model_len = settings.max_model_len
        self._loader: asyncio.Task[None] | None = None
        self._pending_aborts: set[asyncio.Future[Any]] = set()
        self.iteration_observer: Callable[[float], None] | None = None

    @property
    def codec(self) -> HFTextCodec:
        if self._codec is None:
            raise EngineNotReadyError(self._not_ready_reason)
        return self._codec

    async def start(self) -> None:
        self._loader = asyncio.create_task(self._load(), name="vllm-load")

    async def wait_ready(self, seconds: float) -> None:
        if self._loader is not None:
            await asyncio.wait_for(asyncio.shield(self._loader), seconds)
        if self._engine is None:
            raise EngineNotReadyError(self._not_ready_reason)

    async def _load(self) -> None:
        s = self._settings
        try:
            found = adapter_ops.discover_adapters(s.adapters_dir)
            if found and s.adapter_mode == "merged":
                raise AdapterConflictError(
                    "merged adapters (adapter strengths) are not supported by the vllm engine; "
                    "use --adapter-mode separate or the transformers engine"
                )
            config = read_vllm_section(s.kaito_config_file)
            engine, codec = await asyncio.to_thread(self._create, found, config)
        except Exception as exc:
            self._not_ready_reason = f"Model failed to load: {exc}"
            log.exception("Failed to start the vLLM engine model=%s", s.model)
            return
        self._engine, self._codec = engine, codec
        self._lora_enabled = bool(engine.vllm_config.lora_config)
        self._max_model_len = int(engine.model_config.max_model_len)
        for info in found:
            await self._add_lora(info.name, info.path)
        log.info(
            "Started vLLM engine model=%s max_model_len=%d adapters=%s",
            s.model,
            self._max_model_len,
            [a.name for a in found],
        )

    def _create(self, found: list[AdapterInfo], config: dict[str, Any]) -> tuple[Any, HFTextCodec]:
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        s = self._settings
        known = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
        kwargs = engine_arguments(s, found, config, known)
        log.info("Starting vLLM engine args=%s", kwargs)
        engine = AsyncLLMEngine.from_engine_args(
            AsyncEngineArgs(**kwargs), stat_loggers=[_stats_logger(self._record)]
        )
        tokenizer = AutoTokenizer.from_pretrained(
            str(s.model), local_files_only=s.local_files_only, trust_remote_code=s.trust_remote_code
        )
        choose_chat_template(tokenizer, s)
        return engine, HFTextCodec(tokenizer)

    def _record(self, scheduler_stats: Any, iteration_stats: Any) -> None:
        if scheduler_stats is not None:
            self._kv_cache_usage = float(scheduler_stats.kv_cache_usage)
        if iteration_stats is not None and self.iteration_observer is not None:
            tokens = iteration_stats.num_prompt_tokens + iteration_stats.num_generation_tokens
            if tokens:
                self.iteration_observer(float(tokens))

    async def stop(self) -> None:
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
            log.info("Stopped vLLM engine")

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
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        lora = None
        if request.adapter is not None:
            info, lora_id = self._adapters[request.adapter]
            lora = LoRARequest(info.name, lora_id, info.path)
        prompt = TokensPrompt(prompt_token_ids=list(request.prompt_token_ids))
        generated, started, finished = 0, False, False
        try:
            async for out in self._engine.generate(
                prompt, _vllm_sampling(request.sampling), request.request_id, lora_request=lora
            ):
                choice = out.outputs[0]
                queue_time = None
                if not started:
                    started = True
                    self._waiting -= 1
                    self._running += 1
                    queue_time = time.monotonic() - request.arrival_time
                generated += len(choice.token_ids)
                reason: FinishReason | None = None
                if out.finished:
                    finished = True
                    reason = "length" if choice.finish_reason == "length" else "stop"
                    if choice.finish_reason == "abort":
                        reason = "abort"
                yield GenerationOutput(
                    request_id=request.request_id,
                    token_ids=tuple(choice.token_ids),
                    text=choice.text,
                    prompt_tokens=len(request.prompt_token_ids),
                    completion_tokens=generated,
                    finish_reason=reason,
                    queue_time_s=queue_time,
                )
        finally:
            if started:
                self._running -= 1
            else:
                self._waiting -= 1
            if not finished and self._engine is not None:
                await self._engine.abort(request.request_id)

    def cancel(self, request_id: str) -> None:
        if self._engine is not None:
            task = asyncio.ensure_future(self._engine.abort(request_id))
            self._pending_aborts.add(task)
            task.add_done_callback(self._pending_aborts.discard)

    def stats(self) -> EngineStats:
        ready = self._engine is not None
        return EngineStats(
            ready=ready,
            not_ready_reason="" if ready else self._not_ready_reason,
            num_running=self._running,
            num_waiting=self._waiting,
            kv_cache_usage=self._kv_cache_usage,
            max_model_len=self._max_model_len or 1,
            adapters=tuple(info for info, _ in self._adapters.values()),
        )

    async def load_adapter(self, name: str, path: str) -> None:
        if self._engine is None:
            raise EngineNotReadyError(self._not_ready_reason)
        if name in self._adapters:
            raise AdapterConflictError(f"adapter {name!r} is already loaded")
        if not self._lora_enabled:
            raise AdapterConflictError(
                "this vLLM engine started without LoRA support: start it with an adapter in "
                "the adapters dir or `enable-lora: true` in the vllm config to load adapters"
            )
        await self._add_lora(name, path)

    async def _add_lora(self, name: str, path: str) -> None:
        from vllm.lora.request import LoRARequest

        lora_id, self._next_lora_id = self._next_lora_id, self._next_lora_id + 1
        try:
            await self._engine.add_lora(LoRARequest(name, lora_id, path))
        except Exception as exc:
            raise AdapterConflictError(f"vLLM could not load adapter {name!r}: {exc}") from exc
        self._adapters[name] = (AdapterInfo(name=name, path=path), lora_id)
        log.info("Loaded adapter name=%s path=%s", name, path)

    async def unload_adapter(self, name: str) -> None:
        if name not in self._adapters:
            raise AdapterNotFoundError(f"adapter {name!r} is not loaded")
        _, lora_id = self._adapters.pop(name)
        await self._engine.remove_lora(lora_id)
        log.info("Unloaded adapter name=%s", name)


def reexec_with_openmp() -> None:
    """Re-run `python -m inference_server` with vLLM's OpenMP runtime preloaded, when needed.

    Only for the server's own process (never inside tests or another program)."""
    if not sys.argv or not sys.argv[0].endswith(os.path.join("inference_server", "__main__.py")):
        return
    env = preload_openmp(os.environ)
    if env is None:
        return
    log.info("Re-executing with LD_PRELOAD=%s for vLLM's CPU kernels", env["LD_PRELOAD"])
    os.execve(sys.executable, [sys.executable, "-m", "inference_server", *sys.argv[1:]], env)
