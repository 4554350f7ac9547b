"""A left-padded, batched KV cache that rows can join and leave between decode steps.

Every row ends at the same column (left padding), so one decode step appends one column for the
whole batch and costs one padded batched forward. Buffers are preallocated with head room so a
step writes in place instead of concatenating the whole cache (what `DynamicLayer` does).
Rows leave with `select_rows`; columns that have become padding for every row are dropped with
`trim_left`; a freshly prefilled batch joins with `merge`, which left-pads the shorter side.
A forward that fails half-way is undone with `rewind_cache`; `copy_cache_rows` lets the scheduler
try one request alone without touching the batch.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

_GROW = 64


class PaddedBatchLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """One transformer layer's keys and values, shape [batch, heads, columns, head_dim]."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.length = 0
        self.key_buf: torch.Tensor | None = None
        self.value_buf: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.dtype = key_states.dtype
        self.is_initialized = True

    def _ensure_capacity(self, needed: int, like: torch.Tensor) -> None:
        if self.key_buf is not None and self.key_buf.shape[2] >= needed:
            return
        batch, heads, _, dim = like.shape
        shape = (batch, heads, needed + _GROW, dim)
        keys = like.new_empty(shape)
        values = like.new_empty(shape)
        if self.key_buf is not None and self.value_buf is not None and self.length:
            keys[:, :, : self.length] = self.key_buf[:, :, : self.length]
            values[:, :, : self.length] = self.value_buf[:, :, : self.length]
        self.key_buf, self.value_buf = keys, values

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[2]
        self._ensure_capacity(self.length + new, key_states)
        assert self.key_buf is not None and self.value_buf is not None
        self.key_buf[:, :, self.length : self.length + new] = key_states
        self.value_buf[:, :, self.length : self.length + new] = value_states
        self.length += new
        self.keys = self.key_buf[:, :, : self.length]
        self.values = self.value_buf[:, :, : self.length]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def select_rows(self, rows: torch.Tensor) -> None:
        if self.key_buf is None or self.value_buf is None:
            return
        self.key_buf = self.key_buf.index_select(0, rows)
        self.value_buf = self.value_buf.index_select(0, rows)
        self._refresh_views()

    def trim_left(self, columns: int) -> None:
        if columns <= 0 or self.key_buf is None or self.value_buf is None:
            return
        keep = self.length - columns
        self.key_buf = self.key_buf[:, :, columns : self.length].clone()
        self.value_buf = self.value_buf[:, :, columns : self.length].clone()
        self.length = keep
        self._refresh_views()

    def merge(self, other: PaddedBatchLayer) -> None:
        """Append `other`'s rows below ours, right-aligning both on the last column."""
        assert other.key_buf is not None and other.value_buf is not None
        if self.key_buf is None or self.value_buf is None or self.key_buf.shape[0] == 0:
            self.key_buf, self.value_buf, self.length = other.key_buf, other.value_buf, other.length
            self.is_initialized, self.device, self.dtype = True, other.device, other.dtype
            self._refresh_views()
            return
        length = max(self.length, other.length)
        batch = self.key_buf.shape[0] + other.key_buf.shape[0]
        _, heads, _, dim = self.key_buf.shape
        keys = self.key_buf.new_zeros((batch, heads, length + _GROW, dim))
        values = self.value_buf.new_zeros((batch, heads, length + _GROW, dim))
        mine = self.key_buf.shape[0]
        keys[:mine, :, length - self.length : length] = self.key_buf[:, :, : self.length]
        values[:mine, :, length - self.length : length] = self.value_buf[:, :, : self.length]
        keys[mine:, :, length - other.length : length] = other.key_buf[:, :, : other.length]
        values[mine:, :, length - other.length : length] = other.value_buf[:, :, : other.length]
        self.key_buf, self.value_buf, self.length = keys, values, length
        self._refresh_views()

    def rewind(self, length: int) -> None:
        """Forget the columns after `length` (those a forward that failed half-way wrote)."""
        if self.key_buf is None or self.value_buf is None or length >= self.length:
            return
        self.length = length
        self._refresh_views()

    def copy_rows(self, rows: torch.Tensor) -> PaddedBatchLayer:
        """A new layer holding copies of `rows` (the original is left as it is)."""
        copy = PaddedBatchLayer()
        if self.key_buf is not None and self.value_buf is not None:
            copy.key_buf = self.key_buf.index_select(0, rows)
            copy.value_buf = self.value_buf.index_select(0, rows)
            copy.length = self.length
            copy.is_initialized, copy.device, copy.dtype = True, self.device, self.dtype
            copy._refresh_views()
        return copy

    def _refresh_views(self) -> None:
        assert self.key_buf is not None and self.value_buf is not None
        self.keys = self.key_buf[:, :, : self.length]
        self.values = self.value_buf[:, :, : self.length]


def new_batch_cache(num_layers: int) -> DynamicCache:
    """A `DynamicCache` whose layers are `PaddedBatchLayer`s (the model only calls `update`)."""
    cache = DynamicCache()
    cache.layers = [PaddedBatchLayer() for _ in range(num_layers)]
    return cache


def batch_layers(cache: DynamicCache) -> list[PaddedBatchLayer]:
    layers = [layer for layer in cache.layers if isinstance(layer, PaddedBatchLayer)]
    assert len(layers) == len(cache.layers)
    return layers


def cache_lengths(cache: DynamicCache) -> list[int]:
    """Each layer's column count, to `rewind_cache` to after a failed forward."""
    return [layer.length for layer in batch_layers(cache)]


def rewind_cache(cache: DynamicCache, lengths: list[int]) -> None:
    for layer, length in zip(batch_layers(cache), lengths, strict=True):
        layer.rewind(length)


def copy_cache_rows(cache: DynamicCache, rows: torch.Tensor) -> DynamicCache:
    """A cache holding copies of `rows` of `cache` (to try one request alone)."""
    copy = DynamicCache()
    copy.layers = [layer.copy_rows(rows) for layer in batch_layers(cache)]
    return copy
