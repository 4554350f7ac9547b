"""Images built here on top of the inference-server image with buildah: the tiny test preset's
model image, and a client image holding the official ``openai`` Python client.

Kaito's preset images carry the model next to the runtime: the workspace controller runs
``<registry>/kaito-<preset>:<tag>`` with ``--model=<local_path>`` (``/workspace/weights`` for
the ``test-tiny-*`` presets). This builds that image for a tiny model made on the spot
(:mod:`kaito_common.testing.tiny_model`): the inference-server image plus one layer holding the
model's files, owned by the image's user. The image is labelled with the base image's ID and
the model's key, so it is rebuilt only when either changes.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

WEIGHTS_DIR = "/workspace/weights"
RUNTIME_USER = "65532:65532"
_BASE_LABEL = "kaito.dev/base-image-id"
_MODEL_LABEL = "kaito.dev/model"


class ModelImageError(RuntimeError):
    """buildah failed to build the model image."""


def _buildah(*args: str) -> str:
    result = subprocess.run(
        ["buildah", *args], capture_output=True, text=True, check=False, timeout=600
    )
    if result.returncode != 0:
        raise ModelImageError(f"buildah {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def _labels(image: str) -> dict[str, str] | None:
    result = subprocess.run(
        ["buildah", "inspect", "--type", "image", image],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    labels = json.loads(result.stdout)["OCIv1"]["config"].get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def build_model_image(base: str, model_dir: Path, name: str) -> bool:
    """Builds ``name`` = ``base`` + ``model_dir`` at ``/workspace/weights`` unless it is up to
    date; True when it built."""
    base_id = _buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", base)
    model_key = model_dir.name
    current = _labels(name)
    if current and current.get(_BASE_LABEL) == base_id and current.get(_MODEL_LABEL) == model_key:
        return False
    started = time.monotonic()
    container = _buildah("from", "--pull=never", base)
    try:
        _buildah("copy", "--chown", RUNTIME_USER, container, f"{model_dir}/", WEIGHTS_DIR)
        _buildah(
            "config",
            "--label", f"{_BASE_LABEL}={base_id}",
            "--label", f"{_MODEL_LABEL}={model_key}",
            container,
        )  # fmt: skip
        _buildah("commit", "--quiet", container, name)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
    log.info(
        "Built model image",
        extra={"image": name, "base": base, "model": model_key,
               "duration_s": round(time.monotonic() - started, 1)},
    )  # fmt: skip
    return True


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
    log.info("Built client image", extra={"image": name, "base": base, "packages": key})
    return True
