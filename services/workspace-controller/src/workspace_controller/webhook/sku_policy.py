"""Instance types the SKU catalog does not know, handled as upstream Kaito (v0.12) does.

Upstream accepts an unknown Azure size whose name starts with ``Standard_N`` (the GPU families)
or ``Standard_D`` and skips its GPU-fit checks, since it knows nothing of its GPUs; any other
unknown name ("Unsupported instance type ...") is refused, AWS names included. We do the same,
and say so in an admission warning, so the user learns that nothing checked the fit.
"""

from __future__ import annotations

UNKNOWN_SKU_PREFIXES = ("Standard_N", "Standard_D")


def unknown_sku_accepted(instance_type: str) -> bool:
    """Whether an instance type missing from the catalog is still accepted (without fit checks)."""
    return instance_type.startswith(UNKNOWN_SKU_PREFIXES)


def unknown_sku_warning(instance_type: str) -> str:
    return (
        f"resource.instanceType: {instance_type} is not in the SKU catalog; accepted as upstream "
        "Kaito accepts Azure N- and D-series sizes, but its GPU count and memory are unknown, so "
        "nothing checked that the preset fits. Add the size to the SKU catalog (skus.yaml, or a "
        "catalog file holding skus:) to have it checked"
    )
