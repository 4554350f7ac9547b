"""Read dataset files (parquet, jsonl/json, csv, arrow) into rows; the extension decides the reader.

pyarrow reads the files directly (no `datasets` cache folder, no extra import cost in the pod),
a record batch at a time (parquet, arrow, csv), a line at a time (jsonl) or an element at a time
(a JSON array), never a whole table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from tuning_runner.data.json_array import CHUNK_CHARS, iter_json_array
from tuning_runner.errors import DatasetError

FORMATS = {
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".arrow": "arrow",
}

Row = dict[str, Any]
BATCH_ROWS = 1024  # rows per record batch read from a columnar file
CSV_BLOCK_BYTES = 4 << 20
PARQUET_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True)
class LoadedData:
    rows: list[Row]
    files: list[Path]
    format: str


def format_of(path: Path, override: str | None = None) -> str:
    if override:
        ext = "." + override.lower().lstrip(".")
        if ext not in FORMATS:
            raise DatasetError(
                f"dataset_extension {override!r} is not supported; use one of "
                f"{', '.join(sorted(f.lstrip('.') for f in FORMATS))}"
            )
        return FORMATS[ext]
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DatasetError(
            f"{path.name} has an unsupported extension; use .parquet, .jsonl, .json, .csv or .arrow"
        )
    return fmt


def find_dataset_files(location: Path, override: str | None = None) -> list[Path]:
    """The dataset file, or the supported files of a folder (sorted; hidden files skipped)."""
    if location.is_file():
        return [location]
    if not location.is_dir():
        raise DatasetError(f"dataset location {location} does not exist; was the input fetched?")
    files = [
        p
        for p in sorted(location.iterdir())
        if p.is_file()
        and not p.name.startswith(".")
        and (override is not None or p.suffix.lower() in FORMATS)
    ]
    if not files:
        raise DatasetError(
            f"no dataset file in {location}; expected .parquet, .jsonl, .json, .csv or .arrow"
        )
    return files


def _arrow_batches(path: Path) -> Iterator[pa.RecordBatch]:
    with path.open("rb") as fh:
        magic = fh.read(6)
    # Arrow IPC "file" format starts with ARROW1; HF datasets writes the "stream" format.
    if magic == b"ARROW1":
        with pa_ipc.open_file(path) as reader:
            for index in range(reader.num_record_batches):
                yield reader.get_batch(index)
        return
    with pa_ipc.open_stream(path) as reader:
        yield from reader


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    # No pre-buffering: it would read the whole file's column chunks into memory up front.
    with pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES) as parquet:
        yield from parquet.iter_batches(batch_size=BATCH_ROWS)


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    with pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES)) as r:
        yield from r


def _rows_of(batches: Iterable[pa.RecordBatch]) -> Iterator[Row]:
    for batch in batches:
        yield from batch.to_pylist()


def _read_json(path: Path) -> Iterator[Row]:
    layout = _json_layout(path)
    if layout == "array":
        yield from iter_json_array(path)
    elif layout == "document":
        # One object on one line: parsed whole ({"data": [...]} style documents).
        doc = json.loads(path.read_text(encoding="utf-8"))
        for value in doc.values():
            if isinstance(value, list) and all(isinstance(r, dict) for r in value):
                yield from value
                return
        yield doc
    else:
        yield from _read_jsonl(path)


def _json_layout(path: Path) -> str:
    """ "array" (starts with `[`), "document" (one object on one line) or "lines" (anything
    else is read as JSON Lines), found without reading the file whole."""
    with path.open(encoding="utf-8") as fh:
        first = fh.read(1)
        while first and first.isspace():
            first = fh.read(1)
        if first == "[":
            return "array"
        if first != "{":
            return "lines"
        fh.readline()  # the rest of the first line
        while chunk := fh.read(CHUNK_CHARS):
            if chunk.strip():
                return "lines"
    return "document"


def _read_jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(
                    f"{path.name} line {number} is not valid JSON: {err.msg}"
                ) from err
            if not isinstance(row, dict):
                raise DatasetError(f"{path.name} line {number} is not a JSON object")
            yield row


def iter_rows(path: Path, fmt: str) -> Iterator[Row]:
    """The file's rows, read a record batch (or a line) at a time: a columnar file is never
    decoded whole, so the Arrow memory in use stays at about one batch.

    A JSON array is read an element at a time; a one-line JSON object document is the
    exception: it is parsed whole. A CSV whose column types change after the first block
    (which the streaming reader infers them from) is read again whole, as before."""
    if fmt == "parquet":
        yield from _rows_of(_parquet_batches(path))
    elif fmt == "arrow":
        yield from _rows_of(_arrow_batches(path))
    elif fmt == "csv":
        yield from _csv_rows(path)
    elif fmt == "jsonl":
        yield from _read_jsonl(path)
    else:
        yield from _read_json(path)


def _csv_rows(path: Path) -> list[Row]:
    rows: list[Row] = []
    try:
        rows.extend(_rows_of(_csv_batches(path)))
    except pa.ArrowInvalid:
        # Types inferred from the first block did not fit a later one; let the whole-file
        # reader infer them from everything (it fails with its own message if it cannot).
        rows = []
        rows.extend(_rows_of(pa_csv.read_csv(path).to_batches(max_chunksize=BATCH_ROWS)))
    return rows


def read_rows(path: Path, fmt: str) -> list[Row]:
    try:
        return list(iter_rows(path, fmt))
    except DatasetError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as err:
        raise DatasetError(
            f"{path.name} could not be read as {fmt}: {err}; check that the file is complete "
            "and really is in that format"
        ) from err


def load_rows(location: Path, override: str | None = None) -> LoadedData:
    files = find_dataset_files(location, override)
    formats = {format_of(p, override) for p in files}
    if len(formats) > 1:
        raise DatasetError(
            f"{location} mixes dataset formats ({', '.join(sorted(formats))}); keep one format"
        )
    rows: list[Row] = []
    for path in files:
        rows.extend(read_rows(path, format_of(path, override)))
    if not rows:
        raise DatasetError(f"the dataset in {location} has no rows")
    return LoadedData(rows=rows, files=files, format=formats.pop())
