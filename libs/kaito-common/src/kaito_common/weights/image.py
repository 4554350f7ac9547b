"""Weights-only OCI images, built with buildah: the `model-image` delivery of a preset.

The image is FROM scratch: the model's files under /weights, owned by the runtime user, and the
static copier (`copier.py`) as /bin/copy-weights, its entrypoint; the workload pod's init
container runs it to copy the files into the weights volume (docs/images.md). It is labelled
with the copier's and the files' digests, so an unchanged image is not rebuilt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from kaito_common.weights.copier import build_copier
from kaito_common.weights.errors import WeightsError

log = logging.getLogger("kaito_common.weights")

RUNTIME_USER = "65532:65532"
MODEL_IMAGE_WEIGHTS = "/weights"
COPIER_PATH = "/bin/copy-weights"
COPIER_LABEL = "kaito.dev/copier"
MODEL_LABEL = "kaito.dev/model"


class ModelImageError(WeightsError):
    """buildah failed, or the model to pack is missing."""


def buildah(*args: str) -> str:
    """Runs buildah; its stdout, or ModelImageError with its stderr."""
    try:
        result = subprocess.run(
            ["buildah", *args], capture_output=True, text=True, check=False, timeout=600
        )
    except FileNotFoundError as exc:
        raise ModelImageError("buildah is not installed (make image-tools installs it)") from exc
    if result.returncode != 0:
        raise ModelImageError(f"buildah {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def image_labels(image: str) -> dict[str, str] | None:
    """The labels of a local image; None when there is no such image."""
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


def model_files(model_dir: Path) -> list[Path]:
    """The files an image gets: everything but hidden entries (download markers, caches)."""
    return sorted(
        p
        for p in model_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(model_dir).parts)
    )


def tree_digest(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in model_files(model_dir):
        digest.update(str(path.relative_to(model_dir)).encode() + b"\0")
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _stage(model_dir: Path, stage: Path) -> None:
    """`model_dir`'s image files under `stage`, hard-linked where possible."""
    for path in model_files(model_dir):
        target = stage / path.relative_to(model_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def build_weights_image(
    model_dir: Path, image: str, copier: Path, work_dir: Path | None = None
) -> bool:
    """Builds `image` from `model_dir` and the copier binary unless it is up to date; True when
    it built. The files are staged (hard links) in a scratch folder under `work_dir` (default:
    beside `model_dir`; on the same filesystem, hard links copy nothing)."""
    if not model_files(model_dir):
        raise ModelImageError(f"{model_dir} holds no model files")
    copier_key = hashlib.sha256(copier.read_bytes()).hexdigest()[:16]
    model_key = tree_digest(model_dir)
    current = image_labels(image)
    if (
        current
        and current.get(COPIER_LABEL) == copier_key
        and current.get(MODEL_LABEL) == model_key
    ):
        log.info("Model image is up to date", extra={"image": image, "model_digest": model_key})
        return False
    started = time.monotonic()
    scratch_parent = work_dir or model_dir.parent
    scratch_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".stage-", dir=scratch_parent) as scratch:
        stage = Path(scratch)
        _stage(model_dir, stage)
        container = buildah("from", "scratch")
        try:
            buildah("copy", "--chmod", "0755", container, str(copier), COPIER_PATH)
            buildah("copy", "--chown", RUNTIME_USER, container, f"{stage}/", MODEL_IMAGE_WEIGHTS)
            buildah(
                "config",
                "--entrypoint", json.dumps([COPIER_PATH]),
                "--user", RUNTIME_USER,
                "--label", f"{COPIER_LABEL}={copier_key}",
                "--label", f"{MODEL_LABEL}={model_key}",
                container,
            )  # fmt: skip
            buildah("commit", "--quiet", container, image)
        finally:
            subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
    log.info(
        "Built model image",
        extra={"image": image, "model": str(model_dir), "model_digest": model_key,
               "duration_s": round(time.monotonic() - started, 1)},
    )  # fmt: skip
    return True


def download_source(args: argparse.Namespace) -> tuple[str, str, bool] | None:
    """The repository, revision and whether to fetch remote code (the preset's transformers
    runtime loads with trust_remote_code), or None for --from."""
    if args.from_dir is not None:
        return None
    if args.preset:
        from kaito_common.presets import default_catalog

        preset = default_catalog(include_test=args.test_catalog).preset(args.preset)
        if preset is None:
            raise ModelImageError(f"Preset {args.preset} is not in the catalog")
        remote_code = bool(preset.runtimes.get("transformers", {}).get("trust_remote_code"))
        return (
            preset.source.repo,
            preset.source.revision,
            remote_code or bool(args.trust_remote_code),
        )
    if not args.revision:
        raise ModelImageError("--repo needs --revision (the commit to pack)")
    return str(args.repo), str(args.revision), bool(args.trust_remote_code)


def build_image_from_args(args: argparse.Namespace) -> bool:
    """`build-image`: the model directory (given, or downloaded into the cache), the copier
    (given, or built with go), then the image."""
    source = download_source(args)
    cache: Path = args.cache_dir
    if source is None:
        model_dir = Path(args.from_dir)
        if not model_dir.is_dir():
            raise ModelImageError(f"{model_dir} is not a directory")
    else:
        from kaito_common.weights.download import WeightsDownload
        from kaito_common.weights.settings import DownloadSettings

        repo, revision, remote_code = source
        model_dir = cache / "models" / repo.replace("/", "--") / revision
        settings = DownloadSettings(
            repo=repo,
            revision=revision,
            dest=model_dir,
            allow_patterns=args.allow_patterns or [],
            trust_remote_code=remote_code,
            termination_log=None,
        )
        WeightsDownload(settings).run()
    copier = args.copier or build_copier(cache / "bin" / "copy-weights", args.copier_source)
    return build_weights_image(model_dir, args.image, Path(copier), work_dir=cache)
