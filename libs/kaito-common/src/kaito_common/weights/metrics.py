"""The download's Prometheus gauges (served while the command runs with --metrics-port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from kaito_common.weights.progress import ProgressSnapshot

LABELS = ("repo", "revision")
BYTES = "kaito_weights_download_bytes"
TOTAL_BYTES = "kaito_weights_download_total_bytes"
RATE = "kaito_weights_download_rate_bytes_per_second"
ETA = "kaito_weights_download_eta_seconds"
FILES = "kaito_weights_download_files"
TOTAL_FILES = "kaito_weights_download_total_files"
COMPLETE = "kaito_weights_download_complete"

METRIC_HELP = {
    BYTES: "Bytes of the model's files in the weights volume (resumed bytes included).",
    TOTAL_BYTES: "Bytes of the model's files to download in all.",
    RATE: "Bytes per second this run has downloaded, on average.",
    ETA: "Seconds the download still needs at the current rate (-1: unknown).",
    FILES: "Files completely downloaded.",
    TOTAL_FILES: "Files to download in all.",
    COMPLETE: "1 once every file is in place and the marker is written.",
}


class DownloadMetrics:
    """The gauges of one download, labelled with its repository and revision."""

    def __init__(self, repo: str, revision: str, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self._gauges = {
            name: Gauge(name, help_text, LABELS, registry=self.registry).labels(repo, revision)
            for name, help_text in METRIC_HELP.items()
        }

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Serves /metrics on `port` (0: not at all) in a daemon thread."""
        if port:
            start_http_server(port, addr=host, registry=self.registry)

    def publish(self, snapshot: ProgressSnapshot) -> None:
        eta = snapshot.eta_s
        self._gauges[BYTES].set(snapshot.bytes_done)
        self._gauges[TOTAL_BYTES].set(snapshot.bytes_total)
        self._gauges[RATE].set(snapshot.rate)
        self._gauges[ETA].set(-1 if eta is None else eta)
        self._gauges[FILES].set(snapshot.files_done)
        self._gauges[TOTAL_FILES].set(snapshot.files_total)

    def completed(self) -> None:
        self._gauges[COMPLETE].set(1)
