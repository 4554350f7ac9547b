"""Progress lines of long transfers: at most one every `every_s`, with bytes, rate and ETA."""

from __future__ import annotations

import logging

import pytest

from kaito_common.progress import ProgressLog, format_bytes, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


MiB = 1024 * 1024


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_logs_at_most_every_interval_with_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = logging.getLogger("kaito.test.progress")
    caplog.set_level(logging.INFO, logger=log.name)
    progress = ProgressLog("blob sha256:ab", total=100 * MiB, log=log, every_s=5.0, clock=clock)
    for _ in range(8):  # 1 MiB every second
        clock.now += 1
        progress.update(MiB)
    assert _messages(caplog) == [
        "Transferring blob sha256:ab: 5.0 MiB of 100.0 MiB (5%) at 1.0 MiB/s, 1m35s left"
    ]
    record = caplog.records[0]
    assert record.__dict__["bytes"] == 5 * MiB
    assert record.__dict__["total_bytes"] == 100 * MiB
    assert record.__dict__["eta_s"] == 95
    clock.now += 2
    progress.update(2 * MiB)
    progress.done()
    progress.done()  # once only
    assert _messages(caplog)[1:] == [
        "Transferring blob sha256:ab: 10.0 MiB of 100.0 MiB (10%) at 1.0 MiB/s, 1m30s left",
        "Transferred blob sha256:ab: 10.0 MiB in 10s (1.0 MiB/s)",
    ]


def test_unknown_total_logs_bytes_and_rate(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = logging.getLogger("kaito.test.progress")
    caplog.set_level(logging.INFO, logger=log.name)
    progress = ProgressLog("https://example.test/data.jsonl", None, log, clock=clock)
    clock.now += 6
    progress.update(3 * 1024)
    assert _messages(caplog) == ["Transferring https://example.test/data.jsonl: 3.0 KiB at 512 B/s"]
    assert progress.eta_s() is None


def test_no_line_before_the_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = logging.getLogger("kaito.test.progress")
    caplog.set_level(logging.INFO, logger=log.name)
    progress = ProgressLog("x", 10, log, clock=clock)
    clock.now += 4.9
    progress.update(5)
    assert caplog.records == []


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")]
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(("s", "text"), [(0, "0s"), (59, "59s"), (75, "1m15s"), (3700, "1h01m")])
def test_format_duration(s: float, text: str) -> None:
    assert format_duration(s) == text
