"""Download progress: counters shared by the download threads, and the periodic log line.

Pod logs are not a terminal, so instead of progress bars the command logs a line at most every
`interval` seconds (bytes done / total, rate, ETA, files) and sets the Prometheus gauges.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger("kaito_common.weights")


def human_bytes(count: float) -> str:
    """1536 -> "1.5 KiB"."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_duration(seconds: float | None) -> str:
    """3725 -> "1h02m05s"; None -> "unknown"."""
    if seconds is None:
        return "unknown"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@dataclass(frozen=True)
class ProgressSnapshot:
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    bytes_fetched: int  # by this run (resumed bytes excluded), for the rate
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Bytes per second fetched by this run."""
        return self.bytes_fetched / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        remaining = max(self.bytes_total - self.bytes_done, 0)
        if remaining == 0:
            return 0.0
        return remaining / self.rate if self.rate > 0 else None

    def fields(self) -> dict[str, object]:
        """The key=value fields of a progress log line."""
        percent = 100.0 * self.bytes_done / self.bytes_total if self.bytes_total else 100.0
        return {
            "done": human_bytes(self.bytes_done),
            "total": human_bytes(self.bytes_total),
            "percent": f"{percent:.1f}",
            "rate": f"{human_bytes(self.rate)}/s",
            "eta": human_duration(self.eta_s),
            "files": f"{self.files_done}/{self.files_total}",
        }


class DownloadProgress:
    """Thread-safe counters of one download."""

    def __init__(
        self,
        *,
        bytes_total: int,
        files_total: int,
        bytes_done: int = 0,
        files_done: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._started = clock()
        self.bytes_total = bytes_total
        self.files_total = files_total
        self._bytes_done = bytes_done
        self._files_done = files_done
        self._fetched = 0

    def add_bytes(self, count: int) -> None:
        """`count` bytes arrived (negative: a partial file was discarded)."""
        with self._lock:
            self._bytes_done += count
            if count > 0:
                self._fetched += count

    def file_done(self) -> None:
        with self._lock:
            self._files_done += 1

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            return ProgressSnapshot(
                bytes_done=self._bytes_done,
                bytes_total=self.bytes_total,
                files_done=self._files_done,
                files_total=self.files_total,
                bytes_fetched=self._fetched,
                elapsed_s=self._clock() - self._started,
            )


class ProgressReporter:
    """Every `interval` seconds until stopped: a log line, and `publish` (the gauges)."""

    def __init__(
        self,
        progress: DownloadProgress,
        interval: float,
        publish: Callable[[ProgressSnapshot], None],
        fields: Mapping[str, object],
    ) -> None:
        self._progress = progress
        self._interval = interval
        self._publish = publish
        self._fields = fields
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="weights-progress", daemon=True)

    def __enter__(self) -> ProgressReporter:
        self._publish(self._progress.snapshot())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._publish(self._progress.snapshot())

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            snapshot = self._progress.snapshot()
            self._publish(snapshot)
            log.info("Downloading weights", extra={**self._fields, **snapshot.fields()})
