"""Score an adapter the same way for both runs: mean loss over the dataset's assistant tokens
(and over all tokens), base model in float32. Rows are scored in right-padded batches of similar
length (padding is masked out of attention and of the loss). Prints one JSON line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

BATCH = 32


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
    examples.sort(key=lambda ex: len(ex.input_ids))
    sums = {"assistant": 0.0, "all": 0.0}
    counts = {"assistant": 0, "all": 0}
    with torch.inference_mode():
        for start in range(0, len(examples), BATCH):
            chunk = examples[start : start + BATCH]
            width = max(len(ex.input_ids) for ex in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            valid = torch.zeros((len(chunk), width), dtype=torch.long)
            labels = torch.full((len(chunk), width), IGNORE_INDEX, dtype=torch.long)
            for i, ex in enumerate(chunk):
                n = len(ex.input_ids)
                ids[i, :n] = torch.tensor(ex.input_ids)
                valid[i, :n] = 1
                labels[i, :n] = torch.tensor(ex.labels)
            logits = model(input_ids=ids, attention_mask=valid, use_cache=False).logits
            losses = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().transpose(1, 2), ids[:, 1:], reduction="none"
            )
            every = valid[:, 1:].bool()
            assistant = labels[:, 1:] != IGNORE_INDEX
            sums["assistant"] += float(losses[assistant].sum())
            counts["assistant"] += int(assistant.sum())
            sums["all"] += float(losses[every].sum())
            counts["all"] += int(every.sum())
    print(json.dumps({k: sums[k] / counts[k] for k in sums}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
