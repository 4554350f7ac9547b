"""`kaito_packed_sdpa`: a packed, fixed-length batch gives each example's own loss and gradients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tuning_runner.config.sections import DatasetSection
from tuning_runner.data.examples import IGNORE_INDEX, tokenize_rows
from tuning_runner.data.packing import PaddingFreeCollator, pack_examples
from tuning_runner.train import packed_attention

from .conftest import conversations


def _model(tiny_model: Path, attn: str) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        tiny_model, dtype=torch.float32, attn_implementation=attn
    )
    model.config.use_cache = False
    return model


def _grads(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_slice_widths_are_few_and_hold_the_example() -> None:
    widths = {packed_attention.slice_width(n) for n in range(1, 1025)}
    assert sorted(widths) == [32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024]
    assert all(packed_attention.slice_width(n) >= n for n in range(1, 2000))


def test_segments_start_where_positions_restart() -> None:
    positions = torch.tensor([0, 1, 2, 0, 1, 0, 1, 2, 3])
    assert packed_attention.segment_bounds(positions) == [0, 3, 5, 9]
    assert packed_attention.segment_bounds(torch.tensor([5, 6, 0, 1])) == [0, 2, 4]


def test_packed_batch_equals_the_examples_one_by_one(tiny_model: Path) -> None:
    """Loss and gradients of a packed row padded to a fixed length (the training batch) equal the
    sum over the examples run alone with transformers' own sdpa: nothing attends across examples
    or to the padding."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    examples = tokenize_rows(tok, conversations(7), DatasetSection(), 512).examples
    rows = pack_examples(examples, 4096, packing=True)
    assert len(rows) == 1 and len(examples) == 7
    total = rows[0].tokens + 45  # a padding tail, as the fixed batch length adds
    batch = PaddingFreeCollator(pad_token_id=int(tok.pad_token_id), pad_to_length=total)(rows)
    assert batch["input_ids"].shape == (1, total)

    packed_model = _model(tiny_model, packed_attention.register())
    out = packed_model(**batch)
    n_labels = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    (out.loss * n_labels).backward()
    packed_grads = _grads(packed_model)

    single = _model(tiny_model, "sdpa")
    total_loss = 0.0
    for ex in examples:
        labels = torch.tensor([[IGNORE_INDEX, *ex.labels[1:]]])
        one = single(input_ids=torch.tensor([ex.input_ids]), labels=labels)
        n = int((labels[:, 1:] != IGNORE_INDEX).sum())
        (one.loss * n).backward()
        total_loss += float(one.loss.detach()) * n
    single_grads = _grads(single)

    assert float(out.loss) == pytest.approx(total_loss / n_labels, rel=1e-5)
    assert packed_grads.keys() == single_grads.keys()
    for name, grad in packed_grads.items():
        torch.testing.assert_close(grad, single_grads[name], rtol=1e-4, atol=1e-5, msg=name)


def test_a_padding_mask_goes_to_plain_sdpa(tiny_model: Path) -> None:
    """Inference-style input (a 2-D mask, left padding) gives what `sdpa` gives."""
    ids = torch.tensor([[0, 0, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        ours = _model(tiny_model, packed_attention.register())(input_ids=ids, attention_mask=mask)
        plain = _model(tiny_model, "sdpa")(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(ours.logits[mask.bool()], plain.logits[mask.bool()])
