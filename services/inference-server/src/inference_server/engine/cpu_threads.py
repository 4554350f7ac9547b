"""How many CPU threads torch may use, re-decided while the engine runs.

A torch parallel region ends only when all of its threads are done, so a thread that shares its
core with another busy process holds back the whole step (measured on a 2-core machine with one
core taken by another process: a batch-32 decode step took 42 ms with one thread, 68 ms with two
passive threads and 273 ms with two spinning ones). The governor therefore samples how much CPU the
rest of the machine is using (everything in `/proc/stat` minus this process) and gives torch the
cores that are left, at least one, re-checking about once a second.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds: the whole machine's busy time and this process's, at `wall_s`."""

    wall_s: float
    machine_busy_s: float
    process_s: float


class CpuSource(Protocol):
    def sample(self) -> CpuSample | None: ...


class ProcCpuSource:
    """Reads `/proc/stat` (machine) and `os.times()` (this process); None where unavailable."""

    def __init__(self) -> None:
        self._tick = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0

    def sample(self) -> CpuSample | None:
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        values = [int(v) for v in fields[1:9]]
        idle = values[3] + values[4]  # idle + iowait
        busy = (sum(values) - idle) / self._tick
        t = os.times()
        return CpuSample(time.monotonic(), busy, t.user + t.system)


class ThreadGovernor:
    """Calls `apply(n)` with the threads to use whenever that number changes."""

    def __init__(
        self,
        cpus: int,
        apply: Callable[[int], None],
        source: CpuSource | None = None,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cpus = max(1, cpus)
        self._apply = apply
        self._source = source or ProcCpuSource()
        self._interval_s = interval_s
        self._clock = clock
        self._next_check = clock() + interval_s
        self._last = self._source.sample()
        self.threads = self._cpus
        apply(self._cpus)

    def tick(self) -> int:
        """Re-decide once `interval_s` has passed since the last decision; returns the threads."""
        if self._clock() < self._next_check:
            return self.threads
        self._next_check = self._clock() + self._interval_s
        now = self._source.sample()
        last = self._last
        if now is None or last is None:
            self._last = now
            return self.threads
        elapsed = now.wall_s - last.wall_s
        self._last = now
        if elapsed <= 0:
            return self.threads
        others = (now.machine_busy_s - last.machine_busy_s) - (now.process_s - last.process_s)
        others_cores = max(0.0, others / elapsed)
        # Hysteresis: drop a thread once less than half a core is left for it, add one back
        # only when about two thirds of a core is free, so a neighbour near the line does not
        # make the count flap every second.
        free = self._cpus - others_cores
        wanted = self.threads
        while wanted < self._cpus and free >= wanted + 0.65:
            wanted += 1
        while wanted > 1 and free < wanted - 0.5:
            wanted -= 1
        if wanted != self.threads:
            log.info(
                "Changed torch CPU threads from=%d to=%d other_processes_cores=%.2f",
                self.threads,
                wanted,
                others_cores,
            )
            self.threads = wanted
            self._apply(wanted)
        return self.threads
