"""Prometheus metrics with vLLM's names and buckets, in a registry owned by one app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from inference_server.engine.types import EngineStats

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
               10.0, 20.0, 40.0, 80.0)  # fmt: skip
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                   60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip


def _token_buckets(max_model_len: int) -> tuple[float, ...]:
    """vLLM's 1-2-5 series up to the context length."""
    out: list[float] = []
    scale = 1
    while True:
        for m in (1, 2, 5):
            value = m * scale
            if value > max_model_len:
                return tuple(out)
            out.append(float(value))
        scale *= 10


class ServerMetrics:
    def __init__(self, model_name: str, max_model_len: int = 8192) -> None:
        self.registry = CollectorRegistry()
        self.model_name = model_name
        r, labels = self.registry, ["model_name"]
        tokens = _token_buckets(max_model_len)
        self._running = Gauge(
            "vllm:num_requests_running", "Requests in the running batch", labels, registry=r
        )
        self._waiting = Gauge("vllm:num_requests_waiting", "Requests queued", labels, registry=r)
        self._kv = Gauge("vllm:kv_cache_usage_perc", "KV cache usage (0-1)", labels, registry=r)
        self._adapters = Gauge(
            "kaito_adapters_loaded", "LoRA adapters loaded beside the model", labels, registry=r
        )
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Prefilled prompt tokens", labels, registry=r
        ).labels(model_name)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generated tokens", labels, registry=r
        ).labels(model_name)
        self._success = Counter(
            "vllm:request_success",
            "Finished requests by finish reason",
            [*labels, "finished_reason"],
            registry=r,
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds", "TTFT", labels, buckets=TTFT_BUCKETS, registry=r
        ).labels(model_name)
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds", "ITL", labels, buckets=ITL_BUCKETS, registry=r
        ).labels(model_name)
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end latency",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=r,
        ).labels(model_name)
        self.queue_time = Histogram(
            "vllm:request_queue_time_seconds",
            "Time waiting for a batch slot",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=r,
        ).labels(model_name)
        self.request_prompt_tokens = Histogram(
            "vllm:request_prompt_tokens", "Prompt tokens", labels, buckets=tokens, registry=r
        ).labels(model_name)
        self.request_generation_tokens = Histogram(
            "vllm:request_generation_tokens", "Generated tokens", labels, buckets=tokens, registry=r
        ).labels(model_name)
        self.iteration_tokens = Histogram(
            "vllm:iteration_tokens_total",
            "Tokens per engine step",
            labels,
            buckets=(1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
            registry=r,
        ).labels(model_name)
        self.rate_limited = Counter(
            "kaito_ratelimit_rejected", "Requests rejected with 429", labels, registry=r
        ).labels(model_name)

    def finished(self, reason: str) -> None:
        self._success.labels(self.model_name, reason).inc()

    def render(self, stats: EngineStats) -> bytes:
        self._running.labels(self.model_name).set(stats.num_running)
        self._waiting.labels(self.model_name).set(stats.num_waiting)
        self._kv.labels(self.model_name).set(stats.kv_cache_usage)
        self._adapters.labels(self.model_name).set(len(stats.adapters))
        return generate_latest(self.registry)
