"""The runner's side of the progress contract: every gauge, and a file the controller can read."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from kaito_common.contracts.tuning_progress import (
    EPOCH_METRIC,
    ETA_SECONDS_METRIC,
    LOSS_METRIC,
    METRIC_HELP,
    STEP_METRIC,
    TOKENS_PER_SECOND_METRIC,
    TOTAL_STEPS_METRIC,
    parse_progress_json,
    parse_progress_metrics,
)
from tuning_runner.progress import ProgressReporter


def _exported(reporter: ProgressReporter) -> dict[str, float]:
    return parse_progress_metrics(generate_latest(reporter.registry).decode())


def test_unknown_values_are_not_exported_as_zero(tmp_path: Path) -> None:
    reporter = ProgressReporter(tmp_path / "progress.json")
    assert _exported(reporter) == {STEP_METRIC: 0.0, TOTAL_STEPS_METRIC: 0.0, EPOCH_METRIC: 0.0}


def test_every_gauge_is_exported_and_the_file_parses(tmp_path: Path) -> None:
    path = tmp_path / "out" / "progress.json"
    reporter = ProgressReporter(path)
    reporter.update(phase="Training", step=12, total_steps=30, epoch=0.8)
    reporter.update(loss=2.5, tokens_per_second=5234.0, eta_seconds=90.0)

    assert _exported(reporter) == {
        STEP_METRIC: 12.0,
        TOTAL_STEPS_METRIC: 30.0,
        EPOCH_METRIC: 0.8,
        LOSS_METRIC: 2.5,
        TOKENS_PER_SECOND_METRIC: 5234.0,
        ETA_SECONDS_METRIC: 90.0,
    }
    assert set(_exported(reporter)) == set(METRIC_HELP)
    assert parse_progress_json(path.read_text()) == reporter.progress
    assert not list(path.parent.glob(".*.tmp")), "the temp file is renamed over the file"
