"""The lean Llama decode path agrees with transformers' own forward over the same padded cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    FalconConfig,
    FalconForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
)

from inference_server.engine.fast_llama import (
    available_memory_bytes,
    build_fast_decoder,
    projection_bytes,
)
from inference_server.engine.kv_cache import batch_layers, new_batch_cache


def _llama(kv_heads: int) -> LlamaForCausalLM:
    torch.manual_seed(3)
    config = LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=256,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def _left_padded(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_prefill_and_decode_match_the_generic_forward(kv_heads: int) -> None:
    model = _llama(kv_heads)
    fast = build_fast_decoder(model)
    assert fast is not None
    ids, mask, pos = _left_padded([[5, 9, 13, 40, 7, 3], [11, 12], [100, 3, 4, 5]])
    theirs, ours = new_batch_cache(2), new_batch_cache(2)
    with torch.inference_mode():
        want = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                     logits_to_keep=1, past_key_values=theirs).logits[:, -1]  # fmt: skip
        got = fast.forward(ids, pos, mask, batch_layers(ours))
        nxt = pos[:, -1:] + 1
        for _ in range(6):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
            assert torch.equal(got.argmax(-1), want.argmax(-1))
            token = want.argmax(-1, keepdim=True)
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
            want = model(input_ids=token, attention_mask=mask, position_ids=nxt, use_cache=True,
                         logits_to_keep=1, past_key_values=theirs).logits[:, -1]  # fmt: skip
            got = fast.forward(token, nxt, mask, batch_layers(ours))
            nxt = nxt + 1
    for mine, other in zip(batch_layers(ours), batch_layers(theirs), strict=True):
        real = mask.bool()[:, None, :, None].expand_as(mine.keys)
        torch.testing.assert_close(mine.keys[real], other.keys[real], atol=1e-4, rtol=1e-4)


def test_unknown_architectures_windows_and_dtypes_use_the_generic_path() -> None:
    torch.manual_seed(0)
    small = {"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    falcon = FalconForCausalLM(FalconConfig(**small))
    assert build_fast_decoder(falcon) is None
    # A sliding window shorter than the context needs the generic forward's windowed mask.
    mistral = MistralForCausalLM(
        MistralConfig(**small, intermediate_size=64, sliding_window=16, max_position_embeddings=64)
    )
    assert build_fast_decoder(mistral) is None
    assert build_fast_decoder(mistral, max_model_len=16) is not None
    assert build_fast_decoder(_llama(4).to(torch.bfloat16)) is None


def test_no_fast_path_when_the_packed_copy_does_not_fit_in_memory() -> None:
    model = _llama(4)
    needed = projection_bytes(model)
    assert needed > 0
    assert build_fast_decoder(model, available_bytes=needed) is None  # more than half
    assert build_fast_decoder(model, available_bytes=4 * needed) is not None
    assert build_fast_decoder(model, available_bytes=None) is not None  # unknown: no limit


def test_available_memory_reads_meminfo_and_the_cgroup_limit(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text("MemTotal: 100 kB\nMemAvailable:   8192 kB\n")
    assert available_memory_bytes(tmp_path) == 8192 * 1024
    cgroup = tmp_path / "sys/fs/cgroup"
    cgroup.mkdir(parents=True)
    (cgroup / "memory.max").write_text("4194304\n")
    (cgroup / "memory.current").write_text("1048576\n")
    assert available_memory_bytes(tmp_path) == 3 * 1048576
    (cgroup / "memory.max").write_text("max\n")  # no limit: the node's figure
    assert available_memory_bytes(tmp_path) == 8192 * 1024
    assert available_memory_bytes(tmp_path / "missing") is None
