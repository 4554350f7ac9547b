"""Registration: find the claim's Node by providerID and make it the claim's.

On exactly one match the Node gets the termination finalizer, an ownerReference to the claim,
the claim's labels, annotations, taints and startup taints, loses `karpenter.sh/unregistered`,
and is labelled `karpenter.sh/registered=true`; the claim gets `status.nodeName` and
`Registered=True`. Taints are synced once, at registration: startup taints are someone else's to
remove afterwards. A Node that would already pass initialization once registered gets the
`karpenter.sh/initialized` label in the same write.
"""

from __future__ import annotations

import logging

from gpu_provisioner import claims
from gpu_provisioner.conditions import REGISTERED, ConditionSet
from gpu_provisioner.controllers.initialization import uninitialized_reason
from kaito_common.api.labels import (
    FINALIZER_TERMINATION,
    LABEL_INITIALIZED,
    LABEL_REGISTERED,
    TAINT_UNREGISTERED,
)
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller import objects
from kaito_common.controller.apierrors import KubeApiError, api_step
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE
from kaito_common.controller.objects import Obj

log = logging.getLogger(__name__)

NODE_NOT_FOUND = "NodeNotFound"
NODE_NOT_FOUND_MESSAGE = "Node not registered with cluster"
MULTIPLE_NODES = "MultipleNodesFound"
CONFLICT_ATTEMPTS = 3


def owner_reference(claim: Obj) -> Obj:
    meta = objects.meta(claim)
    return {
        "apiVersion": NODECLAIM.api_version,
        "kind": NODECLAIM.kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "blockOwnerDeletion": True,
    }


def registered_node_metadata(claim: Obj, node: Obj) -> tuple[Obj, list[Obj]]:
    """The Node's metadata and taints after registration. Pure."""
    meta = objects.meta(node)
    labels = {**objects.labels(node), **objects.labels(claim), LABEL_REGISTERED: "true"}
    annotations = {**objects.annotations(node), **objects.annotations(claim)}
    finalizers = list(meta.get("finalizers") or [])
    if FINALIZER_TERMINATION not in finalizers:
        finalizers.append(FINALIZER_TERMINATION)
    ref = owner_reference(claim)
    refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != ref["uid"]]
    refs.append(ref)
    taints = [
        t
        for t in (node.get("spec") or {}).get("taints") or []
        if t.get("key") != TAINT_UNREGISTERED
    ]
    present = {claims.taint_key(t) for t in taints}
    for taint in [*claims.taints(claim), *claims.taints(claim, "startupTaints")]:
        if claims.taint_key(taint) not in present:
            taints.append({k: v for k, v in taint.items() if k in ("key", "value", "effect")})
            present.add(claims.taint_key(taint))
    new_meta: Obj = {
        "labels": labels,
        "annotations": annotations,
        "finalizers": finalizers,
        "ownerReferences": refs,
    }
    return new_meta, taints


def _with(node: Obj, meta: Obj, taints: list[Obj]) -> Obj:
    """`node` as it will be once `meta` and `taints` are written."""
    return {
        **node,
        "metadata": {**objects.meta(node), **meta},
        "spec": {**(node.get("spec") or {}), "taints": taints},
    }


async def register(
    kube: KubeClient, claim: Obj, nodes: list[Obj], conditions: ConditionSet, status: Obj
) -> Obj | None:
    """`nodes`: the Nodes whose providerID equals the claim's. Updates `conditions`/`status`;
    returns the registered Node as written (the cache may not show it yet), or None.

    The Node is patched conditionally (its lists are replaced whole); when something else
    changed it meanwhile (kwok's or the kubelet's status updates), it is read again and the
    patch recomputed, a few times, instead of failing the reconcile."""
    name = objects.meta(claim).get("name")
    if not nodes:
        conditions.set_unknown(REGISTERED, NODE_NOT_FOUND, NODE_NOT_FOUND_MESSAGE)
        return None
    if len(nodes) > 1:
        names = ", ".join(sorted(str(objects.meta(n).get("name")) for n in nodes))
        conditions.set_false(
            REGISTERED, MULTIPLE_NODES, f"invariant violated, matched multiple nodes {names}"
        )
        return None
    node = nodes[0]
    node_name = str(objects.meta(node)["name"])
    for attempt in range(CONFLICT_ATTEMPTS):
        node_meta = objects.meta(node)
        new_meta, taints = registered_node_metadata(claim, node)
        current = {
            k: node_meta.get(k) or ({} if k in ("labels", "annotations") else []) for k in new_meta
        }
        current_taints = (node.get("spec") or {}).get("taints") or []
        if uninitialized_reason(claim, _with(node, new_meta, taints)) is None:
            # Ready already (AKS reports a pool once its node is up): label it initialized in
            # the same write instead of a second one right after.
            new_meta["labels"][LABEL_INITIALIZED] = "true"
        if current == new_meta and current_taints == taints:
            break
        body = {
            "metadata": {**new_meta, "resourceVersion": node_meta["resourceVersion"]},
            "spec": {"taints": taints},
        }
        try:
            node = await api_step("register node", kube.patch(NODE, node_name, body))
        except KubeApiError as err:
            if not err.is_conflict or attempt == CONFLICT_ATTEMPTS - 1:
                raise
            log.info(
                "Node changed while registering; re-reading nodeclaim=%s node=%s attempt=%d",
                name,
                node_name,
                attempt + 1,
            )
            node = await api_step("get node", kube.get(NODE, node_name))
            continue
        log.info("Registered node nodeclaim=%s node=%s", name, node_name)
        break
    status["nodeName"] = node_name
    conditions.set_true(REGISTERED)
    return node
