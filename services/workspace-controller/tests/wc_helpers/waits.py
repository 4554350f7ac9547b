"""Polling helpers of the end-to-end tests: NodeClaims of a workspace, its conditions."""

from __future__ import annotations

from typing import Any

from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import EVENT
from kaito_testing.controllers import eventually
from wc_helpers.cluster import NODECLAIM, WORKSPACE

Obj = dict[str, Any]


async def claims_of(kube: KubeClient, name: str, namespace: str) -> list[Obj]:
    selector = f"kaito.sh/workspace={name},kaito.sh/workspacenamespace={namespace}"
    return await kube.list_all(NODECLAIM, label_selector=selector)


async def wait_claims(kube: KubeClient, name: str, namespace: str, count: int) -> list[Obj]:
    found: list[Obj] = []

    async def enough() -> bool:
        nonlocal found
        found = await claims_of(kube, name, namespace)
        return len(found) >= count

    await eventually(enough, timeout_s=30, what=f"{count} NodeClaim(s) of {name}")
    return found


def condition(obj: Obj, type_: str) -> Obj:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


async def wait_condition(
    kube: KubeClient, name: str, namespace: str, type_: str, status: str, timeout_s: float = 60
) -> Obj:
    ws: Obj = {}

    async def check() -> bool:
        nonlocal ws
        ws = await kube.get(WORKSPACE, name, namespace)
        return condition(ws, type_).get("status") == status

    await eventually(check, timeout_s=timeout_s, what=f"{type_}={status} on {name}")
    return ws


def printer_columns(table: str) -> dict[str, str]:
    """The first row of a `kubectl get` table, by column header."""
    header, row = table.splitlines()[:2]
    starts = [header.index(h) for h in header.split()]
    bounds = zip(starts, [*starts[1:], None], strict=True)
    return {header[a:b].strip(): row[a:b].strip() for a, b in bounds}


async def events_of(kube: KubeClient, name: str, namespace: str) -> list[Obj]:
    ws = await kube.get(WORKSPACE, name, namespace)
    uid = ws["metadata"]["uid"]
    return [e for e in await kube.list_all(EVENT, namespace) if e["involvedObject"]["uid"] == uid]


async def wait_event(kube: KubeClient, name: str, namespace: str, reason: str) -> Obj:
    found: list[Obj] = []

    async def seen() -> bool:
        nonlocal found
        found = [e for e in await events_of(kube, name, namespace) if e["reason"] == reason]
        return bool(found)

    await eventually(seen, timeout_s=60, what=f"a {reason} Event on {name}")
    assert len(found) == 1, found
    return found[0]
