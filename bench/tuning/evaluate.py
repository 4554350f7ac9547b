"""Score an adapter the same way for both runs: mean loss over the dataset's assistant tokens
(and over all tokens), base model in float32. Prints one JSON line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(model_dir: str, adapter_dir: str, data_file: str) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuning_runner.config.sections import DatasetSection
    from tuning_runner.data.examples import IGNORE_INDEX, tokenize_rows

    tok = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    rows = [json.loads(line) for line in Path(data_file).read_text().splitlines() if line]
    examples = tokenize_rows(tok, rows, DatasetSection(), 4096).examples
    sums = {"assistant": 0.0, "all": 0.0}
    counts = {"assistant": 0, "all": 0}
    with torch.no_grad():
        for ex in examples:
            ids = torch.tensor([ex.input_ids])
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            targets = ids[0, 1:]
            losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
            mask = torch.tensor(ex.labels[1:]) != IGNORE_INDEX
            sums["assistant"] += float(losses[mask].sum())
            counts["assistant"] += int(mask.sum())
            sums["all"] += float(losses.sum())
            counts["all"] += len(targets)
    print(json.dumps({k: sums[k] / counts[k] for k in sums}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
