"""Helpers shared by the chart tests (a module of its own: every test folder has a conftest,
and `from conftest import ...` would pick whichever one pytest imported first)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kaito"
# The one value the chart requires: the registry of the project's images (docs/installation.md).
REGISTRY = "registry.example:5000/kaito"
REGISTRY_VALUE = f"global.image.registry={REGISTRY}"
Obj = dict[str, Any]


class Helm:
    """The testbin's helm, rendering the chart."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.path = bin_dir / "helm"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.path), *args], capture_output=True, text=True, timeout=120, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    def template(self, *sets: str, namespace: str = "kaito-workspace") -> list[Obj]:
        """The rendered chart, with `global.image.registry` set (a later `sets` wins)."""
        # `helm test` hooks are not installed objects (test_chart_observability renders them).
        argv = ["template", "kaito", str(CHART), "--namespace", namespace, "--skip-tests"]
        for value in (REGISTRY_VALUE, *sets):
            argv += ["--set", value]
        return [d for d in yaml.safe_load_all(self.run(*argv).stdout) if d]
