"""Pure functions over NodeClaim dicts: which claims are ours and what they ask for."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from kaito_common.api.labels import (
    KAITO_GROUP,
    LABEL_INSTANCE_TYPE,
    LABEL_WORKSPACE,
)
from kaito_common.controller.clock import parse_time
from kaito_common.controller.kinds import Kind, Obj

NODECLAIM = Kind("karpenter.sh", "v1", "nodeclaims", "NodeClaim", namespaced=False)
KAITO_NODE_CLASS_KIND = "KaitoNodeClass"
LABEL_RAGENGINE = "kaito.sh/ragengine"
# Requirement keys in these domains are not copied onto the claim as labels (Karpenter's rule).
_RESTRICTED_DOMAINS = ("kubernetes.io", "k8s.io", "karpenter.sh")
_ALLOWED_RESTRICTED = (
    LABEL_INSTANCE_TYPE,
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "karpenter.sh/capacity-type",
    "karpenter.sh/nodepool",
)

_SUFFIXES: dict[str, Decimal] = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)$"
)


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity ("1024Gi", "500m", "2") as a number; ValueError when malformed."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"invalid quantity {text!r}")
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation as err:
        raise ValueError(f"invalid quantity {text!r}") from err


def meta(obj: Obj) -> Obj:
    result: Obj = obj.get("metadata") or {}
    return result


def labels(obj: Obj) -> dict[str, str]:
    return dict(meta(obj).get("labels") or {})


def annotations_of(obj: Obj) -> dict[str, str]:
    return dict(meta(obj).get("annotations") or {})


def is_managed(claim: Obj) -> bool:
    """gpu-provisioner's rule: a KaitoNodeClass claim, or one a Kaito workload asked for."""
    ref = (claim.get("spec") or {}).get("nodeClassRef") or {}
    if ref.get("group") == KAITO_GROUP and ref.get("kind") == KAITO_NODE_CLASS_KIND:
        return True
    found = labels(claim)
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
    return int(parse_quantity(value)) >> 30


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


def created_at(obj: Obj) -> dt.datetime | None:
    stamp = meta(obj).get("creationTimestamp")
    return parse_time(stamp) if stamp else None


def is_deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def provider_id(claim: Obj) -> str:
    return str((claim.get("status") or {}).get("providerID") or "")


def taint_key(taint: Obj) -> tuple[str, str]:
    return (str(taint.get("key")), str(taint.get("effect")))
