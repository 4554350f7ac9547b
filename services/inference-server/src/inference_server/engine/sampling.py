"""Per-request token selection over one batched logits tensor.

Rows that decode greedily with no penalties share one `argmax` (those that may not emit EOS yet
share one more over a copy with the EOS columns masked); the others are processed row by row in
transformers' order (repetition penalty, temperature, top-k, top-p) and drawn with the request's
own generator, so a seeded request is reproducible whatever else is in the batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from inference_server.engine.types import SamplingParams


@dataclass
class RowState:
    """What the sampler needs about one running request."""

    params: SamplingParams
    token_ids: list[int]  # prompt + generated so far (repetition penalty looks at both)
    generated: int
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if not self.params.greedy:
            seed = self.params.seed
            if seed is None:
                seed = int.from_bytes(os.urandom(8), "little") & ((1 << 63) - 1)
            self.generator = torch.Generator().manual_seed(seed)


def _apply_repetition_penalty(row: torch.Tensor, seen: list[int], penalty: float) -> None:
    index = torch.tensor(sorted(set(seen)), dtype=torch.long, device=row.device)
    picked = row.index_select(0, index)
    row.index_copy_(0, index, torch.where(picked < 0, picked * penalty, picked / penalty))


def _filter_top_k_top_p(row: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if 0 < top_k < row.shape[0]:
        threshold = torch.topk(row, top_k).values[-1]
        row = row.masked_fill(row < threshold, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(row, descending=False)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cumulative <= (1 - top_p)
        drop_sorted[-1] = False  # always keep the most likely token
        drop = drop_sorted.scatter(0, order, drop_sorted)
        row = row.masked_fill(drop, float("-inf"))
    return row


def sample_next_tokens(
    logits: torch.Tensor, rows: Sequence[RowState], eos_token_ids: Sequence[int]
) -> list[int]:
    """Choose one token per row of `logits` ([batch, vocab], float)."""
    logits = logits.float()
    chosen: list[int] = logits.argmax(dim=-1).tolist()
    blocks_eos = [
        i for i, r in enumerate(rows) if r.generated < r.params.min_tokens or r.params.ignore_eos
    ]
    special = [
        i for i, r in enumerate(rows) if not r.params.greedy or r.params.repetition_penalty != 1.0
    ]
    eos = torch.tensor(list(eos_token_ids), dtype=torch.long) if eos_token_ids else None
    # Greedy rows whose only twist is a blocked EOS: one masked argmax for all of them.
    plain = [i for i in blocks_eos if i not in set(special)]
    if plain and eos is not None:
        index = torch.tensor(plain, dtype=torch.long, device=logits.device)
        masked = logits.index_select(0, index)
        masked.index_fill_(1, eos.to(logits.device), float("-inf"))
        for i, token in zip(plain, masked.argmax(dim=-1).tolist(), strict=True):
            chosen[i] = token
    blocked = set(blocks_eos)
    for i in special:
        state = rows[i]
        params = state.params
        row = logits[i].clone()
        if eos is not None and i in blocked:
            row.index_fill_(0, eos.to(row.device), float("-inf"))
        if params.repetition_penalty != 1.0 and state.token_ids:
            _apply_repetition_penalty(row, state.token_ids, params.repetition_penalty)
        if params.greedy:
            chosen[i] = int(row.argmax())
            continue
        row = row / params.temperature
        row = _filter_top_k_top_p(row, params.top_k, params.top_p)
        probs = row.softmax(-1).cpu()
        chosen[i] = int(torch.multinomial(probs, 1, generator=state.generator))
    return chosen
