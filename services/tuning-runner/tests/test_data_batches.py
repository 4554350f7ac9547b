"""Datasets are read a record batch at a time: Arrow memory stays at about one batch, rows keep
their order, and every columnar format gives the same rows as a whole-table read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from tuning_runner.data.loading import iter_rows, load_rows

ROWS = 300_000


def _table(n: int = ROWS) -> pa.Table:
    return pa.table(
        {
            "prompt": [f"question number {i} " + "x" * 80 for i in range(n)],
            "completion": [f"answer {i}" for i in range(n)],
        }
    )


def test_parquet_is_read_in_batches_not_whole(tmp_path: Path) -> None:
    table = _table()
    path = tmp_path / "train.parquet"
    pq.write_table(table, path, row_group_size=5_000)
    whole = table.nbytes
    del table
    base = pa.total_allocated_bytes()
    peak = 0
    count = 0
    for row in iter_rows(path, "parquet"):
        assert row["completion"] == f"answer {count}"  # in order
        count += 1
        if count % 500 == 0:
            peak = max(peak, pa.total_allocated_bytes() - base)
    assert count == ROWS
    print(f"RESULT dataset_batches table_mib={whole / 2**20:.1f} arrow_peak_mib={peak / 2**20:.2f}")
    # A whole-table read would hold all of it in Arrow memory at once.
    assert peak < whole // 10, (peak, whole)


@pytest.mark.parametrize("ipc", ["file", "stream"])
def test_arrow_ipc_with_many_batches_keeps_every_row_in_order(ipc: str, tmp_path: Path) -> None:
    table = _table(10_000)
    path = tmp_path / "train.arrow"
    opener = pa.ipc.new_file if ipc == "file" else pa.ipc.new_stream
    with opener(path, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=700):
            writer.write_batch(batch)
    assert load_rows(path).rows == table.to_pylist()


def test_csv_streams_and_matches_a_whole_read(tmp_path: Path) -> None:
    table = _table(80_000)  # several of the reader's 4 MiB blocks
    path = tmp_path / "train.csv"
    pa_csv.write_csv(table, path)
    assert path.stat().st_size > 8 << 20
    assert load_rows(path).rows == pa_csv.read_csv(path).to_pylist()


def test_csv_whose_types_change_after_the_first_block_is_still_read(tmp_path: Path) -> None:
    """The streaming reader infers column types from the first block; a later block that does
    not fit them (numbers, then text) makes the loader read the file whole instead."""
    lines = ["prompt,score"]
    lines += [f"question {i} {'y' * 60},{i}" for i in range(80_000)]
    lines += ["last question,not a number"]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 4 << 20
    rows = load_rows(path).rows
    assert len(rows) == 80_001
    assert rows[0] == {"prompt": f"question 0 {'y' * 60}", "score": "0"}
    assert rows[-1] == {"prompt": "last question", "score": "not a number"}
