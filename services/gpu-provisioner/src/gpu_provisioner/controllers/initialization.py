"""Initialization: the Node is Ready, its startup and known ephemeral taints are gone and every
requested resource shows in its allocatable (except `storage`, which nodes never report and
Kaito's claims always request). Then the Node is labelled `karpenter.sh/initialized=true`."""

from __future__ import annotations

import logging

from gpu_provisioner import claims
from gpu_provisioner.conditions import INITIALIZED, ConditionSet
from kaito_common.api.labels import LABEL_INITIALIZED, TAINT_UNREGISTERED
from kaito_common.controller import objects
from kaito_common.controller.apierrors import api_step
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE
from kaito_common.controller.objects import Obj

log = logging.getLogger(__name__)

EPHEMERAL_TAINTS: tuple[tuple[str, str], ...] = (
    ("node.kubernetes.io/not-ready", "NoSchedule"),
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoSchedule"),
    ("node.cloudprovider.kubernetes.io/uninitialized", "NoSchedule"),
    (TAINT_UNREGISTERED, "NoExecute"),
)
IGNORED_RESOURCES = frozenset({"storage"})


def node_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _describe(taint: Obj) -> str:
    value = taint.get("value")
    key = f"{taint.get('key')}={value}" if value else str(taint.get("key"))
    return f"{key}:{taint.get('effect')}"


def uninitialized_reason(claim: Obj, node: Obj | None) -> tuple[str, str] | None:
    """(reason, message) of what still blocks initialization, or None. Pure."""
    if node is None:
        return "NodeNotFound", "Node not registered with cluster"
    if not node_ready(node):
        return "NodeNotReady", "Node status is NotReady"
    node_taints = (node.get("spec") or {}).get("taints") or []
    present = {claims.taint_key(t): t for t in node_taints}
    for taint in claims.taints(claim, "startupTaints"):
        if claims.taint_key(taint) in present:
            return "StartupTaintsExist", f'StartupTaint "{_describe(taint)}" still exists'
    for key in EPHEMERAL_TAINTS:
        if key in present:
            return (
                "KnownEphemeralTaintsExist",
                f'KnownEphemeralTaint "{_describe(present[key])}" still exists',
            )
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    for resource, quantity in sorted(claims.requests(claim).items()):
        if resource in IGNORED_RESOURCES or objects.parse_quantity(quantity) == 0:
            continue
        have = allocatable.get(resource)
        if have is None or objects.parse_quantity(str(have)) == 0:
            return (
                "ResourceNotRegistered",
                f'Resource "{resource}" was requested but not registered',
            )
    return None


async def initialize(
    kube: KubeClient, claim: Obj, node: Obj | None, conditions: ConditionSet
) -> None:
    blocked = uninitialized_reason(claim, node)
    if blocked is not None:
        conditions.set_unknown(INITIALIZED, *blocked)
        return
    assert node is not None
    node_meta = objects.meta(node)
    if objects.labels(node).get(LABEL_INITIALIZED) != "true":
        # A merge patch of one label: nothing else is replaced, so no resourceVersion needed.
        body = {"metadata": {"labels": {LABEL_INITIALIZED: "true"}}}
        await api_step("label node initialized", kube.patch(NODE, str(node_meta["name"]), body))
        log.info(
            "Initialized node nodeclaim=%s node=%s",
            objects.meta(claim).get("name"),
            node_meta["name"],
        )
    conditions.set_true(INITIALIZED)
