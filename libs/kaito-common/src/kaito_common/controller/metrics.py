"""Prometheus metrics of the framework, on a registry owned by one manager.

A registry per manager (not the process-global one) lets tests run several managers at once.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconcile_total = Counter(
            "controller_runtime_reconcile_total",
            "Reconciles by controller and result (success, requeue_after, error, terminal_error).",
            ["controller", "result"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Duration of reconciles.",
            ["controller"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.workqueue_depth = Gauge(
            "workqueue_depth", "Keys waiting in the queue.", ["name"], registry=self.registry
        )
        self.workqueue_retries = Counter(
            "workqueue_retries_total",
            "Keys re-added with backoff after an error.",
            ["name"],
            registry=self.registry,
        )
        self.informer_relists = Counter(
            "informer_relists_total",
            "Full lists by informers (the first one and after 410 Gone).",
            ["resource"],
            registry=self.registry,
        )
        self.informer_watch_restarts = Counter(
            "informer_watch_errors_total",
            "Watch connections that ended with an error.",
            ["resource"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "leader_election_master_status",
            "1 when this process holds the lease.",
            ["name"],
            registry=self.registry,
        )
