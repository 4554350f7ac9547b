"""A Trainer callback that feeds the progress reporter and the log."""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tuning_runner.logs import log
from tuning_runner.progress import ProgressReporter


class ProgressCallback(TrainerCallback):
    def __init__(self, reporter: ProgressReporter) -> None:
        self.reporter = reporter
        self._start = 0.0
        self._start_step = 0
        self._start_tokens = 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self._start = time.monotonic()
        self._start_step = state.global_step
        self._start_tokens = int(state.num_input_tokens_seen or 0)
        self.reporter.update(
            phase="Training", step=state.global_step, total_steps=state.max_steps, epoch=0.0
        )
        log("Started training", step=state.global_step, total_steps=state.max_steps)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        steps = state.global_step - self._start_step
        tokens = int(state.num_input_tokens_seen or 0)
        eta = (state.max_steps - state.global_step) * elapsed / steps if steps else None
        self.reporter.update(
            step=state.global_step,
            total_steps=state.max_steps,
            epoch=float(state.epoch or 0.0),
            tokens_seen=tokens,
            tokens_per_second=(tokens - self._start_tokens) / elapsed,
            eta_seconds=eta,
        )

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        if not logs or "loss" not in logs:
            return
        p = self.reporter.progress
        self.reporter.update(loss=float(logs["loss"]))
        log(
            "Trained steps",
            step=state.global_step,
            total_steps=state.max_steps,
            loss=round(float(logs["loss"]), 4),
            epoch=round(float(state.epoch or 0.0), 3),
            tokens_per_second=round(p.tokens_per_second or 0.0, 1),
            eta_seconds=round(p.eta_seconds or 0.0, 1),
        )
