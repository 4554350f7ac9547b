"""Bounded retries with exponential backoff for registry calls: 5xx, 429 and dropped connections."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from tuning_runner.logs import warn

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class TransientRegistryError(Exception):
    """One attempt failed in a way worth another (a retryable status); the message says how."""


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; the n-th retry waits `backoff_seconds * 2**(n-1)`, at most
    `max_backoff_seconds`."""

    attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds))


class RetriesExhaustedError(RuntimeError):
    """Every attempt failed transiently; the message names the call and the last failure."""


def retrying(
    what: str,
    attempt: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `attempt` until it returns, retrying transient failures (retryable statuses and
    transport errors: refused, reset or dropped connections, timeouts) up to the policy's bound."""
    last = ""
    for number in range(1, policy.attempts + 1):
        try:
            return attempt()
        except (TransientRegistryError, httpx.TransportError) as err:
            last = str(err) or type(err).__name__
            if number == policy.attempts:
                break
            delay = policy.delay(number)
            warn("Retrying registry call", call=what, attempt=number, error=last, delay=delay)
            sleep(delay)
    raise RetriesExhaustedError(
        f"{what} failed after {policy.attempts} attempts ({last}); "
        "check that the registry is reachable and healthy"
    )
