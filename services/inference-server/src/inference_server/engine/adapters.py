"""LoRA adapters: discovery in the adapters dir, strengths, and peft wiring for both modes.

Separate mode keeps every adapter as its own peft adapter and picks one per batch row
(`adapter_names`). Merged mode is Kaito's transformers behaviour: all adapters combined with the
strength named by an environment variable after each adapter (default 1.0) and folded into the
base weights, so every request uses them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from inference_server.engine.types import AdapterInfo

log = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch


def discover_adapters(adapters_dir: Path) -> list[AdapterInfo]:
    """Every subdirectory of `adapters_dir` holding an `adapter_config.json`, sorted by name."""
    if not adapters_dir.is_dir():
        return []
    found = [
        AdapterInfo(name=child.name, path=str(child))
        for child in sorted(adapters_dir.iterdir())
        if (child / "adapter_config.json").is_file()
    ]
    return found


def adapter_strength(name: str, environ: Mapping[str, str] | None = None) -> float:
    """Kaito sets an environment variable named exactly like the adapter to its strength."""
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value == "":
        return 1.0
    return float(value)


def attach_adapter(model: Any, info: AdapterInfo) -> Any:
    """Load one adapter next to the others; wraps the base model in peft on the first one."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.load_adapter(info.path, adapter_name=info.name)
        return model
    return PeftModel.from_pretrained(model, info.path, adapter_name=info.name)


def detach_adapter(model: Any, name: str) -> Any:
    """Drop one adapter; returns the bare base model once the last one is gone."""
    from peft import PeftModel

    assert isinstance(model, PeftModel)
    if set(model.peft_config) == {name}:
        return model.unload()
    model.delete_adapter(name)
    return model


def merge_adapters(model: Any, adapters: list[AdapterInfo], environ: Mapping[str, str]) -> Any:
    """Fold all adapters, weighted by their strengths, into the base weights."""
    for info in adapters:
        model = attach_adapter(model, info)
    weights = [adapter_strength(a.name, environ) for a in adapters]
    if len(adapters) == 1 and weights[0] == 1.0:
        merged = model.merge_and_unload()
    else:
        model.add_weighted_adapter(
            [a.name for a in adapters], weights, adapter_name="combined", combination_type="cat"
        )
        model.set_adapter("combined")
        merged = model.merge_and_unload(adapter_names=["combined"])
    log.info(
        "Merged adapters into the base model adapters=%s strengths=%s",
        [a.name for a in adapters],
        weights,
    )
    return merged
