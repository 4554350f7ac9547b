"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions (JSON and SSE)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from inference_server.api.disconnect import ClientDisconnectedError, run_until_disconnect
from inference_server.api.openai_responses import (
    ERROR_RESPONSES,
    SSE_RESPONSE,
    AssistantMessage,
    ChatCompletionChoice,
    ChatCompletionResponse,
    CompletionChoice,
    CompletionResponse,
    Usage,
)
from inference_server.api.openai_schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    SamplingFields,
)
from inference_server.engine.types import GenerationOutput, SamplingParams
from inference_server.errors import InvalidRequestError
from inference_server.serving import Completion, CompletionService

router = APIRouter()


def _service(request: Request) -> CompletionService:
    service: CompletionService = request.app.state.service
    return service


def _options(body: SamplingFields, max_tokens: int | None) -> SamplingParams:
    if body.n != 1:
        raise InvalidRequestError("only n=1 is supported", "n")
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_k=body.top_k or 0,
        top_p=1.0 if body.top_p is None else body.top_p,
        repetition_penalty=body.repetition_penalty or 1.0,
        seed=body.seed,
        stop=body.stop_strings(),
        min_tokens=body.min_tokens,
        ignore_eos=body.ignore_eos,
    )


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return Usage.of(prompt_tokens, completion_tokens).model_dump()


def _finish(reason: str | None) -> Literal["stop", "length"] | None:
    """OpenAI's finish reason: an aborted request reads as stopped."""
    if reason is None:
        return None
    return "length" if reason == "length" else "stop"


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletionResponse,
    responses={200: {"content": SSE_RESPONSE}, **ERROR_RESPONSES},
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request
) -> ChatCompletionResponse | Response:
    service = _service(request)
    adapter = service.resolve_adapter(body.model)
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    prompt_ids = service.encode_chat(messages)
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else None
    param = "max_completion_tokens" if max_tokens is not None else "max_tokens"
    if max_tokens is None:
        max_tokens = body.max_tokens
    gen = service.build_request(
        prompt_ids,
        _options(body, max_tokens),
        adapter=adapter,
        max_tokens_param=param,
        prompt_param="messages",
    )
    model = body.model or service.model_name
    completion_id = f"chatcmpl-{gen.request_id}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = service.generate(gen)
        return StreamingResponse(
            _chat_events(stream, completion_id, created, model, include_usage),
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )
    try:
        done = await run_until_disconnect(request, service.complete(gen))
    except ClientDisconnectedError:
        return Response(status_code=499)
    return ChatCompletionResponse(
        id=completion_id,
        created=created,
        model=model,
        choices=[
            ChatCompletionChoice(
                index=0,
                message=AssistantMessage(content=done.text),
                finish_reason=_finish(done.finish_reason),
            )
        ],
        usage=Usage.of(done.prompt_tokens, done.completion_tokens),
    )


async def _chat_events(
    stream: AsyncGenerator[GenerationOutput, None],
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    yield _sse(chunk({"role": "assistant", "content": ""}))
    last: GenerationOutput | None = None
    try:
        async with aclosing(stream):
            async for out in stream:
                last = out
                if out.text:
                    yield _sse(chunk({"content": out.text}))
                if out.finished:
                    yield _sse(chunk({}, _finish(out.finish_reason)))
    except Exception as exc:
        yield _sse({"error": {"message": str(exc), "type": "InternalServerError", "code": 500}})
    if include_usage and last is not None:
        usage = _usage(last.prompt_tokens, last.completion_tokens)
        yield _sse({**chunk({}), "choices": [], "usage": usage})
    yield "data: [DONE]\n\n"


def _prompts(service: CompletionService, prompt: Any) -> list[tuple[str, list[int]]]:
    """(text, ids) per prompt; a prompt may be text or token ids."""
    if isinstance(prompt, str):
        return [(prompt, service.encode_prompt(prompt))]
    if prompt and all(isinstance(p, int) for p in prompt):
        return [(service.decode_prompt_ids(prompt), list(prompt))]
    out: list[tuple[str, list[int]]] = []
    for i, item in enumerate(prompt):
        if isinstance(item, str):
            out.append((item, service.encode_prompt(item)))
        else:
            out.append((service.decode_prompt_ids(item, f"prompt[{i}]"), list(item)))
    if not out:
        raise InvalidRequestError("prompt must not be empty", "prompt")
    return out


@router.post(
    "/v1/completions",
    response_model=CompletionResponse,
    responses={200: {"content": SSE_RESPONSE}, **ERROR_RESPONSES},
)
async def completions(body: CompletionRequest, request: Request) -> CompletionResponse | Response:
    service = _service(request)
    adapter = service.resolve_adapter(body.model)
    options = _options(body, body.max_tokens)
    prompts = _prompts(service, body.prompt)
    gens = [service.build_request(ids, options, adapter=adapter) for _, ids in prompts]
    model = body.model or service.model_name
    completion_id = f"cmpl-{gens[0].request_id}"
    created = int(time.time())
    if body.stream:
        if len(gens) != 1:
            raise InvalidRequestError("streaming supports a single prompt", "prompt")
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        echo = prompts[0][0] if body.echo else ""
        return StreamingResponse(
            _completion_events(
                service.generate(gens[0]), completion_id, created, model, include_usage, echo
            ),
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )

    async def run_all() -> list[Completion]:
        return list(await asyncio.gather(*(service.complete(g) for g in gens)))

    try:
        results = await run_until_disconnect(request, run_all())
    except ClientDisconnectedError:
        return Response(status_code=499)
    choices = [
        CompletionChoice(
            index=i,
            text=(prompts[i][0] if body.echo else "") + done.text,
            finish_reason=_finish(done.finish_reason),
        )
        for i, done in enumerate(results)
    ]
    prompt_tokens = sum(r.prompt_tokens for r in results)
    completion_tokens = sum(r.completion_tokens for r in results)
    return CompletionResponse(
        id=completion_id,
        created=created,
        model=model,
        choices=choices,
        usage=Usage.of(prompt_tokens, completion_tokens),
    )


async def _completion_events(
    stream: AsyncGenerator[GenerationOutput, None],
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
    echo: str,
) -> AsyncIterator[str]:
    def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        }

    if echo:
        yield _sse(chunk(echo))
    last: GenerationOutput | None = None
    try:
        async with aclosing(stream):
            async for out in stream:
                last = out
                if out.finished:
                    yield _sse(chunk(out.text, _finish(out.finish_reason)))
                elif out.text:
                    yield _sse(chunk(out.text))
    except Exception as exc:
        yield _sse({"error": {"message": str(exc), "type": "InternalServerError", "code": 500}})
    if include_usage and last is not None:
        usage = _usage(last.prompt_tokens, last.completion_tokens)
        yield _sse({**chunk(""), "choices": [], "usage": usage})
    yield "data: [DONE]\n\n"
