"""What the tuning Job needs, resolved from a workspace, its preset, its SKU and its config.

The Job runs one program, `python -m tuning_runner`, in up to three steps: `fetch` (init
container: input URLs or an image into /mnt/data), `train` (GPU container) and, for an output
image, `push` (after training, with the imagePushSecret). The commands are built here, with every
path spelled out, so that the same argv can be run outside Kubernetes with the paths mapped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kaito_common.api.workspace import Workspace
from kaito_common.controller.objects import Obj
from kaito_common.presets import GPUSku, Preset
from workspace_controller.manifests.configmap import CONFIG_DIR
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.manifests.model_weights import ModelWeights, hf_token_env
from workspace_controller.manifests.placement import NodeAffinity, gpu_request, node_affinity
from workspace_controller.manifests.runner import pull_secret_dir, runner_argv
from workspace_controller.manifests.runner_access import (
    RUNNER_LOG_FORMAT_ENV,
    RunnerAccess,
    log_format_env,
)

MOUNT_ROOT = "/mnt"
DATA_DIR = "/mnt/data"
TRAINING_CONFIG_KEY = "training_config.yaml"
TRAINING_CONFIG_PATH = f"{CONFIG_DIR}/{TRAINING_CONFIG_KEY}"
DEFAULT_OUTPUT_DIR = "/mnt/results"
PUSH_SECRET_DIR = "/etc/kaito/push-secret"

FETCH_CONTAINER = "fetch"
TRAINER_CONTAINER = "trainer"
PUSHER_CONTAINER = "pusher"


@dataclass(frozen=True)
class TuningPlan:
    name: str
    namespace: str
    revision: str
    preset_name: str
    trainer_image: str
    runner_image: str
    # Kubelet pulls: the runtime image (the operator's secrets), a private weights image's.
    image_pull_secrets: tuple[str, ...]
    gpus: int
    config_map: str
    output_dir: str
    input_urls: tuple[str, ...]
    input_image: str | None
    input_pull_secrets: tuple[str, ...]
    input_volume: Obj | None
    output_image: str | None
    push_secret: str | None
    output_volume: Obj | None
    model_dir: str
    target_modules: tuple[str, ...]
    metrics_port: int
    allow_loopback: bool
    model_access_secret: str | None
    backoff_limit: int
    affinity: NodeAffinity
    runner_access: RunnerAccess = field(default_factory=RunnerAccess)
    weights: ModelWeights = field(default_factory=ModelWeights)
    hf_endpoint: str = ""

    @property
    def fetches(self) -> bool:
        return bool(self.input_urls or self.input_image)

    @property
    def pushes(self) -> bool:
        return self.output_image is not None


def fetch_command(plan: TuningPlan) -> list[str]:
    args = ["--dest", DATA_DIR]
    if plan.input_image:
        args += ["--image", plan.input_image]
        for secret in plan.input_pull_secrets:
            args += ["--docker-config", pull_secret_dir(secret)]
    else:
        for url in plan.input_urls:
            args += ["--url", url]
    if plan.allow_loopback:
        args.append("--allow-loopback")
    return runner_argv("fetch", *args)


def train_command(plan: TuningPlan) -> list[str]:
    # --output-dir: the results volume is mounted at the config's output_dir as the controller
    # read it; saying so keeps the write and the mount together even if the ConfigMap changes.
    return runner_argv(
        "train",
        "--config",
        TRAINING_CONFIG_PATH,
        "--data-dir",
        DATA_DIR,
        "--output-dir",
        plan.output_dir,
        "--root",
        MOUNT_ROOT,
        "--metrics-port",
        str(plan.metrics_port),
    )


def push_command(plan: TuningPlan) -> list[str]:
    assert plan.output_image is not None
    args = [
        "--image",
        plan.output_image,
        "--output-dir",
        plan.output_dir,
        "--model-name",
        plan.preset_name,
    ]
    if plan.push_secret:
        args += ["--docker-config", PUSH_SECRET_DIR]
    return runner_argv("push", *args)


def trainer_env(plan: TuningPlan) -> list[Obj]:
    env: list[Obj] = [
        {"name": "KAITO_TUNING_DEFAULT_MODEL_PATH", "value": plan.model_dir},
        {"name": "KAITO_TUNING_MODEL_NAME", "value": plan.preset_name},
        {"name": "PYTORCH_CUDA_ALLOC_CONF", "value": "expandable_segments:True"},
    ]
    if plan.target_modules:
        env.append(
            {
                "name": "KAITO_TUNING_DEFAULT_TARGET_MODULES",
                "value": json.dumps(list(plan.target_modules)),
            }
        )
    if plan.model_access_secret:
        env.append(hf_token_env(plan.model_access_secret))
    env += log_format_env(RUNNER_LOG_FORMAT_ENV, plan.runner_access.log_format)
    return env


def private_image(ws: Workspace) -> str | None:
    assert ws.tuning is not None
    options = ws.tuning.preset.preset_options
    if ws.tuning.preset.access_mode == "private" and options and options.image:
        return options.image
    return None


def tuning_plan(
    ws: Workspace,
    preset: Preset,
    sku: GPUSku | None,
    *,
    revision: str,
    images: ImageSettings,
    config_map: str,
    output_dir: str,
    metrics_port: int,
    allow_loopback: bool,
    backoff_limit: int,
    provisioned: bool,
) -> TuningPlan:
    tuning = ws.tuning
    assert tuning is not None
    options = tuning.preset.preset_options
    source, destination = tuning.input, tuning.output
    # The trainer runs the tuning runner image; the weights reach its weights volume first.
    image, weights = images.resolve(
        preset,
        images.runner,
        workspace=ws.metadata.name or "",
        annotations=ws.metadata.annotations or {},
        private_image=private_image(ws),
    )
    return TuningPlan(
        name=ws.metadata.name or "",
        namespace=ws.metadata.namespace or "",
        revision=revision,
        preset_name=preset.name,
        trainer_image=image,
        runner_image=images.runner,
        image_pull_secrets=tuple(
            dict.fromkeys(
                images.pull_secrets + tuple((options.image_pull_secrets if options else None) or ())
            )
        ),
        gpus=gpu_request(sku, preset),
        config_map=config_map,
        output_dir=output_dir,
        input_urls=tuple(source.urls or ()),
        input_image=source.image,
        input_pull_secrets=tuple(source.image_pull_secrets or ()),
        input_volume=dict(source.volume_source) if source.volume_source else None,
        output_image=destination.image,
        push_secret=destination.image_push_secret,
        output_volume=dict(destination.volume_source) if destination.volume_source else None,
        model_dir=weights.path,
        target_modules=tuple(preset.tuning.target_modules),
        metrics_port=metrics_port,
        allow_loopback=allow_loopback,
        model_access_secret=options.model_access_secret if options else None,
        backoff_limit=backoff_limit,
        affinity=node_affinity(ws, provisioned),
        runner_access=images.runner_access,
        weights=weights,
        hf_endpoint=images.hf_endpoint,
    )
