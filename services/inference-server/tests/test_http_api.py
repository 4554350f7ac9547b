"""Every endpoint of the real server (uvicorn on 127.0.0.1) with the tiny model."""

from __future__ import annotations

import json

import httpx
import pytest

from inference_server.app import build_app
from inference_server.settings import ServerSettings

from .conftest import MODEL_NAME, RunningServer, metric_value
from .fake_engine import FakeEngine


def _sse(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def test_root_health_models(server: RunningServer) -> None:
    with server.client() as c:
        assert c.get("/").json() == {"message": "Server is running"}
        assert c.get("/health").json() == {"status": "Healthy"}
        assert c.get("/healthz").status_code == 200
        models = c.get("/v1/models").json()
    ids = [m["id"] for m in models["data"]]
    assert ids[0] == MODEL_NAME and "alpha" in ids
    assert models["data"][1]["parent"] == MODEL_NAME


async def test_health_is_503_until_the_model_is_loaded(tmp_path: object) -> None:
    engine = FakeEngine(ready=False)
    app = build_app(ServerSettings(served_model_name="m"), engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/health")
        assert r.status_code == 503 and r.json()["detail"] == "Model is loading"
        body = {"model": "m", "prompt": "hi", "max_tokens": 2}
        r = await c.post("/v1/completions", json=body)
        assert r.status_code == 503 and r.json()["error"]["code"] == 503
        engine.ready = True
        assert (await c.get("/health")).status_code == 200


def test_kaito_chat_prompt_and_messages(server: RunningServer) -> None:
    with server.client() as c:
        greedy = {"do_sample": False, "max_new_tokens": 6}
        r = c.post("/chat", json={"prompt": "hello world", "generate_kwargs": greedy})
        assert r.status_code == 200
        full = r.json()["Result"]
        assert full.startswith("hello world") and len(full) > len("hello world")
        body = {"prompt": "hello world", "return_full_text": False, "generate_kwargs": greedy}
        tail = c.post("/chat", json=body).json()["Result"]
        assert full == "hello world" + tail
        msgs = {"messages": [{"role": "user", "content": "hi"}], "generate_kwargs": greedy}
        assert c.post("/chat", json=msgs).json()["Result"]
        # max_length counts the prompt: a tiny budget leaves no room.
        small = {"prompt": "hello world", "generate_kwargs": {"max_length": 2}}
        r = c.post("/chat", json=small)
        assert r.status_code == 400 and "max_length" in r.json()["detail"]


def test_kaito_chat_errors(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post("/chat", json={})
        assert r.status_code == 400
        assert r.json() == {"detail": "Text generation parameter prompt required"}
        r = c.post("/chat", json={"prompt": "x", "generate_kwargs": {"top_k": "many"}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "top_k"


def test_chat_completion_non_streaming(server: RunningServer) -> None:
    body = {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 7,
        "temperature": 0,
        "ignore_eos": True,
    }
    with server.client() as c:
        r = c.post("/v1/chat/completions", json=body)
    data = r.json()
    assert r.status_code == 200 and data["object"] == "chat.completion"
    assert data["model"] == MODEL_NAME and data["id"].startswith("chatcmpl-")
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 7
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + 7


def test_chat_completion_streaming_matches_non_streaming(server: RunningServer) -> None:
    body = {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "stream me"}],
        "max_tokens": 9,
        "temperature": 0,
        "ignore_eos": True,
    }
    with server.client() as c:
        plain = c.post("/v1/chat/completions", json=body).json()
        stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        r = c.post("/v1/chat/completions", json=stream_body)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _sse(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks if ch["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    finals = [ch for ch in chunks if ch["choices"] and ch["choices"][0]["finish_reason"]]
    assert [f["choices"][0]["finish_reason"] for f in finals] == ["length"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]


def test_completions_list_prompt_stop_and_echo(server: RunningServer) -> None:
    with server.client() as c:
        base = {"model": MODEL_NAME, "max_tokens": 20, "temperature": 0, "ignore_eos": True}
        r = c.post("/v1/completions", json={**base, "prompt": ["one two", "three"]})
        data = r.json()
        assert [ch["index"] for ch in data["choices"]] == [0, 1]
        text = data["choices"][0]["text"]
        stop = text[5:8]
        r = c.post("/v1/completions", json={**base, "prompt": "one two", "stop": [stop]})
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] == "stop" and choice["text"] == text[: text.index(stop)]
        echo = c.post("/v1/completions", json={**base, "prompt": "one two", "echo": True})
        assert echo.json()["choices"][0]["text"] == "one two" + text
        stream = c.post(
            "/v1/completions", json={**base, "prompt": "one two", "stream": True, "stop": stop}
        )
    events = _sse(stream.text)
    assert events[-1] == "[DONE]"
    pieces = [json.loads(e)["choices"][0]["text"] for e in events[:-1]]
    assert "".join(pieces) == text[: text.index(stop)]


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/completions", {"model": "nope", "prompt": "x"}, 404, "model"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 100000}, 400, "max_tokens"),
        ("/v1/completions", {"prompt": "word " * 600}, 400, "prompt"),
        ("/v1/completions", {"prompt": "x", "max_tokens": "many"}, 400, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "n": 2}, 400, "n"),
        ("/v1/completions", {"max_tokens": 2}, 400, "prompt"),
        ("/v1/chat/completions", {"messages": []}, 400, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                  "max_completion_tokens": 100000}, 400, "max_completion_tokens"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                  "temperature": -1}, 400, "temperature"),
    ],
)  # fmt: skip
def test_openai_errors_name_the_field(
    server: RunningServer, path: str, body: dict[str, object], status: int, param: str
) -> None:
    with server.client() as c:
        r = c.post(path, json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["code"] == status and error["message"]


def test_malformed_json_is_a_400(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post(
            "/v1/chat/completions",
            content=b'{"messages": [',
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_metrics_agree_with_what_clients_received(server: RunningServer) -> None:
    with server.client() as c:
        before = c.get("/metrics").text
        received = 0
        prompts = 0
        for n in (3, 5, 8):
            body = {"model": MODEL_NAME, "prompt": f"count {n}", "max_tokens": n, "temperature": 0}
            usage = c.post("/v1/completions", json=body).json()["usage"]
            received += usage["completion_tokens"]
            prompts += usage["prompt_tokens"]
        after = c.get("/metrics").text
    assert after.startswith("# HELP") or "vllm:" in after

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("vllm:generation_tokens_total") == received
    assert delta("vllm:prompt_tokens_total") == prompts
    finished = delta("vllm:request_success_total", finished_reason="length") + delta(
        "vllm:request_success_total", finished_reason="stop"
    )
    assert finished == 3
    assert delta("vllm:time_to_first_token_seconds_count") == 3
    assert delta("vllm:e2e_request_latency_seconds_count") == 3
    assert delta("vllm:request_generation_tokens_sum") == received
    assert metric_value(after, "vllm:num_requests_running", model_name=MODEL_NAME) == 0
    for name in ("vllm:kv_cache_usage_perc", "vllm:iteration_tokens_total_count",
                 "vllm:inter_token_latency_seconds_count", "vllm:request_queue_time_seconds_count",
                 "kaito_ratelimit_rejected_total", "vllm:num_requests_waiting"):  # fmt: skip
        assert name in after
