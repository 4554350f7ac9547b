"""Metrics of this controller beyond the framework's: API requests, and workspaces by phase and
preset under upstream Kaito's names (docs/compatibility.md)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from kubernetes_asyncio.client import ApiClient, Configuration
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kaito_common.api.conditions import WorkspaceConditionType as C
from kaito_common.controller import objects
from kaito_common.controller.objects import Obj, parse_quantity
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


# Upstream Kaito's phases of `kaito_workspace_count`, each exported even when 0 (as upstream).
PHASES = ("succeeded", "error", "pending", "deleting")


def workspace_phase(ws: Obj) -> str:
    """Upstream's phase: the first of WorkspaceDeleting=True (deleting), WorkspaceSucceeded True
    (succeeded) or False (error) among the conditions, else pending. A Workspace being deleted
    before the controller wrote its WorkspaceDeleting condition counts as deleting too."""
    if objects.is_deleting(ws):
        return "deleting"
    for cond in (ws.get("status") or {}).get("conditions") or []:
        kind, status = cond.get("type"), cond.get("status")
        if kind == C.WORKSPACE_DELETING and status == "True":
            return "deleting"
        if kind == C.WORKSPACE_SUCCEEDED and status in ("True", "False"):
            return "succeeded" if status == "True" else "error"
    return "pending"


def inference_preset(ws: Obj) -> str:
    """The inference preset's name as written ("" for tuning and template Workspaces)."""
    return str(((ws.get("inference") or {}).get("preset") or {}).get("name") or "")


class WorkspaceCountCollector(Collector):
    """Upstream Kaito's workspace gauges, from the informer cache at scrape time:
    `kaito_workspace_count{phase}`, `kaito_workspace_preset_count{preset_name}`, and ours,
    `kaito_workspace_state_count{state}` (`status.state`, finer than upstream's phases)."""

    def __init__(self, workspaces: StoreReader, claims: StoreReader | None = None) -> None:
        self._workspaces = workspaces
        self._claims = claims

    def collect(self) -> Iterator[GaugeMetricFamily]:
        phases: Tally[str] = Tally({phase: 0 for phase in PHASES})
        presets: Tally[str] = Tally()
        states: Tally[str] = Tally()
        for ws in self._workspaces.list():
            phases[workspace_phase(ws)] += 1
            if preset := inference_preset(ws):
                presets[preset] += 1
            states[str((ws.get("status") or {}).get("state") or "Pending")] += 1
        count = GaugeMetricFamily(
            "kaito_workspace_count",
            "Number of Workspaces in a certain phase (succeeded, error, pending, deleting).",
            labels=["phase"],
        )
        for phase, n in sorted(phases.items()):
            count.add_metric([phase], n)
        yield count
        by_preset = GaugeMetricFamily(
            "kaito_workspace_preset_count",
            "Number of inference Workspaces using each preset model, by preset name.",
            labels=["preset_name"],
        )
        for preset, n in sorted(presets.items()):
            by_preset.add_metric([preset], n)
        yield by_preset
        by_state = GaugeMetricFamily(
            "kaito_workspace_state_count",
            "Number of Workspaces by status.state (Pending, Ready, NotReady, Running, Succeeded, "
            "Failed).",
            labels=["state"],
        )
        for state, n in sorted(states.items()):
            by_state.add_metric([state], n)
        yield by_state
        if self._claims is not None:
            yield from _claim_gauges(self._claims.list())


def _claim_gauges(claims: list[Obj]) -> Iterator[GaugeMetricFamily]:
    """Upstream's PVC gauges over the Workspaces' weights cache claims (labelled
    kaito.sh/workspace): how many, and the bytes they hold (bound capacity, else the request)."""
    allocated = 0
    for claim in claims:
        capacity = ((claim.get("status") or {}).get("capacity") or {}).get("storage")
        requested = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get(
            "storage"
        )
        if size := capacity or requested:
            allocated += int(parse_quantity(size))
    count = GaugeMetricFamily(
        "kaito_workspace_pvc_count",
        "Number of PersistentVolumeClaims the Workspaces own (weights caches).",
    )
    count.add_metric([], len(claims))
    yield count
    size = GaugeMetricFamily(
        "kaito_workspace_pvc_allocated_bytes",
        "Bytes of storage the Workspaces' PersistentVolumeClaims hold (capacity once bound).",
    )
    size.add_metric([], allocated)
    yield size
