"""The fake ARM server: AKS agent pool PUT/GET/DELETE/LIST with long-running operations.

Operations answer like ARM: a PUT that starts a create returns 201 with `Azure-AsyncOperation`
pointing at an operation resource whose `status` moves InProgress -> Succeeded/Failed after
`Faults.op_latency_s`; the pool's `provisioningState` moves Creating -> Succeeded (or Failed);
DELETE returns 202 and the pool goes Deleting -> gone (404). Lists page through `nextLink`.

Faults: 429 (with Retry-After) and 500 answers at a configurable rate on any request, added
latency per request, quota-exceeded and SKU-not-available error bodies for chosen VM sizes, slow
operations, and creates that crash mid-operation (the pool ends Failed with no node).

Injected faults are deterministic with `Faults.seed`: whether a request is throttled, fails or
waits (and how long) is drawn from a generator seeded with the seed and the request's identity
(method, path, and how many times that request was made before), so the same seed faults the
same requests whatever order concurrent clients send them in. Operation ids are derived from the
pool and the operation, so polling an operation is such a request too.

A create's operation ends as AKS's does: its VM boots and joins the cluster as a Ready Node
(`AksNodes.join`, at `Faults.node_join_at` of the operation's latency) before the operation
reports Succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from kaito_common.controller.client import KubeClient
from kaito_testing.fakearm.aks import AksNodes
from kaito_testing.fakearm.tls import server_context, write_self_signed

POOL_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.ContainerService/managedClusters/(?P<cluster>[^/]+)/agentPools(?:/(?P<pool>[^/]+))?$"
)
OP_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.ContainerService/locations/"
    r"(?P<loc>[^/]+)/operations/(?P<op>[^/]+)$"
)


@dataclass
class Faults:
    # Share of requests answered 429 TooManyRequests (with `Retry-After: retry_after_s`).
    throttle_rate: float = 0.0
    retry_after_s: int = 1
    # Share of requests answered 500 InternalServerError.
    error_rate: float = 0.0
    # Added to every request before it is handled: latency_s + uniform(0, latency_jitter_s).
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    # Seeds every injected fault (see the module docstring).
    seed: int = 1234
    op_latency_s: float = 0.2
    # When, as a share of `op_latency_s`, a create's VM registers its Node; the operation
    # reports Succeeded at `op_latency_s` (or once the Node has joined, if that is later).
    node_join_at: float = 0.5
    quota_exceeded_sizes: set[str] = field(default_factory=set)
    unavailable_sizes: set[str] = field(default_factory=set)
    crash_next_creates: int = 0
    # A create stays in progress until this event is set (a test then kills the provisioner).
    hold_creates: asyncio.Event | None = None

    @classmethod
    def chaos(
        cls,
        fault_rate: float,
        *,
        latency_s: float = 0.0,
        latency_jitter_s: float = 0.0,
        seed: int = 1234,
        op_latency_s: float = 0.2,
        retry_after_s: int = 1,
    ) -> Faults:
        """`fault_rate` of the requests fail, half with 429 and half with 500."""
        return cls(
            throttle_rate=fault_rate / 2,
            error_rate=fault_rate / 2,
            retry_after_s=retry_after_s,
            latency_s=latency_s,
            latency_jitter_s=latency_jitter_s,
            seed=seed,
            op_latency_s=op_latency_s,
        )

    @property
    def fault_rate(self) -> float:
        return self.throttle_rate + self.error_rate


@dataclass
class Pool:
    name: str
    properties: dict[str, Any]
    state: str
    task: asyncio.Task[None] | None = None


@dataclass
class Operation:
    id: str
    name: tuple[str, str] = ("", "")  # (pool, "create" | "delete")
    status: str = "InProgress"
    error: dict[str, str] | None = None


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


class FakeArm:
    def __init__(
        self,
        kube: KubeClient,
        work_dir: Path,
        *,
        subscription: str = "00000000-0000-0000-0000-000000000001",
        resource_group: str = "KaitoRG",
        cluster: str = "kaito-aks",
        location: str = "eastus",
        token: str = "fake-arm-token",
        page_size: int = 5,
        faults: Faults | None = None,
    ) -> None:
        self.subscription = subscription
        self.resource_group = resource_group
        self.cluster = cluster
        self.location = location
        self.token = token
        self.page_size = page_size
        self.faults = faults or Faults()
        self.pools: dict[str, Pool] = {}
        self.operations: dict[str, Operation] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.injected: Counter[int] = Counter()  # faults served, by HTTP status
        self.answered = 0  # requests that got past authentication (faulted or not)
        self.added_latency_s = 0.0  # injected latency, summed over requests
        self._seen: Counter[str] = Counter()  # requests by identity, for the fault draws
        self.create_bodies: dict[str, list[dict[str, Any]]] = {}
        # Pools brought into existence, by name (a pool created twice counts 2; a PUT that
        # updates, repairs a Failed pool or is refused does not count).
        self.creations: Counter[str] = Counter()
        self.aks = AksNodes(
            kube, subscription, f"MC_{resource_group}_{cluster}_{location}", location
        )
        self._work_dir = work_dir
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.ca_bundle: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        cert, key = write_self_signed(self._work_dir)
        self.ca_bundle = cert
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_context(cert, key))
        await site.start()
        server: Any = site._server
        self.port = int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for pool in self.pools.values():
            if pool.task is not None:
                pool.task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def env(self) -> dict[str, str]:
        """Environment for a provisioner process pointed at this fake."""
        return {
            "ARM_SUBSCRIPTION_ID": self.subscription,
            "ARM_RESOURCE_GROUP": self.resource_group,
            "AZURE_CLUSTER_NAME": self.cluster,
            "LOCATION": self.location,
            "ARM_ENDPOINT": self.endpoint,
            "ARM_CA_BUNDLE": str(self.ca_bundle),
        }

    def seed_pool(self, name: str, properties: dict[str, Any], state: str = "Succeeded") -> None:
        """A pool that exists in the cloud without this run having created it."""
        self.pools[name] = Pool(name, properties, state)

    # --- plumbing ----------------------------------------------------------------------------

    def _draw(self, request: web.Request) -> random.Random:
        """The generator for this request's faults: seeded by the seed and its identity."""
        identity = f"{request.method} {request.path}"
        occurrence = self._seen[identity]
        self._seen[identity] += 1
        seed = f"{self.faults.seed}|{identity}|{occurrence}".encode()
        return random.Random(int.from_bytes(hashlib.sha256(seed).digest()[:8], "big"))

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        self.answered += 1
        draw = self._draw(request)
        # Always three draws, so one setting never shifts what another one decides.
        throttle, error, jitter = draw.random(), draw.random(), draw.random()
        faults = self.faults
        delay = faults.latency_s + jitter * faults.latency_jitter_s
        if delay > 0:
            self.added_latency_s += delay
            await asyncio.sleep(delay)
        if throttle < faults.throttle_rate:
            self.injected[429] += 1
            return _error(
                429,
                "TooManyRequests",
                "The request is being throttled as the limit has been reached.",
                {"Retry-After": str(faults.retry_after_s)},
            )
        if error < faults.error_rate:
            self.injected[500] += 1
            return _error(500, "InternalServerError", "An internal server error occurred.")
        response: web.StreamResponse = await handler(request)
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json() if request.can_read_body else None
        except ConnectionError:  # the client went away mid-request (a killed provisioner)
            return web.Response(status=400)
        self.requests.append((request.method, request.path, body))
        if match := OP_PATH.match(request.path):
            return self._get_operation(match["op"])
        match = POOL_PATH.match(request.path)
        if match is None or match["cluster"] != self.cluster:
            return _error(404, "ResourceNotFound", f"The resource {request.path} was not found.")
        pool = match["pool"]
        if pool is None and request.method == "GET":
            return self._list(request)
        if pool is not None and request.method == "GET":
            return self._get(pool)
        if pool is not None and request.method == "PUT":
            return self._put(request, pool, body or {})
        if pool is not None and request.method == "DELETE":
            return self._delete(request, pool)
        return _error(405, "MethodNotAllowed", request.method)

    def _pool_id(self, name: str) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
            f"Microsoft.ContainerService/managedClusters/{self.cluster}/agentPools/{name}"
        )

    def _pool_json(self, pool: Pool) -> dict[str, Any]:
        props = {
            **pool.properties,
            "provisioningState": pool.state,
            "mode": pool.properties.get("mode", "User"),
            "orchestratorVersion": "1.33.2",
            "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202601.12.0",
            "powerState": {"code": "Running"},
        }
        return {
            "id": self._pool_id(pool.name),
            "name": pool.name,
            "type": "Microsoft.ContainerService/managedClusters/agentPools",
            "properties": props,
        }

    def _new_operation(self, request: web.Request, pool: str, verb: str) -> tuple[Operation, str]:
        # Named after what it does (not random), so that fault draws on its polls repeat.
        number = sum(1 for op in self.operations.values() if op.name == (pool, verb))
        digest = hashlib.sha256(f"{pool}|{verb}|{number}".encode()).hexdigest()[:32]
        op = Operation(digest, name=(pool, verb))
        self.operations[op.id] = op
        url = (
            f"{self.endpoint}/subscriptions/{self.subscription}/providers/"
            f"Microsoft.ContainerService/locations/{self.location}/operations/{op.id}"
            f"?api-version={request.query.get('api-version', '')}"
        )
        return op, url

    def _get_operation(self, op_id: str) -> web.Response:
        op = self.operations.get(op_id)
        if op is None:
            return _error(404, "NotFound", "Operation not found")
        body: dict[str, Any] = {"id": op.id, "name": op.id, "status": op.status}
        if op.error is not None:
            body["error"] = op.error
        return web.json_response(body)

    # --- agent pools -------------------------------------------------------------------------

    def _get(self, name: str) -> web.Response:
        pool = self.pools.get(name)
        if pool is None:
            return _error(404, "NotFound", f"Agent Pool not found: {name}")
        return web.json_response(self._pool_json(pool))

    def _list(self, request: web.Request) -> web.Response:
        names = sorted(self.pools)
        start = int(request.query.get("$skipToken", "0"))
        page = names[start : start + self.page_size]
        body: dict[str, Any] = {"value": [self._pool_json(self.pools[n]) for n in page]}
        if start + self.page_size < len(names):
            api_version = request.query.get("api-version", "")
            body["nextLink"] = (
                f"{self.endpoint}{request.path}?api-version={api_version}"
                f"&$skipToken={start + self.page_size}"
            )
        return web.json_response(body)

    def _put(self, request: web.Request, name: str, body: dict[str, Any]) -> web.Response:
        props = dict(body.get("properties") or {})
        vm_size = str(props.get("vmSize"))
        if vm_size in self.faults.unavailable_sizes:
            return _error(
                400,
                "SkuNotAvailable",
                f"The requested VM size {vm_size} is not available in location "
                f"'{self.location}' for subscription '{self.subscription}'. Please try another "
                "size or deploy to a different location or zones.",
            )
        if vm_size in self.faults.quota_exceeded_sizes:
            return _error(
                400,
                "QuotaExceeded",
                "Operation could not be completed as it results in exceeding approved "
                f"standardNCSv3Family Cores quota. Additional details - Location: {self.location}, "
                "Current Limit: 0, Current Usage: 0, Additional Required: 6, (Minimum) New Limit "
                "Required: 6. Submit a request for Quota increase.",
            )
        existing = self.pools.get(name)
        if existing is not None and existing.state in ("Creating", "Deleting"):
            return _error(
                409,
                "OperationNotAllowed",
                f"Operation is not allowed because there's an in progress "
                f"{existing.state.lower()[:-3]}e node pool operation on agent pool {name}.",
            )
        self.create_bodies.setdefault(name, []).append(body)
        if existing is not None and existing.state == "Succeeded":
            existing.properties = {**existing.properties, **props}
            return web.json_response(self._pool_json(existing), status=200)
        if existing is None:
            self.creations[name] += 1
        pool = Pool(name, props, "Creating")
        self.pools[name] = pool
        op, url = self._new_operation(request, name, "create")
        crash = self.faults.crash_next_creates > 0
        if crash:
            self.faults.crash_next_creates -= 1
        pool.task = asyncio.create_task(self._run_create(pool, op, crash))
        return web.json_response(
            self._pool_json(pool), status=201, headers={"Azure-AsyncOperation": url}
        )

    async def _run_create(self, pool: Pool, op: Operation, crash: bool) -> None:
        try:
            if self.faults.hold_creates is not None:
                await self.faults.hold_creates.wait()
            latency = self.faults.op_latency_s
            started = time.monotonic()
            await asyncio.sleep(latency * (0.5 if crash else self.faults.node_join_at))
            if crash:
                pool.state = "Failed"
                op.status = "Failed"
                op.error = {
                    "code": "InternalOperationError",
                    "message": "The agent pool operation was interrupted by a service restart.",
                }
                return
            await self.aks.join(pool.name, pool.properties)
            await asyncio.sleep(max(0.0, latency - (time.monotonic() - started)))
            pool.state = "Succeeded"
            op.status = "Succeeded"
        except asyncio.CancelledError:
            op.status = "Canceled"
            raise
        except Exception as err:
            pool.state = "Failed"
            op.status = "Failed"
            op.error = {"code": "InternalOperationError", "message": repr(err)}

    def _delete(self, request: web.Request, name: str) -> web.Response:
        pool = self.pools.get(name)
        if pool is None:
            return _error(404, "NotFound", f"Agent Pool not found: {name}")
        if pool.state == "Deleting":
            return _error(
                409, "OperationNotAllowed", "Operation is not allowed: the pool is being deleted."
            )
        if pool.task is not None and not pool.task.done():
            pool.task.cancel()  # AKS cancels a create when the pool is deleted
        pool.state = "Deleting"
        op, url = self._new_operation(request, name, "delete")
        pool.task = asyncio.create_task(self._run_delete(pool, op))
        return web.Response(status=202, headers={"Azure-AsyncOperation": url, "Location": url})

    async def _run_delete(self, pool: Pool, op: Operation) -> None:
        await asyncio.sleep(self.faults.op_latency_s)
        with contextlib.suppress(Exception):
            await self.aks.leave(pool.name)
        self.pools.pop(pool.name, None)
        op.status = "Succeeded"
