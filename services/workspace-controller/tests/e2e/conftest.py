"""One workspace controller process for the session, against the full local control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from kubernetes_asyncio.client import ApiClient
from wc_helpers.cluster import (
    RELEASE_NAMESPACE,
    REPO,
    WEBHOOK_CONFIG,
    ControllerProcess,
    install_crds,
)

from kaito_common.controller.client import KubeClient
from kaito_testing.controlplane import ControlPlane

CHART_FILES = REPO / "charts" / "kaito" / "charts" / "workspace-controller" / "files"
TEMPLATE_FILES = {
    "lora-params-template": "training_config.yaml",
    "qlora-params-template": "training_config.yaml",
    "inference-params-template": "inference_config.yaml",
}


@pytest.fixture(scope="session")
def controller(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerProcess]:
    install_crds(control_plane)
    install_release_templates(control_plane)
    proc = ControllerProcess(control_plane, tmp_path_factory.mktemp("workspace-controller"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        # Nothing answers the webhook any more: unregister it so later tests are not refused.
        control_plane.kubectl(
            "delete", "validatingwebhookconfiguration", WEBHOOK_CONFIG, "--ignore-not-found"
        )


def install_release_templates(control_plane: ControlPlane) -> None:
    """The chart's default ConfigMaps in the controller's release namespace, made from the same
    files the chart renders (charts/kaito/charts/workspace-controller/files)."""
    control_plane.kubectl("create", "namespace", RELEASE_NAMESPACE, check=False)
    for name, key in TEMPLATE_FILES.items():
        path = CHART_FILES / f"{name}.yaml"
        manifest = control_plane.kubectl(
            "create", "configmap", name, "-n", RELEASE_NAMESPACE,
            f"--from-file={key}={path}", "--dry-run=client", "-o", "yaml",
        ).stdout  # fmt: skip
        control_plane.kubectl("apply", "-f", "-", input=manifest)


@pytest_asyncio.fixture
async def kube(api_client: ApiClient, controller: ControllerProcess) -> AsyncIterator[KubeClient]:
    yield KubeClient(api_client, request_timeout_s=15)


@pytest.fixture(autouse=True)
def _controller_log_on_failure(
    request: pytest.FixtureRequest, controller: ControllerProcess
) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and controller.log_path.exists():
        print(controller.log_path.read_text()[-6000:])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
