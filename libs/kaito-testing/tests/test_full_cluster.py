"""The full profile: controllers, scheduler and kwok turn API objects into (fake) running
workloads, and the garbage collector follows ownerReferences."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient, ApiException

from kaito_testing.controlplane import DEFAULT_NODE
from kaito_testing.kwok import NODE_ANNOTATION
from kaito_testing.waiting import eventually

pytestmark = pytest.mark.full


def _deployment(name: str) -> Any:  # the client accepts plain manifests
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "registry.invalid/app:1",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ]
                },
            },
        },
    }


def _owned(name: str, owner: dict[str, str]) -> Any:
    return {"metadata": {"name": name, "ownerReferences": [owner]}}


def _ready(pod: client.V1Pod) -> bool:
    conditions = pod.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


async def test_deployment_pods_run_on_a_kwok_node_and_go_with_it(
    api_client: ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    await apps.create_namespaced_deployment(namespace, _deployment("web"))

    async def running_pods() -> list[client.V1Pod] | None:
        pods = (await core.list_namespaced_pod(namespace, label_selector="app=web")).items
        ok = [p for p in pods if p.status.phase == "Running" and _ready(p)]
        return ok if len(ok) == 2 else None

    pods = await eventually(running_pods, within=120, what="2 Running pods of web")
    for pod in pods:
        assert pod.spec.node_name == DEFAULT_NODE
        assert pod.status.pod_ip
    node = await core.read_node(DEFAULT_NODE)
    assert node.metadata.annotations[NODE_ANNOTATION] == "fake"

    async def available() -> bool:
        status = (await apps.read_namespaced_deployment_status("web", namespace)).status
        return status.available_replicas == 2

    await eventually(available, within=60, what="web to report 2 available replicas")

    await apps.delete_namespaced_deployment("web", namespace, propagation_policy="Foreground")

    async def all_gone() -> bool:
        pods = (await core.list_namespaced_pod(namespace, label_selector="app=web")).items
        sets = (await apps.list_namespaced_replica_set(namespace)).items
        return not pods and not sets

    await eventually(all_gone, within=60, what="web's ReplicaSet and Pods to be deleted")


async def test_deleting_an_owner_collects_its_dependents(
    api_client: ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    owner = await core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
    }
    await core.create_namespaced_config_map(namespace, _owned("child-a", reference))
    await core.create_namespaced_secret(namespace, _owned("child-b", reference))
    await core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="bystander"))
    )

    await core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    async def dependents_gone() -> bool:
        for read, name in (
            (core.read_namespaced_config_map, "child-a"),
            (core.read_namespaced_secret, "child-b"),
        ):
            try:
                await read(name, namespace)
            except ApiException as err:
                if err.status == 404:
                    continue
                raise
            return False
        return True

    await eventually(dependents_gone, within=60, what="the owner's dependents to be collected")
    assert (await core.read_namespaced_config_map("bystander", namespace)).metadata.name


async def test_job_pod_completes_and_job_succeeds(api_client: ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(api_client)
    job: Any = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "registry.invalid/job:1"}],
                }
            },
        },
    }
    await batch.create_namespaced_job(namespace, job)

    async def complete() -> bool:
        status = (await batch.read_namespaced_job_status("once", namespace)).status
        return any(c.type == "Complete" and c.status == "True" for c in status.conditions or [])

    await eventually(complete, within=60, what="the Job to complete")
