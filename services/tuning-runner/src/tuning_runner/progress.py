"""Training progress: Prometheus gauges and a small JSON file the controller reads.

The JSON is replaced atomically (write to a temp file, rename), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, start_http_server

PROGRESS_SCHEMA_VERSION = 1


@dataclass
class Progress:
    phase: str = "Starting"  # Starting, Training, Saving, Completed, Failed
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    tokens_seen: int = 0
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    message: str = ""
    schema_version: int = PROGRESS_SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class ProgressReporter:
    """Publishes `Progress` to the gauges and the file."""

    def __init__(self, path: Path | None, registry: CollectorRegistry | None = None) -> None:
        self.path = path
        self.registry = registry or CollectorRegistry()
        self.progress = Progress()
        self._step = Gauge("kaito_tuning_step", "Optimizer steps done", registry=self.registry)
        self._total = Gauge(
            "kaito_tuning_total_steps", "Optimizer steps planned", registry=self.registry
        )
        self._loss = Gauge("kaito_tuning_loss", "Latest training loss", registry=self.registry)
        self._epoch = Gauge("kaito_tuning_epoch", "Epochs done", registry=self.registry)
        self._tps = Gauge(
            "kaito_tuning_tokens_per_second",
            "Training tokens per second (non-padding)",
            registry=self.registry,
        )

    def serve(self, host: str, port: int) -> None:
        if port:
            start_http_server(port, addr=host, registry=self.registry)

    def update(self, **changes: object) -> None:
        for key, value in changes.items():
            setattr(self.progress, key, value)
        p = self.progress
        p.updated_at = time.time()
        self._step.set(p.step)
        self._total.set(p.total_steps)
        self._epoch.set(p.epoch)
        if p.loss is not None:
            self._loss.set(p.loss)
        if p.tokens_per_second is not None:
            self._tps.set(p.tokens_per_second)
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(self.progress.to_json())
        os.replace(tmp, self.path)
