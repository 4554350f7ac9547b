"""The manager: one `ApiClient` per process, shared informers, controllers, leader election,
health/readiness/metrics over HTTP and graceful shutdown on SIGTERM/SIGINT.

Start order: HTTP server, informers (on every replica, so a standby has a warm cache), wait for
their first list, then leader election, then controller workers. Losing the lease stops the
workers and ends `run()` with `LeaderElectionLost` (the process should exit, as Go controllers
do). On shutdown the workers stop, the lease is released, and the `ApiClient` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web
from kubernetes_asyncio.client import ApiClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from kaito_common.controller.client import KubeClient
from kaito_common.controller.clock import Clock, MonotonicClock
from kaito_common.controller.controller import Controller, ControllerBuilder
from kaito_common.controller.informer import Informer
from kaito_common.controller.kinds import Kind
from kaito_common.controller.leaderelection import LeaderElector, LeaseConfig
from kaito_common.controller.metrics import ControllerMetrics

log = logging.getLogger(__name__)


class LeaderElectionLost(Exception):
    """The lease was lost while leading; the process should exit."""


class ManagerSettings(BaseModel):
    name: str = "manager"
    request_timeout_s: float = Field(30.0, gt=0)
    watch_timeout_s: int = Field(300, gt=0)
    leader_election: bool = False
    lease_namespace: str = "default"
    lease_name: str = ""
    identity: str = Field(default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}")
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    # Health and metrics server; port 0 picks a free port (see `Manager.http_port`), None: off.
    http_host: str = "0.0.0.0"
    http_port: int | None = 8080


Runnable = Callable[[], Coroutine[Any, Any, None]]


class Manager:
    def __init__(
        self,
        settings: ManagerSettings,
        api_client: ApiClient,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.api_client = api_client
        self.client = KubeClient(api_client, settings.request_timeout_s)
        self.clock: Clock = clock or MonotonicClock()
        self.metrics = ControllerMetrics()
        self._informers: dict[tuple[Kind, str | None, str | None], Informer] = {}
        self._controllers: list[Controller] = []
        self._runnables: list[Runnable] = []
        self._stop = asyncio.Event()
        self._ready = False
        self.http_port: int | None = None
        self.elector: LeaderElector | None = None
        if settings.leader_election:
            self.elector = LeaderElector(
                self.client,
                LeaseConfig(
                    namespace=settings.lease_namespace,
                    name=settings.lease_name or settings.name,
                    identity=settings.identity,
                    lease_duration_s=settings.lease_duration_s,
                    renew_deadline_s=settings.renew_deadline_s,
                    retry_period_s=settings.retry_period_s,
                ),
                self.clock,
            )

    # Wiring.
    def informer(
        self, kind: Kind, *, namespace: str | None = None, label_selector: str | None = None
    ) -> Informer:
        """The shared informer for (kind, namespace, selector), created on first use."""
        key = (kind, namespace, label_selector)
        if key not in self._informers:
            self._informers[key] = Informer(
                self.client,
                kind,
                namespace=namespace,
                label_selector=label_selector,
                watch_timeout_s=self.settings.watch_timeout_s,
                metrics=self.metrics,
            )
        return self._informers[key]

    def controller(self, name: str) -> ControllerBuilder:
        return ControllerBuilder(self, name)

    def add_controller(self, controller: Controller) -> None:
        self._controllers.append(controller)

    def add_runnable(self, runnable: Runnable) -> None:
        """Extra work that runs only while leading (e.g. a periodic garbage collector)."""
        self._runnables.append(runnable)

    @property
    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader

    # Lifecycle.
    def stop(self) -> None:
        self._stop.set()

    async def _serve_http(self) -> web.AppRunner | None:
        if self.settings.http_port is None:
            return None

        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def readyz(_: web.Request) -> web.Response:
            return web.Response(text="ok") if self._ready else web.Response(status=503, text="no")

        async def metrics(_: web.Request) -> web.Response:
            body = generate_latest(self.metrics.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        server: Any = site._server
        sockets = server.sockets if server is not None else []
        self.http_port = int(sockets[0].getsockname()[1]) if sockets else self.settings.http_port
        log.info("Serving health and metrics port=%s", self.http_port)
        return runner

    async def run(self) -> None:
        """Run until `stop()` (or a signal with `run_until_signal`); raise if the lease is lost."""
        runner = await self._serve_http()
        informer_tasks = [asyncio.create_task(i.run()) for i in self._informers.values()]
        stop_wait: asyncio.Task[Any] = asyncio.create_task(self._stop.wait())
        work: list[asyncio.Task[Any]] = []
        elect_task: asyncio.Task[None] | None = None
        lost = False
        try:
            if not await self._wait_synced(stop_wait):
                return
            if self.elector is not None:
                elect_task = asyncio.create_task(self.elector.run())
                if not await self._wait_leading(self.elector, stop_wait):
                    return
            work = [asyncio.create_task(c.run()) for c in self._controllers]
            work += [asyncio.create_task(r()) for r in self._runnables]
            lost = await self._wait_work(stop_wait, work, elect_task)
        finally:
            self._ready = False
            await _cancel_and_wait(work, swallow_errors=True)
            if elect_task is not None and self.elector is not None:
                await _cancel_and_wait([elect_task], swallow_errors=True)
                await self.elector.release()
                self.metrics.leader.labels(self.settings.name).set(0)
            stop_wait.cancel()
            await _cancel_and_wait(informer_tasks)
            if runner is not None:
                await runner.cleanup()
            log.info("Stopped manager=%s", self.settings.name)
        if lost:
            raise LeaderElectionLost(self.settings.name)

    async def _wait_synced(self, stop_wait: asyncio.Task[Any]) -> bool:
        """Wait for every informer's first list; False when stopped first."""
        synced: asyncio.Future[Any] = asyncio.gather(
            *(i.wait_synced() for i in self._informers.values())
        )
        await asyncio.wait({stop_wait, synced}, return_when=asyncio.FIRST_COMPLETED)
        if not synced.done():
            synced.cancel()
            return False
        self._ready = True
        log.info("Caches synced manager=%s informers=%d", self.settings.name, len(self._informers))
        return True

    async def _wait_leading(self, elector: LeaderElector, stop_wait: asyncio.Task[Any]) -> bool:
        """Wait until this replica holds the lease; False when stopped first."""
        leading: asyncio.Task[Any] = asyncio.create_task(elector.leading.wait())
        await asyncio.wait({stop_wait, leading}, return_when=asyncio.FIRST_COMPLETED)
        leading.cancel()
        if self._stop.is_set():
            return False
        self.metrics.leader.labels(self.settings.name).set(1)
        return True

    async def _wait_work(
        self,
        stop_wait: asyncio.Task[Any],
        work: list[asyncio.Task[Any]],
        elect_task: asyncio.Task[None] | None,
    ) -> bool:
        """Wait for a stop, a failed worker (raised) or the end of leadership (True: lost)."""
        waiters: set[asyncio.Future[Any]] = {stop_wait, *work}
        if elect_task is not None:
            waiters.add(elect_task)
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            err = task.exception() if task in work else None
            if err is not None:
                raise err
        return elect_task is not None and elect_task in done

    async def run_until_signal(self) -> None:
        """`run()` with SIGTERM/SIGINT triggering a graceful stop; closes the ApiClient."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        try:
            await self.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.api_client.close()


async def _cancel_and_wait(tasks: list[asyncio.Task[Any]], *, swallow_errors: bool = False) -> None:
    """Cancel `tasks` and wait for them to end; their errors too are dropped when asked."""
    ignored: tuple[type[BaseException], ...] = (asyncio.CancelledError,)
    if swallow_errors:
        ignored = (asyncio.CancelledError, Exception)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(*ignored):
            await task
