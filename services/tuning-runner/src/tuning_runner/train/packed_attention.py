"""Attention for packed, padding-free batches that costs what the examples cost.

A packed row holds several examples back to back, told apart by `position_ids` restarting at 0.
transformers' `sdpa` handles that by building a block-diagonal causal mask over the whole row, so
every layer computes (and keeps for backward) attention over row x row scores, most of them masked:
with rows of 384+ tokens and examples of ~50, about a quarter of a CPU training step went there.

`kaito_packed_sdpa` instead runs causal SDPA on each example's own slice (sum of n^2 instead of
row^2) with no mask at all, so nothing attends across examples by construction. Each slice is
widened to one of a few fixed widths (32, 48, 64, 96, 128, 192, ...: the extra keys lie after the
example's last query, so causality hides them, and the extra query outputs are dropped; the row
is zero-extended when the last slice needs it). CPU kernels compile and keep one kernel per
shape: with every example's own length as a shape, a run's memory grew by megabytes per step,
with a few widths it levels off.

Anything that is not a packed training batch (a 2-D padding mask, a KV cache, query and key
lengths that differ) goes to transformers' own `sdpa` unchanged.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

ATTENTION_NAME = "kaito_packed_sdpa"
MIN_SLICE = 32


def slice_width(n: int) -> int:
    """The smallest of 32, 48, 64, 96, 128, 192, ... (2^k and 1.5 * 2^k) that holds `n`."""
    width = MIN_SLICE
    while width < n:
        width = width * 3 // 2 if width & (width - 1) == 0 else width * 4 // 3
    return width


def segment_bounds(position_ids: torch.Tensor) -> list[int]:
    """Start offsets of the examples in one packed row, plus its length at the end."""
    starts = torch.nonzero(position_ids == 0).flatten().tolist()
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return [*starts, int(position_ids.shape[-1])]


def packed_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.get("position_ids")
    length = query.shape[2]
    if (
        attention_mask is not None
        or position_ids is None
        or key.shape[2] != length
        or position_ids.shape[-1] != length
        or kwargs.get("output_attentions")
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    gqa = query.shape[1] != key.shape[1]
    rows = []
    for b in range(query.shape[0]):
        bounds = segment_bounds(position_ids[min(b, position_ids.shape[0] - 1)])
        plan = plan_slices(bounds, query.device)
        q, k, v = query[b], key[b], value[b]  # [heads, length, head_dim]
        outs = []
        for index, count, width in plan.groups:
            # The examples of one width as a batch: [count, heads, width, head_dim].
            qs, ks, vs = (
                t.index_select(1, index).view(t.shape[0], count, width, -1).transpose(0, 1)
                for t in (q, k, v)
            )
            out = torch.nn.functional.scaled_dot_product_attention(
                qs, ks, vs, dropout_p=dropout, scale=scaling, is_causal=True, enable_gqa=gqa
            )
            outs.append(out.transpose(0, 1).flatten(1, 2))
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        rows.append(out.index_select(1, plan.back))
    out = torch.stack(rows) if len(rows) > 1 else rows[0].unsqueeze(0)
    return out.transpose(1, 2).contiguous(), None


class SlicePlan:
    """Where each example's window lies in the row, grouped by width, and the way back.

    `groups`: (row positions of the windows, number of windows, width) per width; positions past
    the row end repeat its last token (only the discarded queries see them). `back`: for every
    row position, its place in the concatenated outputs of the groups.
    """

    def __init__(self, bounds: list[int], device: torch.device) -> None:
        length = bounds[-1]
        by_width: dict[int, list[tuple[int, int]]] = {}
        for start, end in itertools.pairwise(bounds):
            by_width.setdefault(slice_width(end - start), []).append((start, end - start))
        self.groups: list[tuple[torch.Tensor, int, int]] = []
        back = [0] * length
        offset = 0
        for width, windows in sorted(by_width.items()):
            positions: list[int] = []
            for start, n in windows:
                back[start : start + n] = range(offset, offset + n)
                positions.extend(min(start + i, length - 1) for i in range(width))
                offset += width
            self.groups.append((torch.tensor(positions, device=device), len(windows), width))
        self.back = torch.tensor(back, device=device)


_last_plan: tuple[tuple[int, ...], torch.device, SlicePlan] | None = None


def plan_slices(bounds: list[int], device: torch.device) -> SlicePlan:
    """The plan for these bounds; every layer of a forward pass asks for the same one."""
    global _last_plan
    key = tuple(bounds)
    if _last_plan is None or _last_plan[0] != key or _last_plan[1] != device:
        _last_plan = (key, device, SlicePlan(bounds, device))
    return _last_plan[2]


def packed_sdpa_mask(*args: Any, **kwargs: Any) -> Any:
    """No mask for packed training batches (the attention slices per example); otherwise the one
    `sdpa` would get."""
    from transformers.masking_utils import sdpa_mask

    if kwargs.get("attention_mask") is None and kwargs.get("q_length") == kwargs.get("kv_length"):
        return None
    return sdpa_mask(*args, **kwargs)


def register() -> str:
    """Make `attn_implementation=kaito_packed_sdpa` known to transformers; returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION_NAME, packed_sdpa_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, packed_sdpa_mask)
    return ATTENTION_NAME
