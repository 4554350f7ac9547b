"""One request on its way through the running batch, and the outputs it produces.

Pure bookkeeping for the scheduler (scheduler.py): a request's state, a prompt being prefilled
chunk by chunk, what a step did (for the iteration observer), and how a sampled token becomes a
`GenerationOutput` (stop and length conditions).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import torch

from inference_server.engine.detokenizer import IncrementalDetokenizer
from inference_server.engine.loader import LoadedModel
from inference_server.engine.sampling import RowState
from inference_server.engine.thread_bridge import Item
from inference_server.engine.types import (
    FinishReason,
    GenerationOutput,
    GenerationRequest,
    IterationReport,
)


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
    solo: bool = False  # prefill alone: a group prefill with it failed


@dataclass
class PartialPrefill:
    """A prompt being prefilled alone, chunk by chunk, into its own cache."""

    seq: Sequence
    cache: Any
    done: int = 0  # prompt tokens in `cache`


@dataclass
class StepLog:
    """What one step did, for the iteration observer."""

    prefilled: list[tuple[str, int]] = field(default_factory=list)
    decoded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    tokens: int = 0

    def report(self) -> IterationReport:
        return IterationReport(
            tuple(self.prefilled), tuple(self.decoded), tuple(self.failed), self.tokens
        )


Events = list[tuple[Sequence, Item]]


def accept_token(seq: Sequence, token: int, loaded: LoadedModel) -> GenerationOutput:
    """Append a sampled token to `seq` and decide whether it finished (stop, length)."""
    row = seq.row
    params = seq.request.sampling
    row.token_ids.append(token)
    row.generated += 1
    seq.last_token = token
    text = seq.detok.push(token)
    max_model_len = loaded.max_model_len
    max_tokens = params.max_tokens if params.max_tokens is not None else max_model_len
    if (token in loaded.codec.eos_token_ids and not params.ignore_eos) or (seq.detok.stopped):
        seq.finish_reason = "stop"
    elif row.generated >= max_tokens or len(row.token_ids) >= max_model_len:
        seq.finish_reason = "length"
    if seq.finish_reason is not None:
        text += seq.detok.flush()
    return sequence_output(seq, (token,), text)


def sequence_output(seq: Sequence, tokens: tuple[int, ...], text: str) -> GenerationOutput:
    """An output of `seq` (its queue time only on the first one)."""
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


def left_pad(mask: torch.Tensor, width: int) -> torch.Tensor:
    """`mask` widened to `width` columns with zeros on the left."""
    if mask.shape[1] == width:
        return mask
    pad = mask.new_zeros((mask.shape[0], width - mask.shape[1]))
    return torch.cat([pad, mask], dim=1)
