"""Packing and padding-free batches.

Examples are packed into rows of at most `max_length` tokens (first-fit decreasing), and a batch
of rows is flattened into ONE sequence with `position_ids` restarting at each example. Hugging
Face models build a block-diagonal causal mask from such position ids when no attention mask is
given (and no KV cache is used), so no token attends across examples and no padding is computed.
The first label of every example is ignored so that no example learns to predict the next one.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tuning_runner.data.examples import IGNORE_INDEX, Example


@dataclass
class PackedRow:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]

    @property
    def tokens(self) -> int:
        return len(self.input_ids)

    def as_dict(self) -> dict[str, list[int]]:
        return {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "position_ids": self.position_ids,
        }


def _row_of(examples: list[Example]) -> PackedRow:
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for ex in examples:
        ids.extend(ex.input_ids)
        labels.append(IGNORE_INDEX)
        labels.extend(ex.labels[1:])
        positions.extend(range(len(ex.input_ids)))
    return PackedRow(ids, labels, positions)


def pack_examples(
    examples: list[Example], max_length: int, *, packing: bool, seed: int = 42
) -> list[PackedRow]:
    """Rows for training. Without packing each example is its own row (still padding-free)."""
    if not packing:
        return [_row_of([ex]) for ex in examples]
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].input_ids))
    bins: list[list[Example]] = []
    space: list[int] = []
    for i in order:
        ex = examples[i]
        n = len(ex.input_ids)
        for b, free in enumerate(space):
            if n <= free:
                bins[b].append(ex)
                space[b] -= n
                break
        else:
            bins.append([ex])
            space.append(max_length - n)
    rows = [_row_of(b) for b in bins]
    # Decreasing order leaves the fullest rows first; shuffle so epochs do not start with them.
    random.Random(seed).shuffle(rows)
    return rows


class PaddingFreeCollator:
    """Flattens a list of rows into one `[1, total_tokens]` batch with packed position ids.

    `pad_to_length` makes every batch exactly that long (when its rows fit): on CPU each new
    input shape costs a compiled kernel that stays cached, so a training run whose every step has
    a different length keeps growing in memory, while a fixed shape does not.
    """

    def __init__(
        self,
        pad_to_multiple_of: int | None = None,
        pad_token_id: int = 0,
        pad_to_length: int | None = None,
    ) -> None:
        self.pad_to_multiple_of = pad_to_multiple_of
        self.pad_token_id = pad_token_id
        self.pad_to_length = pad_to_length

    def __call__(self, rows: Sequence[PackedRow | Mapping[str, list[int]]]) -> dict[str, Any]:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for row in rows:
            item = row if isinstance(row, Mapping) else row.as_dict()
            ids.extend(item["input_ids"])
            labels.extend(item["labels"])
            positions.extend(item["position_ids"])
        extra = 0
        if self.pad_to_length and len(ids) < self.pad_to_length:
            extra = self.pad_to_length - len(ids)
        elif self.pad_to_multiple_of:
            extra = -len(ids) % self.pad_to_multiple_of
        if extra:
            # Padding is a separate tail "sequence" (positions restart at 0) with no labels.
            ids.extend([self.pad_token_id] * extra)
            labels.extend([IGNORE_INDEX] * extra)
            positions.extend(range(extra))
        return {
            "input_ids": torch.tensor([ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long),
        }


class RowDataset(torch.utils.data.Dataset[dict[str, list[int]]]):
    """Rows as `{input_ids, labels, position_ids}` mappings, the item shape the Trainer's
    length-grouped sampler (`train_sampling_strategy: group_by_length`) reads lengths from."""

    def __init__(self, rows: list[PackedRow]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.rows[index].as_dict()
