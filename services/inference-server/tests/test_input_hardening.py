"""Hostile and sloppy request bodies get a 4xx that names the field, never a 5xx or a hang, and
the server keeps serving afterwards.

The real server (tiny model, transformers engine) takes the cases that once broke the engine
(token ids outside the vocabulary); the fake engine, in process, takes the body-level ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request

from inference_server.api.json_body import MAX_DEPTH
from inference_server.app import build_app
from inference_server.settings import ServerSettings

from .conftest import MODEL_NAME, RunningServer
from .fake_engine import FakeEngine

FORM = {"content-type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
JSON = {"content-type": "application/json"}


@pytest.fixture
async def fake() -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(ServerSettings(served_model_name="m", default_max_tokens=4), FakeEngine())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def _still_serves(c: httpx.AsyncClient) -> None:
    r = await c.post("/v1/completions", json={"prompt": "ok", "max_tokens": 2})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "ok"
    r = await c.post("/chat", json={"prompt": "ok", "generate_kwargs": {"max_new_tokens": 2}})
    assert r.status_code == 200 and r.json() == {"Result": "okok"}


def _openai_error(r: httpx.Response, status: int, param: str | None) -> str:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == status and error["param"] == param, error
    message: str = error["message"]
    return message


def _kaito_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    detail: str = r.json()["detail"]
    return detail


# -- the README's curl, and bodies that are not declared as JSON --------------------------


def test_readme_curl_without_a_json_content_type_gets_a_result(server: RunningServer) -> None:
    body = json.dumps({"prompt": "hello", "generate_kwargs": {"max_new_tokens": 3}})
    with server.client() as c:
        for headers in (FORM, {}):
            r = c.post("/chat", content=body, headers=headers)
            assert r.status_code == 200, r.text
            assert r.json()["Result"].startswith("hello")
        r = c.post("/v1/completions", content=body.replace("generate_kwargs", "x"), headers=FORM)
        assert r.status_code == 200 and r.json()["choices"][0]["text"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_the_readme_curl_command_itself(server: RunningServer) -> None:
    body = '{"prompt":"hello","generate_kwargs":{"max_new_tokens":3}}'
    out = subprocess.run(
        ["curl", "-sS", "-X", "POST", f"{server.url}/chat", "-d", body],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout)["Result"].startswith("hello")


async def test_a_body_that_is_not_json_is_a_415_or_a_400(fake: httpx.AsyncClient) -> None:
    r = await fake.post("/chat", content=b"prompt=hello", headers=FORM)
    assert "application/json" in _kaito_error(r, 415)
    r = await fake.post("/v1/completions", content=b"hello", headers={"content-type": "text/plain"})
    assert "Content-Type 'text/plain'" in _openai_error(r, 415, None)
    # Declared as JSON, or not declared at all: a 400 that says why.
    for headers in (JSON, {}):
        r = await fake.post("/v1/completions", content=b'{"prompt": "x",', headers=headers)
        assert "not valid JSON" in _openai_error(r, 400, None)
    r = await fake.post("/v1/completions", content=b'{"prompt": "x", "temperature": NaN}')
    assert "NaN is not a JSON number" in _openai_error(r, 400, None)
    await _still_serves(fake)


# -- token ids outside the vocabulary -----------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "where", "token"),
    [
        ([1000000000, 5], "prompt[0]", "1000000000"),
        ([-3], "prompt[0]", "-3"),
        ([5, 6, 2**70], "prompt[2]", str(2**70)),
        ([[5, 6], [7, -1]], "prompt[1][1]", "-1"),
    ],
)
def test_token_ids_outside_the_vocabulary_are_a_400(
    server: RunningServer, prompt: list[Any], where: str, token: str
) -> None:
    vocab = server.engine.codec.vocab_size
    with server.client() as c:
        r = c.post("/v1/completions", json={"prompt": prompt, "max_tokens": 2})
        message = _openai_error(r, 400, "prompt")
        assert message.startswith(f"{where}: token id {token} ")
        assert f"0 to {vocab - 1}" in message
        # The server keeps serving, with the edge of the vocabulary itself accepted.
        ok = {"prompt": [1, vocab - 1], "max_tokens": 2, "temperature": 0, "ignore_eos": True}
        r = c.post("/v1/completions", json={**ok, "model": MODEL_NAME})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2
        assert c.get("/health").status_code == 200


def test_sampling_values_the_engine_cannot_compute_with(server: RunningServer) -> None:
    with server.client() as c:
        base = {"prompt": "hello", "max_tokens": 3, "ignore_eos": True}
        # A temperature this close to 0 is greedy (it would overflow the logits as a divisor).
        tiny = c.post("/v1/completions", json={**base, "temperature": 1e-30}).json()
        greedy = c.post("/v1/completions", json={**base, "temperature": 0}).json()
        assert tiny["choices"][0]["text"] == greedy["choices"][0]["text"]
        r = c.post("/v1/completions", json={**base, "repetition_penalty": 1e-30})
        assert "repetition_penalty" in _openai_error(r, 400, "repetition_penalty")
        r = c.post("/v1/completions", json={**base, "seed": 2**64})
        _openai_error(r, 400, "seed")
        r = c.post("/chat", json={"prompt": "x", "generate_kwargs": {"seed": -(2**64)}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "seed"


# -- invalid UTF-8 and lone surrogates ------------------------------------------------------


async def test_invalid_utf8_is_a_400_naming_the_field(fake: httpx.AsyncClient) -> None:
    r = await fake.post("/v1/completions", content=b'{"prompt": "caf\xe9", "max_tokens": 2}')
    assert "not valid UTF-8" in _openai_error(r, 400, "prompt")
    body = b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}'
    r = await fake.post("/v1/chat/completions", content=body, headers=JSON)
    assert _openai_error(r, 400, "messages[0].content").startswith("messages[0].content: ")
    r = await fake.post("/chat", content=b'{"prompt": "x", "prefix": "\xc3"}', headers=FORM)
    assert _kaito_error(r, 400).startswith("prefix: contains bytes that are not valid UTF-8")
    # Outside any string: the body as a whole.
    r = await fake.post("/chat", content=b'{"prompt": "x"}\xff', headers=JSON)
    assert "not valid UTF-8 (byte 0xff at offset 15)" in _kaito_error(r, 400)
    await _still_serves(fake)


async def test_escaped_lone_surrogates_are_a_400_naming_the_field(
    fake: httpx.AsyncClient,
) -> None:
    r = await fake.post("/v1/completions", content=b'{"prompt": "a\\ud800b", "max_tokens": 2}')
    assert "surrogate" in _openai_error(r, 400, "prompt")
    r = await fake.post("/chat", content=b'{"prompt": "x", "model": "\\ud83d"}', headers=FORM)
    assert _kaito_error(r, 400).startswith("model: ")
    # A proper surrogate pair is one character, and fine.
    r = await fake.post("/chat", content=b'{"prompt": "\\ud83d\\ude00", "return_full_text": false,'
                        b' "generate_kwargs": {"max_new_tokens": 2}}')  # fmt: skip
    assert r.status_code == 200 and r.json() == {"Result": "\U0001f600\U0001f600"}
    await _still_serves(fake)


# -- absurd nesting -------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
async def test_absurd_nesting_is_a_400_naming_the_field(
    fake: httpx.AsyncClient, depth: int
) -> None:
    deep = "[" * depth + "]" * depth
    r = await fake.post("/v1/completions", content=f'{{"max_tokens": 2, "prompt": {deep}}}')
    message = _openai_error(r, 400, "prompt")
    assert message.startswith(f"prompt: nested deeper than {MAX_DEPTH} levels")
    deep_object = '{"a":' * depth + "1" + "}" * depth
    body = f'{{"prompt": "x", "generate_kwargs": {{"extra": {deep_object}}}}}'
    r = await fake.post("/chat", content=body, headers=FORM)
    assert _kaito_error(r, 400).startswith("generate_kwargs: nested deeper than")
    await _still_serves(fake)


async def test_nesting_within_the_limit_reaches_the_usual_validation(
    fake: httpx.AsyncClient,
) -> None:
    r = await fake.post("/v1/completions", json={"prompt": [[[1]]], "max_tokens": 2})
    _openai_error(r, 400, "prompt")  # pydantic's own "not a valid ..." answer


# -- prompts longer than the context ----------------------------------------------------------


async def test_prompts_longer_than_the_context_are_a_400_naming_the_field(
    fake: httpx.AsyncClient,
) -> None:
    long_text = "x" * 300  # the fake engine: one token per character, 256 in the context
    r = await fake.post("/v1/completions", json={"prompt": long_text, "max_tokens": 2})
    assert "maximum context length is 256" in _openai_error(r, 400, "prompt")
    r = await fake.post("/v1/completions", json={"prompt": [65] * 300, "max_tokens": 2})
    assert "has 300 tokens" in _openai_error(r, 400, "prompt")
    r = await fake.post("/v1/completions", json={"prompt": ["ok", long_text], "max_tokens": 2})
    _openai_error(r, 400, "prompt")
    messages = [{"role": "user", "content": long_text}]
    r = await fake.post("/v1/chat/completions", json={"messages": messages})
    assert "your messages has" in _openai_error(r, 400, "messages")
    budget = {"max_new_tokens": 2}
    r = await fake.post("/chat", json={"prompt": long_text, "generate_kwargs": budget})
    assert "your prompt has 300 tokens" in _kaito_error(r, 400)
    r = await fake.post("/chat", json={"messages": messages, "generate_kwargs": budget})
    assert "your messages has" in _kaito_error(r, 400)
    await _still_serves(fake)


# -- the validation error handler, and the schema ----------------------------------------------


async def test_validation_errors_with_raw_bytes_still_serialise() -> None:
    """Whatever pydantic puts in an error (raw bytes, objects, lone surrogates), the handler
    answers with JSON instead of failing itself."""
    app = build_app(ServerSettings(served_model_name="m"), FakeEngine())
    handler = app.exception_handlers[RequestValidationError]
    error = {
        "type": "model_attributes_type",
        "loc": ("body",),
        "msg": "Input should be a valid dictionary",
        "input": b"\xff\xfe{not json",
        "ctx": {"error": ValueError("bad \ud800")},
    }
    for path, status in (("/chat", 422), ("/v1/completions", 400)):
        scope = {"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b""}
        response = await handler(Request(scope), RequestValidationError([error]))
        assert response.status_code == status
        body = json.loads(bytes(response.body))
        assert "valid dictionary" in json.dumps(body)


async def test_openapi_describes_the_responses(fake: httpx.AsyncClient) -> None:
    spec = (await fake.get("/openapi.json")).json()

    def response(path: str, method: str, status: str, media: str = "application/json") -> Any:
        return spec["paths"][path][method]["responses"][status]["content"][media]["schema"]

    refs = {
        ("/v1/completions", "post", "200"): "CompletionResponse",
        ("/v1/chat/completions", "post", "200"): "ChatCompletionResponse",
        ("/v1/completions", "post", "400"): "ErrorResponse",
        ("/v1/completions", "post", "415"): "ErrorResponse",
        ("/chat", "post", "200"): "ChatResult",
        ("/chat", "post", "400"): "KaitoError",
        ("/v1/models", "get", "200"): "ModelList",
    }
    for (path, method, status), name in refs.items():
        assert response(path, method, status)["$ref"].endswith(f"/{name}"), (path, status)
    assert (
        "text/event-stream"
        in spec["paths"]["/v1/completions"]["post"]["responses"]["200"]["content"]
    )
    usage = spec["components"]["schemas"]["Usage"]["properties"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
