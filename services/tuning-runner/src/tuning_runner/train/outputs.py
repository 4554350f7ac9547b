"""The output folder: adapter files appear whole, and the completion marker comes last."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tuning_runner.errors import TrainingError

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
COMPLETION_MARKER = "fine_tuning_completed.txt"


def is_complete(output_dir: Path) -> bool:
    return (output_dir / COMPLETION_MARKER).is_file() and all(
        (output_dir / name).is_file() for name in ADAPTER_FILES
    )


def clear_stale_marker(output_dir: Path) -> None:
    """A marker without its adapter files is a lie left by an earlier run: remove it."""
    marker = output_dir / COMPLETION_MARKER
    if marker.exists() and not is_complete(output_dir):
        marker.unlink()


def publish_adapter(staging: Path, output_dir: Path) -> list[Path]:
    """Move the adapter files from `staging` (same filesystem) into `output_dir`, then mark done."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / COMPLETION_MARKER).unlink(missing_ok=True)
    published = []
    for name in sorted(os.listdir(staging)):
        source = staging / name
        if source.is_file():
            os.replace(source, output_dir / name)
            published.append(output_dir / name)
    missing = [n for n in ADAPTER_FILES if not (output_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"saving the adapter produced no {', '.join(missing)}")
    marker_tmp = output_dir / f".{COMPLETION_MARKER}.tmp"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    marker_tmp.write_text(f"Fine-Tuning completed at {stamp}\n")
    os.replace(marker_tmp, output_dir / COMPLETION_MARKER)
    return published


def staging_dir(output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".adapter-", dir=output_dir))


def remove_staging(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def save_adapter(model: Any, output_dir: Path) -> list[Path]:
    """Save the trained adapter into a staging folder, then publish it (marker last)."""
    staging = staging_dir(output_dir)
    try:
        model.save_pretrained(str(staging))
        return publish_adapter(staging, output_dir)
    except OSError as err:
        raise TrainingError(f"writing the adapter to {output_dir} failed: {err}") from err
    finally:
        remove_staging(staging)
