"""Loading the model the transformers engine serves: tokenizer, weights, adapters, fast path.

`load_model` runs on the engine thread and returns a `LoadedModel`: what the scheduler needs to
run batched forwards (device, layer count, the cache keyword of this transformers release), the
adapters loaded at start, and the lean Llama decoder where the model allows it (`fast_llama.py`
decides; batches use it only while no adapter is loaded).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from inference_server.engine import adapters as adapter_ops
from inference_server.engine.chat_template import choose_chat_template
from inference_server.engine.cpu_threads import CpuSource, ThreadGovernor
from inference_server.engine.fast_llama import FastLlamaDecoder, build_fast_decoder
from inference_server.engine.hf_codec import HFTextCodec
from inference_server.engine.types import AdapterInfo
from inference_server.settings import ServerSettings

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """The served model. `model` and `adapters` change when adapters are loaded or unloaded
    (on the engine thread only)."""

    model: Any
    codec: HFTextCodec
    device: torch.device
    num_layers: int
    max_model_len: int
    cache_kwarg: str  # transformers 5.2x renamed `past_key_values` to `cache`
    fast: FastLlamaDecoder | None = None
    merged: bool = False
    governor: ThreadGovernor | None = None
    adapters: dict[str, AdapterInfo] = field(default_factory=dict)

    @property
    def uses_fast_path(self) -> bool:
        """True while batches run the lean Llama forward (no adapter loaded, known model)."""
        return self.fast is not None and not self.adapters


def resolve_device(settings: ServerSettings) -> tuple[str, Any]:
    """The device and the dtype to load with: fp32 on CPU unless a dtype is named."""
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype: Any = "auto" if settings.dtype == "auto" else getattr(torch, settings.dtype)
    if settings.dtype == "auto" and device == "cpu":
        dtype = torch.float32
    return device, dtype


@contextmanager
def _stage(name: str) -> Iterator[None]:
    """Logs how long one stage of loading took (a model of many GiB takes minutes)."""
    start = time.monotonic()
    yield
    log.info("Finished model loading stage=%s seconds=%.1f", name, time.monotonic() - start)


def load_model(
    settings: ServerSettings, environ: Mapping[str, str], cpu_source: CpuSource | None
) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    s = settings
    device, dtype = resolve_device(s)
    start = time.monotonic()
    log.info("Loading model path=%s device=%s dtype=%s", s.model, device, dtype)
    common = {"local_files_only": s.local_files_only, "trust_remote_code": s.trust_remote_code}
    with _stage("config"):
        AutoConfig.from_pretrained(str(s.model), **common)  # a bad config fails fast and clearly
    with _stage("tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(str(s.model), **common)
        choose_chat_template(tokenizer, s)
    with _stage("weights"):
        model = AutoModelForCausalLM.from_pretrained(str(s.model), dtype=dtype, **common)
    with _stage("to_device"):
        model.to(device).eval()  # type: ignore[arg-type]
    config = model.config.get_text_config()
    params = inspect.signature(type(model).forward).parameters
    eos = model.generation_config.eos_token_id
    loaded = LoadedModel(
        model=None,
        codec=HFTextCodec(tokenizer, [eos] if isinstance(eos, int) else list(eos or [])),
        device=torch.device(device),
        num_layers=int(config.num_hidden_layers),
        max_model_len=s.max_model_len or int(getattr(config, "max_position_embeddings", 2048)),
        cache_kwarg="cache" if "cache" in params else "past_key_values",
    )
    found = adapter_ops.discover_adapters(s.adapters_dir)
    with _stage("adapters"):
        loaded.model = _with_adapters(loaded, model, found, s, environ)
    if loaded.device.type == "cpu":
        if s.cpu_threads:
            torch.set_num_threads(s.cpu_threads)
        else:
            loaded.governor = ThreadGovernor(
                torch.get_num_threads(), torch.set_num_threads, cpu_source
            )
    log.info(
        "Loaded model path=%s device=%s dtype=%s layers=%d max_model_len=%d adapters=%s "
        "seconds=%.1f",
        s.model,
        device,
        loaded.model.dtype,
        loaded.num_layers,
        loaded.max_model_len,
        [a.name for a in found],
        time.monotonic() - start,
    )
    return loaded


def _with_adapters(
    loaded: LoadedModel,
    model: Any,
    found: list[AdapterInfo],
    settings: ServerSettings,
    environ: Mapping[str, str],
) -> Any:
    """Merge or attach the adapters found at start; build the fast decoder in between."""
    if found and settings.adapter_mode == "merged":
        model = adapter_ops.merge_adapters(model, found, environ).eval()
        loaded.merged = True
    # Built from the base weights (merged ones in merged mode). Separate adapters wrap the base
    # projections without changing them, so it stays valid; batches run it only while no
    # adapter is loaded.
    if settings.fast_decode:
        loaded.fast = build_fast_decoder(model, max_model_len=loaded.max_model_len)
    if not loaded.merged:
        for info in found:
            model = adapter_ops.attach_adapter(model, info).eval()
            loaded.adapters[info.name] = info
    return model
