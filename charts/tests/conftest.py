"""Fixtures of the chart tests: helm and kubectl from the testbin, rendering, a private cluster.

The e2e tests start their own full control plane (not the session's `control_plane`): a Helm
release owns cluster-scoped objects (CRDs, the webhook configuration) that other test suites
create by hand, and Helm refuses to adopt objects it did not create.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_support import Helm, Obj

from kaito_testing.testbin import ensure_testbin

REPO = Path(__file__).resolve().parents[2]


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
    from kaito_testing.controlplane import ControlPlane

    with ControlPlane("full", tmp_path_factory.mktemp("chart-plane")) as plane:
        yield plane
