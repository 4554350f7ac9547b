"""Continuous batching on the engine thread.

Each `step` (1) takes new submissions, cancellations and adapter commands from the bridge,
(2) admits waiting requests in chunks of at most `max_prefill_tokens` padded prompt tokens,
prefills them together in one left-padded forward and merges their KV cache into the running
batch, and (3) runs one decode step for every running request as a single batched forward.
Requests therefore join and leave at every step.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from inference_server.engine import adapters as adapter_ops
from inference_server.engine.detokenizer import IncrementalDetokenizer
from inference_server.engine.kv_cache import batch_layers, new_batch_cache
from inference_server.engine.loader import LoadedModel
from inference_server.engine.sampling import RowState, sample_next_tokens
from inference_server.engine.thread_bridge import Delivery, Item, ThreadBridge
from inference_server.engine.types import FinishReason, GenerationOutput, GenerationRequest
from inference_server.settings import ServerSettings


@dataclass(eq=False)
class Sequence:
    """One request on its way through the batch."""

    request: GenerationRequest
    queue: asyncio.Queue[Item]
    row: RowState
    detok: IncrementalDetokenizer
    last_token: int = -1
    finish_reason: FinishReason | None = None
    queue_time_s: float | None = None


Events = list[tuple[Sequence, GenerationOutput]]


class BatchScheduler:
    """The running batch (sequences, their KV cache, attention mask and next positions)."""

    def __init__(
        self,
        loaded: LoadedModel,
        settings: ServerSettings,
        bridge: ThreadBridge[Sequence],
        observe: Callable[[int], None],
    ) -> None:
        self._loaded = loaded
        self._settings = settings
        self._bridge = bridge
        self._observe = observe  # tokens computed by each forward
        self._waiting: deque[Sequence] = deque()
        self._seqs: list[Sequence] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self._next_pos: torch.Tensor | None = None

    def kv_cells(self) -> int:
        """Rows times columns of the running batch's cache."""
        rows = len(self._seqs)
        mask = self._mask
        return rows * (mask.shape[1] if mask is not None and rows else 0)

    def requests_using(self, adapter: str) -> int:
        return sum(1 for s in (*self._seqs, *self._waiting) if s.request.adapter == adapter)

    def step(self) -> None:
        self._take_inbox()
        if not self._seqs and not self._waiting:
            self._bridge.sleep()
            return
        if self._loaded.governor is not None:
            self._loaded.governor.tick()
        events: Events = []
        admitted = self._admit()
        if admitted:
            self._prefill(admitted, events)
        if self._seqs:
            self._decode(events)
        self._deliver(events)

    def fail_all(self, exc: BaseException) -> None:
        """End every request with `exc` and empty the batch."""
        doomed = [*self._seqs, *self._waiting, *self._bridge.drain()]
        self._seqs, self._cache, self._mask, self._next_pos = [], None, None, None
        self._waiting.clear()
        self._bridge.deliver([(s.queue, exc) for s in doomed])

    def _take_inbox(self) -> None:
        taken = self._bridge.take()
        self._waiting.extend(taken.submitted)
        for command in taken.commands:
            self._bridge.run_command(command)
        cancelled = taken.cancelled
        if not cancelled:
            return
        events: Events = []
        for seq in [s for s in self._waiting if s.request.request_id in cancelled]:
            self._waiting.remove(seq)
            self._bridge.count(waiting=-1)
            seq.finish_reason = "abort"
            events.append((seq, self._output(seq, (), "")))
        for seq in self._seqs:
            if seq.request.request_id in cancelled and seq.finish_reason is None:
                seq.finish_reason = "abort"
                events.append((seq, self._output(seq, (), "")))
        self._drop_finished()
        self._deliver(events)

    def _admit(self) -> list[Sequence]:
        room = self._settings.max_batch_size - len(self._seqs)
        admitted: list[Sequence] = []
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
            self._bridge.count(waiting=-len(admitted), running=len(admitted))
            for seq in admitted:
                seq.queue_time_s = now - seq.request.arrival_time
        return admitted

    def _forward(
        self,
        seqs: list[Sequence],
        ids: torch.Tensor,
        mask: torch.Tensor,
        pos: torch.Tensor,
        cache: Any,
    ) -> torch.Tensor:
        loaded = self._loaded
        extra: dict[str, Any] = {}
        if loaded.adapters:
            extra["adapter_names"] = [s.request.adapter or adapter_ops.BASE_ADAPTER for s in seqs]
        if loaded.fast is not None and not loaded.adapters:
            logits: torch.Tensor = loaded.fast.forward(ids, pos, mask, batch_layers(cache))
            self._observe(int(mask[:, -ids.shape[1] :].sum()))
            return logits
        device = loaded.device
        out = loaded.model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=pos.to(device),
            use_cache=True,
            logits_to_keep=1,
            **{loaded.cache_kwarg: cache},
            **extra,
        )
        self._observe(int(mask[:, -ids.shape[1] :].sum()))
        last: torch.Tensor = out.logits[:, -1, :]
        return last

    def _prefill(self, seqs: list[Sequence], events: Events) -> None:
        lengths = [len(s.request.prompt_token_ids) for s in seqs]
        width = max(lengths)
        codec = self._loaded.codec
        ids = torch.full((len(seqs), width), codec.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, seq in enumerate(seqs):
            ids[i, width - lengths[i] :] = torch.tensor(seq.request.prompt_token_ids)
            mask[i, width - lengths[i] :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = new_batch_cache(self._loaded.num_layers)
        logits = self._forward(seqs, ids, mask, pos, cache)
        tokens = sample_next_tokens(logits, [s.row for s in seqs], codec.eos_token_ids)
        device = self._loaded.device
        self._join(seqs, cache, mask.to(device), torch.tensor(lengths, device=device))
        for seq, token in zip(seqs, tokens, strict=True):
            events.append((seq, self._accept(seq, token)))
        self._drop_finished()

    def _join(
        self, seqs: list[Sequence], new_cache: Any, mask: torch.Tensor, next_pos: torch.Tensor
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

    def _decode(self, events: Events) -> None:
        assert self._mask is not None and self._next_pos is not None
        seqs = self._seqs
        ids = torch.tensor([[s.last_token] for s in seqs], dtype=torch.long)
        ones = torch.ones((len(seqs), 1), dtype=self._mask.dtype, device=self._mask.device)
        mask = torch.cat([self._mask, ones], dim=1)
        logits = self._forward(seqs, ids, mask, self._next_pos.unsqueeze(1), self._cache)
        self._mask = mask
        self._next_pos = self._next_pos + 1
        eos = self._loaded.codec.eos_token_ids
        tokens = sample_next_tokens(logits, [s.row for s in seqs], eos)
        for seq, token in zip(seqs, tokens, strict=True):
            events.append((seq, self._accept(seq, token)))
        self._drop_finished()

    def _accept(self, seq: Sequence, token: int) -> GenerationOutput:
        row = seq.row
        params = seq.request.sampling
        row.token_ids.append(token)
        row.generated += 1
        seq.last_token = token
        text = seq.detok.push(token)
        max_model_len = self._loaded.max_model_len
        max_tokens = params.max_tokens if params.max_tokens is not None else max_model_len
        if (token in self._loaded.codec.eos_token_ids and not params.ignore_eos) or (
            seq.detok.stopped
        ):
            seq.finish_reason = "stop"
        elif row.generated >= max_tokens or len(row.token_ids) >= max_model_len:
            seq.finish_reason = "length"
        if seq.finish_reason is not None:
            text += seq.detok.flush()
        return self._output(seq, (token,), text)

    def _output(self, seq: Sequence, tokens: tuple[int, ...], text: str) -> GenerationOutput:
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
        self._bridge.count(running=-(len(self._seqs) - len(keep)))
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

    def _deliver(self, events: Events) -> None:
        batch: Delivery = [(s.queue, out) for s, out in events]
        self._bridge.deliver(batch)


def _left_pad(mask: torch.Tensor, width: int) -> torch.Tensor:
    if mask.shape[1] == width:
        return mask
    pad = mask.new_zeros((mask.shape[0], width - mask.shape[1]))
    return torch.cat([pad, mask], dim=1)
