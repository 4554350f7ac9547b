"""The shared log configuration: JSON lines with a stable field set, text lines, levels."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from kaito_common.logs import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    log_context,
    parse_format,
    parse_level,
)


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _emit(formatter: logging.Formatter, *, exc: bool = False, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("kaito.test.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    if exc:
        try:
            raise RuntimeError("pull failed")
        except RuntimeError:
            logger.exception("Failed to pull image", extra=extra)
    else:
        logger.info("Created NodeClaim %s", "ws-abc", extra=extra)
    return stream.getvalue()


def test_json_line_has_the_stable_fields() -> None:
    line = json.loads(_emit(JsonFormatter()))
    assert list(line) == ["time", "level", "logger", "message"]
    assert line["level"] == "info"
    assert line["logger"] == "kaito.test.logs"
    assert line["message"] == "Created NodeClaim ws-abc"
    assert line["time"].endswith("Z")
    assert datetime.fromisoformat(line["time"].replace("Z", "+00:00")).utcoffset() is not None


def test_json_line_carries_context_and_extra_fields_in_order() -> None:
    with log_context(namespace="team-a", workspace="phi"):
        out = _emit(JsonFormatter(), nodeclaim="wsabc123", request_id="r-1", attempt=2)
    line = json.loads(out)
    assert list(line)[:8] == [
        "time", "level", "logger", "message", "workspace", "namespace", "request_id", "nodeclaim",
    ]  # fmt: skip
    assert line["workspace"] == "phi"
    assert line["namespace"] == "team-a"
    assert line["request_id"] == "r-1"
    assert line["nodeclaim"] == "wsabc123"
    assert line["attempt"] == 2


def test_context_ends_with_its_block() -> None:
    with log_context(workspace="phi"):
        pass
    assert "workspace" not in json.loads(_emit(JsonFormatter()))


def test_json_exception_is_one_field_on_one_line() -> None:
    out = _emit(JsonFormatter(), exc=True)
    assert out.count("\n") == 1
    line = json.loads(out)
    assert line["level"] == "error"
    assert "RuntimeError: pull failed" in line["exception"]


def test_text_line_appends_fields_and_keeps_traceback_below() -> None:
    with log_context(workspace="phi"):
        out = _emit(TextFormatter(), exc=True, reason="bad image")
    first, _, rest = out.partition("\n")
    assert first.endswith('Failed to pull image workspace=phi reason="bad image"')
    assert " ERROR kaito.test.logs " in first
    assert "RuntimeError: pull failed" in rest


@pytest.mark.parametrize(
    ("given", "level"),
    [("info", logging.INFO), ("INFO", logging.INFO), ("Debug", logging.DEBUG),
     ("warn", logging.WARNING), ("warning", logging.WARNING), ("error", logging.ERROR), (10, 10)],
)  # fmt: skip
def test_levels_in_any_case(given: str | int, level: int) -> None:
    assert parse_level(given) == level


def test_unknown_level_and_format_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        parse_level("loud")
    with pytest.raises(ValueError, match="unknown log format"):
        parse_format("xml")
    assert parse_format("JSON") == "json"


def test_configure_logging_routes_every_logger(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    logging.getLogger("some.library").debug("Read %d bytes", 5)
    line = json.loads(stream.getvalue())
    assert line["message"] == "Read 5 bytes"
    assert line["level"] == "debug"
    assert len(logging.getLogger().handlers) == 1


def test_uvicorn_loggers_go_through_the_same_handler(restore_root: None) -> None:
    import logging.config

    from kaito_common.logs import uvicorn_log_config

    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    logging.config.dictConfig(uvicorn_log_config("INFO"))  # what uvicorn.Config does with it
    logging.getLogger("uvicorn.access").info("GET /health 200")
    logging.getLogger("uvicorn.error").debug("not shown at info")
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert (line["logger"], line["message"]) == ("uvicorn.access", "GET /health 200")
