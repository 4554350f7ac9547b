"""Progress arithmetic and the human units of the progress lines."""

from __future__ import annotations

import pytest

from kaito_common.weights.progress import (
    DownloadProgress,
    ProgressSnapshot,
    human_bytes,
    human_duration,
)


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (7.6 * 1024**3, "7.6 GiB"),
     (3 * 1024**4, "3.0 TiB")],
)  # fmt: skip
def test_human_bytes(count: float, text: str) -> None:
    assert human_bytes(count) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "unknown"), (0, "0s"), (59.6, "1m00s"), (3725, "1h02m05s")]
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


def test_rate_and_eta_count_only_this_runs_bytes() -> None:
    now = [100.0]
    progress = DownloadProgress(
        bytes_total=1000, files_total=2, bytes_done=400, files_done=1, clock=lambda: now[0]
    )
    now[0] = 110.0
    progress.add_bytes(300)
    snapshot = progress.snapshot()
    assert snapshot.bytes_done == 700 and snapshot.bytes_fetched == 300
    assert snapshot.rate == pytest.approx(30.0)
    assert snapshot.eta_s == pytest.approx(10.0)
    assert snapshot.fields() == {
        "done": "700 B",
        "total": "1000 B",
        "percent": "70.0",
        "rate": "30 B/s",
        "eta": "10s",
        "files": "1/2",
    }


def test_discarded_partial_bytes_lower_done_but_not_fetched() -> None:
    progress = DownloadProgress(bytes_total=100, files_total=1, bytes_done=50)
    progress.add_bytes(-50)
    snapshot = progress.snapshot()
    assert snapshot.bytes_done == 0 and snapshot.bytes_fetched == 0


def test_eta_unknown_before_any_byte_and_zero_when_done() -> None:
    stalled = ProgressSnapshot(0, 10, 0, 1, bytes_fetched=0, elapsed_s=5)
    done = ProgressSnapshot(10, 10, 1, 1, bytes_fetched=0, elapsed_s=5)
    assert stalled.eta_s is None and done.eta_s == 0
