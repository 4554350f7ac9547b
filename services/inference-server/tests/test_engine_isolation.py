"""A failure inside an engine step ends only the requests it concerns; the engine serves on.

A prompt whose token ids the model cannot embed fails in prefill beside valid prompts; a decode
forward that raises for one request (after writing its cache column, so the batch's cache must be
rewound) ends that request alone. The others' greedy output still equals `model.generate()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from inference_server.engine.scheduler import BatchScheduler
from inference_server.engine.sequence import Sequence
from inference_server.engine.transformers_engine import TransformersEngine
from inference_server.engine.types import GenerationRequest, IterationReport, SamplingParams
from inference_server.settings import ServerSettings

GREEDY = SamplingParams(max_tokens=10, temperature=0)
PROMPTS = {"ok0": [1, 30, 31, 32], "ok1": [1, 90, 7], "ok2": [1, 200, 201, 202, 203, 204]}


class PoisonError(RuntimeError):
    pass


@pytest.fixture(params=["fast", "generic"])
async def engine(
    request: pytest.FixtureRequest, tiny_model: Path
) -> AsyncIterator[tuple[TransformersEngine, list[IterationReport]]]:
    settings = ServerSettings(
        model=tiny_model,
        max_batch_size=8,
        fast_decode=request.param == "fast",
        adapters_dir=tiny_model / "x",
    )
    eng = TransformersEngine(settings)
    reports: list[IterationReport] = []
    eng.iteration_observer = reports.append
    await eng.start()
    await eng.wait_ready(120)
    yield eng, reports
    await eng.stop()


async def _collect(eng: TransformersEngine, req: GenerationRequest) -> list[int] | BaseException:
    tokens: list[int] = []
    try:
        async for out in eng.submit(req):
            tokens.extend(out.token_ids)
    except Exception as exc:
        return exc
    return tokens


def _want(tiny_model: Path) -> dict[str, list[int]]:
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    want = {}
    for name, prompt in PROMPTS.items():
        ids = torch.tensor([prompt])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10,
                             do_sample=False)  # fmt: skip
        want[name] = out[0, len(prompt) :].tolist()
    return want


async def test_a_prompt_the_model_cannot_embed_fails_alone(
    engine: tuple[TransformersEngine, list[IterationReport]], tiny_model: Path
) -> None:
    eng, reports = engine
    vocab = 10**9  # far outside any vocabulary
    requests = [GenerationRequest(n, tuple(p), GREEDY) for n, p in PROMPTS.items()]
    requests.insert(1, GenerationRequest("bad", (1, vocab, 5), GREEDY))
    requests.insert(3, GenerationRequest("negative", (1, -3), GREEDY))
    results = dict(
        zip(
            [r.request_id for r in requests],
            await asyncio.gather(*(_collect(eng, r) for r in requests)),
            strict=True,
        )
    )
    assert isinstance(results.pop("bad"), IndexError)
    assert isinstance(results.pop("negative"), IndexError)
    assert results == _want(tiny_model)
    assert sorted(f for r in reports for f in r.failed) == ["bad", "negative"]
    # The engine keeps serving.
    again = await _collect(eng, GenerationRequest("after", tuple(PROMPTS["ok1"]), GREEDY))
    assert again == _want(tiny_model)["ok1"]


async def test_a_decode_failure_for_one_request_ends_only_that_request(
    engine: tuple[TransformersEngine, list[IterationReport]],
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eng, reports = engine
    real_forward = BatchScheduler._forward

    def forward(self: BatchScheduler, seqs: list[Sequence], ids: torch.Tensor, *a: Any) -> Any:
        logits = real_forward(self, seqs, ids, *a)  # the cache has the new column now
        poisoned = [s for s in seqs if s.request.request_id == "poison" and s.row.generated >= 3]
        if poisoned and ids.shape[1] == 1:
            raise PoisonError("injected decode failure")
        return logits

    monkeypatch.setattr(BatchScheduler, "_forward", forward)
    requests = [GenerationRequest(n, tuple(p), GREEDY) for n, p in PROMPTS.items()]
    requests.insert(2, GenerationRequest("poison", (1, 11, 12), SamplingParams(max_tokens=50)))
    results = dict(
        zip(
            [r.request_id for r in requests],
            await asyncio.gather(*(_collect(eng, r) for r in requests)),
            strict=True,
        )
    )
    assert isinstance(results.pop("poison"), PoisonError)
    assert results == _want(tiny_model)
    failed = [f for r in reports for f in r.failed]
    assert failed == ["poison"]
    # The failure hit a step that decoded the others too: they went on decoding after it.
    at = next(i for i, r in enumerate(reports) if r.failed)
    assert {"ok0", "ok1", "ok2"} <= set(reports[at].decoded)
    assert eng.stats().num_running == 0
