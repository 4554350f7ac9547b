"""The baseline: the recipe Kaito's tuning image runs, on the same config, model and data.

Kaito's fine_tuning.py: tokenizer (pad := eos when missing), model from ModelConfig, peft
LoraConfig, `SFTTrainer(model, processing_class=tokenizer, train_dataset, args=SFTConfig,
data_collator=DataCollatorForLanguageModeling)`; batch 1, no packing. Written here from that
description (Kaito's code is not vendored). Prints one JSON line of metrics.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml


def main(config_path: str, data_file: str) -> None:
    from datasets import load_dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    sections = yaml.safe_load(Path(config_path).read_text())["training_config"]
    model_cfg = dict(sections["ModelConfig"])
    path = model_cfg.pop("pretrained_model_name_or_path")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=model_cfg.get("torch_dtype", "auto"),
        device_map=model_cfg.get("device_map"),
        local_files_only=True,
    )
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **sections["LoraConfig"]))
    dataset = load_dataset("json", data_files=data_file, split="train").shuffle(seed=42)
    args = SFTConfig(**sections["TrainingArguments"], use_cpu=True, dataset_text_field=None)  # type: ignore[arg-type]
    trainer = SFTTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=dataset,
        args=args,
        data_collator=DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False),
    )
    start = time.monotonic()
    result = trainer.train()
    wall = time.monotonic() - start
    logs = [h for h in trainer.state.log_history if "loss" in h]
    tokens = int(logs[-1].get("num_tokens", 0)) if logs else 0
    model.save_pretrained(str(args.output_dir))
    print(
        json.dumps(
            {
                "steps": trainer.state.global_step,
                "train_seconds": float(result.metrics["train_runtime"]),
                "train_wall_seconds": wall,
                "tokens": tokens,
                "final_loss": float(logs[-1]["loss"]) if logs else None,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
