"""Chunked prefill and joins, seen through the engine's iteration observer: a request joins a
running batch, a long prompt is prefilled in chunks with decode steps of the running streams in
between, and greedy output still equals `model.generate()` (fast Llama path and generic path)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from inference_server.engine.transformers_engine import TransformersEngine
from inference_server.engine.types import GenerationRequest, IterationReport, SamplingParams
from inference_server.settings import ServerSettings

CHUNK = 16


@pytest.fixture(scope="module", params=["fast", "generic"])
async def chunked(
    request: pytest.FixtureRequest, tiny_model: Path
) -> AsyncIterator[tuple[TransformersEngine, list[IterationReport]]]:
    settings = ServerSettings(
        model=tiny_model,
        max_batch_size=8,
        max_prefill_tokens=CHUNK,
        fast_decode=request.param == "fast",
        adapters_dir=tiny_model / "x",
    )
    eng = TransformersEngine(settings)
    reports: list[IterationReport] = []
    eng.iteration_observer = reports.append
    await eng.start()
    await eng.wait_ready(120)
    assert eng.uses_fast_path == (request.param == "fast")
    yield eng, reports
    await eng.stop()


def _generate(model_dir: Path, prompts: list[list[int]], lengths: list[int]) -> list[list[int]]:
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    outs = []
    for prompt, n in zip(prompts, lengths, strict=True):
        ids = torch.tensor([prompt])
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False
        )
        outs.append(out[0, len(prompt) :].tolist())
    return outs


async def _collect(eng: TransformersEngine, req: GenerationRequest) -> list[int]:
    tokens: list[int] = []
    async for out in eng.submit(req):
        tokens.extend(out.token_ids)
    return tokens


def _first(reports: list[IterationReport], request_id: str, what: str) -> int:
    for i, report in enumerate(reports):
        ids = [r for r, _ in report.prefilled] if what == "prefilled" else report.decoded
        if request_id in ids:
            return i
    raise AssertionError(f"{request_id} was never {what}")


async def test_joins_and_long_prompt_chunks_between_decode_steps(
    chunked: tuple[TransformersEngine, list[IterationReport]], tiny_model: Path
) -> None:
    eng, reports = chunked
    reports.clear()
    rng = random.Random(3)
    long_prompt = [1, *(rng.randrange(4, 500) for _ in range(5 * CHUNK + 3))]  # 6 chunks
    greedy = SamplingParams(max_tokens=12, temperature=0)
    # `a` decodes 300 tokens (EOS blocked), so it is still running when the others arrive.
    stream_a = eng.submit(
        GenerationRequest("a", (1, 40, 41), SamplingParams(max_tokens=300, temperature=0,
                                                            ignore_eos=True))
    )  # fmt: skip
    got_a = list((await stream_a.__anext__()).token_ids)
    rest = asyncio.gather(
        _collect(eng, GenerationRequest("b", (1, 77, 78, 79), greedy)),
        _collect(eng, GenerationRequest("long", tuple(long_prompt), greedy)),
    )
    async for out in stream_a:
        got_a.extend(out.token_ids)
    got_b, got_long = await rest
    assert len(got_a) == 300

    # `b` joined the running batch: `a` decoded before b's prefill and beside b afterwards.
    b_in = _first(reports, "b", "prefilled")
    assert any("a" in r.decoded for r in reports[:b_in])
    assert any({"a", "b"} <= set(r.decoded) for r in reports[b_in + 1 :])
    # The long prompt took one chunk of at most CHUNK tokens per step, and every step that
    # prefilled a chunk also decoded the running streams.
    chunk_steps = [r for r in reports if any(rid == "long" for rid, _ in r.prefilled)]
    chunks = [n for r in chunk_steps for rid, n in r.prefilled if rid == "long"]
    assert len(chunks) == len(chunk_steps) == 6
    assert sum(chunks) == len(long_prompt) and max(chunks) <= CHUNK
    assert all("a" in r.decoded for r in chunk_steps)
    assert not any(r.failed for r in reports)

    want_b, want_long = _generate(tiny_model, [[1, 77, 78, 79], long_prompt], [12, 12])
    assert got_b == want_b
    assert got_long == want_long


async def test_greedy_matches_generate_with_small_chunks(
    chunked: tuple[TransformersEngine, list[IterationReport]], tiny_model: Path
) -> None:
    eng, reports = chunked
    rng = random.Random(11)
    prompts = [[1, *(rng.randrange(4, 500) for _ in range(rng.randint(1, 90)))] for _ in range(8)]
    prompts[:0] = [[1, 60 + i, 70 + i] for i in range(3)]  # short ones arrive first, together
    lengths = [rng.randint(3, 30) for _ in prompts]
    requests = [
        GenerationRequest(f"p{i}", tuple(p), SamplingParams(max_tokens=n, temperature=0))
        for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))
    ]
    reports.clear()
    got = await asyncio.gather(*(_collect(eng, r) for r in requests))
    assert got == _generate(tiny_model, prompts, lengths)
    # A step prefills at most CHUNK padded tokens: short prompts together, or one chunk.
    steps = [r.prefilled for r in reports if r.prefilled]
    assert all(max(n for _, n in p) * len(p) <= CHUNK for p in steps)
    assert sum(n for p in steps for _, n in p) == sum(map(len, prompts))
    assert sum(len(p) > 1 for p in steps) >= 1  # some short prompts were prefilled together
