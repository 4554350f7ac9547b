"""The trainer's progress (step/total, loss, ETA), read while it runs and when it ends.

Where it comes from:
- while training: the runner's Prometheus endpoint (`kaito_tuning_*` gauges on the trainer's
  `metrics` port), fetched by the controller from the pod's IP. This needs no RBAC in the pod and
  no exec: the runner only serves what it already exports for Prometheus. On kwok nodes the test
  plays the kubelet and gives the pod a loopback IP with a real runner reporter behind it.
- at the end: the trainer's termination message, where the runner writes its final progress JSON
  on success (on failure it writes `<Reason>: <message>` instead, see `job_status.py`).

Both are the contract in `kaito_common.contracts.tuning_progress`. The ETA is the runner's
`kaito_tuning_eta_seconds` when it exports one; otherwise it is extrapolated from the steps done
since the trainer container started.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from kaito_common.contracts.tuning_progress import (
    EPOCH_METRIC,
    ETA_SECONDS_METRIC,
    LOSS_METRIC,
    STEP_METRIC,
    TOKENS_PER_SECOND_METRIC,
    TOTAL_STEPS_METRIC,
    parse_progress_json,
    parse_progress_metrics,
)
from kaito_common.controller.objects import Obj

log = logging.getLogger(__name__)


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


def eta_from_rate(step: int, total: int, elapsed_s: float | None) -> float | None:
    if elapsed_s is None or step <= 0 or total <= 0 or elapsed_s <= 0:
        return None
    return max(0.0, elapsed_s / step * (total - step))


def progress_from_metrics(samples: dict[str, float], elapsed_s: float | None) -> TuningProgress:
    """Progress from the runner's gauges (`parse_progress_metrics`) while it trains."""
    step = int(samples.get(STEP_METRIC, 0))
    total = int(samples.get(TOTAL_STEPS_METRIC, 0))
    eta = samples.get(ETA_SECONDS_METRIC)
    return TuningProgress(
        phase="Training",
        step=step,
        total_steps=total,
        loss=samples.get(LOSS_METRIC),
        epoch=samples.get(EPOCH_METRIC),
        eta_seconds=eta if eta is not None else eta_from_rate(step, total, elapsed_s),
        tokens_per_second=samples.get(TOKENS_PER_SECOND_METRIC),
    )


def progress_from_termination(message: str) -> TuningProgress | None:
    """The runner's final progress JSON from a termination message, or None for other text."""
    doc = parse_progress_json(message)
    if doc is None:
        return None
    return TuningProgress(
        phase=doc.phase,
        step=doc.step,
        total_steps=doc.total_steps,
        loss=doc.loss,
        epoch=doc.epoch,
        eta_seconds=doc.eta_seconds,
        tokens_per_second=doc.tokens_per_second,
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
        try:
            samples = parse_progress_metrics(text)
        except ValueError as err:
            log.debug("Progress not parsed url=%s error=%r", url, err)
            return None
        if STEP_METRIC not in samples:
            return None
        running = ((container_status(pod, container) or {}).get("state") or {}).get("running")
        started = _parse_time((running or {}).get("startedAt"))
        elapsed = (self._now() - started).total_seconds() if started else None
        return progress_from_metrics(samples, elapsed)
