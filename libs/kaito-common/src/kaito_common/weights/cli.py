"""`python -m kaito_common.weights download|build-image`: flags, logging and exit codes.

Exit codes: 0 done (or already present), 1 the download or build failed (the reason is logged
and written to the termination log), 2 a usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from kaito_common.logs import configure_logging
from kaito_common.weights.errors import WeightsError, write_termination_message

log = logging.getLogger("kaito_common.weights")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kaito_common.weights",
        description="Model weights for Kaito's runtime pods.",
    )
    parser.add_argument("--log-level", default=None, help="debug, info, warning, error")
    parser.add_argument("--log-format", default=None, choices=("text", "json"))
    commands = parser.add_subparsers(dest="command", required=True)

    download = commands.add_parser(
        "download",
        help="Download a Hugging Face repository at a revision into the weights volume",
        description=(
            "Downloads the files a model needs (config, tokenizer, chat template, safetensors) "
            "of REPO at REVISION into DEST, resumably; HF_TOKEN and HF_ENDPOINT come from the "
            "environment. Writes DEST/.kaito-weights.json last; a rerun that finds it for the "
            "same repository and revision does nothing."
        ),
    )
    download.add_argument("--repo", required=True, help="e.g. microsoft/Phi-3-mini-4k-instruct")
    download.add_argument("--revision", required=True, help="the commit (40 hex digits)")
    download.add_argument("--dest", required=True, type=Path, help="e.g. /workspace/weights")
    _add_selection_flags(download)
    download.add_argument("--metrics-port", type=int, help="Prometheus port (default 0: off)")
    download.add_argument("--metrics-host", help="address of the metrics server (0.0.0.0)")
    download.add_argument(
        "--progress-interval", type=float, dest="progress_interval_s",
        help="seconds between progress lines (default 5)",
    )  # fmt: skip
    download.add_argument("--workers", type=int, help="files downloaded at once (default 4)")
    download.add_argument("--attempts", type=int, help="tries per request (default 5)")
    download.add_argument(
        "--backoff", type=float, dest="backoff_s", help="first wait between tries, seconds (1)"
    )
    download.add_argument(
        "--termination-log", type=Path,
        help="where the failure reason goes (default /dev/termination-log)",
    )  # fmt: skip

    build = commands.add_parser(
        "build-image",
        help="Pack a model directory or a download into a weights-only OCI image (buildah)",
        description=(
            "Builds IMAGE: the model's files under /weights and the static copier as the "
            "entrypoint, FROM scratch. The files come from --from DIR, or are downloaded first "
            "(--repo/--revision, or --preset NAME from the preset catalog) into --cache-dir."
        ),
    )
    build.add_argument(
        "--image", required=True, help="the image name, e.g. REGISTRY/kaito-model-x:tag"
    )
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="from_dir", type=Path, help="a model directory")
    source.add_argument("--preset", help="a preset of the catalog (its repository and revision)")
    source.add_argument("--repo", help="a Hugging Face repository (with --revision)")
    build.add_argument("--revision", help="the commit to download with --repo")
    build.add_argument(
        "--cache-dir", type=Path, default=Path(".dev/weights-cache"),
        help="where downloads are kept between builds (default .dev/weights-cache)",
    )  # fmt: skip
    _add_selection_flags(build)
    build.add_argument("--copier", type=Path, help="a built copy-weights binary (else go build)")
    build.add_argument(
        "--copier-source", type=Path,
        help="the copier's Go source folder (default hack/images/copy-weights of the checkout)",
    )  # fmt: skip
    build.add_argument("--test-catalog", action="store_true", help="also look up test presets")
    return parser


def _add_selection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-pattern", action="append", dest="allow_patterns", metavar="GLOB",
        help="fetch only files matching GLOB (repeatable; default: what a model needs)",
    )  # fmt: skip
    parser.add_argument(
        "--trust-remote-code", action="store_true", default=None,
        help="also fetch the model's *.py files (for models loaded with trust_remote_code)",
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    # Read when huggingface_hub is imported. Pod logs are not a terminal: no tqdm bars. The
    # runtime images set HF_HUB_OFFLINE=1 for the servers; fetching is this command's job.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ["HF_HUB_OFFLINE"] = "0"
    args = _parser().parse_args(argv)
    configure_logging(args.log_level or "info", args.log_format or "text")
    # huggingface_hub's HTTP client logs every request at INFO; the progress lines say enough.
    for noisy in ("httpx2", "huggingface_hub"):
        if logging.getLogger(noisy).level == logging.NOTSET:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "download":
        return _download(args)
    return _build_image(args)


def _download(args: argparse.Namespace) -> int:
    from kaito_common.weights.download import WeightsDownload
    from kaito_common.weights.settings import DownloadSettings

    given = {
        key: value
        for key, value in vars(args).items()
        if value is not None and key not in ("command", "log_level", "log_format")
    }
    try:
        settings = DownloadSettings(**given)
    except ValidationError as exc:
        log.error("Invalid settings", extra={"errors": exc.errors(include_url=False)})
        return 2
    try:
        WeightsDownload(settings).run()
    except Exception as exc:
        if not isinstance(exc, WeightsError):
            log.exception("Weights download failed unexpectedly", extra={"repo": settings.repo})
            exc = WeightsError(f"Weights download of {settings.repo} failed: {exc}")
        log.error(
            "Weights download failed: %s",
            exc,
            extra={"repo": settings.repo, "revision": settings.revision},
        )
        write_termination_message(settings.termination_log, str(exc))
        return 1
    return 0


def _build_image(args: argparse.Namespace) -> int:
    from kaito_common.weights.image import build_image_from_args

    try:
        build_image_from_args(args)
    except WeightsError as exc:
        log.error("Model image build failed: %s", exc, extra={"image": args.image})
        return 1
    return 0
