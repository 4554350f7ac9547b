"""Entry point: `python -m inference_server --model DIR --served-model-name NAME`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from kaito_common.omp import prefer_passive_waiting

    passive = prefer_passive_waiting()  # before anything imports torch
    # No tqdm bars in a pod's log (read when huggingface_hub is imported); the loader logs
    # each stage instead.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import uvicorn

    from inference_server.app import build_app
    from inference_server.engine.factory import create_engine, settings_for_engine
    from inference_server.kaito_config import KaitoConfigError
    from inference_server.settings import parse_settings
    from kaito_common.logs import configure_logging, uvicorn_log_config

    settings = parse_settings(argv)
    try:
        settings = settings_for_engine(settings)
    except KaitoConfigError as err:
        print(f"inference-server: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    _route_transformers_logs()
    if passive:
        logging.getLogger("inference_server").info(
            "Set OMP_WAIT_POLICY=PASSIVE for torch's CPU threads: the CPUs were already busy "
            "(set OMP_WAIT_POLICY to override)"
        )
    engine = create_engine(settings, dict(os.environ))
    app = build_app(settings, engine)
    logging.getLogger("inference_server").info(
        "Starting server host=%s port=%d model=%s served_model_name=%s",
        settings.host,
        settings.port,
        settings.model,
        settings.model_name,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=uvicorn_log_config(settings.log_level),
    )
    return 0


def _route_transformers_logs() -> None:
    """transformers' records through the root handler (same format), and no tqdm bars."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()


if __name__ == "__main__":
    sys.exit(main())
