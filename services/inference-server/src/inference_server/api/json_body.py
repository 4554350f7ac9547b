"""Request bodies are JSON whatever their declared type, and checked before any route sees them.

`curl -d '{"prompt": ...}'` sends `application/x-www-form-urlencoded`, and Kaito's README shows
exactly that, so a body that parses as JSON is served as JSON whatever its `Content-Type`; one
that does not parse is a 400 (declared or sent as JSON) or a 415 (declared as something else).
Before the routes see it, the body is also checked for what pydantic would let through and the
engine or the response encoder would trip over later: bytes that are not UTF-8 and escapes of
lone UTF-16 surrogates inside strings, NaN/Infinity, numbers too long to parse, and nesting
deeper than any request needs. Each error names the field it was found in.

A body larger than `max_request_bytes` is refused with 413 before it is read whole: at once when
its Content-Length says so, or as soon as a streamed body grows past the limit. The response
closes the connection (the rest of the body is never read).

The routes parse the body again (FastAPI reads it from a `Request` of its own, with no hook to
hand it the value parsed here); the check above costs one extra parse of at most the limit.
"""

from __future__ import annotations

import email.message
import json
import re
from collections.abc import Iterator
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inference_server.api.errors import error_response_for, openai_error
from inference_server.errors import InvalidRequestError, UnsupportedMediaTypeError

# No request of these APIs nests deeper than 5 (messages[i].content[j].text); 32 leaves room for
# unknown extra keys without letting a body make every later recursive walk expensive.
MAX_DEPTH = 32
DEFAULT_MAX_REQUEST_BYTES = 8 << 20

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SURROGATE = re.compile("[\ud800-\udfff]")
# Tokens that matter for locating deep nesting in a body too deep for `json.loads`.
_TOKEN = re.compile(r'"(?:[^"\\]+|\\.)*"|[\[\]{},:]', re.DOTALL)

PathPart = str | int


def _render(path: list[PathPart]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "body"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _too_deep_path(text: str) -> list[PathPart]:
    """The path to the first container nested deeper than MAX_DEPTH (text too deep to parse)."""
    stack: list[list[Any]] = []  # per open container: [kind, current key or index]
    last_string = ""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            last_string = token
        elif token == ":" and stack:
            try:
                stack[-1][1] = str(json.loads(last_string))
            except ValueError:
                stack[-1][1] = "?"
        elif token in "[{":
            if len(stack) >= MAX_DEPTH:
                break
            stack.append([token, 0 if token == "[" else "?"])
        elif token in "]}":
            if stack:
                stack.pop()
        elif token == "," and stack and stack[-1][0] == "[":
            stack[-1][1] += 1
    return [entry[1] for entry in stack]


def _walk(value: Any) -> Iterator[tuple[list[PathPart], Any]]:
    """Every string (keys included) and every container deeper than MAX_DEPTH, with its path;
    iterative, so a deep body cannot exhaust the stack."""
    todo: list[tuple[list[PathPart], Any]] = [([], value)]
    while todo:
        path, item = todo.pop()
        if isinstance(item, str):
            yield path, item
        elif isinstance(item, dict | list):
            if len(path) >= MAX_DEPTH:
                yield path, item
                continue
            if isinstance(item, dict):
                for key, child in item.items():
                    yield [*path, key], key
                    todo.append(([*path, key], child))
            else:
                todo.extend(
                    ([*path, i], child)
                    for i, child in enumerate(item)
                    if isinstance(child, str | dict | list)
                )


def _too_deep(path: list[PathPart]) -> InvalidRequestError:
    field = path[0] if path and isinstance(path[0], str) else "body"
    return InvalidRequestError(
        f"{field}: nested deeper than {MAX_DEPTH} levels (at {_render(path[:6])}...)", field
    )


def _check(value: Any, utf8: bool) -> None:
    for path, item in _walk(value):
        if not isinstance(item, str):
            raise _too_deep(path)
        if _SURROGATE.search(item):
            field = _render(path)
            if not utf8:
                raise InvalidRequestError(
                    f"{field}: contains bytes that are not valid UTF-8", field
                )
            raise InvalidRequestError(
                f"{field}: contains an escaped lone UTF-16 surrogate (\\ud800-\\udfff), which is "
                "not a character",
                field,
            )


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """The JSON value of a request body, or the error to answer with."""
    try:
        text = raw.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError as exc:
        # Parse anyway so the error can name the field that holds the bad bytes.
        text = raw.decode("utf-8", "surrogateescape")
        utf8 = False
        bad_at = exc.start
    text = text.removeprefix("\ufeff")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _too_deep(_too_deep_path(text)) from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers too long to convert
        if content_type and not _is_json(content_type):
            raise UnsupportedMediaTypeError(
                f"Content-Type {content_type!r} is not supported and the body is not JSON: send "
                "a JSON body (Content-Type: application/json)",
                None,
            ) from None
        if not utf8:
            raise InvalidRequestError(
                f"Request body is not valid UTF-8 (byte {raw[bad_at]:#04x} at offset {bad_at})"
            ) from None
        raise InvalidRequestError(f"Request body is not valid JSON: {exc}") from None
    _check(value, utf8)
    return value


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server refuses such a request before it gets here
    return None


def too_large_response(path: str, limit: int) -> JSONResponse:
    """413 naming the limit, in the body style of the API under `path`."""
    message = (
        f"Request body is larger than this server accepts: {limit} bytes ({limit / 2**20:g} "
        "MiB, set by --max-request-bytes / KAITO_MAX_REQUEST_BYTES)"
    )
    if path.startswith("/v1/"):
        response = openai_error(413, message)
    else:
        response = JSONResponse({"detail": message}, status_code=413)
    response.headers["Connection"] = "close"  # the rest of the body is not read
    return response


class JSONBodyMiddleware:
    """Checks every request body as JSON (see the module doc) and hands it on as
    `application/json`; answers the error itself when the body is unusable or too large."""

    def __init__(self, app: ASGIApp, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.max_request_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await too_large_response(scope["path"], limit)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_large_response(scope["path"], limit)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        content_type = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), None
        )
        if raw:
            try:
                parse_body(raw, content_type)
            except InvalidRequestError as exc:
                await error_response_for(scope["path"], exc)(scope, receive, send)
                return
            headers.append((b"content-type", b"application/json"))
        elif content_type is not None:
            headers.append((b"content-type", content_type.encode("latin-1")))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # later reads wait for the disconnect
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)
