"""A .json dataset holding one JSON array is read element by element, never whole; malformed
files are refused with the element and its line and column."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path

import pytest

from tuning_runner.data.json_array import CHUNK_CHARS, iter_json_array
from tuning_runner.data.loading import iter_rows, load_rows
from tuning_runner.errors import DatasetError


def _rows(n: int) -> list[dict[str, object]]:
    return [
        {"prompt": f"question [{i}], {{not a brace}} " + "x" * 150, "completion": f"answer {i}"}
        for i in range(n)
    ]


def test_a_large_array_is_read_element_by_element_not_whole(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    with path.open("w", encoding="utf-8") as fh:
        json.dump(_rows(60_000), fh)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = 0
        for row in iter_rows(path, "json"):
            assert row["completion"] == f"answer {count}"  # in order, rows not kept
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 60_000
    print(f"RESULT json_array file_mib={size / 2**20:.1f} peak_mib={peak / 2**20:.2f}")
    # A whole parse would hold the text and every decoded row at once: many times the file.
    assert peak < size // 20, (peak, size)


def test_rows_match_a_whole_parse_whatever_the_layout(tmp_path: Path) -> None:
    rows = _rows(3_000)
    rows[7]["prompt"] = "y" * (5 * CHUNK_CHARS)  # an element larger than several chunks
    rows[8]["nested"] = {"list": [1, 2, {"k": "]},["}], "unicode": "h\u00e9llo \u2603"}
    for indent in (None, 2):
        path = tmp_path / "train.json"
        path.write_text("\n  " + json.dumps(rows, indent=indent) + "\n\n", encoding="utf-8")
        assert load_rows(path).rows == rows
    (tmp_path / "train.json").write_text("[ ]")
    assert list(iter_json_array(tmp_path / "train.json")) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[{"a": 1},\n {"a": 2},\n {"a": 3,, "b": 4}]',
            "train.json element 2 of the JSON array (line 3, column 10) is not valid JSON: "
            "Expecting property name enclosed in double quotes",
        ),
        (
            '[{"a": 1}, 5]',
            "train.json element 1 of the JSON array (line 1, column 12) is not a JSON object",
        ),
        ('[{"a": 1}, {"a": 2', "train.json ends inside its JSON array (after 1 complete"),
        ('[{"a": 1}, {"a": 2}', "train.json ends inside its JSON array (after 2 complete"),
        ('[{"a": 1}, {"a": 2},]', "train.json element 2 of the JSON array (line 1, column 21)"),
        (
            '[{"a": 1} {"a": 2}]',
            "train.json element 0 of the JSON array is followed by '{' (line 1",
        ),
        (
            '[{"a": 1}]\n[{"a": 2}]',
            "train.json has more data after its JSON array (line 2, column 1)",
        ),
    ],
)
def test_a_malformed_array_names_the_element_and_where(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "train.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match="^" + re.escape(message)):
        load_rows(path)


def test_a_malformed_element_far_into_the_file_is_placed_right(tmp_path: Path) -> None:
    rows = _rows(2_000)
    text = json.dumps(rows, indent=1)  # several lines per element, many chunks
    cut = text.index('"answer 1500"')
    path = tmp_path / "train.json"
    path.write_text(text[:cut] + "oops" + text[cut + len('"answer 1500"') :], encoding="utf-8")
    line = text[:cut].count("\n") + 1
    column = cut - text.rfind("\n", 0, cut)
    with pytest.raises(DatasetError) as err:
        load_rows(path)
    assert f"element 1500 of the JSON array (line {line}, column {column})" in str(err.value)


def test_other_json_layouts_still_read(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"data": [{"a": 1}, {"a": 2}]}) + "\n")
    assert load_rows(path).rows == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{"a": 2}\n')  # JSON Lines in a .json file
    assert load_rows(path).rows == [{"a": 1}, {"a": 2}]
