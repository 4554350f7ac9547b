"""Kaito's classic API: POST /chat -> {"Result": text}."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from inference_server.api.disconnect import ClientDisconnectedError, run_until_disconnect
from inference_server.api.kaito_schemas import (
    KAITO_ERROR_RESPONSES,
    ChatResult,
    GenerateKwargs,
    UnifiedRequest,
)
from inference_server.engine.types import SamplingParams
from inference_server.errors import InvalidRequestError
from inference_server.serving import CompletionService

router = APIRouter()


def _options(kw: GenerateKwargs, prompt_tokens: int) -> SamplingParams:
    if kw.num_beams != 1:
        raise InvalidRequestError("num_beams > 1 is not supported", "generate_kwargs.num_beams")
    if kw.max_new_tokens is not None:
        max_tokens = kw.max_new_tokens
    else:
        # Kaito counts max_length including the prompt.
        max_tokens = kw.max_length - prompt_tokens
        if max_tokens < 1:
            raise InvalidRequestError(
                f"generate_kwargs.max_length ({kw.max_length}) must exceed the prompt length "
                f"({prompt_tokens} tokens); raise it or set max_new_tokens",
                "generate_kwargs.max_length",
            )
    min_tokens = max(kw.min_new_tokens or 0, kw.min_length - prompt_tokens, 0)
    stop = (kw.stop,) if isinstance(kw.stop, str) else tuple(kw.stop or ())
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=kw.temperature if kw.do_sample else 0.0,
        top_k=kw.top_k,
        top_p=kw.top_p,
        repetition_penalty=kw.repetition_penalty,
        seed=kw.seed,
        stop=stop,
        min_tokens=min_tokens,
    )


@router.post("/chat", response_model=ChatResult, responses=KAITO_ERROR_RESPONSES)
async def chat(body: UnifiedRequest, request: Request) -> ChatResult | Response:
    service: CompletionService = request.app.state.service
    adapter = service.resolve_adapter(body.model)
    if body.messages:
        prompt_ids = service.encode_chat([m.model_dump() for m in body.messages])
        prompt_text = ""
    elif body.prompt:
        prompt_text = body.prompt
        prompt_ids = service.encode_prompt((body.prefix or "") + body.prompt)
    else:
        return JSONResponse(
            {"detail": "Text generation parameter prompt required"}, status_code=400
        )
    options = _options(body.generate_kwargs, len(prompt_ids))
    gen = service.build_request(
        prompt_ids,
        options,
        adapter=adapter,
        max_tokens_param="generate_kwargs.max_new_tokens",
        prompt_param="messages" if body.messages else "prompt",
        truncate_prompt=body.handle_long_generation == "hole",
    )
    try:
        done = await run_until_disconnect(request, service.complete(gen))
    except ClientDisconnectedError:
        return Response(status_code=499)
    text = done.text
    if body.return_full_text and not body.messages:
        text = prompt_text + text
    return ChatResult(Result=text)
