"""The trainer's progress, as the tuning runner publishes it and the workspace controller reads it.

Two channels carry the same numbers:
- Prometheus gauges on the trainer's `metrics` port (`kaito_tuning_*`, unlabelled), which the
  controller scrapes while the trainer runs. A gauge whose value is not known yet (loss before the
  first log, tokens/s and ETA before the first step) is NaN; readers treat NaN as absent.
- A JSON document (`Progress.to_json()`): the runner keeps it in a file beside its results and
  writes the final one as the trainer's termination message, which the controller reads when the
  Job ends.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

STEP_METRIC = "kaito_tuning_step"
TOTAL_STEPS_METRIC = "kaito_tuning_total_steps"
LOSS_METRIC = "kaito_tuning_loss"
EPOCH_METRIC = "kaito_tuning_epoch"
TOKENS_PER_SECOND_METRIC = "kaito_tuning_tokens_per_second"
ETA_SECONDS_METRIC = "kaito_tuning_eta_seconds"

METRIC_HELP: dict[str, str] = {
    STEP_METRIC: "Optimizer steps done",
    TOTAL_STEPS_METRIC: "Optimizer steps planned",
    LOSS_METRIC: "Latest training loss",
    EPOCH_METRIC: "Epochs done",
    TOKENS_PER_SECOND_METRIC: "Training tokens per second (non-padding)",
    ETA_SECONDS_METRIC: "Estimated seconds until training ends",
}
"""Every progress gauge the runner exports, with its help text."""

PROGRESS_SCHEMA_VERSION = 1

PHASES = ("Starting", "Training", "Saving", "Completed", "Failed")


@dataclass
class Progress:
    """The progress JSON document (snake_case keys, one object)."""

    phase: str = "Starting"  # one of PHASES
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

    def metric_values(self) -> dict[str, float]:
        """The value of every gauge in `METRIC_HELP`; NaN where not known yet."""

        def known(value: float | None) -> float:
            return math.nan if value is None else float(value)

        return {
            STEP_METRIC: float(self.step),
            TOTAL_STEPS_METRIC: float(self.total_steps),
            LOSS_METRIC: known(self.loss),
            EPOCH_METRIC: float(self.epoch),
            TOKENS_PER_SECOND_METRIC: known(self.tokens_per_second),
            ETA_SECONDS_METRIC: known(self.eta_seconds),
        }


def write_progress_file(path: Path, progress: Progress) -> None:
    """Replace `path` with the progress JSON atomically (temp file, rename): a reader never sees
    half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(progress.to_json())
    os.replace(tmp, path)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


_TEXT_FIELDS = ("phase", "message")
_INT_FIELDS = ("step", "total_steps", "tokens_seen", "schema_version")
_FLOAT_FIELDS = ("epoch", "loss", "tokens_per_second", "eta_seconds", "started_at", "updated_at")


def parse_progress_json(text: str) -> Progress | None:
    """The progress document in `text`, or None when `text` is something else (a failure
    message, a JSON value without `step`). A field that is missing or of the wrong type keeps
    its default."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "step" not in doc:
        return None
    progress = Progress()
    for key in _TEXT_FIELDS:
        if isinstance(doc.get(key), str) and doc[key]:
            setattr(progress, key, doc[key])
    for key in (*_INT_FIELDS, *_FLOAT_FIELDS):
        number = _number(doc.get(key))
        if number is not None:
            setattr(progress, key, int(number) if key in _INT_FIELDS else number)
    return progress


def parse_progress_metrics(text: str) -> dict[str, float]:
    """The progress gauges in a Prometheus text exposition, by metric name.

    Only unlabelled `kaito_tuning_*` samples with a finite value are kept (NaN means not known
    yet). ValueError when the text is not an exposition."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in METRIC_HELP and not sample.labels and math.isfinite(sample.value):
                samples[sample.name] = float(sample.value)
    return samples
