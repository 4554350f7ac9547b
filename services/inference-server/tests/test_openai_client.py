"""The official `openai` client, sync and async, streaming and not, against the real server."""

from __future__ import annotations

import openai

from .conftest import MODEL_NAME, RunningServer

MESSAGES = [{"role": "user", "content": "hello from openai"}]
EXTRA = {"ignore_eos": True}


def test_sync_client(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    models = [m.id for m in client.models.list()]
    assert MODEL_NAME in models
    chat = client.chat.completions.create(
        model=MODEL_NAME, messages=MESSAGES, max_tokens=6, temperature=0, extra_body=EXTRA
    )
    assert chat.choices[0].finish_reason == "length" and chat.usage is not None
    assert chat.usage.completion_tokens == 6
    stream = client.chat.completions.create(
        model=MODEL_NAME, messages=MESSAGES, max_tokens=6, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body=EXTRA,
    )  # fmt: skip
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == chat.choices[0].message.content
    assert usage is not None and usage.completion_tokens == 6
    done = client.completions.create(model=MODEL_NAME, prompt="abc", max_tokens=4, temperature=0)
    assert done.choices[0].text and done.usage is not None
    try:
        client.completions.create(model="missing", prompt="abc")
    except openai.NotFoundError as exc:
        assert exc.status_code == 404
    else:
        raise AssertionError("expected NotFoundError")


async def test_async_client(server: RunningServer) -> None:
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused")
    done = await client.completions.create(
        model=MODEL_NAME, prompt="abc", max_tokens=5, temperature=0, extra_body=EXTRA
    )
    stream = await client.completions.create(
        model=MODEL_NAME, prompt="abc", max_tokens=5, temperature=0, stream=True, extra_body=EXTRA
    )
    text = "".join([chunk.choices[0].text async for chunk in stream if chunk.choices])
    assert text == done.choices[0].text
    chat = await client.chat.completions.create(
        model="alpha", messages=MESSAGES, max_tokens=4, temperature=0, extra_body=EXTRA
    )
    assert chat.model == "alpha" and chat.usage is not None and chat.usage.completion_tokens == 4
    chunks = await client.chat.completions.create(
        model=MODEL_NAME, messages=MESSAGES, max_tokens=4, stream=True, extra_body=EXTRA
    )
    assert len([c async for c in chunks]) >= 5
    await client.close()
