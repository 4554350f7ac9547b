"""A small dict-in, dict-out client over one kubernetes-asyncio `ApiClient`.

Every request goes through `ApiClient.call_api` with an explicit `_request_timeout` (the library
has no timeout otherwise) and an explicit `Content-Type` on patches (the library guesses JSON
patch for some bodies). Errors surface as `kubernetes_asyncio.client.ApiException`.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncGenerator
from typing import Any, Literal

import aiohttp
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from kaito_common.controller import objects
from kaito_common.controller.kinds import Kind
from kaito_common.controller.objects import Obj

PatchType = Literal["merge", "json", "strategic", "apply"]

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
_AUTH = ["BearerToken"]


def status_of(err: BaseException) -> int | None:
    return err.status if isinstance(err, ApiException) else None


def is_not_found(err: BaseException) -> bool:
    return status_of(err) == 404


def is_conflict(err: BaseException) -> bool:
    return status_of(err) == 409


def is_gone(err: BaseException) -> bool:
    return status_of(err) == 410


class KubeClient:
    """CRUD, patch, server-side apply and watch on any `Kind`, objects as plain dicts."""

    def __init__(self, api_client: ApiClient, request_timeout_s: float = 30.0) -> None:
        self.api_client = api_client
        self.request_timeout_s = request_timeout_s

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout_s: float | None = None,
    ) -> Any:
        result = await self.api_client.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            response_types_map={200: "object", 201: "object", 202: "object"},
            auth_settings=_AUTH,
            _return_http_data_only=True,
            _request_timeout=timeout_s or self.request_timeout_s,
        )
        return result

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Obj:
        obj: Obj = await self._call("GET", kind.object_path(name, namespace))
        return obj

    async def get_or_none(self, kind: Kind, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return await self.get(kind, name, namespace)
        except ApiException as err:
            if is_not_found(err):
                return None
            raise

    async def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Obj:
        """One page of a list; the returned dict has `items` and `metadata.continue`."""
        query: list[tuple[str, Any]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if limit:
            query.append(("limit", limit))
        if continue_token:
            query.append(("continue", continue_token))
        page: Obj = await self._call("GET", kind.collection_path(namespace), query=query)
        return page

    async def list_all(
        self, kind: Kind, namespace: str | None = None, *, label_selector: str | None = None
    ) -> builtins.list[Obj]:
        items: builtins.list[Obj] = []
        token: str | None = None
        while True:
            page = await self.list(
                kind, namespace, label_selector=label_selector, limit=500, continue_token=token
            )
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    async def create(self, kind: Kind, obj: Obj, namespace: str | None = None) -> Obj:
        ns = namespace or objects.namespace(obj) or None
        body = {"apiVersion": kind.api_version, "kind": kind.kind, **obj}
        created: Obj = await self._call("POST", kind.collection_path(ns), body=body)
        return created

    async def replace(self, kind: Kind, obj: Obj, subresource: str = "") -> Obj:
        meta = obj["metadata"]
        path = kind.object_path(meta["name"], meta.get("namespace"), subresource)
        replaced: Obj = await self._call("PUT", path, body=obj)
        return replaced

    async def patch(
        self,
        kind: Kind,
        name: str,
        body: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str = "",
        field_manager: str | None = None,
        force: bool = False,
    ) -> Obj:
        query: list[tuple[str, Any]] = []
        if field_manager:
            query.append(("fieldManager", field_manager))
        if force:
            query.append(("force", "true"))
        patched: Obj = await self._call(
            "PATCH",
            kind.object_path(name, namespace, subresource),
            query=query,
            body=body,
            content_type=_PATCH_CONTENT_TYPES[patch_type],
        )
        return patched

    async def delete(
        self,
        kind: Kind,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        uid: str | None = None,
    ) -> bool:
        """Delete; returns False when the object was already gone."""
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self._call("DELETE", kind.object_path(name, namespace), body=body)
        except ApiException as err:
            if is_not_found(err):
                return False
            raise
        return True

    async def watch(
        self,
        kind: Kind,
        namespace: str | None,
        resource_version: str,
        *,
        label_selector: str | None = None,
        timeout_s: int = 300,
    ) -> AsyncGenerator[Obj, None]:
        """Stream watch events (`{"type", "object"}`) until the server ends the watch.

        `ERROR` events are raised as `ApiException` carrying the status code (410 for Gone).
        The HTTP read has its own timeout a little longer than the server-side one, so a
        silently dead connection is noticed.
        """
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", timeout_s),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.request_timeout_s, sock_read=timeout_s + 30
        )
        resp = await self.api_client.call_api(
            kind.collection_path(namespace),
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=_AUTH,
            _preload_content=False,
            _request_timeout=timeout,
        )
        try:
            if resp.status != 200:
                text = await resp.text()
                raise ApiException(status=resp.status, reason=text[:500])
            while True:
                line = await resp.content.readline()
                if not line:
                    return
                event: Obj = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiException(
                        status=int(status.get("code") or 500), reason=str(status.get("message"))
                    )
                yield event
        finally:
            resp.release()
            resp.close()
