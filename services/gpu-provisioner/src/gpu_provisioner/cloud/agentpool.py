"""NodeClaim -> AKS agent pool body, and agent pool -> `Instance`. Pure functions, no I/O."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from gpu_provisioner import claims
from gpu_provisioner.cloud.provider import Instance, InvalidClaimError
from kaito_common.api.labels import (
    ANNOTATION_NODE_IMAGE_FAMILY,
    KAITO_NODEPOOL,
    LABEL_CREATION_TIMESTAMP,
    LABEL_INSTANCE_TYPE,
    LABEL_MACHINE_TYPE,
    LABEL_NODEPOOL,
)
from kaito_common.controller import objects
from kaito_common.controller.objects import Obj

POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
# Dashes instead of colons so that the timestamp is a valid label value.
CREATION_TIMESTAMP_FORMAT = "%Y-%m-%dT%H-%M-%SZ"


def os_sku(claim: Obj) -> str:
    """`AzureLinux` when the claim's image-family annotation says so (any case), else Ubuntu."""
    family = objects.annotations(claim).get(ANNOTATION_NODE_IMAGE_FAMILY, "")
    return "AzureLinux" if family.strip().lower() == "azurelinux" else "Ubuntu"


def format_taint(taint: Obj) -> str:
    value = taint.get("value")
    key = f"{taint['key']}={value}" if value else str(taint["key"])
    return f"{key}:{taint['effect']}"


def agent_pool_body(claim: Obj, now: dt.datetime | None = None) -> dict[str, Any]:
    """The `AgentPool` resource (ARM JSON) for one claim; InvalidClaimError when impossible."""
    name = str(objects.meta(claim).get("name") or "")
    if not POOL_NAME.match(name):
        raise InvalidClaimError(
            f"agentpool name({name}) is invalid, must match regex pattern: {POOL_NAME.pattern}",
            code="InvalidAgentPoolName",
        )
    vm_size = claims.instance_type(claim)
    if not vm_size:
        raise InvalidClaimError(
            "nodeClaim spec has no requirement for instance type", code="NoInstanceType"
        )
    disk_gib = claims.storage_gib(claim)
    if disk_gib <= 0:
        raise InvalidClaimError(
            f"storage request of nodeclaim({name}) should be more than 0", code="NoStorage"
        )
    created = objects.created_at(claim) or now or dt.datetime.now(dt.UTC)
    node_labels = {
        LABEL_NODEPOOL: KAITO_NODEPOOL,
        **objects.labels(claim),
        LABEL_MACHINE_TYPE: "gpu" if "Standard_N" in vm_size else "cpu",
        LABEL_CREATION_TIMESTAMP: created.astimezone(dt.UTC).strftime(CREATION_TIMESTAMP_FORMAT),
    }
    properties: dict[str, Any] = {
        "type": "VirtualMachineScaleSets",
        "count": 1,
        "osType": "Linux",
        "vmSize": vm_size,
        "osDiskSizeGB": disk_gib,
        "osSKU": os_sku(claim),
        "nodeLabels": node_labels,
    }
    node_taints = [format_taint(t) for t in claims.taints(claim)]
    if node_taints:
        properties["nodeTaints"] = node_taints
    return {"properties": properties}


def is_owned(pool: dict[str, Any]) -> bool:
    """Pools this provisioner made carry the nodepool placeholder and our creation stamp."""
    node_labels = (pool.get("properties") or {}).get("nodeLabels") or {}
    return LABEL_NODEPOOL in node_labels and LABEL_CREATION_TIMESTAMP in node_labels


def parse_creation_timestamp(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.strptime(value, CREATION_TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def pool_instance(pool: dict[str, Any], provider_id: str = "", node: Obj | None = None) -> Instance:
    """The `Instance` view of an agent pool (as ARM JSON), with its Node when known."""
    props = pool.get("properties") or {}
    node_labels: dict[str, str] = dict(props.get("nodeLabels") or {})
    vm_size = str(props.get("vmSize") or "")
    node_status = (node or {}).get("status") or {}
    zone = objects.labels(node).get("topology.kubernetes.io/zone", "") if node else ""
    state = str(props.get("provisioningState") or "")
    return Instance(
        name=str(pool.get("name") or ""),
        provider_id=provider_id,
        instance_type=vm_size,
        zone=zone,
        capacity={k: str(v) for k, v in (node_status.get("capacity") or {}).items()},
        allocatable={k: str(v) for k, v in (node_status.get("allocatable") or {}).items()},
        labels={**node_labels, LABEL_INSTANCE_TYPE: vm_size} if vm_size else node_labels,
        created_at=parse_creation_timestamp(node_labels.get(LABEL_CREATION_TIMESTAMP)),
        deleting=state.lower() == "deleting",
        image_id=str(props.get("nodeImageVersion") or ""),
    )
