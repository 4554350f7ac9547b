"""The completion marker: read back, checked against the files, written atomically."""

from __future__ import annotations

from pathlib import Path

from kaito_common.weights.marker import (
    MARKER_NAME,
    WeightsMarker,
    files_in_place,
    read_marker,
    write_marker,
)


def _marker() -> WeightsMarker:
    return WeightsMarker(
        repo="microsoft/Phi-3-mini-128k-instruct",
        revision="a" * 40,
        commit="a" * 40,
        endpoint="https://huggingface.co",
        files={"config.json": 3, "sub/model.safetensors": 5},
        bytes=8,
        completed_at="2026-01-01T00:00:00+00:00",
    )


def test_round_trip_and_file_check(tmp_path: Path) -> None:
    write_marker(tmp_path, _marker())
    assert MARKER_NAME == ".kaito-weights.json"
    assert not list(tmp_path.glob("*.tmp"))
    marker = read_marker(tmp_path)
    assert marker == _marker()
    assert not files_in_place(tmp_path, marker)
    (tmp_path / "config.json").write_text("abc")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/model.safetensors").write_text("12345")
    assert files_in_place(tmp_path, marker)
    (tmp_path / "sub/model.safetensors").write_text("1234")
    assert not files_in_place(tmp_path, marker)


def test_unreadable_marker_counts_as_none(tmp_path: Path) -> None:
    assert read_marker(tmp_path) is None
    (tmp_path / MARKER_NAME).write_text("{not json")
    assert read_marker(tmp_path) is None
