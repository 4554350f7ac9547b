"""Response bodies of the OpenAI routes, so that /openapi.json describes what clients receive."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


FinishReason = Literal["stop", "length"] | None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None = None
    finish_reason: FinishReason


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: FinishReason


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    root: str
    parent: str | None
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: int


class ErrorResponse(BaseModel):
    """OpenAI's error body: `param` names the request field at fault, when there is one."""

    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# The errors every generation route may answer, for `responses=` on the route.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The request is invalid; `error.param` names the field"),
    404: _error("The `model` is neither the served model nor a loaded adapter"),
    415: _error("The body is not JSON and its Content-Type is not JSON either"),
    429: _error("The queue is full; retry after the `Retry-After` header's seconds"),
    503: _error("The model is still loading"),
}

# With `stream: true`: one server-sent event per chunk (its `data` a chunk's JSON, or an `error`
# object if the generation failed midway), then `data: [DONE]`. Under OpenAPI 3.1 the schema
# describes each event.
SSE_RESPONSE: dict[str, Any] = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "properties": {"data": {"type": "string"}},
            "required": ["data"],
        }
    }
}
