"""The part of AKS the fake plays in the cluster: a pool's VM joining as a Node, and leaving when
the pool is deleted.

AKS reports a pool's create Succeeded once its nodes have registered and are Ready, so `join`
plays the kubelet's first steps itself: it registers the Node and posts its first Ready status
(kwok, which manages the Node from then on, keeps it Ready). Waiting for kwok's first status
instead would time kwok's client rate limits, not the provisioner."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from kaito_common.api.labels import (
    ANNOTATION_KWOK_NODE,
    KWOK_NODE_FAKE,
    LABEL_AKS_AGENTPOOL,
    LABEL_AKS_AGENTPOOL_QUALIFIED,
    LABEL_INSTANCE_TYPE,
    RESOURCE_NVIDIA_GPU,
)
from kaito_common.controller.client import KubeClient, is_conflict
from kaito_common.controller.kinds import NODE
from kaito_common.presets import default_catalog
from kaito_testing.kwok import NODE_IP

VMSS_SUFFIX = "12345678"


def node_name(pool: str) -> str:
    return f"aks-{pool}-{VMSS_SUFFIX}-vmss000000"


def provider_id(subscription: str, node_resource_group: str, pool: str) -> str:
    # cloud-provider-azure lower-cases the resource group inside providerIDs.
    return (
        f"azure:///subscriptions/{subscription}/resourceGroups/{node_resource_group.lower()}"
        f"/providers/Microsoft.Compute/virtualMachineScaleSets/aks-{pool}-{VMSS_SUFFIX}-vmss"
        "/virtualMachines/0"
    )


def parse_taint(text: str) -> dict[str, str]:
    key_value, _, effect = text.rpartition(":")
    key, _, value = key_value.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint


def ready_status(name: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The status a kubelet posts once its node is up (as kwok's stage would write it)."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID"),
        ("NetworkUnavailable", "False", "RouteCreated", "RouteController created a route"),
    ]
    return {
        "phase": "Running",
        "conditions": [
            {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }
            for type_, status, reason, message in conditions
        ],
        "addresses": [
            {"type": "InternalIP", "address": NODE_IP},
            {"type": "Hostname", "address": name},
        ],
    }


def node_manifest(
    pool: str,
    properties: dict[str, Any],
    subscription: str,
    node_resource_group: str,
    location: str,
) -> dict[str, Any]:
    vm_size = str(properties.get("vmSize"))
    name = node_name(pool)
    capacity = {
        "cpu": "24",
        "memory": "220Gi",
        "pods": "110",
        "ephemeral-storage": f"{int(properties.get('osDiskSizeGB') or 128)}Gi",
    }
    sku = default_catalog().sku(vm_size)
    if sku is not None:
        capacity[RESOURCE_NVIDIA_GPU] = str(sku.gpu_count)
    labels = {
        **(properties.get("nodeLabels") or {}),
        LABEL_AKS_AGENTPOOL: pool,
        LABEL_AKS_AGENTPOOL_QUALIFIED: pool,
        LABEL_INSTANCE_TYPE: vm_size,
        "beta.kubernetes.io/instance-type": vm_size,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        # The kubelet sets the beta twins too (else the node lifecycle controller adds them).
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "topology.kubernetes.io/region": location,
        "topology.kubernetes.io/zone": "0",
        "kubernetes.azure.com/os-sku": str(properties.get("osSKU") or "Ubuntu"),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {ANNOTATION_KWOK_NODE: KWOK_NODE_FAKE},
        },
        "spec": {
            "providerID": provider_id(subscription, node_resource_group, pool),
            "taints": [parse_taint(t) for t in properties.get("nodeTaints") or []],
        },
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def _is_ready(node: dict[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


class AksNodes:
    def __init__(
        self, kube: KubeClient, subscription: str, node_resource_group: str, location: str
    ):
        self._kube = kube
        self._subscription = subscription
        self._node_rg = node_resource_group
        self._location = location

    async def join(self, pool: str, properties: dict[str, Any]) -> None:
        """Register the pool's Node, Ready, as its kubelet would (once: a Node that exists is
        only made Ready if it is not)."""
        manifest = node_manifest(
            pool, properties, self._subscription, self._node_rg, self._location
        )
        name = manifest["metadata"]["name"]
        # Registered with its first status, so the node lifecycle controller never sees it
        # NotReady (and never adds, then removes, its not-ready taint).
        manifest["status"].update(ready_status(name))
        try:
            await self._kube.create(NODE, manifest)
            return
        except ApiException as err:
            if not is_conflict(err):
                raise
        node = await self._kube.get(NODE, name)
        if not _is_ready(node):
            await self._kube.patch(NODE, name, {"status": ready_status(name)}, subresource="status")

    async def leave(self, pool: str) -> None:
        await self._kube.delete(NODE, node_name(pool))
