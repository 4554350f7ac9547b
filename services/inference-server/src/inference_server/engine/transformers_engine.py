"""The default engine: transformers models with continuous batching on CPU or GPU.

A dedicated thread owns the model. Each iteration it (1) takes new submissions, cancellations and
adapter commands, (2) prefills newly admitted requests together in one left-padded forward and
merges their KV cache into the running batch, and (3) runs one decode step for every running
request as a single batched forward. Requests therefore join and leave at every step; the asyncio
loop only ever waits on queues fed with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from inference_server.engine import adapters as adapter_ops
from inference_server.engine.cpu_threads import CpuSource, ThreadGovernor
from inference_server.engine.detokenizer import IncrementalDetokenizer
from inference_server.engine.errors import (
    AdapterConflictError,
    AdapterNotFoundError,
    EngineNotReadyError,
    QueueFullError,
)
from inference_server.engine.fast_llama import FastLlamaDecoder, build_fast_decoder
from inference_server.engine.hf_codec import HFTextCodec
from inference_server.engine.kv_cache import batch_layers, new_batch_cache
from inference_server.engine.sampling import RowState, sample_next_tokens
from inference_server.engine.types import (
    AdapterInfo,
    EngineStats,
    FinishReason,
    GenerationOutput,
    GenerationRequest,
)
from inference_server.settings import ServerSettings

log = logging.getLogger(__name__)

_Item = GenerationOutput | BaseException


@dataclass(eq=False)
class _Sequence:
    request: GenerationRequest
    queue: asyncio.Queue[_Item]
    row: RowState
    detok: IncrementalDetokenizer
    last_token: int = -1
    finish_reason: FinishReason | None = None
    queue_time_s: float | None = None


@dataclass
class _Command:
    action: Callable[[], None]
    future: asyncio.Future[None]


@dataclass
class _Inbox:
    """Everything other threads hand to the model thread, behind one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)
    submitted: list[_Sequence] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)
    commands: list[_Command] = field(default_factory=list)
    waiting: int = 0  # submitted but not yet admitted (read by submit for the 429 bound)
    running: int = 0


class TransformersEngine:
    def __init__(
        self,
        settings: ServerSettings,
        environ: Mapping[str, str] | None = None,
        cpu_source: CpuSource | None = None,
    ) -> None:
        self._settings = settings
        self._cpu_source = cpu_source
        self._governor: ThreadGovernor | None = None
        self._environ = dict(environ or {})
        self._inbox = _Inbox()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._ready = threading.Event()
        self._not_ready_reason = "Model is loading"
        self._model: Any = None
        self._codec: HFTextCodec | None = None
        self._max_model_len = settings.max_model_len
        self._num_layers = 0
        self._adapters: dict[str, AdapterInfo] = {}
        self._merged = False
        # Model-thread state: the running batch.
        self._waiting: deque[_Sequence] = deque()
        self._seqs: list[_Sequence] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self._next_pos: torch.Tensor | None = None
        self._device = torch.device("cpu")
        self._cache_kwarg = "past_key_values"
        self._fast: FastLlamaDecoder | None = None
        self.iteration_observer: Callable[[int], None] | None = None

    # -- interface -------------------------------------------------------------------------
    @property
    def codec(self) -> HFTextCodec:
        if self._codec is None:
            raise EngineNotReadyError(self._not_ready_reason)
        return self._codec

    @property
    def cpu_threads(self) -> int:
        """torch's CPU threads as last set by the engine."""
        return self._governor.threads if self._governor is not None else torch.get_num_threads()

    @property
    def uses_fast_path(self) -> bool:
        """True while batches run the lean Llama forward (no adapter loaded, known model)."""
        return self._fast is not None and not self._adapters

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._thread.start()

    async def wait_ready(self, seconds: float) -> None:
        ok = await asyncio.to_thread(self._ready.wait, seconds)
        if not ok or self._model is None:
            raise EngineNotReadyError(self._not_ready_reason)

    async def stop(self) -> None:
        self._stopping = True
        self._inbox.wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
        log.info("Stopped engine")

    def submit(self, request: GenerationRequest) -> AsyncGenerator[GenerationOutput, None]:
        codec = self.codec
        if request.adapter is not None and request.adapter not in self._adapters:
            raise AdapterNotFoundError(f"adapter {request.adapter!r} is not loaded")
        assert self._loop is not None
        seq = _Sequence(
            request=request,
            queue=asyncio.Queue(),
            row=RowState(request.sampling, list(request.prompt_token_ids), 0),
            detok=IncrementalDetokenizer(codec, request.prompt_token_ids, request.sampling.stop),
        )
        inbox = self._inbox
        with inbox.lock:
            if inbox.waiting >= self._settings.max_queue:
                raise QueueFullError(
                    f"{inbox.waiting} requests are already waiting (max_queue "
                    f"{self._settings.max_queue}); retry later"
                )
            inbox.waiting += 1
            inbox.submitted.append(seq)
        inbox.wake.set()
        return self._stream(seq)

    async def _stream(self, seq: _Sequence) -> AsyncGenerator[GenerationOutput, None]:
        finished = False
        try:
            while True:
                item = await seq.queue.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finished
                yield item
                if finished:
                    return
        finally:
            if not finished:
                self.cancel(seq.request.request_id)

    def cancel(self, request_id: str) -> None:
        with self._inbox.lock:
            self._inbox.cancelled.add(request_id)
        self._inbox.wake.set()

    def stats(self) -> EngineStats:
        rows = len(self._seqs)
        columns = self._mask.shape[1] if self._mask is not None and rows else 0
        capacity = max(1, self._settings.max_batch_size * max(1, self._max_model_len))
        with self._inbox.lock:
            waiting, running = self._inbox.waiting, self._inbox.running
        return EngineStats(
            ready=self._model is not None,
            not_ready_reason="" if self._model is not None else self._not_ready_reason,
            num_running=running,
            num_waiting=waiting,
            kv_cache_usage=min(1.0, rows * columns / capacity),
            max_model_len=self._max_model_len,
            adapters=tuple(self._adapters.values()),
        )

    async def load_adapter(self, name: str, path: str) -> None:
        if self._merged:
            raise AdapterConflictError("adapters are merged into the base model (merged mode)")
        if name in self._adapters:
            raise AdapterConflictError(f"adapter {name!r} is already loaded")
        info = AdapterInfo(name=name, path=path)

        def action() -> None:
            self._model = adapter_ops.attach_adapter(self._model, info)
            self._model.eval()
            self._adapters[name] = info
            log.info("Loaded adapter name=%s path=%s", name, path)

        await self._command(action)

    async def unload_adapter(self, name: str) -> None:
        if name not in self._adapters:
            raise AdapterNotFoundError(f"adapter {name!r} is not loaded")

        def action() -> None:
            users = [s for s in (*self._seqs, *self._waiting) if s.request.adapter == name]
            if users:
                raise AdapterConflictError(f"adapter {name!r} has {len(users)} requests in flight")
            self._model = adapter_ops.detach_adapter(self._model, name)
            del self._adapters[name]
            log.info("Unloaded adapter name=%s", name)

        await self._command(action)

    async def _command(self, action: Callable[[], None]) -> None:
        if self._model is None:
            raise EngineNotReadyError(self._not_ready_reason)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._inbox.lock:
            self._inbox.commands.append(_Command(action, future))
        self._inbox.wake.set()
        await future

    # -- model thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._load()
        except Exception as exc:
            self._not_ready_reason = f"Model failed to load: {exc}"
            log.exception("Failed to load model path=%s", self._settings.model)
            self._ready.set()
            return
        self._ready.set()
        with torch.inference_mode():
            while not self._stopping:
                try:
                    self._iterate()
                except Exception as exc:
                    log.exception("Engine step failed; aborting the running batch")
                    self._fail_all(exc)
        self._fail_all(EngineNotReadyError("engine stopped"))

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        s = self._settings
        device = s.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype: Any = "auto" if s.dtype == "auto" else getattr(torch, s.dtype)
        if s.dtype == "auto" and device == "cpu":
            dtype = torch.float32
        start = time.monotonic()
        common = {"local_files_only": s.local_files_only, "trust_remote_code": s.trust_remote_code}
        tokenizer = AutoTokenizer.from_pretrained(str(s.model), **common)
        if s.chat_template is not None:
            tokenizer.chat_template = s.chat_template.read_text()
        model = AutoModelForCausalLM.from_pretrained(str(s.model), dtype=dtype, **common)
        model.to(device).eval()  # type: ignore[arg-type]
        config = model.config.get_text_config()
        # transformers 5.2x renamed `past_key_values` to `cache`; older releases know the former.
        params = inspect.signature(type(model).forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._num_layers = int(config.num_hidden_layers)
        if not self._max_model_len:
            self._max_model_len = int(getattr(config, "max_position_embeddings", 2048))
        eos = model.generation_config.eos_token_id
        extra = [eos] if isinstance(eos, int) else list(eos or [])
        self._codec = HFTextCodec(tokenizer, extra)
        found = adapter_ops.discover_adapters(s.adapters_dir)
        if found and s.adapter_mode == "merged":
            model = adapter_ops.merge_adapters(model, found, self._environ).eval()
            self._merged = True
        # Built from the base weights (merged ones in merged mode). Separate adapters wrap the base
        # projections without changing them, so it stays valid; batches run it only while no
        # adapter is loaded.
        if s.fast_decode:
            self._fast = build_fast_decoder(model)
        if not self._merged:
            for info in found:
                model = adapter_ops.attach_adapter(model, info).eval()
                self._adapters[info.name] = info
        self._device = torch.device(device)
        if self._device.type == "cpu":
            if s.cpu_threads:
                torch.set_num_threads(s.cpu_threads)
            else:
                self._governor = ThreadGovernor(
                    torch.get_num_threads(), torch.set_num_threads, self._cpu_source
                )
        self._model = model
        log.info(
            "Loaded model path=%s device=%s dtype=%s layers=%d max_model_len=%d adapters=%s "
            "seconds=%.1f",
            s.model,
            device,
            model.dtype,
            self._num_layers,
            self._max_model_len,
            [a.name for a in found],
            time.monotonic() - start,
        )

    def _iterate(self) -> None:
        self._take_inbox()
        if not self._seqs and not self._waiting:
            self._inbox.wake.wait()
            self._inbox.wake.clear()
            return
        if self._governor is not None:
            self._governor.tick()
        events: list[tuple[_Sequence, GenerationOutput]] = []
        admitted = self._admit()
        if admitted:
            self._prefill(admitted, events)
        if self._seqs:
            self._decode(events)
        self._deliver(events)

    def _take_inbox(self) -> None:
        inbox = self._inbox
        with inbox.lock:
            submitted, inbox.submitted = inbox.submitted, []
            cancelled, inbox.cancelled = inbox.cancelled, set()
            commands, inbox.commands = inbox.commands, []
            inbox.wake.clear()
        self._waiting.extend(submitted)
        for command in commands:
            self._run_command(command)
        if not cancelled:
            return
        events: list[tuple[_Sequence, GenerationOutput]] = []
        for seq in [s for s in self._waiting if s.request.request_id in cancelled]:
            self._waiting.remove(seq)
            with inbox.lock:
                inbox.waiting -= 1
            seq.finish_reason = "abort"
            events.append((seq, self._output(seq, (), "")))
        for seq in self._seqs:
            if seq.request.request_id in cancelled and seq.finish_reason is None:
                seq.finish_reason = "abort"
                events.append((seq, self._output(seq, (), "")))
        self._drop_finished()
        self._deliver(events)

    def _run_command(self, command: _Command) -> None:
        loop = self._loop
        assert loop is not None
        try:
            command.action()
        except Exception as exc:
            error = exc
            loop.call_soon_threadsafe(_settle, command.future, error)
        else:
            loop.call_soon_threadsafe(_settle, command.future, None)

    def _admit(self) -> list[_Sequence]:
        room = self._settings.max_batch_size - len(self._seqs)
        admitted: list[_Sequence] = []
        longest = 0
        while self._waiting and len(admitted) < room:
            nxt = len(self._waiting[0].request.prompt_token_ids)
            width = max(longest, nxt)
            if admitted and width * (len(admitted) + 1) > self._settings.max_prefill_tokens:
                break
            longest = width
            admitted.append(self._waiting.popleft())
        if admitted:
            now = time.monotonic()
            with self._inbox.lock:
                self._inbox.waiting -= len(admitted)
                self._inbox.running += len(admitted)
            for seq in admitted:
                seq.queue_time_s = now - seq.request.arrival_time
        return admitted

    def _forward(
        self,
        seqs: list[_Sequence],
        ids: torch.Tensor,
        mask: torch.Tensor,
        pos: torch.Tensor,
        cache: Any,
    ) -> torch.Tensor:
        extra: dict[str, Any] = {}
        if self._adapters:
            extra["adapter_names"] = [s.request.adapter or adapter_ops.BASE_ADAPTER for s in seqs]
        if self._fast is not None and not self._adapters:
            logits: torch.Tensor = self._fast.forward(ids, pos, mask, batch_layers(cache))
            if self.iteration_observer is not None:
                self.iteration_observer(int(mask[:, -ids.shape[1] :].sum()))
            return logits
        out = self._model(
            input_ids=ids.to(self._device),
            attention_mask=mask.to(self._device),
            position_ids=pos.to(self._device),
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kwarg: cache},
            **extra,
        )
        if self.iteration_observer is not None:
            self.iteration_observer(int(mask[:, -ids.shape[1] :].sum()))
        last: torch.Tensor = out.logits[:, -1, :]
        return last

    def _prefill(
        self, seqs: list[_Sequence], events: list[tuple[_Sequence, GenerationOutput]]
    ) -> None:
        lengths = [len(s.request.prompt_token_ids) for s in seqs]
        width = max(lengths)
        assert self._codec is not None
        ids = torch.full((len(seqs), width), self._codec.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, seq in enumerate(seqs):
            ids[i, width - lengths[i] :] = torch.tensor(seq.request.prompt_token_ids)
            mask[i, width - lengths[i] :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = new_batch_cache(self._num_layers)
        logits = self._forward(seqs, ids, mask, pos, cache)
        tokens = sample_next_tokens(logits, [s.row for s in seqs], self.codec.eos_token_ids)
        self._join(seqs, cache, mask.to(self._device), torch.tensor(lengths, device=self._device))
        for seq, token in zip(seqs, tokens, strict=True):
            events.append((seq, self._accept(seq, token)))
        self._drop_finished()

    def _join(
        self, seqs: list[_Sequence], new_cache: Any, mask: torch.Tensor, next_pos: torch.Tensor
    ) -> None:
        """Merge a freshly prefilled batch and its cache into the running one."""
        if not self._seqs or self._cache is None or self._mask is None:
            self._cache, self._mask, self._next_pos = new_cache, mask, next_pos
            self._seqs = list(seqs)
            return
        assert self._next_pos is not None
        for mine, theirs in zip(batch_layers(self._cache), batch_layers(new_cache), strict=True):
            mine.merge(theirs)
        width = max(self._mask.shape[1], mask.shape[1])
        self._mask = torch.cat([_left_pad(self._mask, width), _left_pad(mask, width)])
        self._next_pos = torch.cat([self._next_pos, next_pos])
        self._seqs.extend(seqs)

    def _decode(self, events: list[tuple[_Sequence, GenerationOutput]]) -> None:
        assert self._mask is not None and self._next_pos is not None
        seqs = self._seqs
        ids = torch.tensor([[s.last_token] for s in seqs], dtype=torch.long)
        ones = torch.ones((len(seqs), 1), dtype=self._mask.dtype, device=self._mask.device)
        mask = torch.cat([self._mask, ones], dim=1)
        logits = self._forward(seqs, ids, mask, self._next_pos.unsqueeze(1), self._cache)
        self._mask = mask
        self._next_pos = self._next_pos + 1
        tokens = sample_next_tokens(logits, [s.row for s in seqs], self.codec.eos_token_ids)
        for seq, token in zip(seqs, tokens, strict=True):
            events.append((seq, self._accept(seq, token)))
        self._drop_finished()

    def _accept(self, seq: _Sequence, token: int) -> GenerationOutput:
        row = seq.row
        params = seq.request.sampling
        row.token_ids.append(token)
        row.generated += 1
        seq.last_token = token
        text = seq.detok.push(token)
        if (token in self.codec.eos_token_ids and not params.ignore_eos) or seq.detok.stopped:
            seq.finish_reason = "stop"
        elif row.generated >= params.max_tokens or len(row.token_ids) >= self._max_model_len:
            seq.finish_reason = "length"
        if seq.finish_reason is not None:
            text += seq.detok.flush()
        return self._output(seq, (token,), text)

    def _output(self, seq: _Sequence, tokens: tuple[int, ...], text: str) -> GenerationOutput:
        first = seq.row.generated <= 1 or seq.finish_reason == "abort"
        return GenerationOutput(
            request_id=seq.request.request_id,
            token_ids=tokens,
            text=text,
            prompt_tokens=len(seq.request.prompt_token_ids),
            completion_tokens=seq.row.generated,
            finish_reason=seq.finish_reason,
            queue_time_s=seq.queue_time_s if first else None,
        )

    def _drop_finished(self) -> None:
        keep = [i for i, s in enumerate(self._seqs) if s.finish_reason is None]
        if len(keep) == len(self._seqs):
            return
        with self._inbox.lock:
            self._inbox.running -= len(self._seqs) - len(keep)
        if not keep:
            self._seqs, self._cache, self._mask, self._next_pos = [], None, None, None
            return
        assert self._mask is not None and self._next_pos is not None
        rows = torch.tensor(keep, dtype=torch.long, device=self._mask.device)
        self._seqs = [self._seqs[i] for i in keep]
        self._mask = self._mask.index_select(0, rows)
        self._next_pos = self._next_pos.index_select(0, rows)
        layers = batch_layers(self._cache)
        for layer in layers:
            layer.select_rows(rows)
        padding = int(self._mask.argmax(dim=1).min())
        if padding > 0:
            self._mask = self._mask[:, padding:]
            for layer in layers:
                layer.trim_left(padding)

    def _deliver(self, events: list[tuple[_Sequence, GenerationOutput]]) -> None:
        if not events or self._loop is None:
            return
        batch: list[tuple[asyncio.Queue[_Item], _Item]] = [(s.queue, out) for s, out in events]
        self._loop.call_soon_threadsafe(_put_all, batch)

    def _fail_all(self, exc: BaseException) -> None:
        doomed = [*self._seqs, *self._waiting]
        with self._inbox.lock:
            doomed += self._inbox.submitted
            self._inbox.submitted = []
            self._inbox.waiting = 0
            self._inbox.running = 0
        self._seqs, self._cache, self._mask, self._next_pos = [], None, None, None
        self._waiting.clear()
        if self._loop is not None and doomed and not self._loop.is_closed():
            batch: list[tuple[asyncio.Queue[_Item], _Item]] = [(s.queue, exc) for s in doomed]
            self._loop.call_soon_threadsafe(_put_all, batch)


def _left_pad(mask: torch.Tensor, width: int) -> torch.Tensor:
    if mask.shape[1] == width:
        return mask
    pad = mask.new_zeros((mask.shape[0], width - mask.shape[1]))
    return torch.cat([pad, mask], dim=1)


def _put_all(batch: list[tuple[asyncio.Queue[_Item], _Item]]) -> None:
    for queue, item in batch:
        queue.put_nowait(item)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
