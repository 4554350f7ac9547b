"""Decode throughput per preset family: tokens/s of 8 concurrent greedy clients on the CPU, on
the fast decode path where the family has it (Llama's layout) and on the generic path.

Each family is a seeded random model of its real architecture class and config shape
(kaito_testing.tiny_model, hidden 256, 4 layers, EOS silenced so every client decodes its full
length), served by the transformers engine in this process. Numbers compare families and paths
on one machine; they say nothing of a GPU.
Usage: python bench/inference/families.py [--clients 8] [--tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path

from inference_server.engine.transformers_engine import TransformersEngine
from inference_server.engine.types import GenerationRequest, SamplingParams
from inference_server.settings import ServerSettings
from kaito_testing.tiny_model import cached_tiny_model

FAMILIES = {
    "llama3": "llama3",
    "phi3": "phi3",
    "phi4": "phi4",
    "phi4-mini": "phi4-mini",
    "qwen2": "qwen2",
    "mistral": "mistral",
    "falcon-7b": "falcon",
    "falcon-40b": "falcon-40b",
}
SHAPE = {"hidden_size": 256, "num_layers": 4, "num_heads": 8, "silence_special_tokens": True}


async def _client(engine: TransformersEngine, i: int, tokens: int) -> int:
    rng = random.Random(i)
    prompt = (1, *(rng.randrange(4, 500) for _ in range(32)))
    sampling = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True)
    produced = 0
    async for out in engine.submit(GenerationRequest(f"c{i}", prompt, sampling)):
        produced += len(out.token_ids)
    return produced


async def measure(model: Path, *, fast: bool, clients: int, tokens: int) -> tuple[float, bool]:
    settings = ServerSettings(model=model, max_batch_size=clients, max_model_len=256,
                              fast_decode=fast)  # fmt: skip
    engine = TransformersEngine(settings)
    await engine.start()
    try:
        await engine.wait_ready(300)
        await asyncio.gather(*(_client(engine, 100 + i, 8) for i in range(clients)))  # warm-up
        start = time.perf_counter()
        produced = await asyncio.gather(*(_client(engine, i, tokens) for i in range(clients)))
        return sum(produced) / (time.perf_counter() - start), engine.uses_fast_path
    finally:
        await engine.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    cache = Path.home() / ".cache" / "kaito-inference-tests" / "bench-families"
    print(f"{args.clients} concurrent greedy clients x {args.tokens} tokens, fp32 on the CPU")
    print("| family | path | decode tokens/s |")
    print("|---|---|---|")
    results = []
    for name, arch in FAMILIES.items():
        model = cached_tiny_model(cache, arch=arch, **SHAPE)
        for fast in (True, False):
            rate, used_fast = await measure(model, fast=fast, clients=args.clients,
                                            tokens=args.tokens)  # fmt: skip
            if fast and not used_fast:
                continue  # no fast path for this family: the generic row says it all
            path = "fast" if used_fast else "generic"
            print(f"| {name} | {path} | {rate:.0f} |", flush=True)
            results.append(f"{name}_{path}={rate:.0f}")
    print("RESULT " + " ".join(results))


if __name__ == "__main__":
    asyncio.run(main())
