"""The thread governor gives torch the cores other processes leave free, at least one."""

from __future__ import annotations

from inference_server.engine.cpu_threads import CpuSample, ProcCpuSource, ThreadGovernor


class FakeCpuSource:
    """Reports that other processes keep `others_cores` cores busy (for tests)."""

    def __init__(self, others_cores: float = 0.0) -> None:
        self.others_cores = others_cores
        self._wall = 0.0
        self._busy = 0.0

    def sample(self) -> CpuSample | None:
        """One second later than the previous sample."""
        self._wall += 1.0
        self._busy += self.others_cores
        return CpuSample(self._wall, self._busy, 0.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_threads_follow_the_cores_other_processes_use() -> None:
    source, clock, applied = FakeCpuSource(), _Clock(), []
    governor = ThreadGovernor(4, applied.append, source, interval_s=1.0, clock=clock)
    assert applied == [4]
    source.others_cores = 1.8
    assert governor.tick() == 4  # not re-checked before the interval has passed
    clock.now = 1.0
    assert governor.tick() == 2
    source.others_cores = 7.0
    clock.now = 2.0
    assert governor.tick() == 1  # never fewer than one
    source.others_cores = 0.2
    clock.now = 3.0
    assert governor.tick() == 4
    assert applied == [4, 2, 1, 4]
    source.others_cores = 2.4  # 1.6 cores free: four threads go down to two ...
    clock.now = 4.0
    assert governor.tick() == 2
    source.others_cores = 2.1  # ... and 1.9 free is not enough to add the third back
    clock.now = 5.0
    assert governor.tick() == 2


def test_the_proc_source_reads_this_machine() -> None:
    first = ProcCpuSource().sample()
    assert first is not None
    sum(i * i for i in range(200_000))  # burn a little CPU in this process
    second = ProcCpuSource().sample()
    assert second is not None
    assert second.process_s >= first.process_s and second.machine_busy_s >= first.machine_busy_s
