"""Liveness, readiness, model listing, runtime adapters and Prometheus metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from inference_server.api.openai_responses import ERROR_RESPONSES, ModelCard, ModelList
from inference_server.api.openai_schemas import LoadAdapterRequest, UnloadAdapterRequest
from inference_server.errors import InvalidRequestError
from inference_server.serving import CompletionService

router = APIRouter()


def _service(request: Request) -> CompletionService:
    service: CompletionService = request.app.state.service
    return service


class ServerMessage(BaseModel):
    message: str


class Health(BaseModel):
    status: Literal["Healthy", "Unhealthy"]
    detail: str | None = Field(None, description="Why the server is not ready (when Unhealthy)")


_HEALTH: dict[int | str, dict[str, Any]] = {
    200: {"model": Health, "description": "The model is loaded"},
    503: {"model": Health, "description": "The model is still loading (or failed to)"},
}


@router.get("/")
async def root() -> ServerMessage:
    return ServerMessage(message="Server is running")


@router.get("/health", response_model=None, responses=_HEALTH)
@router.get("/healthz", response_model=None, responses=_HEALTH)
async def health(request: Request) -> JSONResponse:
    stats = _service(request).engine.stats()
    if stats.ready:
        return JSONResponse({"status": "Healthy"})
    return JSONResponse({"status": "Unhealthy", "detail": stats.not_ready_reason}, status_code=503)


@router.get("/v1/models")
async def models(request: Request) -> ModelList:
    service = _service(request)
    stats = service.engine.stats()
    created = int(request.app.state.started_at)
    data = [
        ModelCard(
            id=service.model_name,
            created=created,
            owned_by="kaito",
            root=str(service.settings.model),
            parent=None,
            max_model_len=stats.max_model_len,
        )
    ]
    data += [
        ModelCard(
            id=adapter.name,
            created=created,
            owned_by="kaito",
            root=adapter.path,
            parent=service.model_name,
            max_model_len=stats.max_model_len,
        )
        for adapter in stats.adapters
    ]
    return ModelList(data=data)


_ADAPTER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
    400: ERROR_RESPONSES[400],
    404: {**ERROR_RESPONSES[404], "description": "No adapter of that name is loaded"},
    415: ERROR_RESPONSES[415],
}


@router.post("/v1/load_lora_adapter", response_model=None, responses=_ADAPTER_RESPONSES)
async def load_lora_adapter(body: LoadAdapterRequest, request: Request) -> PlainTextResponse:
    service = _service(request)
    if body.lora_name == service.model_name:
        raise InvalidRequestError("lora_name must differ from the base model name", "lora_name")
    if not (Path(body.lora_path) / "adapter_config.json").is_file():
        raise InvalidRequestError(
            f"no adapter_config.json under lora_path {body.lora_path!r}", "lora_path"
        )
    await service.engine.load_adapter(body.lora_name, body.lora_path)
    return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' added successfully.")


@router.post("/v1/unload_lora_adapter", response_model=None, responses=_ADAPTER_RESPONSES)
async def unload_lora_adapter(body: UnloadAdapterRequest, request: Request) -> PlainTextResponse:
    await _service(request).engine.unload_adapter(body.lora_name)
    return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' removed successfully.")


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    service = _service(request)
    body = service.metrics.render(service.engine.stats())
    return Response(body, media_type=CONTENT_TYPE_LATEST)
