"""The transformers Trainer over packed rows: built, resumed from the last checkpoint, run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuning_runner.config.training_config import TrainingConfig
from tuning_runner.data.packing import PackedRow, PaddingFreeCollator, RowDataset
from tuning_runner.errors import TrainingError
from tuning_runner.logs import log
from tuning_runner.progress import ProgressReporter
from tuning_runner.train.arguments import TrainingPlan
from tuning_runner.train.callback import ProgressCallback


def quiet_library_output() -> None:
    """No tqdm bars from transformers, the hub or datasets (trl's dependency) in the pod's log
    (`callback.py` logs progress lines instead), and transformers' own log records through the
    root handler, in the runner's log format."""
    from huggingface_hub.utils.tqdm import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.disable_default_handler()  # its records go through the root handler instead
    hf_logging.enable_propagation()
    try:
        import datasets
    except ImportError:  # only trl pulls it in
        return
    datasets.disable_progress_bars()


def build_trainer(
    cfg: TrainingConfig,
    plan: TrainingPlan,
    args: Any,
    model: Any,
    tokenizer: Any,
    packed: list[PackedRow],
    reporter: ProgressReporter,
) -> Any:
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback

    pad_id = int(tokenizer.pad_token_id or 0)
    # Packed batches all get the same length, so every step has the same shapes.
    fixed = plan.row_tokens * args.per_device_train_batch_size if plan.packing else None
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=RowDataset(packed),
        data_collator=PaddingFreeCollator(cfg.collator.pad_to_multiple_of, pad_id, fixed),
        processing_class=tokenizer,  # its pad id tells the token count what is padding
        callbacks=[ProgressCallback(reporter)],
    )
    # With tqdm off (arguments.py) the Trainer prints each log dict to stdout instead; the
    # ProgressCallback already logs those numbers as structured lines.
    trainer.remove_callback(PrinterCallback)
    return trainer


def train(trainer: Any, output_dir: Path) -> Any:
    """Run training, from the last checkpoint in `output_dir` if there is one."""
    from transformers.trainer_utils import get_last_checkpoint

    resume = None
    if output_dir.is_dir():
        resume = get_last_checkpoint(str(output_dir))  # type: ignore[no-untyped-call]
    if resume:
        log("Resumed from checkpoint", checkpoint=resume)
    try:
        return trainer.train(resume_from_checkpoint=resume)
    except (RuntimeError, ValueError) as err:
        raise TrainingError(f"training stopped with an error: {err}") from err


def evaluate(trainer: Any, packed: list[PackedRow]) -> None:
    metrics = trainer.evaluate(eval_dataset=RowDataset(packed))
    log("Evaluated held-out rows", eval_loss=round(float(metrics.get("eval_loss", 0.0)), 4))
