"""Request bodies over `max_request_bytes` get 413 naming the limit before they are read whole,
whether the Content-Length says so or a streamed body grows past it; the server keeps serving.

In process (the fake engine, a small limit) and on a real uvicorn server over raw sockets (the
default 8 MiB limit: a client that keeps sending is cut off, not buffered).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn

from inference_server.api.json_body import DEFAULT_MAX_REQUEST_BYTES, JSONBodyMiddleware
from inference_server.app import build_app
from inference_server.settings import ServerSettings, parse_settings

from .fake_engine import FakeEngine

LIMIT = 4096


def _settings() -> ServerSettings:
    return ServerSettings(served_model_name="m", default_max_tokens=4)


@pytest.fixture
async def small() -> AsyncIterator[httpx.AsyncClient]:
    """The app behind a body middleware with a small limit."""
    app = JSONBodyMiddleware(build_app(_settings(), FakeEngine()), max_request_bytes=LIMIT)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def _body(size: int) -> bytes:
    """A valid completion request of exactly `size` bytes."""
    head = b'{"prompt": "ok", "max_tokens": 2, "user": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def _assert_413(r: httpx.Response | tuple[int, dict[str, str], bytes], openai: bool) -> None:
    if isinstance(r, httpx.Response):
        status, headers, body = r.status_code, dict(r.headers), r.content
    else:
        status, headers, body = r
    assert status == 413, body[:300]
    assert headers.get("connection") == "close"
    doc = json.loads(body)
    message = doc["error"]["message"] if openai else doc["detail"]
    assert "Request body is larger than this server accepts" in message
    assert "--max-request-bytes" in message
    if openai:
        assert doc["error"]["code"] == 413


async def _serves(c: httpx.AsyncClient) -> None:
    r = await c.post("/v1/completions", json={"prompt": "ok", "max_tokens": 2})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "ok"


async def test_a_declared_length_over_the_limit_is_refused_unread(
    small: httpx.AsyncClient,
) -> None:
    r = await small.post("/v1/completions", content=_body(LIMIT + 1))
    _assert_413(r, openai=True)
    assert f"{LIMIT} bytes" in r.json()["error"]["message"]
    r = await small.post("/chat", content=_body(LIMIT + 1))
    _assert_413(r, openai=False)
    # At the limit exactly: served.
    r = await small.post("/v1/completions", content=_body(LIMIT))
    assert r.status_code == 200, r.text
    await _serves(small)


async def test_a_streamed_body_is_cut_off_once_past_the_limit(small: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 1 MB in all, far past the 4 KiB limit
            sent += 1
            yield b"x" * 1000

    r = await small.post("/v1/completions", content=chunks())  # chunked: no Content-Length
    _assert_413(r, openai=True)
    assert sent < 20, sent  # read up to the limit, not to the end
    await _serves(small)


def test_the_limit_is_a_setting_with_a_flag_and_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ServerSettings().max_request_bytes == DEFAULT_MAX_REQUEST_BYTES == 8 << 20
    monkeypatch.setenv("KAITO_MAX_REQUEST_BYTES", "65536")
    assert parse_settings([]).max_request_bytes == 65536
    assert parse_settings(["--max-request-bytes=1048576"]).max_request_bytes == 1 << 20


@pytest.fixture(scope="module")
def served() -> Iterator[int]:
    """The app with default settings under uvicorn on a free port; yields the port."""
    app = build_app(_settings(), FakeEngine())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _response(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response (with a Content-Length) from `conn`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = conn.recv(65536)
        assert chunk
        body += chunk
    return status, headers, body


def _send_until_answered(conn: socket.socket, chunks: Iterator[bytes]) -> int:
    """Send `chunks` until the server answers (or stops reading); the bytes sent."""
    sent = 0
    for chunk in chunks:
        readable, _, _ = select.select([conn], [], [], 0)
        if readable:
            break
        try:
            conn.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    return sent


def test_the_real_server_refuses_a_declared_length_over_the_default_limit(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=10) as conn:
        head = (
            "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {DEFAULT_MAX_REQUEST_BYTES + 1}\r\n\r\n"
        )
        conn.sendall(head.encode() + b'{"prompt": "')  # the rest never comes
        _assert_413(_response(conn), openai=True)
    assert (
        httpx.post(
            f"http://127.0.0.1:{served}/v1/completions", json={"prompt": "ok", "max_tokens": 2}
        ).json()["choices"][0]["text"]
        == "ok"
    )


def test_the_real_server_cuts_off_a_streamed_body_past_the_default_limit(served: int) -> None:
    block = b"x" * 65536
    chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    total = 4 * DEFAULT_MAX_REQUEST_BYTES // len(block)  # 32 MiB offered
    with socket.create_connection(("127.0.0.1", served), timeout=10) as conn:
        conn.sendall(
            b"POST /chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        sent = _send_until_answered(conn, iter([chunk] * total))
        _assert_413(_response(conn), openai=False)
    assert sent < 2 * DEFAULT_MAX_REQUEST_BYTES, sent  # cut off near the limit
    assert httpx.post(
        f"http://127.0.0.1:{served}/chat",
        json={"prompt": "ok", "generate_kwargs": {"max_new_tokens": 2}},
    ).json() == {"Result": "okok"}


async def test_build_app_applies_the_setting() -> None:
    app = build_app(ServerSettings(served_model_name="m", max_request_bytes=4096), FakeEngine())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/v1/completions", content=b"{" + b" " * 5000 + b"}")
    assert response.status_code == 413
    assert "4096 bytes" in response.json()["error"]["message"]
