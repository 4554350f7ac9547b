"""Chunked prefill benchmark: what a long prompt's arrival costs the streams already decoding.

Builds the seeded ~31M-parameter Llama-style model of `run_bench.py` (fp32, CPU, EOS silenced so
every stream decodes its full length), starts the transformers engine in this process and, for
each setting, has 16 greedy streams decoding when a prompt of ~1,500 tokens arrives. It prints the
running streams' inter-token latency (p50, p99, max) over the tokens they produced from that
arrival on, the long prompt's time to first token, and the engine's slowest steps (from its
iteration observer) with what they did. The long request then decodes 16 tokens beside the others.
"chunked" is the default `max_prefill_tokens` (256); "unchunked" sets it far above the prompt
(one forward prefills it).
Usage: python bench/inference/chunked_prefill.py [--streams 16] [--prompt-tokens 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from inference_server.engine.transformers_engine import TransformersEngine
from inference_server.engine.types import GenerationRequest, IterationReport, SamplingParams
from inference_server.settings import ServerSettings

WARMUP_TOKENS = 8  # every stream has decoded this many tokens before the long prompt arrives
AFTER_TOKENS = 96  # tokens each stream decodes after that


@dataclass
class Result:
    name: str
    max_prefill_tokens: int
    itl: list[float] = field(default_factory=list)
    long_ttft_s: float = 0.0
    wall_s: float = 0.0
    slowest: list[tuple[float, IterationReport]] = field(default_factory=list)

    def ms(self, q: float) -> float:
        """The q-quantile of the inter-token latencies, in milliseconds."""
        ordered = sorted(self.itl)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def row(self) -> str:
        return (
            f"| {self.name:<9} | {self.max_prefill_tokens:>7} | {self.ms(0.5):>8.1f} | "
            f"{self.ms(0.99):>8.1f} | {self.ms(1.0):>8.1f} | {self.long_ttft_s:>9.2f} | "
            f"{self.wall_s:>6.1f} |"
        )

    def steps(self) -> str:
        lines = []
        for seconds, report in self.slowest:
            prefill = sum(n for _, n in report.prefilled)
            lines.append(
                f"  {self.name} step {1000 * seconds:7.1f} ms: prefilled {prefill} prompt tokens "
                f"of {len(report.prefilled)} requests, decoded {len(report.decoded)}"
            )
        return "\n".join(lines)


async def _stream(
    eng: TransformersEngine, req: GenerationRequest, warm: asyncio.Event, arrived: list[float]
) -> list[float]:
    """Inter-token gaps of tokens that arrived after the long prompt did."""
    gaps: list[float] = []
    last = 0.0
    count = 0
    async for out in eng.submit(req):
        now = time.monotonic()
        count += len(out.token_ids)
        if arrived and last and now > arrived[0]:
            gaps.append(now - last)
        last = now
        if count >= WARMUP_TOKENS:
            warm.set()
    return gaps


async def run(model: Path, name: str, budget: int, streams: int, prompt_tokens: int) -> Result:
    settings = ServerSettings(
        model=model, max_batch_size=streams + 1, max_prefill_tokens=budget,
        adapters_dir=model / "none",
    )  # fmt: skip
    eng = TransformersEngine(settings)
    steps: list[tuple[float, IterationReport]] = []
    eng.iteration_observer = lambda report: steps.append((time.monotonic(), report))
    await eng.start()
    await eng.wait_ready(300)
    rng = random.Random(5)
    params = SamplingParams(max_tokens=WARMUP_TOKENS + AFTER_TOKENS, temperature=0)
    warm = [asyncio.Event() for _ in range(streams)]
    arrived: list[float] = []
    start = time.monotonic()
    tasks = [
        asyncio.create_task(
            _stream(
                eng,
                GenerationRequest(f"s{i}", (1, *rng.sample(range(4, 400), 16)), params),
                warm[i],
                arrived,
            )
        )
        for i in range(streams)
    ]
    await asyncio.gather(*(w.wait() for w in warm))
    prompt = (1, *(rng.randrange(4, 400) for _ in range(prompt_tokens - 1)))
    arrived.append(time.monotonic())
    long_stream = eng.submit(
        GenerationRequest("long", prompt, SamplingParams(max_tokens=16, temperature=0))
    )
    result = Result(name, budget)
    async for _ in long_stream:
        if not result.long_ttft_s:
            result.long_ttft_s = time.monotonic() - arrived[0]
    for gaps in await asyncio.gather(*tasks):
        result.itl.extend(gaps)
    result.wall_s = time.monotonic() - start
    timed = [
        (now - before, report)
        for (before, _), (now, report) in itertools.pairwise(steps)
        if now > arrived[0]
    ]
    result.slowest = sorted(timed, key=lambda step: -step[0])[:4]
    await eng.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=1500)
    parser.add_argument("--chunk", type=int, default=256)
    args = parser.parse_args()
    from kaito_testing.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="kaito-chunked-") as work:
        model = build_tiny_model(
            Path(work) / "model", hidden_size=512, num_layers=8, num_heads=8, vocab_size=512,
            max_position_embeddings=2048, seed=0, silence_special_tokens=True,
        )  # fmt: skip
        results = [
            asyncio.run(run(model, name, budget, args.streams, args.prompt_tokens))
            for name, budget in (("chunked", args.chunk), ("unchunked", 1 << 20))
        ]
    print(
        f"{args.streams} streams decoding while a {args.prompt_tokens}-token prompt arrives "
        "(inter-token latency of the running streams from its arrival on)"
    )
    print("| setting   | prefill | ITL p50  | ITL p99  | ITL max  | long TTFT | wall s |")
    print("|           | tokens  |   ms     |   ms     |   ms     |     s     |        |")
    for result in results:
        print(result.row())
    print("Slowest engine steps after the long prompt arrived:")
    for result in results:
        print(result.steps())
    chunked, unchunked = results
    print(
        f"RESULT itl_p50_ms_chunked={chunked.ms(0.5):.1f} "
        f"itl_p99_ms_chunked={chunked.ms(0.99):.1f} "
        f"itl_p50_ms_unchunked={unchunked.ms(0.5):.1f} "
        f"itl_p99_ms_unchunked={unchunked.ms(0.99):.1f}"
    )


if __name__ == "__main__":
    main()
