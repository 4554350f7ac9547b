"""The generated CRDs, applied to a real kube-apiserver, accept what users write and reject what
they must not, with the messages of the CEL rules."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.controlplane

TIMEOUT = 30


@pytest.fixture(scope="module")
def installed_crds(control_plane: Any, repo_root: Path) -> None:
    control_plane.kubectl("apply", "--server-side", "-f", str(repo_root / "crds"))
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/workspaces.kaito.sh",
        "crd/nodeclaims.karpenter.sh",
    )


async def expect_rejection(call: Awaitable[Any], *messages: str) -> None:
    from kubernetes_asyncio.client.exceptions import ApiException

    with pytest.raises(ApiException) as info:
        await call
    assert info.value.status == 422, info.value.body
    body = json.loads(info.value.body)["message"]
    for message in messages:
        assert message in body, body


def workspace(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kaito.sh/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": name},
        "resource": {"instanceType": "Standard_NC6s_v3", "labelSelector": {"matchLabels": {}}},
        **fields,
    }


async def test_seed_manifest_applies_and_reads_back_as_v1beta1(
    installed_crds: None, api_client: Any, namespace: str, seed_manifest: dict[str, Any]
) -> None:
    from kubernetes_asyncio import client

    api = client.CustomObjectsApi(api_client)
    created = await api.create_namespaced_custom_object(
        "kaito.sh", "v1alpha1", namespace, "workspaces", seed_manifest, _request_timeout=TIMEOUT
    )
    assert created["tuning"] == seed_manifest["tuning"]
    assert created["resource"]["count"] == 1  # the schema's default
    stored = await api.get_namespaced_custom_object(
        "kaito.sh",
        "v1beta1",
        namespace,
        "workspaces",
        "workspace-tuning-phi-3",
        _request_timeout=TIMEOUT,
    )
    assert stored["apiVersion"] == "kaito.sh/v1beta1"
    assert stored["resource"]["labelSelector"] == seed_manifest["resource"]["labelSelector"]
    assert stored["tuning"] == seed_manifest["tuning"]


async def test_status_is_a_subresource(
    installed_crds: None, api_client: Any, namespace: str
) -> None:
    from kubernetes_asyncio import client

    api = client.CustomObjectsApi(api_client)
    body = workspace("ws-status", inference={"preset": {"name": "phi-3-mini-4k-instruct"}})
    body["apiVersion"] = "kaito.sh/v1beta1"
    body["status"] = {"state": "Ready"}
    created = await api.create_namespaced_custom_object(
        "kaito.sh", "v1beta1", namespace, "workspaces", body, _request_timeout=TIMEOUT
    )
    assert "status" not in created  # status is written only through /status
    patched = await api.patch_namespaced_custom_object_status(
        "kaito.sh",
        "v1beta1",
        namespace,
        "workspaces",
        "ws-status",
        {"status": {"state": "Pending", "targetNodeCount": 1}},
        _content_type="application/merge-patch+json",
        _request_timeout=TIMEOUT,
    )
    assert patched["status"] == {"state": "Pending", "targetNodeCount": 1}


@pytest.mark.parametrize(
    ("fields", "messages"),
    [
        ({}, ["Either Inference or Tuning must be specified, not neither"]),
        (
            {
                "inference": {"preset": {"name": "phi-4"}},
                "tuning": {
                    "preset": {"name": "phi-4"},
                    "method": "qlora",
                    "input": {"urls": ["https://example.com/d.parquet"]},
                    "output": {"volumeSource": {"emptyDir": {}}},
                },
            },
            ["Either Inference or Tuning must be specified, but not both"],
        ),
        ({"inference": {}}, ["Preset or Template must be specified"]),
        (
            {"inference": {"preset": {"name": "phi-4"}, "template": {"spec": {}}}},
            ["Preset and Template cannot be set at the same time"],
        ),
        (
            {"inference": {"preset": {"name": "phi-4", "accessMode": "private"}}},
            ["When AccessMode is private, an image must be provided in PresetOptions"],
        ),
        (
            {
                "tuning": {
                    "preset": {"name": "phi-4"},
                    "method": "qlora",
                    "input": {"urls": ["https://example.com/d.parquet"]},
                    "output": {"image": "registry.example/out:1"},
                }
            },
            ["Must specify imagePushSecret with destination image"],
        ),
        (
            {
                "tuning": {
                    "preset": {"name": "phi-4"},
                    "method": "qlora",
                    "input": {"urls": ["https://x/y"], "image": "registry.example/data:1"},
                    "output": {"volumeSource": {"emptyDir": {}}},
                }
            },
            ["Exactly one of urls, image or volumeSource must be specified in tuning input"],
        ),
        (
            {
                "inference": {
                    "preset": {"name": "phi-4"},
                    "adapters": [{"source": {"name": "a", "urls": ["https://x/a"]}}],
                }
            },
            ["Adapter source must be an image or a volumeSource"],
        ),
    ],
    ids=[
        "neither",
        "both",
        "no-preset-or-template",
        "preset-and-template",
        "private-without-image",
        "image-without-push-secret",
        "two-inputs",
        "adapter-from-url",
    ],
)
async def test_schema_rejects_invalid_workspaces(
    installed_crds: None,
    api_client: Any,
    namespace: str,
    fields: dict[str, Any],
    messages: list[str],
) -> None:
    from kubernetes_asyncio import client

    api = client.CustomObjectsApi(api_client)
    await expect_rejection(
        api.create_namespaced_custom_object(
            "kaito.sh",
            "v1alpha1",
            namespace,
            "workspaces",
            workspace("bad", **fields),
            _request_timeout=TIMEOUT,
        ),
        *messages,
    )


async def test_tuning_method_is_any_case(
    installed_crds: None, api_client: Any, namespace: str
) -> None:
    """`method: QLoRA` passes the schema as upstream (the webhook refuses other methods)."""
    from kubernetes_asyncio import client

    api = client.CustomObjectsApi(api_client)
    tuning = {
        "preset": {"name": "phi-4"},
        "method": "QLoRA",
        "input": {"urls": ["https://x/y"]},
        "output": {"volumeSource": {"emptyDir": {}}},
    }
    created = await api.create_namespaced_custom_object(
        "kaito.sh",
        "v1alpha1",
        namespace,
        "workspaces",
        workspace("qlora-upper", tuning=tuning),
        _request_timeout=TIMEOUT,
    )
    assert created["tuning"]["method"] == "QLoRA"


async def test_v1alpha1_defaults_the_instance_type_as_upstream(
    installed_crds: None, api_client: Any, namespace: str
) -> None:
    """Upstream's v1alpha1 schema defaults `instanceType` to Standard_NC24ads_A100_v4; v1beta1
    has no default (the webhook requires it while node auto-provisioning is on)."""
    from kubernetes_asyncio import client

    api = client.CustomObjectsApi(api_client)
    manifest = workspace("no-sku", inference={"preset": {"name": "phi-4"}})
    del manifest["resource"]["instanceType"]
    created = await api.create_namespaced_custom_object(
        "kaito.sh", "v1alpha1", namespace, "workspaces", manifest, _request_timeout=TIMEOUT
    )
    assert created["resource"]["instanceType"] == "Standard_NC24ads_A100_v4"
    beta = {**manifest, "apiVersion": "kaito.sh/v1beta1", "metadata": {"name": "no-sku-beta"}}
    stored = await api.create_namespaced_custom_object(
        "kaito.sh", "v1beta1", namespace, "workspaces", beta, _request_timeout=TIMEOUT
    )
    assert "instanceType" not in stored["resource"]


async def test_nodeclaim_accepts_kaito_claim_and_keeps_spec_immutable(
    installed_crds: None, api_client: Any, kaito_nodeclaim: Callable[[str], dict[str, Any]]
) -> None:
    from kubernetes_asyncio import client

    api = client.CustomObjectsApi(api_client)
    name = "wsabc123def"
    created = await api.create_cluster_custom_object(
        "karpenter.sh", "v1", "nodeclaims", kaito_nodeclaim(name), _request_timeout=TIMEOUT
    )
    try:
        assert created["spec"]["expireAfter"] == "720h"
        assert created["spec"]["requirements"] == kaito_nodeclaim(name)["spec"]["requirements"]
        # Status goes through /status, with the provider's fields.
        await api.patch_cluster_custom_object_status(
            "karpenter.sh",
            "v1",
            "nodeclaims",
            name,
            {"status": {"providerID": "kwok://" + name, "capacity": {"nvidia.com/gpu": "1"}}},
            _content_type="application/merge-patch+json",
            _request_timeout=TIMEOUT,
        )
        await expect_rejection(
            api.patch_cluster_custom_object(
                "karpenter.sh",
                "v1",
                "nodeclaims",
                name,
                {"spec": {"taints": []}},
                _content_type="application/merge-patch+json",
                _request_timeout=TIMEOUT,
            ),
            "spec is immutable",
        )
    finally:
        await api.delete_cluster_custom_object(
            "karpenter.sh", "v1", "nodeclaims", name, _request_timeout=TIMEOUT
        )


@pytest.mark.parametrize(
    ("requirement", "message"),
    [
        (
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": []},
            "requirements with operator 'In' must have a value defined",
        ),
        (
            {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["x"]},
            "requirements operator 'Gt' or 'Lt' must have a single positive integer value",
        ),
        (
            {"key": "karpenter.sh/unknown", "operator": "Exists"},
            'label domain "karpenter.sh" is restricted',
        ),
    ],
    ids=["in-without-values", "gt-not-integer", "restricted-domain"],
)
async def test_nodeclaim_rejects_bad_requirements(
    installed_crds: None,
    api_client: Any,
    kaito_nodeclaim: Callable[[str], dict[str, Any]],
    requirement: dict[str, Any],
    message: str,
) -> None:
    from kubernetes_asyncio import client

    body = kaito_nodeclaim("wsbadreq0001")
    body["spec"]["requirements"].append(requirement)
    api = client.CustomObjectsApi(api_client)
    await expect_rejection(
        api.create_cluster_custom_object(
            "karpenter.sh", "v1", "nodeclaims", body, _request_timeout=TIMEOUT
        ),
        message,
    )


def test_printer_columns(
    installed_crds: None,
    control_plane: Any,
    namespace: str,
    seed_manifest: dict[str, Any],
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "ws.json"
    manifest.write_text(json.dumps(seed_manifest))
    control_plane.kubectl("apply", "-n", namespace, "-f", str(manifest))
    out = control_plane.kubectl("get", "workspace", "-n", namespace).stdout
    header = out.splitlines()[0].split()
    assert header == [
        "NAME",
        "INSTANCE",
        "RESOURCEREADY",
        "INFERENCEREADY",
        "JOBSTARTED",
        "WORKSPACESUCCEEDED",
        "TARGETNODECOUNT",
        "STATE",
        "AGE",
    ]
    assert "Standard_NC6s_v3" in out.splitlines()[1]
    short = control_plane.kubectl("get", "wk", "-n", namespace, "-o", "name").stdout
    assert short.strip() == "workspace.kaito.sh/workspace-tuning-phi-3"
