"""Fixtures: a real registry on loopback, an HTTP data server, a tiny model, dataset writers."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaito_testing.dataserver import DataServer
from kaito_testing.registry import LocalRegistry, RegistryUnavailableError
from kaito_testing.tiny_model import tiny_model_dir
from tuning_runner.config.training_config import parse_training_config
from tuning_runner.progress import ProgressReporter
from tuning_runner.settings import RunnerSettings
from tuning_runner.train.runner import TrainResult, run_training

WORDS = [
    "the",
    "a",
    "model",
    "kaito",
    "world",
    "hello",
    "data",
    "train",
    "tune",
    "adapter",
    "lora",
    "fast",
    "small",
    "blue",
]


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    reg = LocalRegistry(tmp_path_factory.mktemp("registry"))
    try:
        reg.start()
    except RegistryUnavailableError as err:
        pytest.fail(f"{err} (make pytest installs it through TEST_DEPS)")
    yield reg
    reg.stop()


@pytest.fixture
def data_server(tmp_path: Path) -> Iterator[DataServer]:
    root = tmp_path / "served"
    root.mkdir()
    with DataServer(root) as server:
        yield server


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


def conversations(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Rows in the seed's dolly-15k-oai-style `messages` shape, with a learnable answer pattern."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
        a = "kaito says " + " ".join(sorted(q.split()))
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": a},
                ]
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def training_yaml(
    model: Path,
    output_dir: Path,
    *,
    quantized: bool = False,
    eight_bit: bool = False,
    extra_training: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
) -> str:
    """The chart's lora/qlora template with a local model and a short, fast schedule."""
    training: dict[str, Any] = {
        "output_dir": str(output_dir),
        "save_strategy": "no",
        "per_device_train_batch_size": 1,
        "max_steps": 8,
        "learning_rate": 0.003,
        "logging_steps": 1,
        "max_length": 256,
        **(extra_training or {}),
    }
    doc: dict[str, Any] = {
        "training_config": {
            "ModelConfig": {
                "torch_dtype": "bfloat16",
                "local_files_only": True,
                "device_map": "auto",
                "pretrained_model_name_or_path": str(model),
            },
            "LoraConfig": {"r": 8, "lora_alpha": 8, "lora_dropout": 0.0},
            "TrainingArguments": training,
            "DatasetConfig": {"shuffle_dataset": True, "train_test_split": 1, **(dataset or {})},
        }
    }
    if quantized:
        doc["training_config"]["QuantizationConfig"] = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_compute_dtype": "bfloat16",
            "bnb_4bit_use_double_quant": True,
        }
    if eight_bit:
        doc["training_config"]["QuantizationConfig"] = {"load_in_8bit": True}
    return json.dumps(doc)


def runner_settings(tmp_path: Path, rows: int = 120, **extra: Any) -> RunnerSettings:
    """The runner's settings over `rows` conversations written under `tmp_path/mnt/data`."""
    root = tmp_path / "mnt"
    (root / "data").mkdir(parents=True)
    write_jsonl(root / "data" / "train.jsonl", conversations(rows))
    return RunnerSettings(
        root=root,
        data_dir=root / "data",
        termination_log=tmp_path / "termination-log",
        metrics_port=0,
        **extra,
    )


def train_recording_losses(
    tmp_path: Path, settings: RunnerSettings, yaml_text: str
) -> tuple[list[float], TrainResult]:
    """Runs the training; the loss of every logged step and the result."""
    reporter = ProgressReporter(tmp_path / "progress.json")
    losses: list[float] = []
    original = reporter.update

    def record(**changes: object) -> None:
        if "loss" in changes and changes.get("phase") is None:
            losses.append(float(changes["loss"]))  # type: ignore[arg-type]
        original(**changes)

    reporter.update = record  # type: ignore[method-assign]
    return losses, run_training(parse_training_config(yaml_text), settings, reporter)
