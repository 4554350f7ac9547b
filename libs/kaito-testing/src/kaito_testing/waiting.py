"""Waiting for a condition: poll it until it holds or a timeout passes (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    alive: Callable[[], None] | None = None,
) -> None:
    """Polls ``condition`` until it holds; raises TimeoutError naming ``what`` otherwise.

    ``alive`` is called between polls and should raise when a process the wait depends on has
    exited, so that a crash is reported at once instead of after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if alive is not None:
            alive()
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    what: str,
    interval: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Awaits ``probe`` until it returns something other than None (or False) and returns it.

    Exceptions listed in ``retry_on`` count as "not yet"; the last one is chained to the
    TimeoutError raised after ``within`` seconds."""
    deadline = time.monotonic() + within
    last_error: BaseException | None = None
    while True:
        try:
            value = await probe()
        except retry_on as err:
            last_error = err
        else:
            if value is not None and value is not False:
                return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}") from last_error
        await asyncio.sleep(interval)
