"""The download against the local hub (kaito_testing.hfhub), in process: what it fetches, how it
resumes, what it checks, and the operator's errors."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaito_common.weights import errors
from kaito_common.weights.download import WeightsDownload
from kaito_common.weights.marker import MARKER_NAME, read_marker
from kaito_common.weights.metrics import DownloadMetrics
from kaito_common.weights.partial import PARTIAL_DIR
from kaito_common.weights.settings import DownloadSettings
from kaito_testing.hfhub import LocalHub

REPO = "microsoft/Phi-3-mini-128k-instruct"
COMMIT = "1" * 40
SHARD = "model-00001-of-00002.safetensors"
MIB = 1024 * 1024


def _write_repo(folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "phi3", "seed": seed}))
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    (folder / SHARD).write_bytes(os.urandom(3 * MIB + 123))
    (folder / "model-00002-of-00002.safetensors").write_bytes(os.urandom(MIB // 2))
    (folder / "pytorch_model.bin").write_bytes(b"pickled weights are never fetched")
    (folder / "original").mkdir()
    (folder / "original" / "consolidated.safetensors").write_bytes(b"original checkpoint")
    return folder


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LocalHub]:
    with LocalHub() as started:
        started.add_repo(REPO, _write_repo(tmp_path / "repo", 1), commit=COMMIT)
        yield started


def _settings(hub: LocalHub, dest: Path, **changes: Any) -> DownloadSettings:
    values: dict[str, Any] = {
        "repo": REPO,
        "revision": COMMIT,
        "dest": dest,
        "endpoint": hub.url,
        "token": None,
        "termination_log": None,
        "backoff_s": 0,
        "attempts": 1,
        **changes,
    }
    return DownloadSettings(**values)


def _same_files(dest: Path, source: Path, names: list[str]) -> None:
    for name in names:
        assert (dest / name).read_bytes() == (source / name).read_bytes(), name


MODEL_FILES = ["config.json", "tokenizer.json", SHARD, "model-00002-of-00002.safetensors"]


def test_fetches_the_model_files_then_writes_the_marker(hub: LocalHub, tmp_path: Path) -> None:
    dest = tmp_path / "weights"
    marker = WeightsDownload(_settings(hub, dest)).run()
    _same_files(dest, tmp_path / "repo", MODEL_FILES)
    assert sorted(p.name for p in dest.iterdir()) == sorted([*MODEL_FILES, MARKER_NAME])
    assert marker == read_marker(dest)
    assert marker.commit == COMMIT and set(marker.files) == set(MODEL_FILES)
    assert marker.bytes == sum((tmp_path / "repo" / f).stat().st_size for f in MODEL_FILES)
    assert hub.bytes_served(REPO) == marker.bytes
    assert not hub.file_requests(REPO, "pytorch_model.bin")


def test_a_second_run_sends_no_request(hub: LocalHub, tmp_path: Path) -> None:
    dest = tmp_path / "weights"
    WeightsDownload(_settings(hub, dest)).run()
    hub.reset_counters()
    WeightsDownload(_settings(hub, dest, endpoint="http://127.0.0.1:9")).run()
    assert hub.requests == []


def test_a_restarted_download_fetches_only_the_rest(hub: LocalHub, tmp_path: Path) -> None:
    dest = tmp_path / "weights"
    hub.interrupt(REPO, SHARD, after_bytes=2 * MIB + 10)
    # One file at a time, in order: config.json completes, the shard is cut short.
    with pytest.raises(errors.HubUnreachableError, match=SHARD):
        WeightsDownload(_settings(hub, dest, workers=1)).run()
    assert not (dest / MARKER_NAME).exists() and not (dest / SHARD).exists()
    assert (dest / "config.json").exists()
    kept = (dest / PARTIAL_DIR / f"{SHARD}.part").stat().st_size
    assert kept == 2 * MIB + 10
    size = (tmp_path / "repo" / SHARD).stat().st_size
    hub.reset_counters()

    marker = WeightsDownload(_settings(hub, dest, workers=1)).run()

    [resumed] = hub.file_requests(REPO, SHARD)
    assert resumed.range == f"bytes={kept}-"
    assert resumed.status == 206 and resumed.body_bytes == size - kept
    assert not hub.file_requests(REPO, "config.json")
    config_size = (dest / "config.json").stat().st_size
    assert hub.bytes_served(REPO) == marker.bytes - kept - config_size
    _same_files(dest, tmp_path / "repo", MODEL_FILES)
    assert not (dest / PARTIAL_DIR).exists()


def test_a_dropped_connection_is_resumed_within_the_run(hub: LocalHub, tmp_path: Path) -> None:
    hub.interrupt(REPO, SHARD, after_bytes=MIB + MIB // 2)
    dest = tmp_path / "weights"
    WeightsDownload(_settings(hub, dest, attempts=3)).run()
    first, second = hub.file_requests(REPO, SHARD)
    assert first.range is None and second.range == f"bytes={MIB + MIB // 2}-"
    _same_files(dest, tmp_path / "repo", MODEL_FILES)


def test_a_corrupt_partial_file_is_caught_and_discarded(hub: LocalHub, tmp_path: Path) -> None:
    dest = tmp_path / "weights"
    partial = dest / PARTIAL_DIR
    partial.mkdir(parents=True)
    (partial / "state.json").write_text(json.dumps({"repo": REPO, "commit": COMMIT, "done": []}))
    (partial / f"{SHARD}.part").write_bytes(b"\0" * MIB)
    with pytest.raises(errors.IntegrityError, match=SHARD):
        WeightsDownload(_settings(hub, dest)).run()
    assert not (partial / f"{SHARD}.part").exists()
    WeightsDownload(_settings(hub, dest)).run()
    _same_files(dest, tmp_path / "repo", MODEL_FILES)


def test_not_enough_space_says_how_much_is_needed(hub: LocalHub, tmp_path: Path) -> None:
    download = WeightsDownload(_settings(hub, tmp_path / "weights"), free_bytes=lambda _: 1000)
    with pytest.raises(errors.DiskFullError) as caught:
        download.run()
    total = sum((tmp_path / "repo" / f).stat().st_size for f in MODEL_FILES)
    assert caught.value.needed == total and caught.value.free == 1000
    assert f"({total} bytes) more are needed" in str(caught.value)
    assert hub.file_requests(REPO) == []


def test_another_revision_replaces_the_previous_weights(hub: LocalHub, tmp_path: Path) -> None:
    dest = tmp_path / "weights"
    WeightsDownload(_settings(hub, dest)).run()
    other = "2" * 40
    newer = _write_repo(tmp_path / "repo2", 2)
    (newer / "model-00002-of-00002.safetensors").unlink()
    hub.add_repo(REPO, newer, commit=other)
    marker = WeightsDownload(_settings(hub, dest, revision=other)).run()
    assert marker.commit == other
    assert not (dest / "model-00002-of-00002.safetensors").exists()
    _same_files(dest, newer, ["config.json", SHARD])


def test_gated_repository(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo("meta-llama/Llama-3.1-8B-Instruct", tmp_path / "repo", commit=COMMIT,
                 gated=True, tokens=["hf_good"])  # fmt: skip
    hub.add_token("hf_no_access")
    gated = {"repo": "meta-llama/Llama-3.1-8B-Instruct"}
    with pytest.raises(errors.GatedWithoutTokenError, match="modelAccessSecret whose HF_TOKEN"):
        WeightsDownload(_settings(hub, tmp_path / "a", **gated)).run()
    with pytest.raises(errors.TokenRefusedError, match="Invalid credentials"):
        WeightsDownload(_settings(hub, tmp_path / "b", token="hf_unknown", **gated)).run()
    with pytest.raises(errors.TokenRefusedError, match="no access"):
        WeightsDownload(_settings(hub, tmp_path / "c", token="hf_no_access", **gated)).run()
    WeightsDownload(_settings(hub, tmp_path / "d", token="hf_good", **gated)).run()
    assert all(r.authorized for r in hub.file_requests("meta-llama/Llama-3.1-8B-Instruct"))


def test_unknown_repository_and_revision_are_named(hub: LocalHub, tmp_path: Path) -> None:
    with pytest.raises(
        errors.RepositoryNotFoundError, match=f"microsoft/nope \\(revision {COMMIT}"
    ):
        WeightsDownload(_settings(hub, tmp_path / "a", repo="microsoft/nope")).run()
    with pytest.raises(errors.RevisionNotFoundError, match=f"Revision {'3' * 40} .* {REPO}"):
        WeightsDownload(_settings(hub, tmp_path / "b", revision="3" * 40)).run()


def test_unreachable_hub_after_the_attempts(tmp_path: Path) -> None:
    settings = DownloadSettings(
        repo=REPO, revision=COMMIT, dest=tmp_path, endpoint="http://127.0.0.1:9", token=None,
        termination_log=None, attempts=3, backoff_s=0,
    )  # fmt: skip
    with pytest.raises(errors.HubUnreachableError, match=r"127\.0\.0\.1:9 .* after 3 attempt"):
        WeightsDownload(settings).run()


def test_progress_lines_and_gauges(
    hub: LocalHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub.rate_limit = 8 * MIB
    metrics = DownloadMetrics(REPO, COMMIT)
    settings = _settings(hub, tmp_path / "weights", progress_interval_s=0.1, workers=1)
    with caplog.at_level(logging.INFO, logger="kaito_common.weights"):
        marker = WeightsDownload(settings, metrics=metrics).run()
    lines = [r for r in caplog.records if r.getMessage() == "Downloading weights"]
    assert lines, [r.getMessage() for r in caplog.records]
    fields = vars(lines[-1])
    assert fields["total"] == "3.5 MiB" and fields["files"].endswith("/4")
    assert {"done", "percent", "rate", "eta"} <= set(fields)
    [start] = [r for r in caplog.records if r.getMessage() == "Started weights download"]
    assert vars(start)["token"] == "no" and vars(start)["endpoint"] == hub.url
    [final] = [r for r in caplog.records if r.getMessage() == "Downloaded weights"]
    assert vars(final)["files"] == 4

    def gauge(name: str) -> float | None:
        labels = {"repo": REPO, "revision": COMMIT}
        return metrics.registry.get_sample_value(name, labels)

    assert gauge("kaito_weights_download_bytes") == marker.bytes
    assert gauge("kaito_weights_download_total_bytes") == marker.bytes
    assert gauge("kaito_weights_download_files") == 4
    assert gauge("kaito_weights_download_eta_seconds") == 0
    assert gauge("kaito_weights_download_complete") == 1
