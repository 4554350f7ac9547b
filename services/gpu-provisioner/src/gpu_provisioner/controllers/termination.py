"""Termination of a deleted claim, in Karpenter's order:

1. taint its Node `karpenter.sh/disrupted:NoSchedule` and evict its pods through the Eviction
   API (so PodDisruptionBudgets hold: a refused eviction is retried later);
2. delete the cloud instance by claim name (a claim that never got a providerID, e.g. deleted
   mid-launch, still cleans up) until the cloud says it is gone;
3. delete the Node and remove its finalizer, then remove the claim's finalizer.

The claim's status is never written here: an old claim that fails today's CRD validation must
still be finalizable.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from gpu_provisioner import claims
from gpu_provisioner.claim_events import DELETED
from gpu_provisioner.cloud.provider import CloudProvider
from gpu_provisioner.controllers.launch import Launcher
from kaito_common.api.labels import FINALIZER_TERMINATION, TAINT_DISRUPTED
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient, is_not_found, status_of
from kaito_common.controller.controller import Result
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.kinds import NODE
from kaito_common.controller.meta import remove_finalizer
from kaito_common.controller.objects import Obj

log = logging.getLogger(__name__)

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def evictable(pod: Obj) -> bool:
    """Pods a drain must move: not finished, not a DaemonSet's, not a static mirror pod."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if MIRROR_ANNOTATION in objects.annotations(pod):
        return False
    refs = objects.meta(pod).get("ownerReferences") or []
    return not any(r.get("kind") == "DaemonSet" for r in refs)


async def pods_on_node(kube: KubeClient, node_name: str) -> list[Obj]:
    result: Any = await kube.api_client.call_api(
        "/api/v1/pods",
        "GET",
        query_params=[("fieldSelector", f"spec.nodeName={node_name}")],
        header_params={"Accept": "application/json"},
        response_types_map={200: "object"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _request_timeout=kube.request_timeout_s,
    )
    return list(result.get("items") or [])


async def evict(kube: KubeClient, pod: Obj) -> bool:
    """Ask to evict; False when a PodDisruptionBudget refuses it for now."""
    meta = objects.meta(pod)
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
    }
    try:
        await kube.api_client.call_api(
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/eviction",
            "POST",
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=body,
            response_types_map={200: "object", 201: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=kube.request_timeout_s,
        )
    except ApiException as err:
        if is_not_found(err):
            return True
        if status_of(err) == 429:
            return False
        raise
    return True


async def drain(kube: KubeClient, node: Obj) -> int:
    """Taint the node and evict what runs on it; returns how many pods are still there."""
    meta = objects.meta(node)
    name = str(meta["name"])
    taints = list((node.get("spec") or {}).get("taints") or [])
    if not any(claims.taint_key(t) == (TAINT_DISRUPTED, "NoSchedule") for t in taints):
        taints.append({"key": TAINT_DISRUPTED, "effect": "NoSchedule"})
        body = {
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "spec": {"taints": taints},
        }
        await kube.patch(NODE, name, body)
        log.info("Tainted node for termination node=%s", name)
    remaining = 0
    for pod in await pods_on_node(kube, name):
        if not evictable(pod):
            continue
        remaining += 1
        if objects.is_deleting(pod):
            continue
        pod_meta = objects.meta(pod)
        if await evict(kube, pod):
            log.info("Evicted pod node=%s pod=%s/%s", name, pod_meta["namespace"], pod_meta["name"])
        else:
            log.info(
                "Eviction refused by a disruption budget; will retry node=%s pod=%s/%s",
                name,
                pod_meta["namespace"],
                pod_meta["name"],
            )
    return remaining


async def terminate(
    kube: KubeClient,
    cloud: CloudProvider,
    launcher: Launcher,
    claim: Obj,
    nodes: list[Obj],
    poll_interval_s: float,
    *,
    events: EventRecorder | None = None,
) -> Result | None:
    meta = objects.meta(claim)
    name = str(meta["name"])
    launcher.forget(str(meta.get("uid")))
    if FINALIZER_TERMINATION not in (meta.get("finalizers") or []):
        return None
    draining = 0
    for node in nodes:
        draining += await drain(kube, node)
    if draining:
        log.info("Waiting for pods to leave nodeclaim=%s pods=%d", name, draining)
        return Result(requeue_after=poll_interval_s)
    if not await cloud.delete(name):
        log.info("Waiting for the instance to be deleted nodeclaim=%s", name)
        return Result(requeue_after=poll_interval_s)
    for node in nodes:
        node_name = str(objects.meta(node)["name"])
        if not objects.is_deleting(node):
            if events is not None:
                message = f"Deleting node {node_name}: its NodeClaim {name} was deleted"
                await events.normal(node, DELETED, message)
            await kube.delete(NODE, node_name)
        try:
            await remove_finalizer(kube, NODE, node, FINALIZER_TERMINATION)
        except ApiException as err:
            if not is_not_found(err):
                raise
        log.info("Removed node nodeclaim=%s node=%s", name, node_name)
    await remove_finalizer(kube, NODECLAIM, claim, FINALIZER_TERMINATION)
    if events is not None:
        await events.normal(claim, DELETED, "Deleted the instance and the node; NodeClaim removed")
    log.info("Terminated nodeclaim=%s", name)
    return None
