"""Every request gets an id: the client's `X-Request-Id` when it is a sane token, else a new one.

The id goes back in the response's `X-Request-Id` header and into every log line written while
the request is handled (`request_id`, kaito_common.logs), so one request's lines can be found in
the JSON logs; with `--log-level debug` each request also logs one line when it is answered
(method, path, status, milliseconds to the response's start).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kaito_common.logs import log_context

log = logging.getLogger(__name__)

HEADER = b"x-request-id"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == HEADER:
            given = str(value.decode("latin-1"))
            if _SANE.match(given):
                return given
            break
    return uuid.uuid4().hex[:16]


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        started = time.monotonic()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                log.debug(
                    "Answered %s %s status=%s ms=%.1f",
                    scope.get("method"),
                    scope.get("path"),
                    message.get("status"),
                    (time.monotonic() - started) * 1000,
                )
                headers: list[Any] = list(message.get("headers", []))
                headers.append((HEADER, rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        with log_context(request_id=rid):
            await self.app(scope, receive, send_with_id)
