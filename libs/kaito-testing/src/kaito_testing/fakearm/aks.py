"""The part of AKS the fake plays in the cluster: a pool's VM joining as a Node (kwok keeps it
Ready), and leaving when the pool is deleted."""

from __future__ import annotations

from typing import Any

from kaito_common.api.labels import (
    ANNOTATION_KWOK_NODE,
    KWOK_NODE_FAKE,
    LABEL_AKS_AGENTPOOL,
    LABEL_AKS_AGENTPOOL_QUALIFIED,
    LABEL_INSTANCE_TYPE,
    RESOURCE_NVIDIA_GPU,
)
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE
from kaito_common.presets import default_catalog

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


class AksNodes:
    def __init__(
        self, kube: KubeClient, subscription: str, node_resource_group: str, location: str
    ):
        self._kube = kube
        self._subscription = subscription
        self._node_rg = node_resource_group
        self._location = location

    async def join(self, pool: str, properties: dict[str, Any]) -> None:
        manifest = node_manifest(
            pool, properties, self._subscription, self._node_rg, self._location
        )
        if await self._kube.get_or_none(NODE, manifest["metadata"]["name"]) is None:
            await self._kube.create(NODE, manifest)

    async def leave(self, pool: str) -> None:
        await self._kube.delete(NODE, node_name(pool))
