"""The ``Workspace`` custom resource (``kaito.sh`` v1alpha1 and v1beta1, one schema).

Kept compatible with Kaito's unusual shape: no ``spec``; ``resource``, ``inference`` and ``tuning``
sit at the top level beside ``metadata`` and ``status``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field, JsonValue, WithJsonSchema
from pydantic.config import JsonDict

from kaito_common.api.base import KubeModel
from kaito_common.api.conditions import Condition, conditions_field
from kaito_common.api.labels import KAITO_GROUP
from kaito_common.api.meta import (
    LabelSelector,
    ObjectMeta,
    Schemaless,
    schemaless,
)

WORKSPACE_KIND = "Workspace"
WORKSPACE_PLURAL = "workspaces"
WORKSPACE_VERSIONS = ("v1alpha1", "v1beta1")
WORKSPACE_STORAGE_VERSION = "v1beta1"
MAX_ADAPTERS = 10
# What upstream Kaito's v1alpha1 schema defaults `resource.instanceType` to (a kubebuilder default
# on that version only; v1beta1 has none). The CRD generator writes it into the v1alpha1 schema.
V1ALPHA1_DEFAULT_INSTANCE_TYPE = "Standard_NC24ads_A100_v4"


def _cel(rule: str, message: str) -> JsonDict:
    return {"rule": rule, "message": message}


def _validations(*rules: JsonDict) -> ConfigDict:
    """Model config carrying CEL rules that the CRD generator copies into the schema."""
    validations: list[JsonValue] = [*rules]
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": validations})


class ResourceSpec(KubeModel):
    """The GPU nodes a workspace runs on."""

    count: int = Field(default=1, ge=1, description="Number of GPU nodes.")
    instance_type: str | None = Field(
        default=None,
        description="GPU VM size, e.g. Standard_NC6s_v3; required with node auto-provisioning.",
    )
    label_selector: LabelSelector = Field(
        description=(
            "Labels the nodes must carry. Stamped on created NodeClaims and turned into required "
            "node affinity of the workload. Only matchLabels and In expressions are allowed."
        ),
    )
    preferred_nodes: list[str] | None = Field(
        default=None, description="Existing nodes to use first (bring-your-own nodes)."
    )
    # Upstream Kaito's GPU partitioning (MIG). Kept in the schema so that the webhook sees it
    # and refuses it as not supported yet, rather than the API server pruning it silently.
    partition: Schemaless | None = schemaless(
        "GPU partitioning (MIG) as upstream Kaito names it; not supported yet (refused)."
    )


class PresetOptions(KubeModel):
    image: str | None = Field(default=None, description="Private model image.")
    image_pull_secrets: list[str] | None = Field(
        default=None, description="Secrets to pull the private model image."
    )
    model_access_secret: str | None = Field(
        default=None, description="Secret holding HF_TOKEN for models fetched at start."
    )


class PresetSpec(KubeModel):
    model_config = _validations(
        _cel(
            "!has(self.accessMode) || self.accessMode != 'private' || "
            "(has(self.presetOptions) && has(self.presetOptions.image) && "
            "self.presetOptions.image != '')",
            "When AccessMode is private, an image must be provided in PresetOptions",
        )
    )

    name: str = Field(min_length=1, description="A model preset name from the catalog.")
    access_mode: Literal["public", "private"] | None = Field(
        default=None, description="public (default) or private; private needs presetOptions.image."
    )
    preset_options: PresetOptions | None = None


class DataSource(KubeModel):
    """Where data comes from: URLs, an OCI image, or a volume."""

    name: str | None = Field(default=None, description="A name for this source.")
    urls: list[str] | None = Field(default=None, description="http/https URLs to download.")
    volume_source: Schemaless | None = schemaless("A core/v1 VolumeSource holding the data.")
    image: str | None = Field(default=None, description="An OCI image whose /data/* is the data.")
    image_pull_secrets: list[str] | None = Field(
        default=None, description="Secrets to pull the image."
    )


class AdapterSpec(KubeModel):
    model_config = _validations(
        _cel(
            "has(self.source.image) || has(self.source.volumeSource)",
            "Adapter source must be an image or a volumeSource",
        ),
        _cel("!has(self.source.urls)", "Adapter source cannot be URLs; use an image or a volume"),
    )

    source: DataSource = Field(description="The adapter's image or volume; name is required.")
    strength: str | None = Field(
        default="1.0", description='Weight of the adapter, a decimal string in "0".."1".'
    )


class InferenceSpec(KubeModel):
    model_config = _validations(
        _cel("has(self.preset) || has(self.template)", "Preset or Template must be specified"),
        _cel(
            "!(has(self.preset) && has(self.template))",
            "Preset and Template cannot be set at the same time",
        ),
    )

    preset: PresetSpec | None = None
    template: Schemaless | None = schemaless("A PodTemplateSpec for a custom model.")
    config: str | None = Field(
        default=None, description="ConfigMap (same namespace) holding inference_config.yaml."
    )
    adapters: list[AdapterSpec] | None = Field(
        default=None, max_length=MAX_ADAPTERS, description="LoRA adapters, at most 10."
    )


class DataDestination(KubeModel):
    model_config = _validations(
        _cel(
            "has(self.image) != has(self.volumeSource)",
            "Exactly one of image or volumeSource must be specified",
        ),
        _cel(
            "!has(self.image) || (has(self.imagePushSecret) && self.imagePushSecret != '')",
            "Must specify imagePushSecret with destination image",
        ),
    )

    volume_source: Schemaless | None = schemaless("A core/v1 VolumeSource for the results.")
    image: str | None = Field(default=None, description="OCI image to push the adapter to.")
    image_push_secret: str | None = Field(
        default=None, description="docker-registry Secret used to push the image."
    )


def _lower_case(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


# Any case is accepted, as upstream does (`method: QLoRA`), and read as lower case. The schema is
# a plain string so that the API server lets any case through; the webhook refuses other methods.
TuningMethodName = Annotated[
    Literal["lora", "qlora"],
    BeforeValidator(_lower_case),
    WithJsonSchema({"type": "string", "description": "lora or qlora, in any case."}),
]


class TuningSpec(KubeModel):
    model_config = _validations(
        _cel(
            "(has(self.input.urls) ? 1 : 0) + (has(self.input.image) ? 1 : 0) + "
            "(has(self.input.volumeSource) ? 1 : 0) == 1",
            "Exactly one of urls, image or volumeSource must be specified in tuning input",
        ),
    )

    preset: PresetSpec
    method: TuningMethodName = Field(description="lora or qlora, in any case (QLoRA as upstream).")
    config: str | None = Field(
        default=None,
        description="ConfigMap holding training_config.yaml; default the chart's template.",
    )
    input: DataSource
    output: DataDestination


class WorkspaceStatus(KubeModel):
    worker_nodes: list[str] | None = None
    target_node_count: int | None = None
    state: str | None = None
    conditions: list[Condition] | None = conditions_field()
    # Beyond Kaito: the trainer's progress while the tuning Job runs.
    tuning_progress: dict[str, Any] | None = Field(
        default=None,
        description="Trainer progress: step, totalSteps, loss, epoch, etaSeconds.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class Workspace(KubeModel):
    """A request for an inference endpoint or a fine-tuning job on GPU nodes."""

    GROUP: ClassVar[str] = KAITO_GROUP
    KIND: ClassVar[str] = WORKSPACE_KIND
    PLURAL: ClassVar[str] = WORKSPACE_PLURAL

    model_config = _validations(
        _cel(
            "has(self.inference) || has(self.tuning)",
            "Either Inference or Tuning must be specified, not neither",
        ),
        _cel(
            "!(has(self.inference) && has(self.tuning))",
            "Either Inference or Tuning must be specified, but not both",
        ),
    )

    api_version: str = f"{KAITO_GROUP}/{WORKSPACE_STORAGE_VERSION}"
    kind: str = WORKSPACE_KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    resource: ResourceSpec
    inference: InferenceSpec | None = None
    tuning: TuningSpec | None = None
    status: WorkspaceStatus | None = None

    def spec_fields(self) -> dict[str, Any]:
        """The user's desired state: resource, inference and tuning as Kubernetes writes them."""
        data = self.to_dict()
        return {key: data[key] for key in ("resource", "inference", "tuning") if key in data}
