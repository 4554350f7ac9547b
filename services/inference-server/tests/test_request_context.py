"""Each request's id: echoed from a sane `X-Request-Id`, made up otherwise, and in its log lines."""

from __future__ import annotations

import logging

import httpx
import pytest

from inference_server.app import build_app
from inference_server.settings import ServerSettings
from kaito_common.logs import record_fields

from .fake_engine import FakeEngine


class _Fields(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record_fields(record))


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = build_app(ServerSettings(served_model_name="m"), FakeEngine())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_sane_id_is_echoed_and_others_replaced(client: httpx.AsyncClient) -> None:
    async with client:
        given = await client.get("/v1/models", headers={"X-Request-Id": "abc-123"})
        made = await client.get("/v1/models")
        odd = await client.get("/v1/models", headers={"X-Request-Id": "a b\tc"})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 16
    assert odd.headers["x-request-id"] != "a b\tc"


async def test_the_id_is_in_the_requests_log_lines(client: httpx.AsyncClient) -> None:
    handler = _Fields()
    logger = logging.getLogger("inference_server")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        async with client:
            await client.post(
                "/v1/completions", content=b"not json", headers={"X-Request-Id": "r1"}
            )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert any(fields.get("request_id") == "r1" for fields in handler.seen), handler.seen
