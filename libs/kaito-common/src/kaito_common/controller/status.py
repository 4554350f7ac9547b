"""Write `.status` through the `/status` subresource only when it changed."""

from __future__ import annotations

from typing import Any

from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import Kind
from kaito_common.controller.objects import Obj


def merge_patch_diff(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) turning `old` into `new`; None-valued keys delete."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch_diff(old[key], value)
    return patch


async def patch_status_if_changed(
    client: KubeClient, kind: Kind, obj: Obj, status: Obj, *, optimistic: bool = True
) -> Obj | None:
    """Patch `/status` to `status` if it differs from `obj["status"]`; returns the updated object
    or None when nothing was written. With `optimistic`, a concurrent change gives 409 Conflict
    (the reconcile then backs off and recomputes from fresh state)."""
    current = obj.get("status") or {}
    if current == status:
        return None
    meta = obj["metadata"]
    body: Obj = {"status": merge_patch_diff(current, status)}
    if optimistic:
        body["metadata"] = {"resourceVersion": meta["resourceVersion"]}
    return await client.patch(kind, meta["name"], body, meta.get("namespace"), subresource="status")
