"""training_config.yaml parsing: sections into library types, unknown names are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuning_runner.config.training_config import check_output_dir, parse_training_config
from tuning_runner.errors import ConfigError

CHART_QLORA = """
training_config:
  ModelConfig:
    torch_dtype: "bfloat16"
    local_files_only: true
    device_map: "auto"
  QuantizationConfig:
    load_in_4bit: true
    bnb_4bit_quant_type: "nf4"
    bnb_4bit_compute_dtype: "bfloat16"
    bnb_4bit_use_double_quant: true
  LoraConfig:
    r: 8
    lora_alpha: 8
    lora_dropout: 0.0
  TrainingArguments:
    output_dir: "/mnt/results"
    ddp_find_unused_parameters: false
    save_strategy: "no"
    per_device_train_batch_size: 1
  DataCollator:
    mlm: true
  DatasetConfig:
    shuffle_dataset: true
    train_test_split: 1
"""


def test_parses_the_charts_qlora_template() -> None:
    cfg = parse_training_config(CHART_QLORA)
    assert cfg.quantized and cfg.quantization["bnb_4bit_quant_type"] == "nf4"
    assert cfg.lora == {"r": 8, "lora_alpha": 8, "lora_dropout": 0.0}
    assert cfg.model.torch_dtype == "bfloat16" and cfg.model.local_files_only
    assert cfg.output_dir == Path("/mnt/results")
    assert cfg.collator.mlm and cfg.dataset.train_test_split == 1


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("training_config:\n  Bogus: {}\n", "Unrecognized section: Bogus"),
        ("training_config:\n  LoraConfig: {rank: 8}\n", "LoraConfig has unknown key(s) rank"),
        (
            "training_config:\n  TrainingArguments: {epochs: 3}\n",
            "TrainingArguments has unknown key(s) epochs",
        ),
        (
            "training_config:\n  QuantizationConfig: {load_in_3bit: true}\n",
            "unknown key(s) load_in_3bit",
        ),
        ("training_config:\n  ModelConfig: {dtype_x: 1}\n", "unknown key dtype_x"),
        ("training_config:\n  DatasetConfig: {path: x}\n", "unknown key path"),
        (
            "training_config:\n  QuantizationConfig: {load_in_4bit: true, load_in_8bit: true}\n",
            "both load_in_4bit and load_in_8bit",
        ),
        ("training_config:\n  QuantizationConfig: {load_in_4bit: 'yes'}\n", "true or false"),
        ("other: 1\n", "top-level key training_config"),
        ("training_config: [1\n", "not valid YAML"),
        ("training_config:\n  LoraConfig: [1]\n", "must be a mapping"),
    ],
)
def test_errors_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_training_config(text)
    assert fragment in str(err.value)


def test_output_dir_must_stay_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "mnt"
    assert check_output_dir(root / "results", root) == (root / "results").resolve()
    assert check_output_dir(Path("results"), root) == (root / "results").resolve()
    for bad in (Path("/tmp/elsewhere"), root / ".." / "escape"):
        with pytest.raises(ConfigError, match="outside"):
            check_output_dir(bad, root)
