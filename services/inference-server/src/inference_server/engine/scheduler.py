"""Continuous batching on the engine thread.

Each `step` (1) takes new submissions, cancellations and adapter commands from the bridge,
(2) spends at most `max_prefill_tokens` prompt tokens on prefill: a group of waiting prompts
prefilled together in one left-padded forward, or the next chunk of a prompt that is prefilled
alone (one longer than the budget is prefilled chunk by chunk into its own cache, one chunk per
step), and (3) runs one decode step for every running request as a single batched forward.
A prompt whose prefill is complete merges its KV cache into the running batch: requests join and
leave at every step, and a long prompt holds the running streams up for one chunk at a time.

A failing step fails only the requests it concerns: a group prefill that fails is retried one
request at a time; after a failed decode (the cache rewound) each request is tried alone on a
copy of its cache, those that still fail end with the error and the others decode on.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from inference_server.engine import adapters as adapter_ops
from inference_server.engine.kv_cache import (
    batch_layers,
    cache_lengths,
    copy_cache_rows,
    new_batch_cache,
    rewind_cache,
)
from inference_server.engine.loader import LoadedModel
from inference_server.engine.sampling import RowState, sample_next_tokens
from inference_server.engine.sequence import (
    Events,
    PartialPrefill,
    Sequence,
    StepLog,
    accept_token,
    left_pad,
    sequence_output,
)
from inference_server.engine.thread_bridge import Delivery, ThreadBridge
from inference_server.engine.types import (
    IterationReport,
)
from inference_server.settings import ServerSettings

log = logging.getLogger(__name__)


class BatchScheduler:
    """The running batch (sequences, their KV cache, attention mask and next positions)."""

    def __init__(
        self,
        loaded: LoadedModel,
        settings: ServerSettings,
        bridge: ThreadBridge[Sequence],
        observe: Callable[[IterationReport], None],
    ) -> None:
        self._loaded = loaded
        self._settings = settings
        self._bridge = bridge
        self._observe = observe  # called after every step with what it did
        self._log = StepLog()
        self._waiting: deque[Sequence] = deque()
        self._partial: PartialPrefill | None = None
        self._seqs: list[Sequence] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self._next_pos: torch.Tensor | None = None

    def kv_cells(self) -> int:
        """Rows times columns of the running batch's cache."""
        rows = len(self._seqs)
        mask = self._mask
        partial = self._partial.done if self._partial is not None else 0
        return rows * (mask.shape[1] if mask is not None and rows else 0) + partial

    def requests_using(self, adapter: str) -> int:
        return sum(1 for s in self._all_admitted() if s.request.adapter == adapter)

    def step(self) -> None:
        self._take_inbox()
        if not self._seqs and not self._waiting and self._partial is None:
            self._bridge.sleep()
            return
        if self._loaded.governor is not None:
            self._loaded.governor.tick()
        self._log = StepLog()
        events: Events = []
        self._prefill_step(events)
        if self._seqs:
            self._decode(events)
        self._deliver(events)
        self._observe(self._log.report())

    def fail_all(self, exc: BaseException) -> None:
        """End every request with `exc` and empty the batch."""
        doomed = [*self._all_admitted(), *self._bridge.drain()]
        self._seqs, self._cache, self._mask, self._next_pos = [], None, None, None
        self._waiting.clear()
        self._partial = None
        self._bridge.deliver([(s.queue, exc) for s in doomed])

    def _all_admitted(self) -> list[Sequence]:
        partial = [self._partial.seq] if self._partial is not None else []
        return [*self._seqs, *partial, *self._waiting]

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
            events.append((seq, sequence_output(seq, (), "")))
        partial = self._partial
        if partial is not None and partial.seq.request.request_id in cancelled:
            self._partial = None
            self._bridge.count(running=-1)
            partial.seq.finish_reason = "abort"
            events.append((partial.seq, sequence_output(partial.seq, (), "")))
        for seq in self._seqs:
            if seq.request.request_id in cancelled and seq.finish_reason is None:
                seq.finish_reason = "abort"
                events.append((seq, sequence_output(seq, (), "")))
        self._drop_finished()
        self._deliver(events)

    def _prefill_step(self, events: Events) -> None:
        """Spend this step's prefill budget: the next chunk of the prompt prefilled alone, or
        else newly admitted prompts (alone when one, together in one forward when several)."""
        if self._partial is None:
            admitted = self._admit()
            if len(admitted) > 1:
                self._prefill_group(admitted, events)
                return
            if not admitted:
                return
            self._partial = PartialPrefill(admitted[0], new_batch_cache(self._loaded.num_layers))
        self._prefill_chunk(self._partial, events)

    def _admit(self) -> list[Sequence]:
        """Waiting requests whose padded prompts fit the prefill budget together; one alone when
        its prompt is longer than the budget or it must be prefilled alone."""
        budget = self._settings.max_prefill_tokens
        room = self._settings.max_batch_size - len(self._seqs)
        admitted: list[Sequence] = []
        longest = 0
        while self._waiting and len(admitted) < room:
            head = self._waiting[0]
            nxt = len(head.request.prompt_token_ids)
            width = max(longest, nxt)
            if admitted and (head.solo or width * (len(admitted) + 1) > budget):
                break
            longest = width
            admitted.append(self._waiting.popleft())
            if head.solo or nxt > budget:
                break
        if admitted:
            now = time.monotonic()
            self._bridge.count(waiting=-len(admitted), running=len(admitted))
            for seq in admitted:
                if seq.queue_time_s is None:
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
            self._log.tokens += int(mask[:, -ids.shape[1] :].sum())
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
        self._log.tokens += int(mask[:, -ids.shape[1] :].sum())
        last: torch.Tensor = out.logits[:, -1, :]
        return last

    def _prefill_group(self, seqs: list[Sequence], events: Events) -> None:
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
        try:
            logits = self._forward(seqs, ids, mask, pos, cache)
            tokens = sample_next_tokens(logits, [s.row for s in seqs], codec.eos_token_ids)
        except Exception as exc:
            log.warning(
                "Prefill of %d requests together failed (%s: %s); retrying each alone so that "
                "only the failing ones end",
                len(seqs),
                type(exc).__name__,
                exc,
            )
            for seq in reversed(seqs):
                seq.solo = True
                self._waiting.appendleft(seq)
            self._bridge.count(waiting=len(seqs), running=-len(seqs))
            return
        for seq, n in zip(seqs, lengths, strict=True):
            self._log.prefilled.append((seq.request.request_id, n))
        device = self._loaded.device
        self._join(seqs, cache, mask.to(device), torch.tensor(lengths, device=device))
        for seq, token in zip(seqs, tokens, strict=True):
            events.append((seq, accept_token(seq, token, self._loaded)))
        self._drop_finished()

    def _prefill_chunk(self, partial: PartialPrefill, events: Events) -> None:
        """Prefill the next `max_prefill_tokens` of a prompt; join the batch after the last."""
        seq = partial.seq
        prompt = seq.request.prompt_token_ids
        start = partial.done
        end = min(len(prompt), start + self._settings.max_prefill_tokens)
        ids = torch.tensor([prompt[start:end]], dtype=torch.long)
        mask = torch.ones((1, end), dtype=torch.long)
        pos = torch.arange(start, end, dtype=torch.long).unsqueeze(0)
        eos = self._loaded.codec.eos_token_ids
        try:
            logits = self._forward([seq], ids, mask, pos, partial.cache)
            tokens = sample_next_tokens(logits, [seq.row], eos) if end == len(prompt) else []
        except Exception as exc:
            log.warning(
                "Prefill failed request_id=%s prompt_tokens=%d (%s: %s); ending this request",
                seq.request.request_id,
                len(prompt),
                type(exc).__name__,
                exc,
            )
            self._partial = None
            self._bridge.count(running=-1)
            seq.finish_reason = "abort"
            self._fail(seq, exc, events)
            return
        partial.done = end
        self._log.prefilled.append((seq.request.request_id, end - start))
        if not tokens:
            return
        self._partial = None
        device = self._loaded.device
        self._join([seq], partial.cache, mask.to(device), torch.tensor([end], device=device))
        events.append((seq, accept_token(seq, tokens[0], self._loaded)))
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
        self._mask = torch.cat([left_pad(self._mask, width), left_pad(mask, width)])
        self._next_pos = torch.cat([self._next_pos, next_pos])
        self._seqs.extend(seqs)

    def _decode(self, events: Events) -> None:
        lengths = cache_lengths(self._cache)
        try:
            tokens = self._decode_batch()
        except Exception as exc:
            rewind_cache(self._cache, lengths)
            tokens = self._decode_isolating(exc, events)
        for seq, token in zip(self._seqs, tokens, strict=True):
            events.append((seq, accept_token(seq, token, self._loaded)))
            self._log.decoded.append(seq.request.request_id)
        self._drop_finished()

    def _decode_batch(self) -> list[int]:
        """One batched decode forward and sampling; the batch's state moves on only if both
        succeed (the cache may hold a half-written column otherwise: rewind it)."""
        assert self._mask is not None and self._next_pos is not None
        seqs = self._seqs
        ids = torch.tensor([[s.last_token] for s in seqs], dtype=torch.long)
        ones = torch.ones((len(seqs), 1), dtype=self._mask.dtype, device=self._mask.device)
        mask = torch.cat([self._mask, ones], dim=1)
        logits = self._forward(seqs, ids, mask, self._next_pos.unsqueeze(1), self._cache)
        tokens = sample_next_tokens(logits, [s.row for s in seqs], self._loaded.codec.eos_token_ids)
        self._mask = mask
        self._next_pos = self._next_pos + 1
        return tokens

    def _decode_isolating(self, exc: Exception, events: Events) -> list[int]:
        """After a failed batched decode: try each request alone, end those that still fail and
        decode the others again together (all of them end if none fails alone, or if the retry
        fails too)."""
        culprits: list[tuple[Sequence, Exception]] = []
        for i, seq in enumerate(self._seqs):
            try:
                self._probe(i)
            except Exception as err:
                culprits.append((seq, err))
        log.warning(
            "A decode step of %d requests failed (%s: %s); %d fail alone and end with the error: "
            "%s",
            len(self._seqs),
            type(exc).__name__,
            exc,
            len(culprits),
            [s.request.request_id for s, _ in culprits] or "all of them (none fails alone)",
        )
        if not culprits:
            culprits = [(seq, exc) for seq in self._seqs]
        for culprit, error in culprits:
            culprit.finish_reason = "abort"
            self._fail(culprit, error, events)
        self._drop_finished()
        if not self._seqs:
            return []
        lengths = cache_lengths(self._cache)
        try:
            return self._decode_batch()
        except Exception as again:
            rewind_cache(self._cache, lengths)
            log.exception("Decode failed again without the failing requests; ending them all")
            for seq in self._seqs:
                seq.finish_reason = "abort"
                self._fail(seq, again, events)
            self._drop_finished()
            return []

    def _probe(self, i: int) -> None:
        """Decode row `i` alone on a copy of its cache and sampler (nothing of the batch moves)."""
        assert self._mask is not None and self._next_pos is not None
        seq = self._seqs[i]
        rows = torch.tensor([i], dtype=torch.long, device=self._mask.device)
        cache = copy_cache_rows(self._cache, rows)
        ones = self._mask.new_ones((1, 1))
        mask = torch.cat([self._mask[i : i + 1], ones], dim=1)
        ids = torch.tensor([[seq.last_token]], dtype=torch.long)
        logits = self._forward([seq], ids, mask, self._next_pos[i : i + 1].unsqueeze(1), cache)
        row = RowState(seq.row.params, list(seq.row.token_ids), seq.row.generated)
        if seq.row.generator is not None:
            row.generator = torch.Generator().set_state(seq.row.generator.get_state())
        sample_next_tokens(logits, [row], self._loaded.codec.eos_token_ids)

    def _fail(self, seq: Sequence, exc: Exception, events: Events) -> None:
        events.append((seq, exc))
        self._log.failed.append(seq.request.request_id)

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
