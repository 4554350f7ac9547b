"""What the real-node tests share: where the project's images are and how missing ones get built."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kaito_testing.image_import import ImageImportError, buildah_image_id

REPO_ROOT = Path(__file__).resolve().parents[4]
IMAGE_TAG = "dev"
IMAGE_REPO = "localhost/kaito"
SERVICES = ("workspace-controller", "gpu-provisioner", "inference-server", "tuning-runner")
TINY_PRESET = "test-tiny-llama"
# The seed's preset, served from the local hub by a tiny model of its architecture.
SEED_PRESET = "phi-3-mini-128k-instruct"


def service_image(service: str) -> str:
    return f"{IMAGE_REPO}/{service}:{IMAGE_TAG}"


def ensure_built(services: list[str]) -> None:
    """Builds with `hack/images/build.sh` the service images buildah's store lacks (never
    skipped: a missing image is built, not a reason to skip the test)."""
    missing = []
    for service in services:
        try:
            buildah_image_id(service_image(service))
        except ImageImportError:
            missing.append(service)
    if missing:
        subprocess.run(
            ["bash", str(REPO_ROOT / "hack" / "images" / "install-tools.sh")], check=True
        )
        subprocess.run(
            ["bash", str(REPO_ROOT / "hack" / "images" / "build.sh"), *missing],
            check=True,
            env={**os.environ, "IMAGE_REPO": IMAGE_REPO, "IMAGE_TAG": IMAGE_TAG},
        )
