"""The vLLM engine: its arguments (no vLLM needed), and the server on vLLM from .venv-vllm.

The server tests share one `python -m inference_server --engine vllm` child process (see
vllm_server.py); greedy outputs are checked against `model.generate()` in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from inference_server.engine.errors import EngineNotReadyError
from inference_server.engine.types import AdapterInfo
from inference_server.engine.vllm_args import (
    engine_arguments,
    lora_rank,
    read_vllm_section,
)
from inference_server.engine.vllm_engine import VllmEngine, preload_openmp
from inference_server.settings import ServerSettings

from .conftest import MODEL_NAME, metric_value
from .vllm_server import VllmServer, shared_vllm_server

KNOWN = {
    "model", "served_model_name", "tokenizer", "dtype", "max_num_seqs", "trust_remote_code",
    "tensor_parallel_size", "pipeline_parallel_size", "disable_log_stats", "max_model_len",
    "distributed_executor_backend", "enable_lora", "max_loras", "max_lora_rank",
    "gpu_memory_utilization", "cpu_offload_gb",
}  # fmt: skip


@pytest.fixture(scope="module")
def vllm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> VllmServer:
    return shared_vllm_server(request, tmp_path_factory)


def _write_adapter(path: Path, rank: int) -> AdapterInfo:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": rank}))
    return AdapterInfo(name=path.name, path=str(path))


def test_engine_arguments_follow_settings_adapters_and_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "inference_config.yaml"
    config.write_text(
        "max_probe_steps: 6\nvllm:\n  gpu-memory-utilization: 0.8\n  swap-space: 4\n"
        "  model: /elsewhere\n  --cpu-offload-gb: 0\n"
    )
    section = read_vllm_section(config)
    assert section == {"gpu_memory_utilization": 0.8, "swap_space": 4, "model": "/elsewhere",
                       "cpu_offload_gb": 0}  # fmt: skip
    settings = ServerSettings(model=Path("/w"), served_model_name="m", dtype="float16",
                              max_model_len=2048, tensor_parallel_size=2)  # fmt: skip
    adapters = [_write_adapter(tmp_path / "a", 8), _write_adapter(tmp_path / "b", 24)]
    args = engine_arguments(settings, adapters, section, KNOWN)
    assert args["model"] == "/w" and args["served_model_name"] == ["m"]  # the server's own
    assert args["gpu_memory_utilization"] == 0.8 and args["cpu_offload_gb"] == 0
    assert "swap_space" not in args  # unknown to this vLLM: dropped, not fatal
    assert args["dtype"] == "float16" and args["max_model_len"] == 2048
    assert args["tensor_parallel_size"] == 2 and args["pipeline_parallel_size"] == 1
    assert "distributed_executor_backend" not in args
    assert args["enable_lora"] is True and args["max_loras"] == 2 and args["max_lora_rank"] == 32
    bare = engine_arguments(ServerSettings(pipeline_parallel_size=2), [], {}, KNOWN)
    assert "enable_lora" not in bare and "max_model_len" not in bare
    assert bare["distributed_executor_backend"] == "ray"
    assert lora_rank([]) == 16 and read_vllm_section(None) == {}


def test_a_bad_config_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "inference_config.yaml"
    config.write_text("vllm: [1, 2]\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        read_vllm_section(config)
    with pytest.raises(ValueError, match="cannot read"):
        read_vllm_section(tmp_path / "missing.yaml")


def test_openmp_preload_only_where_the_cpu_build_ships_it() -> None:
    env = preload_openmp({"LD_PRELOAD": "/x.so"})
    # The main venv has no vLLM and no libiomp5; .venv-vllm has both.
    assert env is None or env["LD_PRELOAD"].endswith(":/x.so")


async def test_merged_adapters_keep_the_engine_not_ready(tmp_path: Path) -> None:
    _write_adapter(tmp_path / "adapters" / "alpha", 8)
    settings = ServerSettings(adapters_dir=tmp_path / "adapters", adapter_mode="merged")
    engine = VllmEngine(settings)
    await engine.start()
    with pytest.raises(EngineNotReadyError, match="merged adapters"):
        await engine.wait_ready(30)
    assert not engine.stats().ready
    await engine.stop()


def _generate(model_dir: Path, prompt: str, tokens: int, adapter: Path | None = None) -> str:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens,
                         do_sample=False, eos_token_id=None)  # fmt: skip
    return str(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


def test_greedy_output_equals_model_generate(vllm: VllmServer) -> None:
    prompts = ["hello world", "the model is", "kaito"]
    body = {"model": MODEL_NAME, "prompt": prompts, "max_tokens": 24, "temperature": 0,
            "ignore_eos": True}  # fmt: skip
    with vllm.client() as c:
        r = c.post("/v1/completions", json=body)
        assert r.status_code == 200, r.text
        texts = [ch["text"] for ch in r.json()["choices"]]
        tuned = c.post("/v1/completions", json={**body, "model": "alpha", "prompt": prompts[0]})
    assert texts == [_generate(vllm.model, p, 24) for p in prompts]
    adapter_text = tuned.json()["choices"][0]["text"]
    assert adapter_text == _generate(vllm.model, prompts[0], 24, vllm.adapters_dir / "alpha")
    assert adapter_text != texts[0]


def test_kaito_chat_and_streamed_chat_completion(vllm: VllmServer) -> None:
    greedy = {"do_sample": False, "max_new_tokens": 8}
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 8, "temperature": 0, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    with vllm.client() as c:
        r = c.post("/chat", json={"prompt": "hello world", "generate_kwargs": greedy})
        assert r.status_code == 200, r.text
        assert r.json()["Result"] == "hello world" + _generate(vllm.model, "hello world", 8)
        stream = c.post("/v1/chat/completions", json=body)
    events = [line[6:] for line in stream.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    pieces = [ch["choices"][0]["delta"].get("content", "") for ch in chunks if ch["choices"]]
    assert len([p for p in pieces if p]) == 8  # one piece per token, as they are generated
    assert chunks[-1]["usage"]["completion_tokens"] == 8


def test_metrics_carry_vllm_names_and_the_engine_state(vllm: VllmServer) -> None:
    with vllm.client() as c:
        before = c.get("/metrics").text
        body = {"model": "alpha", "prompt": "count", "max_tokens": 5, "temperature": 0,
                "ignore_eos": True}  # fmt: skip
        assert c.post("/v1/completions", json=body).status_code == 200
        after = c.get("/metrics").text
    assert (
        metric_value(after, "vllm:generation_tokens_total")
        - metric_value(before, "vllm:generation_tokens_total")
        == 5
    )
    # Engine steps come from vLLM's own stat records: prompt and generated tokens, every step.
    steps = metric_value(after, "vllm:iteration_tokens_total_sum") - metric_value(
        before, "vllm:iteration_tokens_total_sum"
    )
    assert steps >= 5
    assert 'vllm:kv_cache_usage_perc{model_name="tiny-llama"}' in after
