"""Training progress: published as Prometheus gauges and as a JSON file the controller reads.

The names and the document are the contract in `kaito_common.contracts.tuning_progress`.
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from kaito_common.contracts.tuning_progress import METRIC_HELP, Progress, write_progress_file

__all__ = ["Progress", "ProgressReporter"]


class ProgressReporter:
    """Publishes `Progress` to the gauges and the file."""

    def __init__(self, path: Path | None, registry: CollectorRegistry | None = None) -> None:
        self.path = path
        self.registry = registry or CollectorRegistry()
        self.progress = Progress()
        self._gauges = {
            name: Gauge(name, help_text, registry=self.registry)
            for name, help_text in METRIC_HELP.items()
        }
        self._set_gauges()

    def serve(self, host: str, port: int) -> None:
        if port:
            start_http_server(port, addr=host, registry=self.registry)

    def update(self, **changes: object) -> None:
        for key, value in changes.items():
            setattr(self.progress, key, value)
        self.progress.updated_at = time.time()
        self._set_gauges()
        if self.path is not None:
            write_progress_file(self.path, self.progress)

    def _set_gauges(self) -> None:
        for name, value in self.progress.metric_values().items():
            self._gauges[name].set(value)
