"""Golden-file tests of the pure manifest builders."""

from __future__ import annotations

import re

from wc_helpers.golden import assert_golden
from wc_helpers.plans import inference_plan_of
from wc_helpers.workspaces import phi3

from kaito_common.api.workspace import Workspace
from kaito_common.controller.meta import controller_reference
from kaito_common.presets import default_catalog
from workspace_controller.inference.plan import inference_plan, render_params
from workspace_controller.inference.service import headless_service_manifest, service_manifest
from workspace_controller.inference.workload import (
    statefulset_manifest,
    template_deployment_manifest,
)
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.manifests.nodeclaim import (
    NodeClassRef,
    nodeclaim_manifest,
    nodeclaim_name,
)
from workspace_controller.manifests.revision import (
    controller_revision_manifest,
    revision_name,
    spec_hash,
)
from workspace_controller.manifests.runner_access import RunnerAccess

CATALOG = default_catalog(include_test=True)


def _plan(obj: dict, *, provisioned: bool = True, config_map: str | None = "cfg") -> object:
    return inference_plan_of(obj, provisioned=provisioned, config_map=config_map)


def test_nodeclaim_name_is_ws_and_nine_hex_chars() -> None:
    name = nodeclaim_name("default", "workspace-phi-3-mini", "nonce")
    assert re.fullmatch(r"ws[0-9a-f]{9}", name)
    assert name == nodeclaim_name("default", "workspace-phi-3-mini", "nonce")
    assert name != nodeclaim_name("default", "workspace-phi-3-mini", "other")


def test_nodeclaim_manifest() -> None:
    obj = phi3()
    obj["metadata"]["annotations"] = {"kaito.sh/node-image-family": "azurelinux"}
    ws = Workspace.model_validate(obj)
    assert_golden("nodeclaim", nodeclaim_manifest(ws, "ws0123456789"[:11], NodeClassRef(), 80))


def test_nodeclaim_manifest_default_storage() -> None:
    ws = Workspace.model_validate(phi3())
    manifest = nodeclaim_manifest(ws, "wsabc", NodeClassRef(), None)
    assert manifest["spec"]["resources"]["requests"]["storage"] == "1024Gi"


def test_runtime_parameters_render_in_sorted_order() -> None:
    params = {"trust_remote_code": True, "torch_dtype": "auto", "off": False, "none": None}
    assert render_params(params) == ["--torch-dtype=auto", "--trust-remote-code"]


def test_statefulset_for_phi3() -> None:
    plan = _plan(phi3())
    assert_golden("statefulset-phi3", statefulset_manifest(plan, controller_reference(phi3())))  # type: ignore[arg-type]


def test_statefulset_with_adapters_and_secret() -> None:
    obj = phi3()
    obj["inference"]["preset"]["presetOptions"] = {
        "modelAccessSecret": "hf-token",
        "imagePullSecrets": ["pull-a"],
    }
    obj["inference"]["adapters"] = [
        {
            "source": {"name": "adapter-a", "image": "reg.io/a:1", "imagePullSecrets": ["pull-b"]},
            "strength": "0.5",
        },
        {
            "source": {
                "name": "adapter-b",
                "volumeSource": {"persistentVolumeClaim": {"claimName": "pvc"}},
            }
        },
    ]
    plan = _plan(obj, provisioned=False, config_map=None)
    assert_golden("statefulset-adapters", statefulset_manifest(plan, controller_reference(obj)))  # type: ignore[arg-type]


def test_statefulset_and_services_for_multinode() -> None:
    obj = phi3()
    obj["resource"].update(count=2, instanceType="Standard_NC24ads_A100_v4")
    obj["inference"] = {"preset": {"name": "qwen2.5-coder-32b-instruct"}}
    owner = controller_reference(obj)
    plan = _plan(obj)
    assert_golden("statefulset-qwen", statefulset_manifest(plan, owner))  # type: ignore[arg-type]
    assert_golden(
        "services-multinode",
        [
            service_manifest("ws", "default", owner, load_balancer=True, stateful=True),
            headless_service_manifest("ws", "default", owner),
        ],
    )


def test_template_deployment_forces_label_affinity_and_tolerations() -> None:
    obj = phi3()
    template = {
        "metadata": {"labels": {"app": "custom"}},
        "spec": {"containers": [{"name": "c", "image": "custom:1"}]},
    }
    obj["inference"] = {"template": template}
    ws = Workspace.model_validate(obj)
    from workspace_controller.manifests.placement import node_affinity

    manifest = template_deployment_manifest(
        "ws",
        "default",
        controller_reference(obj),
        template,
        replicas=1,
        revision="3",
        affinity=node_affinity(ws, True),
    )
    assert_golden("deployment-template", manifest)
    assert "tolerations" not in template["spec"], "the user's template must not be mutated"


def test_revision_hash_is_stable_and_spec_only() -> None:
    a = phi3()
    b = phi3()
    b["metadata"]["annotations"] = {"x": "y"}
    b["status"] = {"state": "Ready"}
    assert spec_hash(a) == spec_hash(b)
    b["inference"]["adapters"] = [{"source": {"name": "a", "image": "i"}}]
    assert spec_hash(a) != spec_hash(b)
    digest = spec_hash(a)
    cr = controller_revision_manifest(a, digest, 1, controller_reference(a))
    assert cr["metadata"]["name"] == revision_name("workspace-phi-3-mini", digest)
    assert cr["metadata"]["name"] == f"workspace-phi-3-mini-{digest[:5]}"
    assert cr["data"] == {"inference": a["inference"], "resource": a["resource"]}


def test_adapter_pulls_get_the_runner_access() -> None:
    obj = phi3()
    obj["inference"]["adapters"] = [{"source": {"name": "a", "image": "192.0.2.2:5000/a:1"}}]
    ws = Workspace.model_validate(obj)
    assert ws.inference is not None and ws.inference.preset is not None
    preset = CATALOG.preset(ws.inference.preset.name)
    assert preset is not None
    access = RunnerAccess(plain_http_registries=("192.0.2.2:5000",), ca_bundle_config_map="ca")
    plan = inference_plan(
        ws, preset, None, runtime="transformers", revision="1",
        images=ImageSettings(runner_access=access), config_map=None, provisioned=False,
    )  # fmt: skip
    pod = statefulset_manifest(plan, controller_reference(obj))["spec"]["template"]["spec"]
    pull = next(c for c in pod["initContainers"] if c["name"].startswith("adapter-"))
    assert {e["name"]: e["value"] for e in pull["env"]} == {
        "KAITO_TUNING_PLAIN_HTTP_REGISTRIES": '["192.0.2.2:5000"]',
        "KAITO_TUNING_CA_FILE": "/etc/kaito/ca/ca.crt",
    }
    assert {m["mountPath"] for m in pull["volumeMounts"]} >= {"/etc/kaito/ca", "/mnt/adapter"}
    assert "kaito-ca-bundle" in {v["name"] for v in pod["volumes"]}
    server = pod["containers"][0]
    assert not any(e["name"].startswith("KAITO_TUNING") for e in server.get("env", []))
