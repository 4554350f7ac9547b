"""Our own section types: the ones that have no library type (model loading, dataset, collator)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelSection(BaseModel):
    """`ModelConfig`: keyword arguments of `from_pretrained`."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    pretrained_model_name_or_path: str | None = None
    torch_dtype: str = "auto"
    device_map: str | dict[str, Any] | None = None
    trust_remote_code: bool = False
    local_files_only: bool = True
    revision: str = "main"
    chat_template: str | None = Field(
        None, description="a file path, or the template itself when it contains {, } or a newline"
    )
    attn_implementation: str | None = None
    cache_dir: str | None = None
    low_cpu_mem_usage: bool | None = None


class DatasetSection(BaseModel):
    """`DatasetConfig`: where the data is and which columns hold what."""

    model_config = ConfigDict(extra="forbid")

    dataset_path: str | None = None
    dataset_extension: str | None = None
    shuffle_dataset: bool = True
    shuffle_seed: int = 42
    train_test_split: float = Field(1.0, gt=0.0, le=1.0)
    context_column: str | None = None
    response_column: str | None = None
    messages_column: str | None = None


class CollatorSection(BaseModel):
    """`DataCollator`: Kaito passed these to `DataCollatorForLanguageModeling`.

    Training here is causal LM, so `mlm` is accepted and turned off with a log line, as Kaito did
    for tokenizers without a mask token.
    """

    model_config = ConfigDict(extra="forbid")

    mlm: bool = False
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    pad_to_multiple_of: int | None = None
    return_tensors: Literal["pt"] = "pt"
    seed: int | None = None
