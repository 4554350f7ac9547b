"""Kubernetes API errors as an operator can read them: which step, status code, reason, message.

`kubernetes_asyncio`'s `ApiException` prints as a bare `ApiException()` in a `%r` log line; a
reconcile step that fails re-raises it as `KubeApiError`, whose text names the step, the HTTP
status, the API's reason (`Conflict`, `NotFound`, ...) and its message. `describe_error` gives the
same text for any error a reconciler raises, for the framework's own log lines.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import TypeVar

from kubernetes_asyncio.client.exceptions import ApiException

T = TypeVar("T")

MAX_MESSAGE = 300


def _body_status(err: ApiException) -> dict[str, object]:
    raw: object = err.body
    body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if not isinstance(body, str) or not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {"message": body}
    return parsed if isinstance(parsed, dict) else {}


class KubeApiError(Exception):
    """A Kubernetes API call of a reconcile step failed."""

    def __init__(self, step: str, err: ApiException) -> None:
        status = _body_status(err)
        self.step = step
        self.status = int(err.status) if err.status is not None else 0
        # The API's machine-readable reason (Conflict, NotFound, ...), else the HTTP phrase.
        self.reason = str(status.get("reason") or err.reason or "")
        self.message = str(status.get("message") or "")[:MAX_MESSAGE]
        super().__init__(self.describe())

    @property
    def is_conflict(self) -> bool:
        return self.status == 409

    def describe(self) -> str:
        text = f"{self.step}: status={self.status} reason={self.reason}"
        return f"{text} message={self.message!r}" if self.message else text

    def __repr__(self) -> str:
        return f"KubeApiError({self.describe()})"


def as_kube_error(step: str, err: BaseException) -> KubeApiError | None:
    """`err` as a `KubeApiError` naming `step` (one already named keeps its step)."""
    if isinstance(err, KubeApiError):
        return err
    if isinstance(err, ApiException):
        return KubeApiError(step, err)
    return None


async def api_step(step: str, call: Awaitable[T]) -> T:
    """Await one API call; an `ApiException` leaves as a `KubeApiError` naming `step`."""
    try:
        return await call
    except ApiException as err:
        raise KubeApiError(step, err) from err


def describe_error(err: BaseException, step: str = "reconcile") -> str:
    """An error for a log line: an API error with its status, reason and message, else `repr`."""
    kube = as_kube_error(step, err)
    return repr(kube) if kube is not None else repr(err)
