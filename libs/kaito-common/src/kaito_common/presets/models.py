"""Schemas of the two catalogs: model presets and GPU SKUs. The data lives in ``data/*.yaml``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TuningMethod = Literal["lora", "qlora"]
WeightsDelivery = Literal["download", "model-image", "volume"]
RuntimeName = Literal["transformers", "vllm"]
ParamValue = str | int | float | bool | None


class _Strict(BaseModel):
    # Catalog data is ours: a typo in a key is a bug, caught when the catalog loads.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSource(_Strict):
    repo: str = Field(description="Hugging Face repo id, e.g. microsoft/Phi-3-mini-4k-instruct.")
    revision: str = Field(
        default="main",
        description="The commit of the repo to fetch (real presets pin a 40-hex commit).",
    )
    image: str | None = Field(
        default=None,
        description="The image holding the weights, when not the registry's default name.",
    )
    delivery: WeightsDelivery = Field(
        default="download",
        description=(
            "How the weights reach the pod's weights volume by default. download: an init "
            "container in the runtime image downloads the repository at `revision` from the "
            "Hugging Face hub (HF_ENDPOINT) at start. model-image: an init container copies them "
            "from a weights-only OCI image (<registry>/kaito-model-<name>:<tag>, `make "
            "model-image`). volume: a volume the user gives holds them. A Workspace may choose "
            "another with the kaito.sh/weights-source annotation."
        ),
    )
    local_path: str | None = Field(
        default=None, description="Weights already on the node or in a volume (test presets)."
    )


class TuningSupport(_Strict):
    supported: bool = False
    methods: dict[TuningMethod, float] = Field(
        default_factory=dict, description="GPU memory per GPU (GiB) each method needs."
    )
    target_modules: tuple[str, ...] = ()


class Preset(_Strict):
    name: str
    family: str
    source: ModelSource
    dtype: str = "float16"
    disk_gib: int = Field(gt=0, description="Node OS disk to request.")
    gpu_count: int = Field(ge=0)
    total_gpu_memory_gib: float = Field(ge=0)
    per_gpu_memory_gib: float = Field(default=0, ge=0, description="0 = model parallel.")
    multi_node: bool = False
    token_limit: int = Field(gt=0)
    chat_template: str | None = None
    readiness_timeout_s: int = Field(default=1800, gt=0)
    requires_model_access_secret: bool = False
    deprecated: bool = False
    test_only: bool = Field(default=False, description="Only accepted with the test catalog on.")
    runtimes: dict[RuntimeName, dict[str, ParamValue]] = Field(default_factory=dict)
    tuning: TuningSupport = Field(default_factory=TuningSupport)

    @field_validator("name")
    @classmethod
    def _lower_case_name(cls, value: str) -> str:
        if value != value.lower():
            raise ValueError(f"preset names are lower case, got {value!r}")
        return value

    def supports_tuning(self, method: str) -> bool:
        return self.tuning.supported and method in self.tuning.methods


class GPUSku(_Strict):
    name: str = Field(description="Azure VM size, e.g. Standard_NC6s_v3.")
    gpu_count: int = Field(gt=0)
    total_gpu_memory_gib: float = Field(gt=0)
    gpu_model: str
    local_nvme: bool = False

    @property
    def per_gpu_memory_gib(self) -> float:
        return self.total_gpu_memory_gib / self.gpu_count


class PresetFile(_Strict):
    presets: list[Preset]


class SkuFile(_Strict):
    skus: list[GPUSku]
