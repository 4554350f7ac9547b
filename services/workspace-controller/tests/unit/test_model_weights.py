"""How the model weights reach a pod: the pod always runs the project's runtime image, and an init
container fills the weights volume the runtime reads, or the user's volume already holds them.

- download at start (real presets' default): the runtime image downloads the catalog's pinned
  commit, with the Workspace's HF token and the controller's hub endpoint;
- a weights image (the test-tiny presets' default, a private `presetOptions.image`, or the
  `kaito.sh/weights-source: image` annotation): copied by an init container;
- a volume (`kaito.sh/weights-source: volume` with a PVC or a host path): mounted read-only.
"""

from __future__ import annotations

from typing import Any

import pytest
from wc_helpers.golden import assert_golden
from wc_helpers.plans import inference_plan_of, tuning_plan_of
from wc_helpers.workspaces import phi3, tuning

from kaito_common.controller.meta import controller_reference
from kaito_common.presets import default_catalog
from workspace_controller.inference.pod import pod_template
from workspace_controller.inference.workload import statefulset_manifest
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.manifests.model_weights import (
    ModelWeights,
    WeightsCache,
    WeightsRequest,
    WeightsSourceError,
    resolve_weights,
)
from workspace_controller.manifests.weights_claim import uses_weights_cache, weights_claim_manifest
from workspace_controller.tuning.job import job_pod_spec

CATALOG = default_catalog(include_test=True)
IMAGES = ImageSettings(
    registry="reg.example/kaito",
    tag="1.2",
    runner="reg.example/kaito/tuning-runner:1.2",
    server="reg.example/kaito/inference-server:1.2",
    hf_endpoint="http://hub.example:8080",
)
TINY = "test-tiny-llama"
MODEL_IMAGE = f"reg.example/kaito/kaito-model-{TINY}:1.2"
PHI3_COMMIT = "0a67737cc96d2554230f90338b163bc6380a2a85"
Obj = dict[str, Any]


def _tiny_inference(**preset: Any) -> Obj:
    obj = phi3()
    obj["metadata"]["name"] = "tiny"
    obj["inference"] = {"preset": {"name": TINY, **preset}}
    return obj


def _annotated(obj: Obj, **annotations: str) -> Obj:
    obj["metadata"].setdefault("annotations", {}).update(annotations)
    return obj


def _inference_plan(obj: Obj, images: ImageSettings = IMAGES) -> Any:
    return inference_plan_of(obj, images=images)


def _tuning_plan(obj: Obj) -> Any:
    return tuning_plan_of(obj, images=IMAGES)


def _by_name(items: list[Obj]) -> dict[str, Obj]:
    return {i["name"]: i for i in items}


def _request(**kwargs: Any) -> WeightsRequest:
    base: dict[str, Any] = {
        "workspace": "ws",
        "runtime_image": "server:1",
        "annotations": {},
        "private_image": None,
        "registry": "r",
        "tag": "t",
    }
    return WeightsRequest(**{**base, **kwargs})


def test_resolution_by_delivery_and_choice() -> None:
    tiny, phi = CATALOG.preset(TINY), CATALOG.preset("phi-3-mini-4k-instruct")
    assert tiny is not None and phi is not None
    image = resolve_weights(tiny, _request())
    assert (image.source, image.image) == ("model-image", "r/kaito-model-test-tiny-llama:t")
    private = resolve_weights(tiny, _request(private_image="me/weights:7"))
    assert (private.source, private.image) == ("model-image", "me/weights:7")
    download = resolve_weights(phi, _request())
    assert download == ModelWeights(
        "/workspace/weights",
        "download",
        repo="microsoft/Phi-3-mini-4k-instruct",
        revision=PHI3_COMMIT,
        downloader_image="server:1",
        trust_remote_code=True,
        size_gib=phi.disk_gib,
    )
    chosen = resolve_weights(phi, _request(annotations={"kaito.sh/weights-source": "Image"}))
    assert (chosen.source, chosen.image) == (
        "model-image",
        "r/kaito-model-phi-3-mini-4k-instruct:t",
    )
    cached = resolve_weights(phi, _request(cache=WeightsCache(storage_class="premium")))
    assert (cached.claim, cached.cache_storage_class) == ("ws-weights", "premium")


def test_every_real_preset_downloads_a_pinned_commit_by_default() -> None:
    for preset in CATALOG.presets.values():
        if preset.test_only:
            continue
        assert preset.source.delivery == "download", preset.name
        assert len(preset.source.revision) == 40, preset.name
        int(preset.source.revision, 16)


@pytest.mark.parametrize(
    "annotations",
    [
        {"kaito.sh/weights-source": "torrent"},
        {"kaito.sh/weights-source": "volume"},
        {
            "kaito.sh/weights-source": "volume",
            "kaito.sh/weights-volume-claim": "c",
            "kaito.sh/weights-host-path": "/models",
        },
    ],
)
def test_impossible_choices_name_the_annotation(annotations: dict[str, str]) -> None:
    phi = CATALOG.preset("phi-3-mini-4k-instruct")
    assert phi is not None
    with pytest.raises(WeightsSourceError, match=r"metadata\.annotations"):
        resolve_weights(phi, _request(annotations=annotations))


def test_inference_pod_downloads_the_pinned_commit_with_the_workspace_token() -> None:
    obj = phi3()
    obj["inference"]["preset"]["presetOptions"] = {"modelAccessSecret": "hf"}
    spec = pod_template(_inference_plan(obj))["spec"]
    server = spec["containers"][0]
    assert server["image"] == IMAGES.server
    assert "--model=/workspace/weights" in server["command"]
    weights_mount = {"name": "weights", "mountPath": "/workspace/weights", "readOnly": True}
    assert weights_mount in server["volumeMounts"]
    phi = CATALOG.preset("phi-3-mini-4k-instruct")
    assert phi is not None
    volumes = _by_name(spec["volumes"])
    assert volumes["weights"] == {"name": "weights", "emptyDir": {"sizeLimit": f"{phi.disk_gib}Gi"}}
    (download,) = spec["initContainers"]
    assert download["name"] == "model-download" and download["image"] == IMAGES.server
    assert download["command"][:4] == ["python", "-m", "kaito_common.weights", "download"]
    assert "--repo=microsoft/Phi-3-mini-4k-instruct" in download["command"]
    assert f"--revision={PHI3_COMMIT}" in download["command"]
    env = _by_name(download["env"])
    assert env["HF_ENDPOINT"]["value"] == "http://hub.example:8080"
    assert env["HF_HUB_OFFLINE"]["value"] == "0"
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf"
    mounts = {m["name"]: m for m in download["volumeMounts"]}
    assert mounts["weights"] == {"name": "weights", "mountPath": "/workspace/weights"}
    assert "weights-scratch" in volumes and mounts["weights-scratch"]["mountPath"] == "/tmp"
    assert download["securityContext"]["readOnlyRootFilesystem"] is True


def test_weights_cache_claim_replaces_the_empty_dir() -> None:
    images = ImageSettings(weights_cache=WeightsCache(storage_class="managed-csi"))
    spec = pod_template(_inference_plan(phi3(), images))["spec"]
    volumes = _by_name(spec["volumes"])
    assert volumes["weights"]["persistentVolumeClaim"] == {
        "claimName": "workspace-phi-3-mini-weights"
    }


def test_user_volumes_are_mounted_read_only_with_nothing_to_fill() -> None:
    claim = _annotated(
        phi3(), **{"kaito.sh/weights-source": "volume", "kaito.sh/weights-volume-claim": "models"}
    )
    spec = pod_template(_inference_plan(claim))["spec"]
    assert "initContainers" not in spec
    assert _by_name(spec["volumes"])["weights"]["persistentVolumeClaim"] == {
        "claimName": "models",
        "readOnly": True,
    }
    host = _annotated(
        phi3(), **{"kaito.sh/weights-source": "volume", "kaito.sh/weights-host-path": "/m/phi"}
    )
    spec = pod_template(_inference_plan(host))["spec"]
    assert _by_name(spec["volumes"])["weights"]["hostPath"] == {
        "path": "/m/phi",
        "type": "Directory",
    }


def test_inference_pod_copies_the_model_image_into_the_weights_volume() -> None:
    spec = pod_template(_inference_plan(_tiny_inference()))["spec"]
    server = spec["containers"][0]
    assert server["image"] == IMAGES.server
    weights_mount = {"name": "weights", "mountPath": "/workspace/weights", "readOnly": True}
    assert weights_mount in server["volumeMounts"]
    (copy,) = spec["initContainers"]
    assert copy["name"] == "model-weights" and copy["image"] == MODEL_IMAGE
    assert copy["args"] == ["/workspace/weights"] and "command" not in copy
    assert copy["volumeMounts"] == [{"name": "weights", "mountPath": "/workspace/weights"}]
    assert copy["securityContext"]["readOnlyRootFilesystem"] is True
    assert copy["securityContext"]["runAsNonRoot"] is True


def test_weights_come_before_the_adapter_pullers() -> None:
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
    assert {"name": "me-pull"} in spec["imagePullSecrets"]


def test_tiny_statefulset_golden() -> None:
    obj = _tiny_inference()
    manifest = statefulset_manifest(_inference_plan(obj), controller_reference(obj))
    assert_golden("statefulset-tiny-model-image", manifest)


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
    # The fetch and the pusher never see the weights.
    assert all(m["name"] != "weights" for m in inits[1]["volumeMounts"])
    assert all(m["name"] != "weights" for m in spec["containers"][0]["volumeMounts"])


def test_seed_tuning_job_downloads_its_preset_first() -> None:
    spec = job_pod_spec(_tuning_plan(tuning()))
    inits = spec["initContainers"]
    assert [c["name"] for c in inits] == ["model-download", "fetch", "trainer"]
    assert inits[0]["image"] == IMAGES.runner
    assert "--repo=microsoft/Phi-3-mini-128k-instruct" in inits[0]["command"]


def test_weights_cache_claims() -> None:
    images = ImageSettings(weights_cache=WeightsCache(storage_class="managed-csi", size="20Gi"))
    plan = _inference_plan(phi3(), images)
    owner = controller_reference(phi3())
    assert uses_weights_cache(plan.weights)
    claim = weights_claim_manifest(plan.weights, plan.name, plan.namespace, owner)
    assert claim["metadata"]["name"] == "workspace-phi-3-mini-weights"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "managed-csi",
        "resources": {"requests": {"storage": "20Gi"}},
    }
    assert not uses_weights_cache(_inference_plan(phi3()).weights)


def test_statefulset_gets_one_weights_cache_per_pod() -> None:
    images = ImageSettings(weights_cache=WeightsCache(storage_class="managed-csi"))
    obj = phi3()
    obj["inference"]["preset"]["name"] = "falcon-40b"
    manifest = statefulset_manifest(_inference_plan(obj, images), controller_reference(obj))
    (template,) = manifest["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "weights"
    assert template["spec"]["storageClassName"] == "managed-csi"
    volumes = manifest["spec"]["template"]["spec"]["volumes"]
    assert all(v["name"] != "weights" for v in volumes)


def test_operator_pull_secrets_reach_every_pod() -> None:
    images = ImageSettings(pull_secrets=("regcred",))
    private = _tiny_inference(
        accessMode="private",
        presetOptions={"image": "me.example/weights:7", "imagePullSecrets": ["me-pull", "regcred"]},
    )
    spec = pod_template(_inference_plan(private, images))["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "me-pull"}]
    job = job_pod_spec(tuning_plan_of(tuning(), images=images))
    assert job["imagePullSecrets"] == [{"name": "regcred"}]


def test_the_controllers_json_log_format_reaches_every_container() -> None:
    from workspace_controller.manifests.runner_access import RunnerAccess

    images = ImageSettings(runner_access=RunnerAccess(log_format="json"))
    obj = phi3()
    obj["inference"]["adapters"] = [{"source": {"name": "a1", "image": "reg.example/a1:1"}}]
    spec = pod_template(_inference_plan(obj, images))["spec"]
    download, puller = spec["initContainers"]
    assert download["command"][3] == "--log-format=json"
    assert {"name": "KAITO_TUNING_LOG_FORMAT", "value": "json"} in puller["env"]
    assert {"name": "KAITO_LOG_FORMAT", "value": "json"} in spec["containers"][0]["env"]
    job = job_pod_spec(tuning_plan_of(tuning(), images=images))
    for container in [*job["initContainers"][1:], *job["containers"]]:
        assert {"name": "KAITO_TUNING_LOG_FORMAT", "value": "json"} in container["env"], container
    # Text, every service's default, adds nothing (the golden files hold the defaults).
    plain = pod_template(_inference_plan(phi3()))["spec"]
    assert "env" not in plain["containers"][0]
