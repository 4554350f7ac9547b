"""What the real API server gives our controllers, checked against the local control plane:
CEL validation messages, optimistic concurrency, survival of a restart, 410 Gone after etcd
compaction, and kubectl/helm reaching it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientError, ClientResponse
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient, ApiException

from kaito_testing.controlplane import ControlPlane
from kaito_testing.waiting import eventually

GROUP = "test.kaito.sh"
CEL_MESSAGE = "replicas must not exceed maxReplicas"


def _widget_crd() -> Any:  # the client accepts plain manifests
    spec_schema = {
        "type": "object",
        "properties": {
            "replicas": {"type": "integer"},
            "maxReplicas": {"type": "integer"},
        },
        "x-kubernetes-validations": [
            {"rule": "self.replicas <= self.maxReplicas", "message": CEL_MESSAGE}
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": spec_schema},
                        }
                    },
                }
            ],
        },
    }


def _widget(name: str, replicas: int, max_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "maxReplicas": max_replicas},
    }


async def test_cel_rule_rejects_violating_object_with_its_message(
    api_client: ApiClient, namespace: str
) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    try:
        await ext.create_custom_resource_definition(_widget_crd())
    except ApiException as err:
        if err.status != 409:  # another test run in this session created it
            raise

    async def established() -> bool:
        crd = await ext.read_custom_resource_definition(f"widgets.{GROUP}")
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    await eventually(established, within=30, what="the Widget CRD to be Established")
    objects = client.CustomObjectsApi(api_client)

    # A freshly established CRD may take a moment to be served: retry the valid create on 404.
    async def create_valid() -> dict[str, Any]:
        created: dict[str, Any] = await objects.create_namespaced_custom_object(
            GROUP, "v1", namespace, "widgets", _widget("ok", 1, 3)
        )
        return created

    await eventually(create_valid, within=30, what="a valid Widget", retry_on=(ApiException,))

    with pytest.raises(ApiException) as caught:
        await objects.create_namespaced_custom_object(
            GROUP, "v1", namespace, "widgets", _widget("too-many", 5, 3)
        )
    assert caught.value.status == 422
    assert CEL_MESSAGE in json.loads(caught.value.body or b"{}")["message"]


async def test_update_with_stale_resource_version_conflicts(
    api_client: ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    created = await core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"mode": "a"}),
    )
    stale = created.metadata.resource_version
    await core.replace_namespaced_config_map(
        "settings",
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings", resource_version=stale),
            data={"mode": "b"},
        ),
    )
    with pytest.raises(ApiException) as caught:
        await core.replace_namespaced_config_map(
            "settings",
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="settings", resource_version=stale),
                data={"mode": "c"},
            ),
        )
    assert caught.value.status == 409
    current = await core.read_namespaced_config_map("settings", namespace)
    assert current.data == {"mode": "b"}


async def test_state_survives_an_apiserver_restart(
    control_plane: ControlPlane, api_client: ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    await core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="kept"), data={"k": "v"})
    )
    control_plane.restart_apiserver()

    # The same address answers again; the client's pooled connection may need one retry.
    async def read_back() -> client.V1ConfigMap:
        kept: client.V1ConfigMap = await core.read_namespaced_config_map("kept", namespace)
        return kept

    kept = await eventually(
        read_back, within=30, what="the ConfigMap after the restart", retry_on=(ClientError,)
    )
    assert kept.data == {"k": "v"}
    control_plane.kubectl("create", "configmap", "after", "-n", namespace)


async def test_watch_from_compacted_resource_version_is_gone(
    control_plane: ControlPlane, api_client: ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    created = await core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="old"), data={"n": "0"})
    )
    old_rv = created.metadata.resource_version
    for n in range(1, 4):
        await core.patch_namespaced_config_map("old", namespace, {"data": {"n": str(n)}})
    control_plane.compact_etcd()

    status, first = await _first_watch_frame(core, namespace, old_rv)
    if status == 410:
        return
    assert status == 200, first
    assert first["type"] == "ERROR", first
    assert first["object"]["code"] == 410, first


async def _first_watch_frame(
    core: client.CoreV1Api, namespace: str, resource_version: str
) -> tuple[int, dict[str, Any]]:
    try:
        response: ClientResponse = await core.list_namespaced_config_map(  # type: ignore[assignment]
            namespace,
            watch=True,
            resource_version=resource_version,
            timeout_seconds=10,
            _preload_content=False,
        )
    except ApiException as err:
        return err.status, json.loads(err.body) if err.body else {}
    async with response:
        line = await response.content.readline()
        return response.status, json.loads(line) if line else {}


def test_binaries_report_the_pinned_versions(control_plane: ControlPlane) -> None:
    pins = dict(
        line.split("=", 1)
        for line in (_repo_root() / "hack/testbin/versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["clientVersion"]["gitVersion"] == pins["KUBERNETES_VERSION"]
    assert version["serverVersion"]["gitVersion"] == pins["KUBERNETES_VERSION"]
    helm = subprocess.run(
        [str(control_plane.bin_dir / "helm"), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert helm.stdout.strip() == pins["HELM_VERSION"]


def test_helm_installs_a_chart_into_the_cluster(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: demo\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n"
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    helm = [
        str(control_plane.bin_dir / "helm"),
        "--kubeconfig",
        str(control_plane.kubeconfig_path),
        "--namespace",
        namespace,
    ]
    subprocess.run([*helm, "lint", str(chart)], check=True, capture_output=True)
    subprocess.run(
        [*helm, "install", "rel", str(chart), "--set", "greeting=hi", "--wait", "--timeout=60s"],
        check=True,
        capture_output=True,
    )
    got = control_plane.kubectl("get", "configmap", "rel-greeting", "-n", namespace, "-o", "json")
    assert json.loads(got.stdout)["data"] == {"greeting": "hi"}
    subprocess.run([*helm, "uninstall", "rel", "--wait"], check=True, capture_output=True)
    gone = control_plane.kubectl("get", "configmap", "rel-greeting", "-n", namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    return next(p for p in here.parents if (p / "hack/testbin/versions.env").exists())
