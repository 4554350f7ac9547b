"""Kaito's classic /chat body (the legacy transformers runtime's `UnifiedRequestModel`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
    seed: int | None = None
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
