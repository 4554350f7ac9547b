"""What the inference pods need, resolved from a workspace, its preset and its SKU.

Separating this from the pod builder keeps the preset and catalog logic in one place and the
builders pure over a flat description.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from kaito_common.api import labels as L
from kaito_common.api.workspace import AdapterSpec, Workspace
from kaito_common.presets import GPUSku, Preset
from kaito_common.presets.models import ParamValue
from workspace_controller.manifests.model_weights import WEIGHTS_DIR, ModelWeights, resolve_weights
from workspace_controller.manifests.runner_access import RunnerAccess
from workspace_controller.manifests.service import SERVER_PORT

ADAPTERS_DIR = "/mnt/adapter"
CONFIG_DIR = "/mnt/config"
PROBE_PERIOD_S = 10


DEFAULT_RUNNER_IMAGE = "mcr.microsoft.com/aks/kaito/tuning-runner:0.1.0"
DEFAULT_SERVER_IMAGE = "mcr.microsoft.com/aks/kaito/inference-server:0.1.0"


@dataclass(frozen=True)
class ImageSettings:
    registry: str = "mcr.microsoft.com/aks/kaito"
    tag: str = "0.1.0"
    # The tuning runner: the tuning Job's fetch/push steps and the adapter puller.
    runner: str = DEFAULT_RUNNER_IMAGE
    # The inference server: the pods of presets whose weights come in a model image.
    server: str = DEFAULT_SERVER_IMAGE
    # What the runner may reach (data allow-list, plain-HTTP registries, CA bundle).
    runner_access: RunnerAccess = field(default_factory=RunnerAccess)

    def resolve(
        self, preset: Preset, runtime_image: str, private_image: str | None
    ) -> tuple[str, ModelWeights]:
        """(main container image, weights) of a pod of `preset` (model_weights.py)."""
        return resolve_weights(
            preset,
            runtime_image=runtime_image,
            private_image=private_image,
            registry=self.registry,
            tag=self.tag,
        )


@dataclass(frozen=True)
class NodeAffinity:
    """Required node affinity: the user's selector, plus the workspace's own nodes when
    the controller provisioned them."""

    match_labels: dict[str, str] = field(default_factory=dict)
    in_expressions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    workspace: str | None = None


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


def private_image(ws: Workspace) -> str | None:
    spec = ws.inference.preset if ws.inference else None
    options = spec.preset_options if spec else None
    if spec is not None and spec.access_mode == "private" and options and options.image:
        return options.image
    return None


def inference_command(preset: Preset, runtime: str, has_adapters: bool) -> list[str]:
    command = [
        "python",
        "-m",
        "inference_server",
        f"--model={preset.source.local_path or WEIGHTS_DIR}",
        f"--served-model-name={preset.name}",
        f"--port={SERVER_PORT}",
        f"--engine={runtime}",
    ]
    if has_adapters:
        command.append(f"--adapters-dir={ADAPTERS_DIR}")
    params = preset.runtimes.get(runtime) or {}  # type: ignore[call-overload]
    return command + render_params(params)


def node_affinity(ws: Workspace, provisioned: bool) -> NodeAffinity:
    selector = ws.resource.label_selector
    labels = {
        k: v for k, v in (selector.match_labels or {}).items() if k not in L.RESERVED_SELECTOR_KEYS
    }
    expressions = tuple(
        (e.key, tuple(e.values or ()))
        for e in selector.match_expressions or ()
        if e.operator == "In" and e.key not in L.RESERVED_SELECTOR_KEYS
    )
    return NodeAffinity(labels, expressions, ws.metadata.name if provisioned else None)


def gpu_request(sku: GPUSku | None, preset: Preset | None) -> int:
    if sku is not None:
        return sku.gpu_count
    return preset.gpu_count if preset is not None else 0


def dns_label(text: str) -> str:
    """A string usable as a DNS-1123 label (container and volume names)."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned[:63].rstrip("-") or "x"


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
    # the kubelet: only the model image's secrets are image pull secrets of the pod.
    pull_secrets = tuple((options.image_pull_secrets if options else None) or ())
    image, weights = images.resolve(preset, images.server, private_image(ws))
    return InferencePlan(
        name=ws.metadata.name or "",
        namespace=ws.metadata.namespace or "",
        revision=revision,
        image=image,
        runner_image=images.runner,
        image_pull_secrets=pull_secrets,
        command=tuple(inference_command(preset, runtime, bool(adapters))),
        gpus=gpu_request(sku, preset),
        replicas=ws.resource.count,
        multi_node=preset.multi_node,
        startup_failure_threshold=max(1, math.ceil(preset.readiness_timeout_s / PROBE_PERIOD_S)),
        adapters=adapters,
        config_map=config_map,
        model_access_secret=options.model_access_secret if options else None,
        affinity=node_affinity(ws, provisioned),
        runner_access=images.runner_access,
        weights=weights,
    )
