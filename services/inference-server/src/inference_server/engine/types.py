"""Plain data exchanged between the serving layer and an engine (no torch here)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding controls; `temperature == 0` (`do_sample=False` upstream) is greedy.

    The APIs build one from a request body; `max_tokens` None (the body set none) means the
    server's default, which the serving layer fills in before an engine sees the request (an
    engine reads None as "until the context is full", as vLLM does)."""

    max_tokens: int | None = None
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    min_tokens: int = 0
    ignore_eos: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0 or self.top_k == 1


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str
    prompt_token_ids: tuple[int, ...]
    sampling: SamplingParams
    adapter: str | None = None
    arrival_time: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class GenerationOutput:
    """One step of a request: the tokens and text produced since the previous output."""

    request_id: str
    token_ids: tuple[int, ...]
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason | None = None
    queue_time_s: float | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: str


@dataclass(frozen=True)
class EngineStats:
    ready: bool
    not_ready_reason: str
    num_running: int
    num_waiting: int
    kv_cache_usage: float
    max_model_len: int
    adapters: tuple[AdapterInfo, ...] = ()


@dataclass(frozen=True)
class IterationReport:
    """What one engine step did; an engine's iteration observer gets one after every step."""

    prefilled: tuple[tuple[str, int], ...] = ()  # (request id, prompt tokens prefilled)
    decoded: tuple[str, ...] = ()  # requests that got a token from the step's batched decode
    failed: tuple[str, ...] = ()  # requests the step ended with an error
    tokens: int = 0  # tokens the step's forwards computed (padding excluded)
