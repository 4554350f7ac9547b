"""Application wiring: `build_app(settings, engine)`; nothing happens at import time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from inference_server.api import kaito_routes, openai_routes, system_routes
from inference_server.api.errors import install_error_handlers
from inference_server.api.json_body import JSONBodyMiddleware
from inference_server.api.request_context import RequestContextMiddleware
from inference_server.engine.protocol import Engine
from inference_server.engine.types import IterationReport
from inference_server.metrics import ServerMetrics
from inference_server.serving import CompletionService
from inference_server.settings import ServerSettings


def build_app(settings: ServerSettings, engine: Engine) -> FastAPI:
    metrics = ServerMetrics(settings.model_name, settings.max_model_len or 8192)
    if hasattr(engine, "iteration_observer"):

        def observe(step: IterationReport | float) -> None:
            # The transformers engine reports each step; vLLM's stats give the token count.
            tokens = step.tokens if isinstance(step, IterationReport) else step
            metrics.iteration_tokens.observe(tokens)

        engine.iteration_observer = observe

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The engine loads the model in the background: /health answers 503 until it is ready.
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(title="Kaito inference server", lifespan=lifespan)
    app.state.service = CompletionService(settings, engine, metrics)
    app.state.started_at = time.time()
    install_error_handlers(app)
    app.add_middleware(JSONBodyMiddleware, max_request_bytes=settings.max_request_bytes)
    app.add_middleware(RequestContextMiddleware)  # outermost: ids even on 413/415 answers
    app.include_router(system_routes.router)
    app.include_router(kaito_routes.router)
    app.include_router(openai_routes.router)
    return app
