"""Pure functions over NodeClaim dicts: which claims are ours and what they ask for."""

from __future__ import annotations

from kaito_common.api.labels import (
    KAITO_GROUP,
    LABEL_CAPACITY_TYPE,
    LABEL_INSTANCE_TYPE,
    LABEL_NODEPOOL,
    LABEL_OS,
    LABEL_RAGENGINE,
    LABEL_WORKSPACE,
    LABEL_ZONE,
)
from kaito_common.controller import objects
from kaito_common.controller.objects import Obj

KAITO_NODE_CLASS_KIND = "KaitoNodeClass"
# Requirement keys in these domains are not copied onto the claim as labels (Karpenter's rule).
_RESTRICTED_DOMAINS = ("kubernetes.io", "k8s.io", "karpenter.sh")
_ALLOWED_RESTRICTED = (
    LABEL_INSTANCE_TYPE,
    LABEL_ZONE,
    "topology.kubernetes.io/region",
    "kubernetes.io/arch",
    LABEL_OS,
    LABEL_CAPACITY_TYPE,
    LABEL_NODEPOOL,
)


def is_managed(claim: Obj) -> bool:
    """gpu-provisioner's rule: a KaitoNodeClass claim, or one a Kaito workload asked for."""
    ref = (claim.get("spec") or {}).get("nodeClassRef") or {}
    if ref.get("group") == KAITO_GROUP and ref.get("kind") == KAITO_NODE_CLASS_KIND:
        return True
    found = objects.labels(claim)
    return LABEL_WORKSPACE in found or LABEL_RAGENGINE in found


def requirements(claim: Obj) -> list[Obj]:
    return list((claim.get("spec") or {}).get("requirements") or [])


def instance_type(claim: Obj) -> str | None:
    """The first value of the instance-type requirement (Kaito always sends exactly one)."""
    for req in requirements(claim):
        if req.get("key") == LABEL_INSTANCE_TYPE and req.get("operator") == "In":
            values = req.get("values") or []
            if values:
                return str(values[0])
    return None


def requests(claim: Obj) -> dict[str, str]:
    resources = (claim.get("spec") or {}).get("resources") or {}
    return {k: str(v) for k, v in (resources.get("requests") or {}).items()}


def storage_gib(claim: Obj) -> int:
    """The storage request in whole GiB (bytes >> 30), 0 when absent."""
    value = requests(claim).get("storage")
    if value is None:
        return 0
    return int(objects.parse_quantity(value)) >> 30


def _label_allowed(key: str) -> bool:
    if key in _ALLOWED_RESTRICTED:
        return True
    domain = key.split("/", 1)[0] if "/" in key else ""
    return not any(domain == d or domain.endswith("." + d) for d in _RESTRICTED_DOMAINS)


def requirement_labels(claim: Obj) -> dict[str, str]:
    """Labels implied by single-valued `In` requirements (Karpenter puts these on the node)."""
    out: dict[str, str] = {}
    for req in requirements(claim):
        values = req.get("values") or []
        key = str(req.get("key"))
        if req.get("operator") == "In" and len(values) == 1 and _label_allowed(key):
            out[key] = str(values[0])
    return out


def taints(claim: Obj, field: str = "taints") -> list[Obj]:
    return [dict(t) for t in (claim.get("spec") or {}).get(field) or []]


def provider_id(claim: Obj) -> str:
    return str((claim.get("status") or {}).get("providerID") or "")


def taint_key(taint: Obj) -> tuple[str, str]:
    return (str(taint.get("key")), str(taint.get("effect")))
