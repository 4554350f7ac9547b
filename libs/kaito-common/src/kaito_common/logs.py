"""Logging for every Kaito process: `--log-format text|json` and `--log-level` in one place.

Text lines read like a Kubernetes component's (`time LEVEL logger Message key=value ...`); JSON
lines carry a stable field set, so a log pipeline can index them without parsing messages:

    {"time": "2026-01-02T03:04:05.678Z", "level": "info", "logger": "...", "message": "...",
     "workspace": "...", "namespace": "...", "request_id": "...", "nodeclaim": "...",
     "exception": "Traceback ..."}

The context fields appear when known: from `extra={"workspace": ...}` on one call, or from
`log_context(workspace=...)` around a block (a contextvar, so it follows asyncio tasks).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal, TextIO, get_args

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final = get_args(LogFormat)

CONTEXT_FIELDS: Final = ("workspace", "namespace", "request_id", "nodeclaim")
"""The optional fields of a JSON line, in the order they are written."""

_LEVEL_NAMES: Final = {"warn": "WARNING", "fatal": "CRITICAL"}
_CONTEXT: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "kaito_log_context", default=MappingProxyType({})
)
# Attributes every LogRecord has; any other attribute came from `extra=`.
_RECORD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def parse_level(value: str | int) -> int:
    """A level number from a name in any case (`info`, `INFO`, `warn`) or a number."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    name = _LEVEL_NAMES.get(text.lower(), text.upper())
    level = logging.getLevelNamesMapping().get(name)
    if level is None:
        raise ValueError(f"unknown log level {value!r}: use debug, info, warning or error")
    return level


def parse_format(value: str) -> LogFormat:
    """`text` or `json`, in any case."""
    lowered = value.strip().lower()
    if lowered == "json":
        return "json"
    if lowered == "text":
        return "text"
    raise ValueError(f"unknown log format {value!r}: use text or json")


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Adds `fields` (e.g. workspace=..., namespace=...) to every record logged inside."""
    merged = {**_CONTEXT.get(), **{k: str(v) for k, v in fields.items() if v is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields beyond the message: the context, then its `extra=` values."""
    fields: dict[str, Any] = dict(_CONTEXT.get())
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRS and not key.startswith("_"):
            fields[key] = value
    return fields


def _rfc3339(created: float) -> str:
    stamp = datetime.fromtimestamp(created, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the context fields, the rest."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        line: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            if key in fields:
                line[key] = _jsonable(fields.pop(key))
        for key, value in fields.items():
            line.setdefault(key, _jsonable(value))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False)


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message key=value...`, with the context and `extra=` fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _rfc3339(record.created)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = record_fields(record)
        if not fields:
            return text
        head, sep, tail = text.partition("\n")  # the traceback stays below the fields
        pairs = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        return f"{head} {pairs}{sep}{tail}"


def formatter_for(fmt: str) -> logging.Formatter:
    return JsonFormatter() if parse_format(fmt) == "json" else TextFormatter()


def configure_logging(
    level: str | int = "info", fmt: str = "text", *, stream: TextIO | None = None
) -> None:
    """Sends every logger's records to `stream` (default stderr) in `fmt`, replacing the
    root's handlers; quietens the chatty HTTP client libraries below WARNING."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter_for(fmt))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    for noisy in ("azure", "urllib3", "httpx", "httpx2", "httpcore", "filelock"):
        if logging.getLogger(noisy).level == logging.NOTSET:
            logging.getLogger(noisy).setLevel(logging.WARNING)


def uvicorn_log_config(level: str | int) -> dict[str, Any]:
    """uvicorn's `log_config`: its loggers propagate to the root handler `configure_logging`
    installed, so the access log and errors come out in the same format."""
    name = logging.getLevelName(parse_level(level))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            logger: {"handlers": [], "level": name, "propagate": True}
            for logger in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
