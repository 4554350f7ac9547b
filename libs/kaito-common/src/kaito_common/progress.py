"""Progress lines for long transfers (downloads, image pushes and pulls) in a pod's log.

A terminal progress bar is unreadable in `kubectl logs`; instead a transfer logs a line at most
every `every_s` seconds with the bytes so far, the rate and, when the size is known, the
percentage and ETA, and one line when it ends:

    progress = ProgressLog("weights of phi-4", total=size, log=log)
    for chunk in stream:
        progress.update(len(chunk))
    progress.done()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """75 -> '1m15s'; 3700 -> '1h01m'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class ProgressLog:
    """Counts the bytes of one transfer and logs its progress at most every `every_s`."""

    def __init__(
        self,
        what: str,
        total: int | None,
        log: logging.Logger,
        every_s: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total if total and total > 0 else None
        self.done_bytes = 0
        self._log = log
        self._every_s = every_s
        self._clock = clock
        self._started = clock()
        self._last_line = self._started
        self._finished = False

    def update(self, n: int) -> None:
        """Adds `n` transferred bytes; logs a line when `every_s` has passed since the last."""
        self.done_bytes += n
        now = self._clock()
        if now - self._last_line >= self._every_s:
            self._last_line = now
            self._log.info("%s", self._line(now), extra=self._fields(now))

    def done(self) -> None:
        """Logs the transfer's total size, duration and mean rate (once)."""
        if self._finished:
            return
        self._finished = True
        now = self._clock()
        elapsed = now - self._started
        self._log.info(
            "Transferred %s: %s in %s (%s/s)",
            self.what,
            format_bytes(self.done_bytes),
            format_duration(elapsed),
            format_bytes(self.rate(now)),
            extra={"bytes": self.done_bytes, "seconds": round(elapsed, 1)},
        )

    def rate(self, now: float | None = None) -> float:
        """Mean bytes per second since the start."""
        elapsed = (self._clock() if now is None else now) - self._started
        return self.done_bytes / elapsed if elapsed > 0 else 0.0

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at the mean rate; None without a known total or any progress."""
        rate = self.rate(now)
        if self.total is None or rate <= 0:
            return None
        return max(0.0, (self.total - self.done_bytes) / rate)

    def _line(self, now: float) -> str:
        rate = f"{format_bytes(self.rate(now))}/s"
        if self.total is None:
            return f"Transferring {self.what}: {format_bytes(self.done_bytes)} at {rate}"
        percent = 100.0 * self.done_bytes / self.total
        eta = self.eta_s(now)
        left = f", {format_duration(eta)} left" if eta is not None else ""
        return (
            f"Transferring {self.what}: {format_bytes(self.done_bytes)} of "
            f"{format_bytes(self.total)} ({percent:.0f}%) at {rate}{left}"
        )

    def _fields(self, now: float) -> dict[str, object]:
        fields: dict[str, object] = {"bytes": self.done_bytes, "rate_bps": round(self.rate(now))}
        if self.total is not None:
            fields["total_bytes"] = self.total
            eta = self.eta_s(now)
            if eta is not None:
                fields["eta_s"] = round(eta)
        return fields
