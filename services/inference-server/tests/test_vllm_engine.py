"""The vllm engine behind the same interface; runs only where vllm is installed (GPU images)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm")


async def test_vllm_engine_generates(tiny_model: Path) -> None:
    from inference_server.engine.types import GenerationRequest, SamplingParams
    from inference_server.engine.vllm_engine import VllmEngine
    from inference_server.settings import ServerSettings

    engine = VllmEngine(ServerSettings(model=tiny_model, dtype="float32"))
    await engine.start()
    try:
        ids = engine.codec.encode("hello")
        req = GenerationRequest("v1", tuple(ids), SamplingParams(max_tokens=5, ignore_eos=True))
        outs = [o async for o in engine.submit(req)]
        assert outs[-1].finish_reason == "length" and outs[-1].completion_tokens == 5
    finally:
        await engine.stop()
