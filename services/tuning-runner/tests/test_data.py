"""Dataset files in every format, row shapes, loss masks and packing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import torch

from tuning_runner.config.sections import DatasetSection
from tuning_runner.data.examples import IGNORE_INDEX, RowShape, tokenize_rows
from tuning_runner.data.loading import load_rows
from tuning_runner.data.packing import PaddingFreeCollator, pack_examples
from tuning_runner.errors import DatasetError

from .conftest import conversations

ROWS = [{"prompt": f"question {i}", "completion": f"answer {i}"} for i in range(5)]


def _write(fmt: str, path: Path, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows)
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        pa_csv.write_csv(table, path)
    elif fmt == "arrow":
        with pa.ipc.new_stream(path, table.schema) as writer:  # what HF datasets writes
            writer.write_table(table)
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("fmt", ["parquet", "csv", "arrow", "json", "jsonl"])
def test_reads_every_format(fmt: str, tmp_path: Path) -> None:
    _write(fmt, tmp_path / f"train.{fmt}", ROWS)
    loaded = load_rows(tmp_path)
    assert loaded.rows == ROWS and loaded.format == fmt


def test_extension_decides_not_a_substring(tmp_path: Path) -> None:
    _write("jsonl", tmp_path / "csv-export.jsonl", ROWS)
    assert load_rows(tmp_path).format == "jsonl"


def test_corrupt_parquet_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "train.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DatasetError, match=r"train.parquet could not be read as parquet"):
        load_rows(tmp_path)


def test_empty_dataset_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text("\n")
    with pytest.raises(DatasetError, match="no rows"):
        load_rows(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_rows(tmp_path / "absent")


def test_missing_columns_name_what_was_found(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    with pytest.raises(DatasetError, match=r"columns \(answer, question\) match no known shape"):
        tokenize_rows(tok, [{"question": "q", "answer": "a"}], DatasetSection(), 128)
    cfg = DatasetSection(context_column="instruction", response_column="output")
    with pytest.raises(DatasetError, match="lacks"):
        tokenize_rows(tok, [{"instruction": "q", "response": "a"}], cfg, 128)


def test_conversational_loss_is_on_assistant_turns_only(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    rows = conversations(3)
    data = tokenize_rows(tok, rows, DatasetSection(), 512)
    assert data.shape is RowShape.CONVERSATIONAL
    for row, ex in zip(rows, data.examples, strict=True):
        learned = [t for t, label in zip(ex.input_ids, ex.labels, strict=True) if label != -100]
        text = tok.decode(learned)
        assert text.startswith(row["messages"][2]["content"])
        assert row["messages"][1]["content"] not in text.replace(row["messages"][2]["content"], "")


@pytest.mark.parametrize(
    ("row", "shape"),
    [
        ({"prompt": "p", "completion": "c"}, RowShape.PROMPT_COMPLETION),
        ({"instruction": "i", "context": "c", "response": "r"}, RowShape.INSTRUCTION),
        ({"text": "hello world"}, RowShape.TEXT),
    ],
)
def test_other_shapes(tiny_model: Path, row: dict[str, str], shape: RowShape) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    data = tokenize_rows(tok, [row], DatasetSection(), 128)
    assert data.shape is shape
    assert any(label != IGNORE_INDEX for label in data.examples[0].labels)


def test_truncation_is_counted(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    data = tokenize_rows(tok, [{"text": "word " * 200}, {"text": "short"}], DatasetSection(), 32)
    assert data.truncated == 1 and max(len(e.input_ids) for e in data.examples) == 32


def test_packed_batch_loss_equals_separate_losses(tiny_model: Path) -> None:
    """The packed, padding-free batch must be exactly the examples run one by one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    model.config.use_cache = False
    examples = tokenize_rows(tok, conversations(6), DatasetSection(), 512).examples
    rows = pack_examples(examples, 4096, packing=True)
    assert len(rows) == 1
    batch = PaddingFreeCollator()(rows)
    with torch.no_grad():
        packed = model(**batch, use_cache=False)
        total = 0.0
        count = 0
        for ex in examples:
            labels = torch.tensor([[IGNORE_INDEX, *ex.labels[1:]]])
            out = model(input_ids=torch.tensor([ex.input_ids]), labels=labels, use_cache=False)
            n = int((labels[:, 1:] != IGNORE_INDEX).sum())
            total += float(out.loss) * n
            count += n
    assert float(packed.loss) == pytest.approx(total / count, rel=1e-4)


def test_rows_feed_the_length_grouped_sampler(tiny_model: Path) -> None:
    """Unpacked rows are batched by length (`train_sampling_strategy: group_by_length`): the
    Trainer's sampler reads each row's length from the dataset's items."""
    from transformers import AutoTokenizer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from tuning_runner.data.packing import RowDataset

    tok = AutoTokenizer.from_pretrained(tiny_model)
    examples = tokenize_rows(tok, conversations(64), DatasetSection(), 512).examples
    dataset = RowDataset(pack_examples(examples, 512, packing=False))
    order = list(LengthGroupedSampler(4, dataset=dataset, model_input_name="input_ids"))
    assert sorted(order) == list(range(len(dataset)))
    lengths = [len(dataset[i]["input_ids"]) for i in order]
    batches = [lengths[i : i + 4] for i in range(0, len(lengths), 4)]
    spread = sum(max(b) - min(b) for b in batches) / len(batches)
    shuffled = [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
    random_spread = sum(
        max(shuffled[i : i + 4]) - min(shuffled[i : i + 4]) for i in range(0, len(shuffled), 4)
    ) / len(batches)
    assert spread < random_spread / 2, (spread, random_spread)
    batch = PaddingFreeCollator()([dataset[i] for i in order[:4]])
    assert batch["input_ids"].shape[1] == sum(lengths[:4])
