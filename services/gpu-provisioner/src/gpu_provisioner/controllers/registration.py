"""Registration: find the claim's Node by providerID and make it the claim's.

On exactly one match the Node gets the termination finalizer, an ownerReference to the claim,
the claim's labels, annotations, taints and startup taints, loses `karpenter.sh/unregistered`,
and is labelled `karpenter.sh/registered=true`; the claim gets `status.nodeName` and
`Registered=True`. Taints are synced once, at registration: startup taints are someone else's to
remove afterwards.
"""

from __future__ import annotations

import logging

from gpu_provisioner import claims
from gpu_provisioner.conditions import REGISTERED, ConditionSet
from kaito_common.api.labels import FINALIZER_TERMINATION, LABEL_REGISTERED, TAINT_UNREGISTERED
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE
from kaito_common.controller.objects import Obj

log = logging.getLogger(__name__)

NODE_NOT_FOUND = "NodeNotFound"
NODE_NOT_FOUND_MESSAGE = "Node not registered with cluster"
MULTIPLE_NODES = "MultipleNodesFound"


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


async def register(
    kube: KubeClient, claim: Obj, nodes: list[Obj], conditions: ConditionSet, status: Obj
) -> None:
    """`nodes`: the Nodes whose providerID equals the claim's. Updates `conditions`/`status`."""
    name = objects.meta(claim).get("name")
    if not nodes:
        conditions.set_unknown(REGISTERED, NODE_NOT_FOUND, NODE_NOT_FOUND_MESSAGE)
        return
    if len(nodes) > 1:
        names = ", ".join(sorted(str(objects.meta(n).get("name")) for n in nodes))
        conditions.set_false(
            REGISTERED, MULTIPLE_NODES, f"invariant violated, matched multiple nodes {names}"
        )
        return
    node = nodes[0]
    node_meta = objects.meta(node)
    new_meta, taints = registered_node_metadata(claim, node)
    current = {
        k: node_meta.get(k) or ({} if k in ("labels", "annotations") else []) for k in new_meta
    }
    current_taints = (node.get("spec") or {}).get("taints") or []
    if current != new_meta or current_taints != taints:
        body = {
            "metadata": {**new_meta, "resourceVersion": node_meta["resourceVersion"]},
            "spec": {"taints": taints},
        }
        await kube.patch(NODE, str(node_meta["name"]), body)
        log.info("Registered node nodeclaim=%s node=%s", name, node_meta["name"])
    status["nodeName"] = node_meta["name"]
    conditions.set_true(REGISTERED)
