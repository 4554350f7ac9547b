"""A stand-in for the trainer's progress gauges, named and filled as the contract says.

The e2e tests play the kubelet and the trainer: this serves what the tuning runner exports
(`kaito_common.contracts.tuning_progress`) without importing the runner.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from kaito_common.contracts.tuning_progress import METRIC_HELP, Progress


class TrainerGauges:
    """`update(step=3, loss=1.5, ...)` changes the progress and every gauge with it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.progress = Progress()
        self._gauges = {
            name: Gauge(name, help_text, registry=self.registry)
            for name, help_text in METRIC_HELP.items()
        }

    def update(self, **changes: object) -> None:
        for key, value in changes.items():
            setattr(self.progress, key, value)
        for name, value in self.progress.metric_values().items():
            self._gauges[name].set(value)
