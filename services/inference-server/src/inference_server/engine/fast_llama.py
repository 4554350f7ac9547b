"""A lean decode step for Llama-style models on CPU: fused, pre-packed weights, few Python ops.

transformers' generic forward spends much of a small model's decode step in Python (module calls,
mask construction, seven separate projections per layer) and in MKL's float32 GEMM, which on
AMD CPUs does not take the AVX-512 path. For models whose architecture we know, this module
concatenates each layer's q/k/v and gate/up projection weights once at load and pre-packs every
projection for oneDNN, then runs prefill chunks and decode steps with those weights, the
model's own normalisation and rotary modules, SDPA and the engine's padded KV cache.

Prefill and decode both run here while no LoRA adapter is loaded; with adapters the engine uses
the generic transformers forward (peft's per-row adapter selection), which writes the same cache.
The packed weights are a second copy of the projections (the model's own weights stay for the
generic path and for adapters), so the fast path is built only when that copy fits in half the
memory left to the process (the node's MemAvailable, or the container's cgroup limit if lower).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from inference_server.engine.kv_cache import PaddedBatchLayer

log = logging.getLogger(__name__)

# Llama's layout: separate or fused q/k/v and gate/up projections (biases allowed), SiLU, the
# model's own rotary module (LongRoPE, llama3 scaling, a partial rotary dimension).
_MODEL_TYPES = frozenset({"llama", "qwen2", "mistral", "phi3"})
# oneDNN picks its blocked weight layout for a batch size; 32 is the engine's default batch.
_PACK_BATCH = 32
# The packed copy may take at most this share of the memory left to the process.
_MEMORY_SHARE = 0.5
_PROJECTIONS = (
    "q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "gate_proj", "up_proj", "gate_up_proj",
    "down_proj",
)  # fmt: skip

Linear = Callable[[torch.Tensor], torch.Tensor]


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> Linear:
    """A projection `x @ weight.T + bias` over 2-D `x`, pre-packed for oneDNN where it can be."""
    weight = weight.detach().contiguous()
    bias = None if bias is None else bias.detach().contiguous()
    mkldnn = bool(torch.backends.mkldnn.is_available())  # type: ignore[no-untyped-call]
    if weight.device.type == "cpu" and mkldnn:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, _PACK_BATCH)
        pointwise = torch.ops.mkldnn._linear_pointwise

        def run_packed(x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = pointwise(x, packed, bias, "none", [], "")
            return out

        return run_packed

    def run_plain(x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight, bias)

    return run_plain


def _cat_bias(*modules: Any) -> torch.Tensor | None:
    biases = [m.bias for m in modules]
    if all(b is None for b in biases):
        return None
    filled = [
        b if b is not None else m.weight.new_zeros(m.out_features)
        for m, b in zip(modules, biases, strict=True)
    ]
    return torch.cat(filled)


@dataclass
class _Layer:
    input_norm: Any
    post_norm: Any
    qkv: Linear
    out: Linear
    gate_up: Linear
    down: Linear


class FastLlamaDecoder:
    """One decode step of a Llama-style causal LM over the engine's padded KV cache."""

    def __init__(self, model: Any) -> None:
        config = model.config
        body = model.model
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(getattr(config, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )
        self.intermediate = int(config.intermediate_size)
        self.scaling = self.head_dim**-0.5
        self.embed = body.embed_tokens.weight.detach()
        self.rotary = body.rotary_emb
        self.norm = body.norm
        self.lm_head = _linear(model.lm_head.weight, model.lm_head.bias)
        self.layers: list[_Layer] = []
        for layer in body.layers:
            attn, mlp = layer.self_attn, layer.mlp
            self.layers.append(
                _Layer(
                    input_norm=layer.input_layernorm,
                    post_norm=layer.post_attention_layernorm,
                    qkv=_fused(attn, "qkv_proj", ("q_proj", "k_proj", "v_proj")),
                    out=_linear(attn.o_proj.weight, attn.o_proj.bias),
                    gate_up=_fused(mlp, "gate_up_proj", ("gate_proj", "up_proj")),
                    down=_linear(mlp.down_proj.weight, mlp.down_proj.bias),
                )
            )

    @torch.inference_mode()
    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        cache_layers: Sequence[PaddedBatchLayer],
    ) -> torch.Tensor:
        """Logits [batch, vocab] at the last position, appending the new keys/values to the cache.

        `ids` and `positions` are [batch, new]; `mask` is [batch, cached + new] (1 = a real token),
        like the generic forward's `attention_mask`. A prefill (new > 1) attends causally; a
        padding position also attends to itself so that no row of the softmax is empty (its
        output is never read, and its keys are masked for every real token).
        """
        batch, new = ids.shape
        q_size = self.heads * self.head_dim
        kv_size = self.kv_heads * self.head_dim
        hidden = F.embedding(ids, self.embed)  # [batch, new, hidden]
        cos, sin = self.rotary(hidden, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # [batch, 1, new, head_dim]
        attend = _attention_mask(mask, new)
        gqa = self.kv_heads != self.heads
        rows = batch * new
        for layer, cache in zip(self.layers, cache_layers, strict=True):
            qkv = layer.qkv(layer.input_norm(hidden).view(rows, -1)).view(batch, new, -1)
            q = qkv[..., :q_size].view(batch, new, self.heads, self.head_dim).transpose(1, 2)
            k = qkv[..., q_size : q_size + kv_size]
            k = k.view(batch, new, self.kv_heads, self.head_dim).transpose(1, 2)
            v = qkv[..., q_size + kv_size :]
            v = v.view(batch, new, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = _rotary(q, cos, sin), _rotary(k, cos, sin)
            keys, values = cache.update(k, v)
            attn = F.scaled_dot_product_attention(
                q, keys, values, attn_mask=attend, scale=self.scaling, enable_gqa=gqa
            )
            attn = attn.transpose(1, 2).reshape(rows, q_size)
            hidden = hidden + layer.out(attn).view(batch, new, -1)
            normed = layer.post_norm(hidden).view(rows, -1)
            gate_up = layer.gate_up(normed)
            gate, up = gate_up[:, : self.intermediate], gate_up[:, self.intermediate :]
            hidden = hidden + layer.down(F.silu(gate) * up).view(batch, new, -1)
        last = self.norm(hidden[:, -1, :])
        logits: torch.Tensor = self.lm_head(last)
        return logits


def _attention_mask(mask: torch.Tensor, new: int) -> torch.Tensor:
    """Boolean [batch, 1, new, columns] mask: real keys, causally, plus each query's own key."""
    keys = mask.bool()[:, None, None, :]
    if new == 1:
        return keys
    columns = mask.shape[1]
    query_cols = torch.arange(columns - new, columns, device=mask.device)[:, None]
    key_cols = torch.arange(columns, device=mask.device)[None, :]
    causal = key_cols <= query_cols  # [new, columns]
    return (keys & causal) | (key_cols == query_cols)


def _rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The rotary embedding over the first `cos.shape[-1]` dimensions of each head (all of them
    but for a partial rotary factor, e.g. Phi-4-mini's 0.75); the rest pass unchanged."""
    dims = cos.shape[-1]
    if dims == x.shape[-1]:
        return x * cos + _rotate_half(x) * sin
    rotated, passed = x[..., :dims], x[..., dims:]
    return torch.cat((rotated * cos + _rotate_half(rotated) * sin, passed), dim=-1)


def _fused(block: Any, fused: str, parts: tuple[str, ...]) -> Linear:
    """One projection over the concatenated outputs: the block's own fused one (Phi-3's
    `qkv_proj`, `gate_up_proj`) or its separate ones joined (Llama's)."""
    if hasattr(block, fused):
        module = getattr(block, fused)
        return _linear(module.weight, module.bias)
    modules = [getattr(block, name) for name in parts]
    return _linear(torch.cat([m.weight for m in modules]), _cat_bias(*modules))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory_bytes(root: Path = Path("/")) -> int | None:
    """Memory this process may still take: MemAvailable, or the cgroup's limit minus its usage
    when that is lower (cgroup v2, then v1). None when nothing can be read."""
    candidates: list[int] = []
    try:
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    cgroup = root / "sys/fs/cgroup"
    for limit_file, usage_file in (
        (cgroup / "memory.max", cgroup / "memory.current"),
        (cgroup / "memory/memory.limit_in_bytes", cgroup / "memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            candidates.append(max(0, limit - usage))
            break
    return min(candidates) if candidates else None


def projection_bytes(model: Any) -> int:
    """Bytes of the projection weights the fast path copies and packs."""
    total = 0
    for layer in model.model.layers:
        for block in (layer.self_attn, layer.mlp):
            for name in _PROJECTIONS:
                module = getattr(block, name, None)
                if module is not None:
                    total += module.weight.nelement() * module.weight.element_size()
    return total


def _sliding_window(config: Any) -> int | None:
    if getattr(config, "model_type", None) == "qwen2" and not getattr(
        config, "use_sliding_window", False
    ):
        return None
    window = getattr(config, "sliding_window", None)
    return int(window) if window else None


def build_fast_decoder(
    model: Any, available_bytes: int | None = -1, max_model_len: int | None = None
) -> FastLlamaDecoder | None:
    """A `FastLlamaDecoder` when `model` is a Llama-style CPU model whose packed copy fits in
    memory, else None. `available_bytes`: -1 reads it (`available_memory_bytes`), None means
    unknown (no limit applied). A sliding attention window shorter than `max_model_len` (the
    context the engine allows; None: the model's) needs the generic forward's windowed mask."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if config is None or model_type not in _MODEL_TYPES:
        return None
    reasons = []
    if getattr(config, "hidden_act", "silu") != "silu":
        reasons.append(f"hidden_act={config.hidden_act}")
    if int(getattr(config, "pretraining_tp", 1) or 1) != 1:
        reasons.append("pretraining_tp")
    window = _sliding_window(config)
    context = max_model_len or int(getattr(config, "max_position_embeddings", 0) or 0)
    if window is not None and window < context:
        reasons.append(f"sliding_window={window} < context {context}")
    if model.device.type != "cpu":
        reasons.append(f"device={model.device.type}")
    if model.dtype != torch.float32:
        reasons.append(f"dtype={model.dtype}")
    if not reasons:
        needed = projection_bytes(model)
        free = available_memory_bytes() if available_bytes == -1 else available_bytes
        if free is not None and needed > _MEMORY_SHARE * free:
            reasons.append(
                f"the packed weights would need {needed >> 20} MiB, more than half of the "
                f"{free >> 20} MiB of memory left"
            )
    if reasons:
        log.info("Used the generic decode path model_type=%s reasons=%s", model_type, reasons)
        return None
    try:
        decoder = FastLlamaDecoder(model)
    except (AttributeError, RuntimeError) as exc:
        log.info("Used the generic decode path model_type=%s reason=%s", model_type, exc)
        return None
    log.info("Built the fast decode path model_type=%s layers=%d", model_type, len(decoder.layers))
    return decoder
