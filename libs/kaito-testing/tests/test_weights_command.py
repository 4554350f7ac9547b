"""`python -m kaito_common.weights download` end to end, as the init container runs it: a
subprocess reaching the local hub through HF_ENDPOINT, the preset's repository and revision from
the catalog, a tiny Phi-3 (LongRoPE) model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaito_testing.hfhub import LocalHub, ServedPreset, serve_preset
from kaito_testing.ports import free_port
from kaito_testing.tiny_model import tiny_model_dir

PRESET = "phi-3-mini-128k-instruct"


@pytest.fixture(scope="module")
def phi3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(
        tmp_path_factory, arch="phi3", long_rope=True, hidden_size=32, num_layers=1, num_heads=2
    )


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub() as started:
        yield started


def _command(served: ServedPreset, dest: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "kaito_common.weights", "download",
        "--repo", served.repo_id, "--revision", served.revision, "--dest", str(dest),
        "--termination-log", str(dest.parent / "termination-log"), "--backoff", "0", *extra,
    ]  # fmt: skip


def _env(hub: LocalHub, token: str | None = None) -> dict[str, str]:
    # The runtime images set HF_HUB_OFFLINE=1 for the servers; the init container inherits it.
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "1"}
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return env


def _run(
    served: ServedPreset, dest: Path, hub: LocalHub, *extra: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(served, dest, *extra), env=_env(hub, token), capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip


def _termination(dest: Path) -> str:
    path = dest.parent / "termination-log"
    return path.read_text() if path.exists() else ""


def test_downloads_the_preset_logs_progress_and_skips_a_rerun(
    hub: LocalHub, phi3_dir: Path, tmp_path: Path
) -> None:
    served = serve_preset(hub, PRESET, phi3_dir)
    dest = tmp_path / "weights"
    size = (phi3_dir / "model.safetensors").stat().st_size
    hub.rate_limit = max(size // 2, 64 * 1024)  # about two seconds for the weights
    port = free_port()
    process = subprocess.Popen(
        _command(served, dest, "--progress-interval", "0.3", "--metrics-port", str(port),
                 "--workers", "1"),
        env=_env(hub), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    scraped = ""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as page:
                scraped = page.read().decode()
            if "kaito_weights_download_total_bytes{" in scraped:
                break
        except OSError:
            time.sleep(0.1)
    _, log = process.communicate(timeout=120)
    assert process.returncode == 0, log
    assert f'repo="{served.repo_id}"' in scraped and f'revision="{served.revision}"' in scraped

    start = re.search(r"INFO kaito_common.weights Started weights download (.*)", log)
    assert start is not None, log
    assert f"endpoint={hub.url}" in start.group(1) and "token=no" in start.group(1)
    progress = re.findall(r"Downloading weights .*", log)
    assert progress, log
    assert all(re.search(r"rate=\"[\d.]+ \w+/s\" eta=\S+ files=\d/\d", p) for p in progress)
    assert re.search(r"Downloaded weights .*files=\d+ .*duration=\S+ rate=", log), log
    assert "HTTP Request" not in log and "it/s]" not in log  # no client chatter, no tqdm bars

    marker = (dest / ".kaito-weights.json").read_text()
    assert served.revision in marker and served.repo_id in marker
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(dest, local_files_only=True)
    assert model.config.rope_parameters["rope_type"] == "longrope"
    AutoTokenizer.from_pretrained(dest, local_files_only=True)

    hub.reset_counters()
    again = _run(served, dest, hub)
    assert again.returncode == 0, again.stderr
    assert "Weights already present" in again.stderr
    assert [r for r in hub.requests if "agent-harnesses" not in r.path] == []


def test_a_restarted_container_resumes_the_file(
    hub: LocalHub, phi3_dir: Path, tmp_path: Path
) -> None:
    served = serve_preset(hub, PRESET, phi3_dir)
    dest = tmp_path / "weights"
    size = (phi3_dir / "model.safetensors").stat().st_size
    cut = size // 2
    hub.interrupt(served.repo_id, "model.safetensors", after_bytes=cut)
    failed = _run(served, dest, hub, "--attempts", "1", "--workers", "1")
    assert failed.returncode == 1
    message = _termination(dest)
    assert message.startswith(
        f"Could not reach the Hugging Face hub at {hub.url} while downloading"
    )
    assert "model.safetensors" in message
    kept = (dest / ".kaito-weights.partial" / "model.safetensors.part").stat().st_size
    assert kept == cut
    hub.reset_counters()

    resumed = _run(served, dest, hub)
    assert resumed.returncode == 0, resumed.stderr
    [request] = hub.file_requests(served.repo_id, "model.safetensors")
    assert request.range == f"bytes={cut}-" and request.body_bytes == size - cut
    assert (dest / "model.safetensors").read_bytes() == (
        phi3_dir / "model.safetensors"
    ).read_bytes()


def test_gated_repository_messages(hub: LocalHub, phi3_dir: Path, tmp_path: Path) -> None:
    served = serve_preset(hub, PRESET, phi3_dir, gated=True, tokens=["hf_granted"])
    without = _run(served, tmp_path / "a" / "weights", hub)
    assert without.returncode == 1
    assert _termination(tmp_path / "a" / "weights") == (
        f"Hugging Face repository {served.repo_id} is gated: give the Workspace a "
        "modelAccessSecret whose HF_TOKEN can read it"
    )
    refused = _run(served, tmp_path / "b" / "weights", hub, token="hf_wrong")
    assert refused.returncode == 1
    assert "refused the HF_TOKEN" in _termination(tmp_path / "b" / "weights")
    assert "hf_wrong" not in refused.stderr + _termination(tmp_path / "b" / "weights")
    granted = _run(served, tmp_path / "c" / "weights", hub, token="hf_granted")
    assert granted.returncode == 0, granted.stderr
    assert "token=yes" in granted.stderr and "hf_granted" not in granted.stderr


def test_unknown_revision_names_repository_and_revision(
    hub: LocalHub, phi3_dir: Path, tmp_path: Path
) -> None:
    served = serve_preset(hub, PRESET, phi3_dir)
    wrong = ServedPreset(served.preset, served.repo_id, "f" * 40, served.commit, False)
    result = _run(wrong, tmp_path / "weights", hub)
    assert result.returncode == 1
    message = _termination(tmp_path / "weights")
    assert message == (
        f"Revision {'f' * 40} was not found in Hugging Face repository {served.repo_id} at "
        f"{hub.url}: check the pinned commit"
    )
    assert message in result.stderr
