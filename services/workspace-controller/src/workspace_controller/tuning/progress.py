"""The trainer's progress (step/total, loss, ETA), read while it runs and when it ends.

Where it comes from:
- while training: the runner's Prometheus endpoint (`kaito_tuning_*` gauges on the trainer's
  `metrics` port), fetched by the controller from the pod's IP. This needs no RBAC in the pod and
  no exec: the runner only serves what it already exports for Prometheus. On kwok nodes the test
  plays the kubelet and gives the pod a loopback IP with a real runner reporter behind it.
- at the end: the trainer's termination message, where the runner writes its final progress JSON
  on success (on failure it writes `<Reason>: <message>` instead, see `job_status.py`).

The ETA is the runner's `kaito_tuning_eta_seconds` when it exports one; otherwise it is
extrapolated from the steps done since the trainer container started.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class TuningProgress:
    phase: str
    step: int
    total_steps: int
    loss: float | None = None
    epoch: float | None = None
    eta_seconds: float | None = None
    tokens_per_second: float | None = None

    def to_status(self) -> Obj:
        """`status.tuningProgress`: camelCase, rounded, unset values left out."""
        out: Obj = {"phase": self.phase, "step": self.step, "totalSteps": self.total_steps}
        for key, value, digits in (
            ("loss", self.loss, 4),
            ("epoch", self.epoch, 3),
            ("etaSeconds", self.eta_seconds, 0),
            ("tokensPerSecond", self.tokens_per_second, 1),
        ):
            if value is not None and math.isfinite(value):
                out[key] = round(value) if digits == 0 else round(value, digits)
        return out

    def describe(self) -> str:
        """`step 12 of 30, loss 2.41, about 42 s left` for condition messages."""
        parts = [f"step {self.step} of {self.total_steps}"]
        if self.loss is not None and math.isfinite(self.loss):
            parts.append(f"loss {self.loss:.4g}")
        if self.eta_seconds is not None and math.isfinite(self.eta_seconds):
            parts.append(f"about {round(self.eta_seconds)} s left")
        return ", ".join(parts)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_metrics(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text exposition (`name value`)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "{" in line:
            continue
        name, _, value = line.partition(" ")
        try:
            samples[name] = float(value.split()[0])
        except (ValueError, IndexError):
            continue
    return samples


def eta_from_rate(step: int, total: int, elapsed_s: float | None) -> float | None:
    if elapsed_s is None or step <= 0 or total <= 0 or elapsed_s <= 0:
        return None
    return max(0.0, elapsed_s / step * (total - step))


def progress_from_metrics(samples: dict[str, float], elapsed_s: float | None) -> TuningProgress:
    step = int(samples.get("kaito_tuning_step", 0))
    total = int(samples.get("kaito_tuning_total_steps", 0))
    eta = samples.get("kaito_tuning_eta_seconds")
    return TuningProgress(
        phase="Training",
        step=step,
        total_steps=total,
        loss=samples.get("kaito_tuning_loss"),
        epoch=samples.get("kaito_tuning_epoch"),
        eta_seconds=eta if eta is not None else eta_from_rate(step, total, elapsed_s),
        tokens_per_second=samples.get("kaito_tuning_tokens_per_second"),
    )


def progress_from_termination(message: str) -> TuningProgress | None:
    """The runner's final progress JSON from a termination message, or None for other text."""
    try:
        doc = json.loads(message)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "step" not in doc:
        return None
    step, total = _number(doc.get("step")), _number(doc.get("total_steps"))
    return TuningProgress(
        phase=str(doc.get("phase") or "Completed"),
        step=int(step or 0),
        total_steps=int(total or 0),
        loss=_number(doc.get("loss")),
        epoch=_number(doc.get("epoch")),
        eta_seconds=_number(doc.get("eta_seconds")),
        tokens_per_second=_number(doc.get("tokens_per_second")),
    )


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def container_status(pod: Obj, name: str) -> Obj | None:
    status = pod.get("status") or {}
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        if cs.get("name") == name:
            return dict(cs)
    return None


def metrics_port(pod: Obj, container: str, default: int) -> int:
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if c.get("name") == container:
            for port in c.get("ports") or []:
                if port.get("name") == "metrics":
                    return int(port["containerPort"])
    return default


class ProgressSource(Protocol):
    async def read(self, pod: Obj, container: str) -> TuningProgress | None:
        """The progress of `container` running in `pod`, or None when it cannot be read."""
        ...


class MetricsProgressSource:
    """Reads the trainer's Prometheus gauges from `http://<podIP>:<metrics port>/metrics`."""

    def __init__(
        self,
        default_port: int,
        timeout_s: float,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._default_port = default_port
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

    async def read(self, pod: Obj, container: str) -> TuningProgress | None:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            return None
        port = metrics_port(pod, container, self._default_port)
        host = f"[{ip}]" if ":" in str(ip) else str(ip)
        url = f"http://{host}:{port}/metrics"
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(url) as resp,
            ):
                if resp.status != 200:
                    return None
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            log.debug("Progress not read url=%s error=%r", url, err)
            return None
        samples = parse_metrics(text)
        if "kaito_tuning_step" not in samples:
            return None
        running = ((container_status(pod, container) or {}).get("state") or {}).get("running")
        started = _parse_time((running or {}).get("startedAt"))
        elapsed = (self._now() - started).total_seconds() if started else None
        return progress_from_metrics(samples, elapsed)


class FakeProgressSource:
    """Progress by pod name, for unit tests."""

    def __init__(self, by_pod: dict[str, TuningProgress] | None = None) -> None:
        self.by_pod = dict(by_pod or {})
        self.reads: list[str] = []

    async def read(self, pod: Obj, container: str) -> TuningProgress | None:
        name = str((pod.get("metadata") or {}).get("name"))
        self.reads.append(name)
        return self.by_pod.get(name)
