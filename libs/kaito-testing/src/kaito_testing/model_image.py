"""Images built here with buildah: the tiny test preset's model image, and a client image
holding the official ``openai`` Python client on top of the inference-server image.

The ``test-tiny-*`` presets deliver their weights in a model image (``source.delivery:
model-image``): the workspace controller runs the inference-server (or tuning-runner) image and
copies ``<registry>/kaito-model-<preset>:<tag>`` into the pod's weights volume with an init
container. That image holds only the model's files under ``/weights`` and the static copier from
``hack/images/copy-weights`` as its entrypoint (no shell, no Python), owned by the project's
non-root user. It is labelled with the copier's and the model's digests, so it is rebuilt only
when either changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
from pathlib import Path

from kaito_testing.gobuild import build_static

log = logging.getLogger(__name__)

RUNTIME_USER = "65532:65532"
MODEL_IMAGE_WEIGHTS = "/weights"
COPIER_PATH = "/bin/copy-weights"
COPIER_SOURCE = Path("hack/images/copy-weights")
_BASE_LABEL = "kaito.dev/base-image-id"
_COPIER_LABEL = "kaito.dev/copier"
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


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def build_weights_image(model_dir: Path, name: str, work_dir: Path) -> bool:
    """Builds the model image ``name``: ``model_dir`` at ``/weights`` and the copier as its
    entrypoint, unless it is up to date; True when it built. ``work_dir`` holds the copier."""
    copier = build_static(COPIER_SOURCE, work_dir / "copy-weights")
    copier_key = hashlib.sha256(copier.read_bytes()).hexdigest()[:16]
    model_key = _tree_digest(model_dir)
    current = _labels(name)
    if (
        current
        and current.get(_COPIER_LABEL) == copier_key
        and current.get(_MODEL_LABEL) == model_key
    ):
        return False
    started = time.monotonic()
    container = _buildah("from", "scratch")
    try:
        _buildah("copy", "--chmod", "0755", container, str(copier), COPIER_PATH)
        _buildah("copy", "--chown", RUNTIME_USER, container, f"{model_dir}/", MODEL_IMAGE_WEIGHTS)
        _buildah(
            "config",
            "--entrypoint", json.dumps([COPIER_PATH]),
            "--user", RUNTIME_USER,
            "--label", f"{_COPIER_LABEL}={copier_key}",
            "--label", f"{_MODEL_LABEL}={model_key}",
            container,
        )  # fmt: skip
        _buildah("commit", "--quiet", container, name)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
    log.info(
        "Built model image",
        extra={"image": name, "model": model_dir.name, "model_digest": model_key,
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
