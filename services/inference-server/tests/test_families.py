"""Preset families through the transformers engine's continuous batching: for tiny models of each
family's real architecture class and config shape, greedy output equals `model.generate()` token
for token while requests of different lengths join and leave a running batch.

- Phi-3 (phi-3-mini-4k, phi-3.5-mini: fused qkv_proj / gate_up_proj) and Phi-3 with LongRoPE
  (phi-3-mini-128k's rope_scaling, short and long factors);
- Phi-4 (a Phi-3 with grouped KV heads) and Phi-4-mini (plus a partial rotary embedding and tied
  embeddings);
- Qwen2 (qwen2.5-coder, deepseek-r1-distill-qwen: biased q/k/v, grouped KV heads);
- Mistral (mistral-7b: grouped KV heads, a sliding attention window shorter than the prompts);
- Falcon-7B (multi-query attention, parallel attention and MLP, fused query_key_value) and
  Falcon-40B (the new decoder architecture: grouped KV heads);
- Llama-3 (llama-3.1, deepseek-r1-distill-llama: grouped KV heads, llama3 rope scaling).

The fast decode path serves every family with Llama's layout, its projections separate or fused
(`FAST` below); Falcon's parallel blocks and a sliding window shorter than the context (the tiny
Mistral's) run the generic transformers forward. Either way the output must equal generate()'s.
"""

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
from kaito_testing.tiny_model import cached_tiny_model

FAMILIES = {
    "phi3": {"arch": "phi3"},
    "phi3-longrope": {"arch": "phi3", "long_rope": True},
    "phi4": {"arch": "phi4"},
    "phi4-mini": {"arch": "phi4-mini"},
    "qwen2": {"arch": "qwen2"},
    "mistral": {"arch": "mistral"},
    "falcon-7b": {"arch": "falcon"},
    "falcon-40b": {"arch": "falcon-40b"},
    "llama3": {"arch": "llama3"},
}
# Families the fast decode path serves (Llama's layout, fused or not; no sliding window shorter
# than the context): Mistral's tiny model has a 64-token window and Falcon its own block layout.
FAST = frozenset({"llama3", "phi3", "phi3-longrope", "phi4", "phi4-mini", "qwen2"})


@pytest.fixture(scope="module", params=sorted(FAMILIES))
async def family(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Path, TransformersEngine, str]]:
    cache = Path.home() / ".cache" / "kaito-inference-tests" / "families"
    model = cached_tiny_model(cache, **FAMILIES[request.param])
    settings = ServerSettings(
        model=model,
        max_batch_size=4,
        max_model_len=256,
        adapters_dir=tmp_path_factory.mktemp("no-adapters"),
    )
    engine = TransformersEngine(settings)
    await engine.start()
    await engine.wait_ready(120)
    yield model, engine, request.param
    await engine.stop()


async def _collect(eng: TransformersEngine, req: GenerationRequest, delay: float) -> list[int]:
    await asyncio.sleep(delay)  # staggered arrivals: requests join a running batch
    tokens: list[int] = []
    async for out in eng.submit(req):
        tokens.extend(out.token_ids)
    return tokens


async def test_greedy_matches_generate_under_continuous_batching(
    family: tuple[Path, TransformersEngine, str],
) -> None:
    model_dir, engine, name = family
    assert engine.uses_fast_path == (name in FAST)
    rng = random.Random(11)
    # Prompts up to 90 tokens: past Mistral's 64-token window.
    prompts = [[1, *(rng.randrange(4, 500) for _ in range(rng.randint(1, 90)))] for _ in range(7)]
    lengths = [rng.randint(3, 24) for _ in prompts]
    requests = [
        GenerationRequest(f"g{i}", tuple(p), SamplingParams(max_tokens=n, temperature=0))
        for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))
    ]
    results = await asyncio.gather(
        *(_collect(engine, r, 0.05 * (i % 4)) for i, r in enumerate(requests))
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    for prompt, req, got in zip(prompts, requests, results, strict=True):
        want = model.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=req.sampling.max_tokens,
            do_sample=False,
        )[0, len(prompt) :].tolist()
        assert got == want, f"{model_dir.name}: a prompt of {len(prompt)} tokens diverged"
