"""Metrics of this controller beyond the framework's: API requests and workspaces by phase."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from kubernetes_asyncio.client import ApiClient, Configuration
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kaito_common.controller import objects
from kaito_common.controller.store import StoreReader


class CountingApiClient(ApiClient):
    """An ApiClient that counts its requests by HTTP method (`rest_client_requests_total`)."""

    def __init__(self, configuration: Configuration, registry: CollectorRegistry) -> None:
        super().__init__(configuration=configuration)
        self.requests_total = Counter(
            "rest_client_requests_total",
            "Requests this process sent to the API server, by HTTP method.",
            ["method"],
            registry=registry,
        )

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.requests_total.labels(method).inc()
        return await super().request(method, url, *args, **kwargs)


class WorkspaceCountCollector(Collector):
    """`kaito_workspace_count{phase}` from the informer cache, computed at scrape time."""

    def __init__(self, workspaces: StoreReader) -> None:
        self._workspaces = workspaces

    def collect(self) -> Iterator[GaugeMetricFamily]:
        phases: Tally[str] = Tally()
        for ws in self._workspaces.list():
            if objects.is_deleting(ws):
                phases["Deleting"] += 1
            else:
                phases[str((ws.get("status") or {}).get("state") or "Pending")] += 1
        family = GaugeMetricFamily(
            "kaito_workspace_count", "Workspaces by phase.", labels=["phase"]
        )
        for phase, count in sorted(phases.items()):
            family.add_metric([phase], count)
        yield family
