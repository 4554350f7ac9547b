"""Fixtures of the chart tests: helm and kubectl from the testbin, rendering, a private cluster.

The e2e tests start their own full control plane (not the session's `control_plane`): a Helm
release owns cluster-scoped objects (CRDs, the webhook configuration) that other test suites
create by hand, and Helm refuses to adopt objects it did not create.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack" / "demo"))
sys.path.insert(0, str(Path(__file__).parent))

from kaito_common.testing.testbin import ensure_testbin  # noqa: E402

CHART = REPO / "charts" / "kaito"
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
        argv = ["template", "kaito", str(CHART), "--namespace", namespace]
        for value in sets:
            argv += ["--set", value]
        return [d for d in yaml.safe_load_all(self.run(*argv).stdout) if d]


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    return ensure_testbin()


@pytest.fixture(scope="session")
def helm(bin_dir: Path) -> Helm:
    return Helm(bin_dir)


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> list[Obj]:
    return helm.template()


@pytest.fixture(scope="session")
def rendered_without_provisioner(helm: Helm) -> list[Obj]:
    return helm.template("gpu-provisioner.enabled=false")


@pytest.fixture(scope="module")
def chart_plane(bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from kaito_common.testing.controlplane import ControlPlane

    with ControlPlane("full", tmp_path_factory.mktemp("chart-plane")) as plane:
        yield plane
