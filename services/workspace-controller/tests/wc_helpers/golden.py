"""Golden files: `UPDATE_GOLDEN=1 pytest` rewrites them; otherwise a builder must match."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

GOLDEN_DIR = Path(__file__).parent.parent / "golden"


def assert_golden(name: str, value: Any) -> None:
    path = GOLDEN_DIR / f"{name}.yaml"
    text = yaml.safe_dump(value, sort_keys=False, width=100)
    if os.environ.get("UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if os.environ.get("UPDATE_GOLDEN") != "1":
            raise AssertionError(f"golden file {path.name} was missing and has been written")
    assert text == path.read_text(), f"{path.name} differs; rerun with UPDATE_GOLDEN=1 if intended"
