"""Prometheus metrics of the provisioner, on the manager's registry (served at /metrics)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gpu_provisioner import claims
from gpu_provisioner.conditions import INITIALIZED, LAUNCHED, READY, REGISTERED
from kaito_common.controller import objects
from kaito_common.controller.objects import Obj

PHASES = ("Launching", "Registering", "Initializing", "Ready", "Failed", "Terminating")


def _status(claim: Obj, type_: str) -> str:
    for cond in (claim.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return str(cond.get("status"))
    return "Unknown"


def phase(claim: Obj) -> str:
    """One word for where a claim is in its lifecycle."""
    if objects.is_deleting(claim):
        return "Terminating"
    if _status(claim, READY) == "True":
        return "Ready"
    if _status(claim, LAUNCHED) == "False":
        return "Failed"
    if _status(claim, LAUNCHED) != "True":
        return "Launching"
    if _status(claim, REGISTERED) != "True":
        return "Registering"
    if _status(claim, INITIALIZED) != "True":
        return "Initializing"
    return "Ready"


class _ClaimsByPhase(Collector):
    def __init__(self, source: Callable[[], Iterable[Obj]]) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "gpu_provisioner_nodeclaims", "Managed NodeClaims by lifecycle phase.", labels=["phase"]
        )
        tally = Tally(phase(c) for c in self._source() if claims.is_managed(c))
        for name in PHASES:
            family.add_metric([name], tally.get(name, 0))
        yield family


class ProvisionerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.launch_duration = Histogram(
            "gpu_provisioner_launch_duration_seconds",
            "Time from starting a cloud create to the instance with its node, by result.",
            ["cloud", "result"],
            registry=self.registry,
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200),
        )
        self.cloud_errors = Counter(
            "gpu_provisioner_cloud_errors",
            "Cloud API errors by operation and the cloud's error code.",
            ["cloud", "operation", "code"],
            registry=self.registry,
        )
        self.api_errors = Counter(
            "gpu_provisioner_kube_api_errors",
            "Kubernetes API errors met by NodeClaim reconciles, by HTTP status and reason "
            "(409 Conflict ones are requeued, not failed).",
            ["status", "reason"],
            registry=self.registry,
        )

    def watch_claims(self, source: Callable[[], Iterable[Obj]]) -> None:
        """Report claims by phase from `source` (the NodeClaim cache) at each scrape."""
        self.registry.register(_ClaimsByPhase(source))
