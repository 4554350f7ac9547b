"""Images built here with buildah: the tiny test preset's model image, and a client image
holding the official ``openai`` Python client on top of the inference-server image.

The ``test-tiny-*`` presets deliver their weights in a model image (``source.delivery:
model-image``): the workspace controller runs the inference-server (or tuning-runner) image and
copies ``<registry>/kaito-model-<preset>:<tag>`` into the pod's weights volume with an init
container. The builder of such images is production code, ``kaito_common.weights.image``
(``python -m kaito_common.weights build-image``, ``make model-image``); this module keeps the
tests' entry points to it.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from kaito_common.weights import image as _image
from kaito_common.weights.copier import COPIER_SOURCE, build_copier
from kaito_common.weights.image import (
    COPIER_PATH,
    MODEL_IMAGE_WEIGHTS,
    RUNTIME_USER,
    ModelImageError,
)

log = logging.getLogger(__name__)

__all__ = [
    "COPIER_PATH",
    "COPIER_SOURCE",
    "MODEL_IMAGE_WEIGHTS",
    "RUNTIME_USER",
    "ModelImageError",
    "build_openai_client_image",
    "build_weights_image",
]

_BASE_LABEL = "kaito.dev/base-image-id"
_MODEL_LABEL = _image.MODEL_LABEL
_buildah = _image.buildah
_labels = _image.image_labels


def build_weights_image(model_dir: Path, name: str, work_dir: Path) -> bool:
    """Builds the model image ``name``: ``model_dir`` at ``/weights`` and the copier as its
    entrypoint, unless it is up to date; True when it built. ``work_dir`` holds the copier.
    (The builder is ``kaito_common.weights.image``, also ``make model-image``.)"""
    copier = build_copier(work_dir / "copy-weights")
    return _image.build_weights_image(Path(model_dir), name, copier, work_dir=work_dir)


CLIENT_DIR = "/opt/openai-client"
# The openai client and what it needs that the inference-server image lacks (it already has
# httpx2, anyio, pydantic and typing-extensions).
CLIENT_PACKAGES = ("openai", "jiter", "sniffio")


def build_openai_client_image(base: str, site_packages: Path, name: str) -> bool:
    """Builds ``name`` = ``base`` + the ``openai`` client copied from ``site_packages`` (the
    development environment's, same Python 3.11) on ``PYTHONPATH``; True when it built."""
    base_id = _buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", base)
    sources: list[Path] = []
    for package in CLIENT_PACKAGES:
        found = [site_packages / package, *site_packages.glob(f"{package}-*.dist-info")]
        if not found[0].is_dir() or len(found) < 2:
            raise ModelImageError(f"{package} is not installed in {site_packages}")
        sources += found
    key = "+".join(sorted(p.name for p in sources if p.name.endswith(".dist-info")))
    current = _labels(name)
    if current and current.get(_BASE_LABEL) == base_id and current.get(_MODEL_LABEL) == key:
        return False
    previous = _image_id(name)
    container = _buildah("from", "--pull=never", base)
    try:
        for source in sources:
            _buildah("copy", container, f"{source}/", f"{CLIENT_DIR}/{source.name}")
        _buildah(
            "config",
            "--env", f"PYTHONPATH={CLIENT_DIR}",
            "--label", f"{_BASE_LABEL}={base_id}",
            "--label", f"{_MODEL_LABEL}={key}",
            container,
        )  # fmt: skip
        _buildah("commit", "--quiet", container, name)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
    if previous and previous != _image_id(name):
        # The replaced image would keep the old inference-server layers (GiBs) on disk.
        subprocess.run(["buildah", "rmi", previous], capture_output=True, check=False)
    log.info("Built client image", extra={"image": name, "base": base, "packages": key})
    return True


def _image_id(name: str) -> str:
    """The local image id ``name`` names ("" when there is none)."""
    result = subprocess.run(
        ["buildah", "images", "--quiet", "--no-trunc", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.split()[0] if result.returncode == 0 and result.stdout.strip() else ""
