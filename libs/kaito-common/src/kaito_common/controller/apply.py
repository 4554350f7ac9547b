"""Server-side apply of children, skipped when the live object already matches."""

from __future__ import annotations

from typing import Any

from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import Kind
from kaito_common.controller.objects import Obj


def is_subset(desired: Any, live: Any) -> bool:
    """Whether every field set in `desired` has the same value in `live` (server defaults and
    fields owned by others in `live` are ignored; lists must match element by element)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            k in live and is_subset(v, live[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    return bool(desired == live)


async def apply(
    client: KubeClient, kind: Kind, manifest: Obj, field_manager: str, *, force: bool = True
) -> Obj:
    """Server-side apply `manifest` (apiVersion/kind are filled in) as `field_manager`."""
    body = {"apiVersion": kind.api_version, "kind": kind.kind, **manifest}
    meta = body["metadata"]
    return await client.patch(
        kind,
        meta["name"],
        body,
        meta.get("namespace"),
        patch_type="apply",
        field_manager=field_manager,
        force=force,
    )


async def apply_if_changed(
    client: KubeClient,
    kind: Kind,
    manifest: Obj,
    live: Obj | None,
    field_manager: str,
) -> Obj | None:
    """Apply unless `live` (e.g. from the cache) already has every desired field; returns the
    applied object, or None when no request was made. Values the server normalises (quantities
    such as "1000m" -> "1") should be written in normal form, or they are re-applied each time."""
    if live is not None and is_subset(manifest, live):
        return None
    return await apply(client, kind, manifest, field_manager)
