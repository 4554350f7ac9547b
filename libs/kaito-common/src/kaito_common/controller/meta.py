"""Object metadata helpers: owner references, finalizers, conflict retry."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from kubernetes_asyncio.client.exceptions import ApiException

from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient, is_conflict
from kaito_common.controller.kinds import Kind
from kaito_common.controller.objects import Obj

T = TypeVar("T")


def controller_reference(owner: Obj, block_owner_deletion: bool = True) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": block_owner_deletion,
    }


def set_controller_reference(obj: Obj, owner: Obj) -> Obj:
    """Make `owner` the controller of `obj` (in place); refuses a second, different controller."""
    ref = controller_reference(owner)
    meta = obj.setdefault("metadata", {})
    refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != ref["uid"]]
    for other in refs:
        if other.get("controller"):
            raise ValueError(f"{meta.get('name')} is already controlled by {other.get('name')}")
    meta["ownerReferences"] = [*refs, ref]
    return obj


def has_finalizer(obj: Obj, finalizer: str) -> bool:
    return finalizer in (objects.meta(obj).get("finalizers") or [])


async def retry_on_conflict(
    fn: Callable[[], Awaitable[T]], attempts: int = 5, base_delay_s: float = 0.01
) -> T:
    """Run `fn` again (it should re-read what it writes) while it fails with 409 Conflict."""
    for attempt in range(attempts):
        try:
            return await fn()
        except ApiException as err:
            if not is_conflict(err) or attempt == attempts - 1:
                raise
            await asyncio.sleep(base_delay_s * (2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


async def _patch_finalizers(client: KubeClient, kind: Kind, obj: Obj, finalizers: list[str]) -> Obj:
    meta = obj["metadata"]
    # resourceVersion in a merge patch makes it conditional: a concurrent change gives 409.
    body = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
    return await client.patch(kind, meta["name"], body, meta.get("namespace"))


async def add_finalizer(client: KubeClient, kind: Kind, obj: Obj, finalizer: str) -> Obj:
    """Add `finalizer` unless present (no request then); retries conflicts on fresh reads."""
    current = obj

    async def attempt() -> Obj:
        nonlocal current
        if has_finalizer(current, finalizer):
            return current
        try:
            finalizers = [*(current["metadata"].get("finalizers") or []), finalizer]
            return await _patch_finalizers(client, kind, current, finalizers)
        except ApiException as err:
            if is_conflict(err):
                meta = current["metadata"]
                current = await client.get(kind, meta["name"], meta.get("namespace"))
            raise

    return await retry_on_conflict(attempt)


async def remove_finalizer(client: KubeClient, kind: Kind, obj: Obj, finalizer: str) -> Obj:
    """Remove `finalizer` if present (no request otherwise); retries conflicts on fresh reads."""
    current = obj

    async def attempt() -> Obj:
        nonlocal current
        if not has_finalizer(current, finalizer):
            return current
        try:
            finalizers = [f for f in current["metadata"].get("finalizers") or [] if f != finalizer]
            return await _patch_finalizers(client, kind, current, finalizers)
        except ApiException as err:
            if is_conflict(err):
                meta = current["metadata"]
                current = await client.get(kind, meta["name"], meta.get("namespace"))
            raise

    return await retry_on_conflict(attempt)
