"""The transformers engine directly: greedy parity with generate(), sampling, stops, cancel."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from inference_server.engine.transformers_engine import TransformersEngine
from inference_server.engine.types import GenerationRequest, SamplingParams
from inference_server.settings import ServerSettings


@pytest.fixture(scope="module")
async def engine(tiny_model: Path) -> AsyncIterator[TransformersEngine]:
    settings = ServerSettings(model=tiny_model, max_batch_size=6, adapters_dir=tiny_model / "x")
    eng = TransformersEngine(settings)
    await eng.start()
    await eng.wait_ready(120)
    yield eng
    await eng.stop()


async def _collect(
    eng: TransformersEngine, req: GenerationRequest, delay: float = 0.0
) -> list[int]:
    await asyncio.sleep(delay)  # staggers arrivals so requests join a running batch
    tokens: list[int] = []
    async for out in eng.submit(req):
        tokens.extend(out.token_ids)
    return tokens


async def test_greedy_matches_generate_whatever_else_is_in_the_batch(
    engine: TransformersEngine, tiny_model: Path
) -> None:
    assert engine.uses_fast_path  # the tiny Llama runs the lean forward; adapters use the generic
    assert engine.cpu_threads >= 1
    rng = random.Random(7)
    prompts = [[1, *(rng.randrange(4, 500) for _ in range(rng.randint(1, 60)))] for _ in range(14)]
    lengths = [rng.randint(3, 40) for _ in prompts]
    requests = [
        GenerationRequest(f"g{i}", tuple(p), SamplingParams(max_tokens=n, temperature=0))
        for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))
    ]
    # Sampled neighbours share the batch with the greedy ones.
    noise = [
        GenerationRequest(f"s{i}", (1, 50 + i, 60), SamplingParams(max_tokens=25, seed=i))
        for i in range(3)
    ]
    results = await asyncio.gather(
        *(_collect(engine, r, 0.03 * (i % 5)) for i, r in enumerate(requests)),
        *(_collect(engine, r) for r in noise),
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    for prompt, req, got in zip(prompts, requests, results, strict=False):
        want = model.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=req.sampling.max_tokens,
            do_sample=False,
        )[0, len(prompt) :].tolist()
        assert got == want, f"prompt of {len(prompt)} tokens diverged"


async def test_seeded_sampling_is_reproducible(engine: TransformersEngine) -> None:
    params = SamplingParams(max_tokens=20, temperature=0.9, top_k=50, top_p=0.9, seed=123)
    first = await _collect(engine, GenerationRequest("a", (1, 70, 80), params))
    crowd = [
        _collect(engine, GenerationRequest(f"c{i}", (1, 90 + i), SamplingParams(max_tokens=20)))
        for i in range(4)
    ]
    again, *_ = await asyncio.gather(
        _collect(engine, GenerationRequest("b", (1, 70, 80), params)), *crowd
    )
    assert first == again
    other = await _collect(
        engine, GenerationRequest("d", (1, 70, 80), SamplingParams(max_tokens=20, seed=124))
    )
    assert other != first


async def test_stop_string_ends_generation_and_is_not_returned(engine: TransformersEngine) -> None:
    greedy = SamplingParams(max_tokens=30, temperature=0)
    text = ""
    async for out in engine.submit(GenerationRequest("t0", (1, 99, 120), greedy)):
        text += out.text
    stop = text[8:11]
    assert len(stop) == 3
    pieces: list[str] = []
    last = None
    stopped = SamplingParams(max_tokens=30, temperature=0, stop=(stop,))
    async for out in engine.submit(GenerationRequest("t1", (1, 99, 120), stopped)):
        pieces.append(out.text)
        last = out
    assert last is not None and last.finish_reason == "stop"
    assert "".join(pieces) == text[: text.index(stop)]


async def test_cancel_frees_the_slot(engine: TransformersEngine) -> None:
    stream = engine.submit(GenerationRequest("long", (1, 5), SamplingParams(max_tokens=400)))
    await stream.__anext__()
    assert engine.stats().num_running == 1
    await stream.aclose()
    for _ in range(500):
        if engine.stats().num_running == 0:
            break
        await asyncio.sleep(0.01)
    assert engine.stats().num_running == 0


async def test_min_tokens_and_ignore_eos_force_the_length(engine: TransformersEngine) -> None:
    eos = engine.codec.eos_token_ids[0]
    params = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
    got = await _collect(engine, GenerationRequest("e", (1, eos, 7), params))
    assert len(got) == 12
