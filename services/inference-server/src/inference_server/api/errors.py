"""One place that maps every error to HTTP: OpenAI's error body on /v1 routes, Kaito's
`{"detail": ...}` elsewhere."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from inference_server.engine.errors import (
    AdapterConflictError,
    AdapterNotFoundError,
    EngineError,
    EngineNotReadyError,
    QueueFullError,
)
from inference_server.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    UnsupportedMediaTypeError,
)

_OPENAI_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    415: "UnsupportedMediaTypeError",
    422: "BadRequestError",
    429: "RateLimitError",
    503: "ServiceUnavailableError",
    500: "InternalServerError",
}


def status_of(exc: Exception) -> int:
    if isinstance(exc, UnsupportedMediaTypeError):
        return 415
    if isinstance(exc, InvalidRequestError | AdapterConflictError):
        return 400
    if isinstance(exc, ModelNotFoundError | AdapterNotFoundError):
        return 404
    if isinstance(exc, QueueFullError):
        return 429
    if isinstance(exc, EngineNotReadyError):
        return 503
    return 500


def openai_error(status: int, message: str, param: str | None = None) -> JSONResponse:
    body = {
        "error": {
            "message": _plain(message),
            "type": _OPENAI_TYPES.get(status, HTTPStatus(status).phrase.replace(" ", "")),
            "param": param,
            "code": status,
        }
    }
    return JSONResponse(body, status_code=status)


def error_response(request: Request, exc: Exception) -> JSONResponse:
    return error_response_for(request.url.path, exc)


def error_response_for(path: str, exc: Exception) -> JSONResponse:
    """`exc` as the body the API under `path` uses (callable outside FastAPI's handlers)."""
    status = status_of(exc)
    message = str(exc) or type(exc).__name__
    if path.startswith("/v1/"):
        response = openai_error(status, message, getattr(exc, "param", None))
    else:
        response = JSONResponse({"detail": _plain(message)}, status_code=status)
    if isinstance(exc, QueueFullError):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _plain(value: Any, depth: int = 0) -> Any:
    """`value` as JSON-safe data: validation errors carry the raw input (bytes, objects, strings
    with lone surrogates) and must never make the error response itself fail."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if depth < 8 and isinstance(value, dict):
        return {_plain(str(k)): _plain(v, depth + 1) for k, v in value.items()}
    if depth < 8 and isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    return _plain(repr(value)[:200])


def _safe_errors(errors: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for error in errors:
        item = {k: error[k] for k in ("type", "loc", "msg", "input", "ctx") if k in error}
        out.append(_plain(item))
    return out


_SCALAR_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "none"})


def _is_union_tag(part: Any) -> bool:
    """pydantic puts the union member tried in `loc` ("str", "list[int]", a model's name)."""
    return isinstance(part, str) and (
        part in _SCALAR_TAGS or "[" in part or part[:1].isupper() or part.startswith("function-")
    )


def _describe(errors: Any) -> tuple[str, str | None]:
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body" and not _is_union_tag(p)]
    field = ".".join(loc) or None
    message = first.get("msg", "invalid request")
    if first.get("type") == "json_invalid":
        return f"Request body is not valid JSON: {first.get('ctx', {}).get('error', message)}", None
    return (f"{field}: {message}" if field else message), field


def install_error_handlers(app: FastAPI) -> None:
    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _safe_errors(exc.errors())
        message, field = _describe(errors)
        if request.url.path.startswith("/v1/"):
            return openai_error(400, message, field)
        return JSONResponse({"detail": errors}, status_code=422)

    async def on_known(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, exc)

    app.add_exception_handler(RequestValidationError, on_validation)
    for kind in (InvalidRequestError, ModelNotFoundError, EngineError):
        app.add_exception_handler(kind, on_known)
