"""Kaito's classic /chat body (the legacy transformers runtime's `UnifiedRequestModel`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from inference_server.api.openai_schemas import SEED_MAX, SEED_MIN


class GenerateKwargs(BaseModel):
    """`generate()` options with Kaito's defaults; unknown keys are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    max_length: int = Field(200, ge=1)
    min_length: int = Field(0, ge=0)
    do_sample: bool = True
    early_stopping: bool = False
    num_beams: int = Field(1, ge=1)
    temperature: float = Field(1.0, ge=0)
    top_k: int = Field(10, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    typical_p: float = Field(1.0, gt=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0)
    max_new_tokens: int | None = Field(None, ge=1)
    min_new_tokens: int | None = Field(None, ge=0)
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    stop: str | list[str] | None = None


class KaitoMessage(BaseModel):
    role: str
    content: str


class UnifiedRequest(BaseModel):
    prompt: str | None = None
    messages: list[KaitoMessage] | None = None
    return_full_text: bool = True
    clean_up_tokenization_spaces: bool = False
    prefix: str | None = None
    handle_long_generation: str | None = None
    generate_kwargs: GenerateKwargs = Field(default_factory=GenerateKwargs)
    model: str | None = None


class ChatResult(BaseModel):
    """/chat's answer: the generated text (after the prompt unless `return_full_text` is off)."""

    Result: str


class KaitoError(BaseModel):
    detail: str


def _error(description: str) -> dict[str, Any]:
    return {"model": KaitoError, "description": description}


# The errors /chat may answer besides FastAPI's own 422 for a body of the wrong shape.
KAITO_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The request is invalid; the message names the field"),
    404: _error("The `model` is neither the served model nor a loaded adapter"),
    415: _error("The body is not JSON and its Content-Type is not JSON either"),
    429: _error("The queue is full; retry after the `Retry-After` header's seconds"),
    503: _error("The model is still loading"),
}
