"""Plans built from a Workspace object the way the reconcilers build them, for the unit tests."""

from __future__ import annotations

from typing import Any

from kaito_common.api.workspace import Workspace
from kaito_common.presets import default_catalog
from workspace_controller.inference.plan import InferencePlan, inference_plan
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.tuning.plan import TuningPlan, tuning_plan

CATALOG = default_catalog(include_test=True)


def inference_plan_of(
    obj: dict[str, Any],
    *,
    images: ImageSettings | None = None,
    provisioned: bool = True,
    config_map: str | None = "cfg",
) -> InferencePlan:
    ws = Workspace.model_validate(obj)
    assert ws.inference is not None and ws.inference.preset is not None
    preset = CATALOG.preset(ws.inference.preset.name)
    assert preset is not None
    return inference_plan(
        ws,
        preset,
        CATALOG.sku(ws.resource.instance_type or ""),
        runtime="transformers",
        revision="1",
        images=images or ImageSettings(),
        config_map=config_map,
        provisioned=provisioned,
    )


def tuning_plan_of(
    obj: dict[str, Any],
    *,
    images: ImageSettings | None = None,
    output_dir: str = "/mnt/results",
    provisioned: bool = True,
) -> TuningPlan:
    ws = Workspace.model_validate(obj)
    assert ws.tuning is not None
    preset = CATALOG.preset(ws.tuning.preset.name)
    assert preset is not None
    return tuning_plan(
        ws,
        preset,
        CATALOG.sku(ws.resource.instance_type or ""),
        revision="1",
        images=images or ImageSettings(),
        config_map=f"{ws.metadata.name}-tuning-params",
        output_dir=output_dir,
        metrics_port=5000,
        allow_loopback=False,
        backoff_limit=2,
        provisioned=provisioned,
    )
