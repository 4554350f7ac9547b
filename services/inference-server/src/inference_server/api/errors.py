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
from inference_server.errors import InvalidRequestError, ModelNotFoundError

_OPENAI_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    422: "BadRequestError",
    429: "RateLimitError",
    503: "ServiceUnavailableError",
    500: "InternalServerError",
}


def status_of(exc: Exception) -> int:
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
            "message": message,
            "type": _OPENAI_TYPES.get(status, HTTPStatus(status).phrase.replace(" ", "")),
            "param": param,
            "code": status,
        }
    }
    return JSONResponse(body, status_code=status)


def error_response(request: Request, exc: Exception) -> JSONResponse:
    status = status_of(exc)
    message = str(exc) or type(exc).__name__
    if request.url.path.startswith("/v1/"):
        response = openai_error(status, message, getattr(exc, "param", None))
    else:
        response = JSONResponse({"detail": message}, status_code=status)
    if isinstance(exc, QueueFullError):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _describe(errors: Any) -> tuple[str, str | None]:
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(loc) or None
    message = first.get("msg", "invalid request")
    if first.get("type") == "json_invalid":
        return f"Request body is not valid JSON: {first.get('ctx', {}).get('error', message)}", None
    return (f"{field}: {message}" if field else message), field


def install_error_handlers(app: FastAPI) -> None:
    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, field = _describe(exc.errors())
        if request.url.path.startswith("/v1/"):
            return openai_error(400, message, field)
        return JSONResponse({"detail": exc.errors()}, status_code=422)

    async def on_known(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, exc)

    app.add_exception_handler(RequestValidationError, on_validation)
    for kind in (InvalidRequestError, ModelNotFoundError, EngineError):
        app.add_exception_handler(kind, on_known)
