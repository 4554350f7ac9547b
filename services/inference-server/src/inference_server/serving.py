"""The serving layer: turns API-level prompts and options into engine requests, enforces the
context and token limits, and records metrics for every output a client receives. It knows
nothing of FastAPI; the routers call it."""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing

from inference_server.engine.errors import QueueFullError
from inference_server.engine.protocol import Engine
from inference_server.engine.types import GenerationOutput, GenerationRequest, SamplingParams
from inference_server.errors import InvalidRequestError, ModelNotFoundError
from inference_server.metrics import ServerMetrics
from inference_server.settings import ServerSettings

# Below this a temperature means greedy decoding (vLLM's _SAMPLING_EPS).
GREEDY_BELOW_TEMPERATURE = 1e-5
# Logits divided by a smaller penalty overflow float32 to inf, and sampling then fails.
MIN_REPETITION_PENALTY = 1e-6


@dataclasses.dataclass(frozen=True)
class Completion:
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class CompletionService:
    def __init__(self, settings: ServerSettings, engine: Engine, metrics: ServerMetrics) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics

    @property
    def model_name(self) -> str:
        return self.settings.model_name

    def resolve_adapter(self, model: str | None) -> str | None:
        """The adapter a request's `model` selects (None: the base model)."""
        if not model or model == self.model_name:
            return None
        names = {a.name for a in self.engine.stats().adapters}
        if model in names:
            return model
        raise ModelNotFoundError(model)

    def encode_prompt(self, text: str) -> list[int]:
        return self.engine.codec.encode(text)

    def decode_prompt_ids(self, ids: Sequence[int], param: str = "prompt") -> str:
        """The text of a token-id prompt, once every id is checked against the vocabulary (an id
        outside it would index past the embedding table and fail the engine's whole batch)."""
        vocab = self.engine.codec.vocab_size
        for i, token in enumerate(ids):
            if not 0 <= token < vocab:
                raise InvalidRequestError(
                    f"{param}[{i}]: token id {token} is outside this model's vocabulary "
                    f"(ids 0 to {vocab - 1})",
                    param.split("[", 1)[0],
                )
        return self.engine.codec.decode(ids)

    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        codec = self.engine.codec
        try:
            rendered = codec.render_chat(messages, add_generation_prompt=True)
        except ValueError as exc:
            raise InvalidRequestError(str(exc), "messages") from exc
        except Exception as exc:  # jinja errors: a message shape the template rejects
            raise InvalidRequestError(f"chat template failed: {exc}", "messages") from exc
        # The template already places the BOS token where the model wants it.
        return codec.encode(rendered, add_special_tokens=False)

    def build_request(
        self,
        prompt_ids: Sequence[int],
        options: SamplingParams,
        *,
        adapter: str | None,
        max_tokens_param: str = "max_tokens",
        prompt_param: str = "prompt",
        truncate_prompt: bool = False,
    ) -> GenerationRequest:
        """Check the prompt and token budget against the context length."""
        limit = self.engine.stats().max_model_len
        ids = list(prompt_ids)
        if truncate_prompt and options.max_tokens is not None:
            keep = max(1, limit - options.max_tokens)
            ids = ids[-keep:]
        if not ids:
            raise InvalidRequestError(f"{prompt_param} must not be empty", prompt_param)
        if len(ids) >= limit:
            raise InvalidRequestError(
                f"This model's maximum context length is {limit} tokens. However, your "
                f"{prompt_param} has {len(ids)} tokens. Please shorten {prompt_param}.",
                prompt_param,
            )
        room = limit - len(ids)
        max_tokens = options.max_tokens
        if max_tokens is None:
            max_tokens = min(self.settings.default_max_tokens, room)
        if max_tokens < 1:
            raise InvalidRequestError(f"{max_tokens_param} must be at least 1", max_tokens_param)
        if max_tokens > room:
            raise InvalidRequestError(
                f"{max_tokens_param} is too large: {max_tokens}. This model's maximum context "
                f"length is {limit} tokens and your request has {len(ids)} input tokens "
                f"({max_tokens} > {limit} - {len(ids)}).",
                max_tokens_param,
            )
        sampling = self._checked_sampling(options, max_tokens)
        return GenerationRequest(
            request_id=uuid.uuid4().hex,
            prompt_token_ids=tuple(ids),
            sampling=sampling,
            adapter=adapter,
        )

    def _checked_sampling(self, options: SamplingParams, max_tokens: int) -> SamplingParams:
        """The request's sampling settings, refused where they would break the engine."""
        if not 0 <= options.temperature < math.inf:
            raise InvalidRequestError(
                "temperature must be a finite, non-negative number", "temperature"
            )
        if not 0 < options.top_p <= 1:
            raise InvalidRequestError("top_p must be in (0, 1]", "top_p")
        if not MIN_REPETITION_PENALTY <= options.repetition_penalty < math.inf:
            raise InvalidRequestError(
                f"repetition_penalty must be finite and at least {MIN_REPETITION_PENALTY} (a "
                "smaller one overflows the logits)",
                "repetition_penalty",
            )
        return dataclasses.replace(
            options,
            # As vLLM does: a temperature this small is greedy, and dividing by it would
            # overflow the logits.
            temperature=0.0
            if options.temperature < GREEDY_BELOW_TEMPERATURE
            else options.temperature,
            max_tokens=max_tokens,
            # 0 is "no top-k"; so is a k past the vocabulary (an engine may not accept one).
            top_k=options.top_k if 0 < options.top_k < self.engine.codec.vocab_size else 0,
            min_tokens=min(options.min_tokens, max_tokens),
        )

    def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationOutput, None]:
        """Submit to the engine (raising its errors now) and stream outputs with metrics."""
        try:
            stream = self.engine.submit(request)
        except QueueFullError:
            self.metrics.rate_limited.inc()
            raise
        return self._tracked(request, stream)

    async def _tracked(
        self, request: GenerationRequest, stream: AsyncGenerator[GenerationOutput, None]
    ) -> AsyncGenerator[GenerationOutput, None]:
        m = self.metrics
        start = time.monotonic()
        last: float | None = None
        generated = 0
        finish = "abort"
        try:
            async with aclosing(stream):
                async for out in stream:
                    now = time.monotonic()
                    if out.queue_time_s is not None:
                        m.queue_time.observe(out.queue_time_s)
                    if out.token_ids:
                        if last is None:
                            m.ttft.observe(now - start)
                        else:
                            m.itl.observe(now - last)
                        last = now
                        generated += len(out.token_ids)
                        m.generation_tokens.inc(len(out.token_ids))
                    if out.finish_reason is not None:
                        finish = out.finish_reason
                    yield out
        finally:
            m.prompt_tokens.inc(len(request.prompt_token_ids))
            m.request_prompt_tokens.observe(len(request.prompt_token_ids))
            m.request_generation_tokens.observe(generated)
            m.e2e.observe(time.monotonic() - start)
            m.finished(finish)

    async def complete(self, request: GenerationRequest) -> Completion:
        text: list[str] = []
        tokens: list[int] = []
        finish = "abort"
        completion_tokens = 0
        stream = self.generate(request)
        async with aclosing(stream):
            async for out in stream:
                text.append(out.text)
                tokens.extend(out.token_ids)
                completion_tokens = out.completion_tokens
                if out.finish_reason is not None:
                    finish = out.finish_reason
        return Completion(
            text="".join(text),
            token_ids=tuple(tokens),
            finish_reason=finish,
            prompt_tokens=len(request.prompt_token_ids),
            completion_tokens=completion_tokens,
        )
