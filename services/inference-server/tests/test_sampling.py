"""Batched token selection: greedy rows and rows that may not emit EOS yet."""

from __future__ import annotations

import torch

from inference_server.engine.sampling import RowState, sample_next_tokens
from inference_server.engine.types import SamplingParams

EOS = 2


def _row(**params: object) -> RowState:
    return RowState(SamplingParams(max_tokens=4, **params), [1, 5], 0)  # type: ignore[arg-type]


def test_eos_is_masked_only_for_rows_that_may_not_stop_yet() -> None:
    logits = torch.zeros((5, 8))
    logits[:, EOS] = 9.0  # EOS is every row's favourite ...
    logits[:, 6] = 5.0  # ... and 6 the runner-up
    rows = [
        _row(temperature=0),
        _row(temperature=0, ignore_eos=True),
        _row(temperature=0, min_tokens=3),
        _row(temperature=0, ignore_eos=True, repetition_penalty=1.5),
        _row(temperature=0, min_tokens=1),
    ]
    rows[4].generated = 1  # already past its min_tokens
    assert sample_next_tokens(logits, rows, [EOS]) == [EOS, 6, 6, 6, EOS]
    assert logits[1, EOS] == 9.0  # the caller's logits are left alone
