"""Tiny causal language models built on the spot for tests and benchmarks.

`build_tiny_model` writes a Hugging Face model directory (config, random safetensors weights,
generation config, a byte-level BPE tokenizer trained right here and a chat template) that the real
loading code (`AutoModelForCausalLM.from_pretrained`, `AutoTokenizer.from_pretrained`) reads like
any downloaded model. Nothing is fetched from a hub.

The tokenizer's alphabet is printable ASCII plus newline, so every token decodes to non-empty
text: a streamed response carries exactly one text piece per generated token.

torch, transformers and tokenizers are imported inside the functions: importing kaito_testing
must stay cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    import pytest
    from transformers import PreTrainedModel

Arch = Literal[
    "llama", "llama3", "phi3", "phi4", "phi4-mini", "qwen2", "mistral", "falcon", "falcon-40b"
]

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)

# Roles are rendered as plain text headers; the assistant turn sits inside generation markers so
# that `apply_chat_template(..., return_assistant_tokens_mask=True)` (TRL's assistant-only loss)
# knows which tokens the assistant produced.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|>\n"
    "{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}\n"
    "{% else %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"
_PUNCTUATION = ".,!?;:'\"()-"


def _training_corpus(lines: int = 3000) -> list[str]:
    """Deterministic pseudo-English text covering printable ASCII, rich enough for many merges."""
    rng = random.Random(1234)
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(800)]
    words += ["the", "a", "is", "of", "and", "to", "in", "you", "hello", "world", "model", "kaito"]
    printable = "".join(chr(c) for c in range(0x20, 0x7F))
    corpus = [printable, "<|system|>\n", "<|user|>\n", "<|assistant|>\n"]
    for _ in range(lines):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))
        if rng.random() < 0.3:
            sentence = sentence.capitalize()
        if rng.random() < 0.5:
            sentence += rng.choice(_PUNCTUATION)
        if rng.random() < 0.2:
            sentence += " " + str(rng.randint(0, 9999))
        corpus.append(sentence + ("\n" if rng.random() < 0.3 else ""))
    return corpus


def _train_tokenizer(vocab_size: int) -> object:
    """Train a byte-level BPE whose alphabet is printable ASCII and newline only."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    # ByteLevel maps each byte to a visible unicode char; keep the ones for printable ASCII + \n.
    mapping = _byte_level_map()
    alphabet = [mapping[b] for b in [*range(0x20, 0x7F), 0x0A]]
    assert set(alphabet) <= set(byte_chars)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        clean_up_tokenization_spaces=False,
        model_max_length=1 << 30,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _byte_level_map() -> dict[int, str]:
    """GPT-2's byte -> unicode table (printable bytes map to themselves, others are shifted)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = keep[:]
    shift = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + shift)
            shift += 1
    return {b: chr(c) for b, c in zip(keep, chars, strict=True)}


def build_tiny_model(
    out_dir: Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    vocab_size: int = 512,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
    seed: int = 0,
    arch: Arch = "llama",
    silence_special_tokens: bool = False,
    long_rope: bool = False,
) -> Path:
    """Write a random-weight causal LM with its tokenizer and chat template to `out_dir`.

    The same arguments always produce byte-identical weights. `vocab_size` is the tokenizer's
    target size; the model's vocabulary equals the trained tokenizer's length so that every id the
    model can emit decodes. With `silence_special_tokens` the lm_head rows of the special tokens
    are zeroed: greedy decoding then never emits EOS (their logit is exactly 0 while the best
    random logit is positive), which fixes output lengths for benchmarks.

    `long_rope` (Phi-3 only) gives the config the shape of Phi-3-mini-128k-instruct's: LongRoPE
    `rope_scaling` (short and long factors per rotary dimension) over an original 4k context
    stretched to 131072 positions. The weights are always written as `model.safetensors`.
    """
    if long_rope and arch != "phi3":
        raise ValueError("long_rope is a Phi-3 (arch='phi3') configuration")
    from transformers import GenerationConfig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(vocab_size)
    tok_len = len(tokenizer)  # type: ignore[arg-type]
    token_id = tokenizer.convert_tokens_to_ids  # type: ignore[attr-defined]
    ids = {
        "bos_token_id": token_id(BOS_TOKEN),
        "eos_token_id": token_id(EOS_TOKEN),
        "pad_token_id": token_id(PAD_TOKEN),
    }
    config = {
        "vocab_size": tok_len,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_heads,
        "intermediate_size": intermediate_size or 4 * hidden_size,
        "max_position_embeddings": max_position_embeddings,
        "tie_word_embeddings": False,
        **ids,
    }
    if long_rope:
        config.update(_longrope_config(hidden_size // num_heads))
    silenced = [token_id(special) for special in SPECIAL_TOKENS] if silence_special_tokens else []
    model = _random_model(arch, config, seed, silenced)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        **ids, max_length=config["max_position_embeddings"]
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)  # type: ignore[attr-defined]
    return out_dir


# Phi-3-mini-128k-instruct: an original context of 4096 positions stretched to 131072.
LONGROPE_ORIGINAL_POSITIONS = 4096
LONGROPE_MAX_POSITIONS = 131072


def _longrope_config(head_dim: int) -> dict[str, Any]:
    """LongRoPE `rope_scaling` in the shape of the 128k Phi-3 models' config.json: one short and
    one long factor per rotary frequency (half the head dimension)."""
    half = head_dim // 2
    return {
        "max_position_embeddings": LONGROPE_MAX_POSITIONS,
        "original_max_position_embeddings": LONGROPE_ORIGINAL_POSITIONS,
        "rope_scaling": {
            "type": "longrope",
            "short_factor": [1.0 + 0.05 * i for i in range(half)],
            "long_factor": [1.0 + 2.0 * i for i in range(half)],
        },
    }


def _random_model(
    arch: Arch, config: dict[str, Any], seed: int, silenced: list[int]
) -> PreTrainedModel:
    """The model with seeded random weights; the lm_head rows of ``silenced`` ids zeroed."""
    import torch
    from transformers import (
        FalconConfig,
        FalconForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Phi3Config,
        Phi3ForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    torch.manual_seed(seed)
    model: PreTrainedModel
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**config))
    elif arch == "phi3":
        phi3 = {"original_max_position_embeddings": 0, **config}
        model = Phi3ForCausalLM(Phi3Config(**phi3))
    elif arch == "qwen2":
        # Qwen2.5's shape: biased q/k/v projections (always, in Qwen2), grouped KV heads.
        heads = config["num_attention_heads"]
        model = Qwen2ForCausalLM(
            Qwen2Config(**{**config, "num_key_value_heads": max(1, heads // 2)})
        )
    elif arch == "mistral":
        # Mistral-7B's shape: grouped KV heads and a sliding attention window (shorter than the
        # context here, so the window really cuts in).
        heads = config["num_attention_heads"]
        mistral = {**config, "num_key_value_heads": max(1, heads // 2), "sliding_window": 64}
        model = MistralForCausalLM(MistralConfig(**mistral))
    elif arch == "llama3":
        # Llama-3.1's shape (llama-3.1-8b, deepseek-r1-distill-llama-8b): grouped KV heads and the
        # llama3 rope scaling over an original 8k context.
        heads = config["num_attention_heads"]
        llama3 = {
            **config,
            "num_key_value_heads": max(1, heads // 2),
            "rope_theta": 500000.0,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 128,
            },
        }
        model = LlamaForCausalLM(LlamaConfig(**llama3))
    elif arch in ("phi4", "phi4-mini"):
        # Phi-4 (14B) is a Phi-3 with grouped KV heads; Phi-4-mini adds a partial rotary
        # embedding (0.75 of each head) and tied input and output embeddings.
        heads = config["num_attention_heads"]
        phi4: dict[str, Any] = {
            "original_max_position_embeddings": 0,
            **config,
            "num_key_value_heads": max(1, heads // 4),
        }
        if arch == "phi4-mini":
            phi4.update(partial_rotary_factor=0.75, tie_word_embeddings=True)
        model = Phi3ForCausalLM(Phi3Config(**phi4))
    elif arch in ("falcon", "falcon-40b"):
        # Falcon-7B: multi-query attention (one KV head), attention and MLP in parallel off one
        # layer norm, fused query_key_value, no biases. Falcon-40B: the "new decoder
        # architecture" (grouped KV heads, two layer norms per block).
        falcon: dict[str, Any] = {
            "vocab_size": config["vocab_size"],
            "hidden_size": config["hidden_size"],
            "num_hidden_layers": config["num_hidden_layers"],
            "num_attention_heads": config["num_attention_heads"],
            "ffn_hidden_size": config["intermediate_size"],
            "max_position_embeddings": config["max_position_embeddings"],
            "tie_word_embeddings": False,
            "bias": False,
            "alibi": False,
            "parallel_attn": True,
            **{k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")},
        }
        if arch == "falcon":
            falcon.update(multi_query=True, new_decoder_architecture=False)
        else:
            falcon.update(new_decoder_architecture=True, num_kv_heads=2)
        model = FalconForCausalLM(FalconConfig(**falcon))
    else:
        raise ValueError(f"unknown arch {arch!r}: expected one of {', '.join(get_args(Arch))}")
    # Random init uses std 0.02: the logits are then nearly flat. A wider output layer makes
    # greedy decoding decisive, so float noise between batched and single runs cannot flip ties.
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(seed + 1))
        for token in silenced:
            model.lm_head.weight[token] = 0.0
        if getattr(model.config, "tie_word_embeddings", False):
            # With tied embeddings the residual stream still carries the last input token's
            # embedding, so a random model would only ever repeat it. Random signs in the final
            # norm's scale break that echo.
            norm = model.model.norm.weight
            norm.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(seed + 2))
    return model


# Bumped whenever the builder makes different weights for the same arguments.
BUILDER_VERSION = 2


def _cache_key(kwargs: dict[str, object]) -> str:
    blob = json.dumps({**kwargs, "_builder": BUILDER_VERSION}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_tiny_model(cache_root: Path, **kwargs: object) -> Path:
    """Build (once) and return a tiny model under `cache_root`, keyed by the build arguments.

    Safe when several processes ask at once: each builds in a private directory and renames it
    into place; the loser of the race discards its copy.
    """
    cache_root = Path(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    target = cache_root / f"tiny-{kwargs.get('arch', 'llama')}-{_cache_key(kwargs)}"
    if (target / "config.json").exists():
        return target
    scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_root))
    try:
        build_tiny_model(scratch / "model", **kwargs)  # type: ignore[arg-type]
        try:
            os.rename(scratch / "model", target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, **kwargs: object) -> Path:
    """pytest helper: a tiny model shared by every test of the session that asks for the same args.

    Use from a session-scoped fixture: `return tiny_model_dir(tmp_path_factory, num_layers=2)`.
    """
    root = tmp_path_factory.getbasetemp() / "tiny-models"
    return cached_tiny_model(root, **kwargs)
