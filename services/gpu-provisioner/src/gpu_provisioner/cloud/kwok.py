"""The kwok cloud: an instance is a Node object that the kwok controller keeps Ready.

For local clusters and demos (Karpenter's own kwok provider works the same way): `create`
writes a Node named after the claim with providerID `kwok://<claim>`, the instance-type labels
and `nvidia.com/gpu` capacity of the SKU; `delete` deletes that Node.
"""

from __future__ import annotations

import datetime as dt
import logging

from kubernetes_asyncio.client.exceptions import ApiException

from gpu_provisioner import claims
from gpu_provisioner.cloud.agentpool import CREATION_TIMESTAMP_FORMAT, parse_creation_timestamp
from gpu_provisioner.cloud.provider import Instance, InvalidClaimError
from kaito_common.api.labels import (
    ANNOTATION_KWOK_NODE,
    KWOK_NODE_FAKE,
    LABEL_CREATION_TIMESTAMP,
    LABEL_INSTANCE_TYPE,
    LABEL_OS,
    RESOURCE_NVIDIA_GPU,
    TAINT_UNREGISTERED,
)
from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient, is_conflict
from kaito_common.controller.kinds import NODE
from kaito_common.controller.objects import Obj
from kaito_common.presets import Catalog, default_catalog

PROVIDER_PREFIX = "kwok://"
NODE_CPU = "32"
NODE_MEMORY = "256Gi"
NODE_PODS = "110"

log = logging.getLogger(__name__)


def node_manifest(claim: Obj, catalog: Catalog, now: dt.datetime | None = None) -> Obj:
    """The Node standing in for the claim's machine. Pure."""
    name = str(objects.meta(claim).get("name"))
    size = claims.instance_type(claim)
    if not size:
        raise InvalidClaimError(
            "nodeClaim spec has no requirement for instance type", code="NoInstanceType"
        )
    created = objects.created_at(claim) or now or dt.datetime.now(dt.UTC)
    capacity = {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS}
    storage = claims.requests(claim).get("storage")
    if storage:
        capacity["ephemeral-storage"] = storage
    sku = catalog.sku(size)
    if sku is not None:
        capacity[RESOURCE_NVIDIA_GPU] = str(sku.gpu_count)
    labels = {
        **claims.requirement_labels(claim),
        **objects.labels(claim),
        LABEL_INSTANCE_TYPE: size,
        "kubernetes.io/hostname": name,
        "kubernetes.io/arch": "amd64",
        LABEL_OS: "linux",
        LABEL_CREATION_TIMESTAMP: created.astimezone(dt.UTC).strftime(CREATION_TIMESTAMP_FORMAT),
    }
    taints = [{"key": TAINT_UNREGISTERED, "effect": "NoExecute"}, *claims.taints(claim)]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {ANNOTATION_KWOK_NODE: KWOK_NODE_FAKE},
        },
        "spec": {"providerID": PROVIDER_PREFIX + name, "taints": taints},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def node_instance(node: Obj) -> Instance:
    meta = objects.meta(node)
    labels = objects.labels(node)
    status = node.get("status") or {}
    return Instance(
        name=str(meta.get("name")),
        provider_id=str((node.get("spec") or {}).get("providerID") or ""),
        instance_type=labels.get(LABEL_INSTANCE_TYPE, ""),
        zone=labels.get("topology.kubernetes.io/zone", ""),
        capacity={k: str(v) for k, v in (status.get("capacity") or {}).items()},
        allocatable={k: str(v) for k, v in (status.get("allocatable") or {}).items()},
        labels=labels,
        created_at=parse_creation_timestamp(labels.get(LABEL_CREATION_TIMESTAMP)),
        deleting=objects.is_deleting(node),
    )


def _is_ours(node: Obj) -> bool:
    return str((node.get("spec") or {}).get("providerID") or "").startswith(PROVIDER_PREFIX)


class KwokCloud:
    name = "kwok"

    def __init__(self, kube: KubeClient, catalog: Catalog | None = None) -> None:
        self._kube = kube
        self._catalog = catalog or default_catalog()

    async def close(self) -> None:
        return None

    async def create(self, claim: Obj) -> Instance:
        manifest = node_manifest(claim, self._catalog)
        name = manifest["metadata"]["name"]
        existing = await self._kube.get_or_none(NODE, name)
        if existing is not None and _is_ours(existing):
            log.info("Adopted existing kwok node node=%s", name)
            return node_instance(existing)
        try:
            created = await self._kube.create(NODE, manifest)
        except ApiException as err:
            if is_conflict(err):  # created meanwhile by an earlier attempt
                return node_instance(await self._kube.get(NODE, name))
            raise
        log.info("Created kwok node node=%s instanceType=%s", name, claims.instance_type(claim))
        return node_instance(created)

    async def delete(self, name: str) -> bool:
        node = await self._kube.get_or_none(NODE, name)
        if node is None or not _is_ours(node):
            return True
        if not objects.is_deleting(node):
            await self._kube.delete(NODE, name)
            log.info("Deleted kwok node node=%s", name)
        # The Node lingers only for our finalizer, which termination removes next.
        return True

    async def get(self, name: str) -> Instance | None:
        node = await self._kube.get_or_none(NODE, name)
        return node_instance(node) if node is not None and _is_ours(node) else None

    async def list(self) -> list[Instance]:
        nodes = await self._kube.list_all(NODE, label_selector=LABEL_CREATION_TIMESTAMP)
        return [node_instance(n) for n in nodes if _is_ours(n)]
