"""Presets whose weights come in a model image: the pod runs the project's runtime image and an
init container from the model image copies the weights into a volume the runtime reads.

Checked on the test-tiny preset (``source.delivery: model-image``) for an inference Deployment
and a tuning Job, next to a classic preset whose weights sit in the preset image."""

from __future__ import annotations

from typing import Any

from wc_helpers.golden import assert_golden
from wc_helpers.plans import inference_plan_of, tuning_plan_of
from wc_helpers.workspaces import phi3, tuning

from kaito_common.controller.meta import controller_reference
from kaito_common.presets import default_catalog
from workspace_controller.inference.pod import pod_template
from workspace_controller.inference.workload import deployment_manifest
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.manifests.model_weights import ModelWeights, resolve_weights
from workspace_controller.tuning.job import job_pod_spec

CATALOG = default_catalog(include_test=True)
IMAGES = ImageSettings(
    registry="reg.example/kaito",
    tag="1.2",
    runner="reg.example/kaito/tuning-runner:1.2",
    server="reg.example/kaito/inference-server:1.2",
)
TINY = "test-tiny-llama"
MODEL_IMAGE = f"reg.example/kaito/kaito-model-{TINY}:1.2"
Obj = dict[str, Any]


def _tiny_inference(**preset: Any) -> Obj:
    obj = phi3()
    obj["metadata"]["name"] = "tiny"
    obj["inference"] = {"preset": {"name": TINY, **preset}}
    return obj


def _inference_plan(obj: Obj) -> Any:
    return inference_plan_of(obj, images=IMAGES)


def _tuning_plan(obj: Obj) -> Any:
    return tuning_plan_of(obj, images=IMAGES)


def _by_name(items: list[Obj]) -> dict[str, Obj]:
    return {i["name"]: i for i in items}


def test_resolution_by_delivery() -> None:
    tiny, phi = CATALOG.preset(TINY), CATALOG.preset("phi-3-mini-4k-instruct")
    assert tiny is not None and phi is not None
    common: Any = {"runtime_image": "server:1", "registry": "r", "tag": "t"}
    assert resolve_weights(tiny, private_image=None, **common) == (
        "server:1",
        ModelWeights("/workspace/weights", "r/kaito-model-test-tiny-llama:t"),
    )
    assert resolve_weights(tiny, private_image="me/weights:7", **common) == (
        "server:1",
        ModelWeights("/workspace/weights", "me/weights:7"),
    )
    assert resolve_weights(phi, private_image=None, **common) == (
        "r/kaito-phi-3-mini-4k-instruct:t",
        ModelWeights("/workspace/weights", None),
    )
    assert resolve_weights(phi, private_image="me/phi:7", **common)[0] == "me/phi:7"


def test_inference_pod_copies_the_model_image_into_the_weights_volume() -> None:
    spec = pod_template(_inference_plan(_tiny_inference()))["spec"]
    server = spec["containers"][0]
    assert server["image"] == IMAGES.server
    assert "--model=/workspace/weights" in server["command"]
    weights_mount = {"name": "weights", "mountPath": "/workspace/weights", "readOnly": True}
    assert weights_mount in server["volumeMounts"]
    assert {"name": "weights", "emptyDir": {}} in spec["volumes"]
    (copy,) = spec["initContainers"]
    assert copy["name"] == "model-weights" and copy["image"] == MODEL_IMAGE
    assert copy["args"] == ["/workspace/weights"] and "command" not in copy
    assert copy["volumeMounts"] == [{"name": "weights", "mountPath": "/workspace/weights"}]
    assert copy["securityContext"]["readOnlyRootFilesystem"] is True
    assert copy["securityContext"]["runAsNonRoot"] is True


def test_model_image_comes_before_the_adapter_pullers() -> None:
    obj = _tiny_inference()
    obj["inference"]["adapters"] = [{"source": {"name": "a1", "image": "reg.example/a1:1"}}]
    spec = pod_template(_inference_plan(obj))["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["model-weights", "adapter-a1"]
    mounts = {m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert {"weights", "adapters"} <= mounts


def test_private_model_image_and_its_pull_secrets() -> None:
    obj = _tiny_inference(
        accessMode="private",
        presetOptions={"image": "me.example/weights:7", "imagePullSecrets": ["me-pull"]},
    )
    spec = pod_template(_inference_plan(obj))["spec"]
    assert spec["initContainers"][0]["image"] == "me.example/weights:7"
    assert spec["containers"][0]["image"] == IMAGES.server
    assert spec["imagePullSecrets"] == [{"name": "me-pull"}]


def test_classic_preset_gets_no_copy() -> None:
    spec = pod_template(_inference_plan(phi3()))["spec"]
    assert "initContainers" not in spec
    assert spec["containers"][0]["image"] == "reg.example/kaito/kaito-phi-3-mini-4k-instruct:1.2"
    assert all(v["name"] != "weights" for v in spec["volumes"])


def test_tiny_deployment_golden() -> None:
    obj = _tiny_inference()
    manifest = deployment_manifest(_inference_plan(obj), controller_reference(obj))
    assert_golden("deployment-tiny-model-image", manifest)


def test_tuning_job_trains_with_the_runner_image_and_copied_weights() -> None:
    obj = tuning()
    obj["tuning"]["preset"] = {"name": TINY}
    spec = job_pod_spec(_tuning_plan(obj))
    inits = spec["initContainers"]
    assert [c["name"] for c in inits] == ["model-weights", "fetch", "trainer"]
    assert inits[0]["image"] == MODEL_IMAGE
    trainer = _by_name(inits)["trainer"]
    assert trainer["image"] == IMAGES.runner
    env = {e["name"]: e.get("value") for e in trainer["env"]}
    assert env["KAITO_TUNING_DEFAULT_MODEL_PATH"] == "/workspace/weights"
    weights_mount = {"name": "weights", "mountPath": "/workspace/weights", "readOnly": True}
    assert weights_mount in trainer["volumeMounts"]
    assert {"name": "weights", "emptyDir": {}} in spec["volumes"]
    # The fetch and the pusher never see the weights.
    assert all(m["name"] != "weights" for m in inits[1]["volumeMounts"])
    assert all(m["name"] != "weights" for m in spec["containers"][0]["volumeMounts"])
