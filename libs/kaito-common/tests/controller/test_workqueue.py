"""Work queue semantics with a fake clock: no test here waits on real time."""

from __future__ import annotations

import asyncio

import pytest
from fake_clock import FakeClock

from kaito_common.controller.workqueue import ExponentialBackoff, ShutDown, WorkQueue


def test_adding_a_queued_key_again_keeps_one_entry() -> None:
    q: WorkQueue[str] = WorkQueue(clock=FakeClock())
    for key in ["a", "b", "a", "a", "b"]:
        q.add(key)
    assert len(q) == 2
    assert [q.try_get(), q.try_get(), q.try_get()] == ["a", "b", None]


def test_a_key_in_process_is_not_handed_out_again_until_done() -> None:
    q: WorkQueue[str] = WorkQueue(clock=FakeClock())
    q.add("a")
    assert q.try_get() == "a"
    q.add("a")  # changed while being reconciled
    q.add("a")
    assert q.try_get() is None
    assert q.processing == {"a"}
    q.done("a")
    assert q.try_get() == "a"  # processed once more, not twice
    q.done("a")
    assert q.try_get() is None


def test_done_without_new_adds_does_not_requeue() -> None:
    q: WorkQueue[str] = WorkQueue(clock=FakeClock())
    q.add("a")
    assert q.try_get() == "a"
    q.done("a")
    assert len(q) == 0 and q.try_get() is None


def test_add_after_waits_for_the_clock_and_the_sooner_delay_wins() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("a", 10)
    q.add_after("a", 3)
    q.add_after("a", 20)
    assert q.try_get() is None
    clock.advance(2.9)
    assert q.try_get() is None
    clock.advance(0.1)
    assert q.try_get() == "a"
    q.done("a")
    clock.advance(100)
    assert q.try_get() is None  # the superseded 10 s and 20 s entries do not fire again


def test_rate_limited_adds_back_off_exponentially_per_key_and_forget_resets() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    for expected in [0.005, 0.01, 0.02, 0.04]:
        q.add_rate_limited("a")
        clock.advance(expected * 0.9)
        assert q.try_get() is None
        clock.advance(expected * 0.2)
        assert q.try_get() == "a"
        q.done("a")
    assert q.retries("a") == 4
    q.add_rate_limited("b")  # another key has its own backoff
    clock.advance(0.005)
    assert q.try_get() == "b"
    q.forget("a")
    assert q.retries("a") == 0


def test_backoff_is_capped() -> None:
    backoff: ExponentialBackoff[str] = ExponentialBackoff(base_s=0.005, max_s=1000.0)
    delays = [backoff.when("k") for _ in range(100)]
    assert delays[0] == 0.005
    assert max(delays) == 1000.0 and delays[-1] == 1000.0


async def test_get_blocks_until_a_delayed_key_is_due_on_the_fake_clock() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("a", 5)
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not getter.done()
    clock.advance(4)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not getter.done()
    clock.advance(1)
    assert await asyncio.wait_for(getter, 1) == "a"


async def test_get_wakes_on_add_and_shutdown_stops_getters() -> None:
    q: WorkQueue[str] = WorkQueue(clock=FakeClock())
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"
    waiting = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiting, 1)


async def test_workers_never_run_one_key_twice_at_once() -> None:
    """N workers, one hot key added repeatedly: at most one reconcile of it at any time."""
    q: WorkQueue[str] = WorkQueue(clock=FakeClock())
    running: set[str] = set()
    overlaps = 0
    runs = 0

    async def worker() -> None:
        nonlocal overlaps, runs
        while True:
            try:
                key = await q.get()
            except ShutDown:
                return
            if key in running:
                overlaps += 1
            running.add(key)
            runs += 1
            await asyncio.sleep(0)
            q.add("hot")  # the key changes while being processed
            await asyncio.sleep(0)
            running.discard(key)
            q.done(key)
            if runs >= 50:
                q.shutdown()

    q.add("hot")
    q.add("cold")
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(4))), 5)
    assert overlaps == 0
    assert runs >= 50
