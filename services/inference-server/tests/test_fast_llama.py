"""The lean Llama decode path agrees with transformers' own forward over the same padded cache."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM

from inference_server.engine.fast_llama import build_fast_decoder
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


def test_unknown_architectures_and_dtypes_use_the_generic_path() -> None:
    torch.manual_seed(0)
    phi3 = Phi3ForCausalLM(
        Phi3Config(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            pad_token_id=0,
        )
    )
    assert build_fast_decoder(phi3) is None
    assert build_fast_decoder(_llama(4).to(torch.bfloat16)) is None
