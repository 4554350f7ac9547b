"""What the inference pods need, resolved from a workspace, its preset and its SKU.

Separating this from the pod builder keeps the preset and catalog logic in one place and the
builders pure over a flat description.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kaito_common.api import labels as L
from kaito_common.api.workspace import AdapterSpec, Workspace
from kaito_common.presets import GPUSku, Preset
from kaito_common.presets.models import ParamValue
from workspace_controller.inference.runtime import parallelism_flags
from workspace_controller.inference.service import SERVER_PORT
from workspace_controller.manifests.configmap import CONFIG_DIR, INFERENCE_CONFIG_KEY
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.manifests.model_weights import WEIGHTS_DIR, ModelWeights
from workspace_controller.manifests.placement import NodeAffinity, gpu_request, node_affinity
from workspace_controller.manifests.runner_access import RunnerAccess

ADAPTERS_DIR = "/mnt/adapter"
PROBE_PERIOD_S = 10


@dataclass(frozen=True)
class InferencePlan:
    name: str
    namespace: str
    revision: str
    image: str
    runner_image: str
    image_pull_secrets: tuple[str, ...]
    command: tuple[str, ...]
    gpus: int
    replicas: int
    multi_node: bool
    startup_failure_threshold: int
    adapters: tuple[AdapterSpec, ...]
    config_map: str | None
    model_access_secret: str | None
    affinity: NodeAffinity
    runner_access: RunnerAccess = field(default_factory=RunnerAccess)
    weights: ModelWeights = field(default_factory=ModelWeights)
    hf_endpoint: str = ""


def render_params(params: dict[str, ParamValue]) -> list[str]:
    """Runtime parameters as flags in a stable (sorted) order: `dtype: auto` ->
    `--dtype=auto`, `trust_remote_code: true` -> `--trust-remote-code`; false and null
    values are left out."""
    flags: list[str] = []
    for key in sorted(params):
        value = params[key]
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False or value is None:
            continue
        else:
            flags.append(f"{flag}={value}")
    return flags


def _unique(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def private_image(ws: Workspace) -> str | None:
    spec = ws.inference.preset if ws.inference else None
    options = spec.preset_options if spec else None
    if spec is not None and spec.access_mode == "private" and options and options.image:
        return options.image
    return None


@dataclass(frozen=True)
class ServerShape:
    """What the server's flags depend on besides the preset: its engine, nodes and inputs."""

    runtime: str
    has_adapters: bool = False
    gpus_per_node: int = 0
    nodes: int = 1
    has_config: bool = False


def inference_command(preset: Preset, shape: ServerShape) -> list[str]:
    runtime = shape.runtime
    command = [
        "python",
        "-m",
        "inference_server",
        f"--model={preset.source.local_path or WEIGHTS_DIR}",
        # A Hugging Face repo named as preset is served under its id as written.
        f"--served-model-name={preset.source.repo if '/' in preset.name else preset.name}",
        f"--port={SERVER_PORT}",
        f"--engine={runtime}",
    ]
    if shape.has_adapters:
        command.append(f"--adapters-dir={ADAPTERS_DIR}")
    if runtime == L.RUNTIME_VLLM:
        command += parallelism_flags(shape.gpus_per_node, shape.nodes, preset.multi_node)
    if preset.chat_template:  # used when the model's tokenizer has none, as upstream
        command.append(f"--default-chat-template={preset.chat_template}")
    if shape.has_config:  # each engine reads its section (`vllm:`, `transformers:`)
        command.append(f"--kaito-config-file={CONFIG_DIR}/{INFERENCE_CONFIG_KEY}")
    params = preset.runtimes.get(runtime) or {}  # type: ignore[call-overload]
    return command + render_params(params)


def inference_plan(
    ws: Workspace,
    preset: Preset,
    sku: GPUSku | None,
    *,
    runtime: str,
    revision: str,
    images: ImageSettings,
    config_map: str | None,
    provisioned: bool,
) -> InferencePlan:
    inference = ws.inference
    assert inference is not None and inference.preset is not None
    options = inference.preset.preset_options
    adapters = tuple(inference.adapters or ())
    # Adapter images are pulled by the tuning runner (their secrets are mounted for it), not by
    # the kubelet: the pod's pull secrets are the operator's (runtime images) and the private
    # weights image's.
    pull_secrets = _unique(
        images.pull_secrets + tuple((options.image_pull_secrets if options else None) or ())
    )
    image, weights = images.resolve(
        preset,
        images.server_for(runtime),
        workspace=ws.metadata.name or "",
        annotations=ws.metadata.annotations or {},
        private_image=private_image(ws),
    )
    gpus = gpu_request(sku, preset)
    shape = ServerShape(runtime, bool(adapters), gpus, ws.resource.count, config_map is not None)
    return InferencePlan(
        name=ws.metadata.name or "",
        namespace=ws.metadata.namespace or "",
        revision=revision,
        image=image,
        runner_image=images.runner,
        image_pull_secrets=pull_secrets,
        command=tuple(inference_command(preset, shape)),
        gpus=gpus,
        replicas=ws.resource.count,
        multi_node=preset.multi_node,
        startup_failure_threshold=max(1, math.ceil(preset.readiness_timeout_s / PROBE_PERIOD_S)),
        adapters=adapters,
        config_map=config_map,
        model_access_secret=options.model_access_secret if options else None,
        affinity=node_affinity(ws, provisioned),
        runner_access=images.runner_access,
        weights=weights,
        hf_endpoint=images.hf_endpoint,
    )
