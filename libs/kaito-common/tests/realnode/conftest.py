"""Fixtures of the real-node tests: the ``node`` control plane profile, with its teardown checked.

Every test here is marked ``realnode``. The node needs root and Debian's containerd, runc, CNI
plugins and iptables; the fixture installs what is missing with ``hack/realnode/install.sh``
(as ``make testbin`` builds missing binaries: never skipped).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rn_support import (
    IMAGE_REPO,
    IMAGE_TAG,
    SEED_PRESET,
    SERVICES,
    TINY_PRESET,
    ensure_built,
    service_image,
)

from kaito_testing.containerd import ContainerdError
from kaito_testing.controlplane import ControlPlane
from kaito_testing.hfhub import LocalHub, serve_preset
from kaito_testing.model_image import build_openai_client_image, build_weights_image
from kaito_testing.node_registry import NodeRegistry, content_tag, start_node_registry
from kaito_testing.registry import RegistryUnavailableError
from kaito_testing.testbin import ensure_testbin
from kaito_testing.tiny_model import cached_tiny_model
from kaito_testing.toolbox_image import write_toolbox_archive

REPO_ROOT = Path(__file__).resolve().parents[4]
MODELS = Path.home() / ".cache" / "kaito-realnode" / "models"
SITE_PACKAGES = (
    Path(sys.prefix)
    / "lib"
    / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    / "site-packages"
)
INSTALL = REPO_ROOT / "hack" / "realnode" / "install.sh"
_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realnode: runs on a real kubelet + containerd node (root, cgroups, iptables)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.realnode)


class Cluster:
    """The ``node`` control plane with kubectl helpers."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        assert plane.real_node is not None
        self.node = plane.real_node

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        argv = [str(self.plane.bin_dir / "kubectl"), f"--kubeconfig={self.plane.kubeconfig_path}"]
        result = subprocess.run(
            [*argv, *args], capture_output=True, text=True, check=False, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def apply(self, text: str, namespace: str) -> None:
        argv = [str(self.plane.bin_dir / "kubectl"), f"--kubeconfig={self.plane.kubeconfig_path}"]
        result = subprocess.run(
            [*argv, "apply", "-n", namespace, "-f", "-"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(f"kubectl apply failed:\n{result.stderr}")


def _ensure_node_tools() -> None:
    if os.geteuid() != 0:
        raise RuntimeError("the real-node tests run as root (containerd, cgroups, iptables)")
    needed = ("containerd", "runc", "ctr", "iptables", "conntrack")
    if not all(shutil.which(tool) for tool in needed) or not Path("/bin/busybox").exists():
        subprocess.run(["bash", str(INSTALL)], check=True)


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _ensure_node_tools()
    plane = ControlPlane("node", tmp_path_factory.mktemp("realnode"), bin_dir=ensure_testbin())
    plane.start()
    node = plane.real_node
    assert node is not None
    try:
        node.import_image(write_toolbox_archive(plane.work_dir / "images"))
        yield Cluster(plane)
    finally:
        plane.stop()
    leftovers = node.leftovers()
    assert not leftovers, f"the real node left things behind: {leftovers}"


@pytest.fixture
def ns(node_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "rn-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    node_cluster.kubectl("create", "namespace", name)
    node_cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name)
    try:
        yield name
    finally:
        node_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def node_registry(node_cluster: Cluster) -> Iterator[NodeRegistry]:
    """The project's images in a registry the node pulls from (``make images-push``): the four
    services, the tiny preset's weights image and, for one test, the OpenAI client image.
    Missing images are built first (never skipped)."""
    ensure_built(list(SERVICES))
    build_weights_image(
        cached_tiny_model(MODELS), f"{IMAGE_REPO}/kaito-model-{TINY_PRESET}:{IMAGE_TAG}",
        node_cluster.plane.work_dir / "copier",
    )  # fmt: skip
    # The seed preset's weights as a weights image too (`kaito.sh/weights-source: image`).
    build_weights_image(
        seed_model(), f"{IMAGE_REPO}/kaito-model-{SEED_PRESET}:{IMAGE_TAG}",
        node_cluster.plane.work_dir / "copier",
    )  # fmt: skip
    build_openai_client_image(
        service_image("inference-server"), SITE_PACKAGES, f"{IMAGE_REPO}/openai-client:{IMAGE_TAG}"
    )
    node = node_cluster.node
    try:
        reg = start_node_registry(node.node_ip, node_cluster.plane.work_dir / "registry")
    except RegistryUnavailableError as err:
        pytest.fail(f"{err} (make pytest installs it through TEST_DEPS)")
    try:
        node.containerd.trust_plain_http(reg.registry.host)
        # Images of other registry ports leave the node; the last run's stay until this run's
        # pods have pulled theirs (the layers they share are not unpacked again).
        node.containerd.prune_images(lambda ref: reg.keeps(ref, this_run_only=False))
        reg.tag = content_tag(IMAGE_REPO, IMAGE_TAG)
        started = time.monotonic()
        out = reg.push_project_images(node_cluster.plane.work_dir / "images-push.log")
        reg.push(f"{IMAGE_REPO}/openai-client:{IMAGE_TAG}", "openai-client")
        print(f"make images-push to {reg.repo} took {time.monotonic() - started:.0f}s:\n{out}")
        yield reg
    finally:
        with contextlib.suppress(ContainerdError):
            node.containerd.prune_images(lambda ref: reg.keeps(ref, this_run_only=True))
        reg.registry.stop()
        try:
            reg.registry.garbage_collect()
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            warnings.warn(f"the node registry's store keeps superseded layers: {err}", stacklevel=1)


def seed_model() -> Path:
    """A tiny model with the seed preset's architecture (Phi-3, with the 128k model's LongRoPE)."""
    return cached_tiny_model(MODELS, arch="phi3", long_rope=True)


@pytest.fixture(scope="session")
def hub(node_cluster: Cluster) -> Iterator[LocalHub]:
    """The local Hugging Face hub on the node network, serving the seed preset's repository at
    the catalog's pinned commit."""
    with LocalHub(host=node_cluster.node.node_ip) as local_hub:
        serve_preset(local_hub, SEED_PRESET, seed_model())
        yield local_hub
