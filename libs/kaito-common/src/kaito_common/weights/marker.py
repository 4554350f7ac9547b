"""The marker a completed download leaves in the weights volume, written last.

A rerun (a restarted pod, a reused volume) that finds a marker for the same repository and
revision, with its files in place, does not download again.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

MARKER_NAME = ".kaito-weights.json"


class WeightsMarker(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    repo: str
    revision: str
    commit: str
    endpoint: str
    files: dict[str, int]  # path -> size in bytes
    bytes: int
    completed_at: str


def read_marker(dest: Path) -> WeightsMarker | None:
    """The marker in `dest`; None when there is none or it cannot be read (then a download
    starts over, which is always safe)."""
    try:
        return WeightsMarker.model_validate_json((dest / MARKER_NAME).read_bytes())
    except (OSError, ValidationError):
        return None


def write_marker(dest: Path, marker: WeightsMarker) -> None:
    """Writes the marker atomically (a crash leaves either no marker or a whole one)."""
    scratch = dest / f"{MARKER_NAME}.tmp"
    scratch.write_text(marker.model_dump_json(indent=2) + "\n")
    os.replace(scratch, dest / MARKER_NAME)


def files_in_place(dest: Path, marker: WeightsMarker) -> bool:
    """Every file the marker lists is in `dest` with its size."""
    for path, size in marker.files.items():
        try:
            if (dest / path).stat().st_size != size:
                return False
        except OSError:
            return False
    return True
