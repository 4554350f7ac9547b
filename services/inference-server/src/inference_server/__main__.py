"""Entry point: `python -m inference_server --model DIR --served-model-name NAME`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from kaito_common.omp import prefer_passive_waiting

    passive = prefer_passive_waiting()  # before anything imports torch
    import uvicorn

    from inference_server.app import build_app
    from inference_server.engine.factory import create_engine
    from inference_server.settings import parse_settings

    settings = parse_settings(argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
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
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
