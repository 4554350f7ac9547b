"""Structured logs for operators: a capitalised past-tense message followed by key=value pairs."""

from __future__ import annotations

import logging
from typing import Any

from kaito_common.logs import configure_logging

_LOGGER = logging.getLogger("tuning_runner")


def _fmt(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


def log(message: str, /, *, level: int = logging.INFO, **fields: Any) -> None:
    pairs = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
    _LOGGER.log(level, f"{message} {pairs}" if pairs else message)


def warn(message: str, /, **fields: Any) -> None:
    log(message, level=logging.WARNING, **fields)


def configure(level: str | int = logging.INFO, fmt: str = "text") -> None:
    """Every logger to stderr in `fmt` (text or json; kaito_common.logs)."""
    configure_logging(level, fmt)
    runner = logging.getLogger("tuning_runner")
    runner.handlers[:] = []
    runner.setLevel(logging.NOTSET)
    runner.propagate = True
