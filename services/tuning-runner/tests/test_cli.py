"""The subcommands as the Job runs them: fetch over HTTP, train, push to a real registry, pull."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kaito_testing.dataserver import DataServer
from kaito_testing.registry import LocalRegistry
from tuning_runner.train.outputs import COMPLETION_MARKER

from .conftest import conversations, training_yaml, write_jsonl


def _runner(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuning_runner", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _env(tmp_path: Path) -> dict[str, str]:
    root = tmp_path / "mnt"
    return {
        "KAITO_TUNING_ROOT": str(root),
        "KAITO_TUNING_DATA_DIR": str(root / "data"),
        "KAITO_TUNING_CONFIG_PATH": str(root / "config" / "training_config.yaml"),
        "KAITO_TUNING_TERMINATION_LOG": str(tmp_path / "termination-log"),
        "KAITO_TUNING_METRICS_PORT": "0",
        "KAITO_TUNING_ALLOW_LOOPBACK_URLS": "true",
    }


def test_fetch_train_push_pull(
    tiny_model: Path, tmp_path: Path, data_server: DataServer, registry: LocalRegistry
) -> None:
    env = _env(tmp_path)
    root = tmp_path / "mnt"
    write_jsonl(data_server.root / "dolly.jsonl", conversations(80))
    fetched = _runner(["fetch", "--url", data_server.url_for("dolly.jsonl?token=x")], env)
    assert fetched.returncode == 0, fetched.stderr
    assert (root / "data" / "dolly.jsonl").stat().st_size > 0

    (root / "config").mkdir(parents=True)
    (root / "config" / "training_config.yaml").write_text(
        training_yaml(tiny_model, root / "results", extra_training={"max_steps": 3})
    )
    trained = _runner(["train"], env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "shape=conversational" in trained.stderr and "format=jsonl" in trained.stderr
    assert (root / "results" / COMPLETION_MARKER).is_file()
    final = json.loads((tmp_path / "termination-log").read_text())
    assert final["phase"] == "Completed" and final["step"] == 3

    secret = registry.write_docker_config(tmp_path / "push-secret" / ".dockerconfigjson")
    image = f"{registry.host}/tuned/tiny:v1"
    pushed = _runner(
        [
            "push",
            "--image",
            image,
            "--output-dir",
            str(root / "results"),
            "--model-name",
            "tiny-llama",
            "--docker-config",
            str(secret.parent),
        ],
        env,
    )
    assert pushed.returncode == 0, pushed.stderr
    pulled = _runner(
        [
            "pull",
            "--image",
            image,
            "--dest",
            str(tmp_path / "adapter" / "tiny"),
            "--docker-config",
            str(secret),
        ],
        env,
    )
    assert pulled.returncode == 0, pulled.stderr
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (tmp_path / "adapter" / "tiny" / name).read_bytes() == (
            root / "results" / name
        ).read_bytes()


def test_bad_inputs_fail_with_a_reason_and_nothing_presented_as_done(
    tiny_model: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    root = tmp_path / "mnt"
    (root / "data").mkdir(parents=True)
    (root / "config").mkdir()
    config = root / "config" / "training_config.yaml"
    log = tmp_path / "termination-log"
    cases = [
        ("corrupt", training_yaml(tiny_model, root / "results"), "InvalidDataset", "parquet"),
        ("section", "training_config:\n  Bogus: {}\n", "InvalidTrainingConfig", "Bogus"),
        (
            "outside",
            training_yaml(tiny_model, tmp_path / "elsewhere"),
            "InvalidTrainingConfig",
            "outside",
        ),
    ]
    (root / "data" / "train.parquet").write_bytes(b"PAR1 broken")
    for _name, text, reason, fragment in cases:
        config.write_text(text)
        log.unlink(missing_ok=True)
        result = _runner(["train"], env)
        assert result.returncode == 1, result.stderr[-2000:]
        message = log.read_text()
        assert message.startswith(f"{reason}: ") and fragment in message
        assert "\n" not in message
        assert not (root / "results" / COMPLETION_MARKER).exists()
        assert not (tmp_path / "elsewhere").exists()

    missing = _runner(
        ["push", "--image", "127.0.0.1:1/x:v1", "--output-dir", str(root / "results")], env
    )
    assert missing.returncode == 1 and log.read_text().startswith("AdapterPushFailed: ")
