"""Helpers for testing controllers built on this framework against a real API server:
polling with a timeout, an `ApiClient` that counts requests (to assert "a converged reconcile
writes nothing"), and a TCP proxy that cuts connections (to test watch recovery)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import load_kube_config

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout_s: float = 20.0,
    interval_s: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll `check` until it is true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


class CountingApiClient(ApiClient):
    """Counts requests by HTTP method (the writes a reconcile makes are what tests assert)."""

    def __init__(self, configuration: Configuration) -> None:
        super().__init__(configuration=configuration)
        self.requests: Counter[str] = Counter()

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.requests[method] += 1
        return await super().request(method, url, *args, **kwargs)

    @property
    def writes(self) -> int:
        return sum(n for m, n in self.requests.items() if m in WRITE_METHODS)


async def client_configuration(kubeconfig: str, host: str | None = None) -> Configuration:
    cfg = Configuration()
    await load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    if host is not None:
        cfg.host = host
    return cfg


class TcpProxy:
    """A loopback TCP proxy in front of the API server whose connections a test can cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._open = True
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    def cut(self, *, refuse: bool) -> int:
        """Reset every open connection; with `refuse`, also drop new ones until `restore`."""
        self._open = not refuse
        count = len(self._writers)
        for w in list(self._writers):
            transport = w.transport
            transport.abort()
        return count

    def restore(self) -> None:
        self._open = True

    async def close(self) -> None:
        self.cut(refuse=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
