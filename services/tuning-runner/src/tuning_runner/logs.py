"""Structured logs for operators: a capitalised past-tense message followed by key=value pairs."""

from __future__ import annotations

import logging
import sys
from typing import Any

_LOGGER = logging.getLogger("tuning_runner")


def _fmt(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


def log(message: str, /, *, level: int = logging.INFO, **fields: Any) -> None:
    pairs = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
    _LOGGER.log(level, f"{message} {pairs}" if pairs else message)


def warn(message: str, /, **fields: Any) -> None:
    log(message, level=logging.WARNING, **fields)


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("tuning_runner")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
