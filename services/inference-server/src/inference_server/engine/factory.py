"""Pick the engine the settings and the installed packages call for."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from inference_server.engine.protocol import Engine
from inference_server.settings import ServerSettings


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def create_engine(settings: ServerSettings, environ: Mapping[str, str]) -> Engine:
    choice = settings.engine
    if choice == "auto":
        choice = "vllm" if vllm_available() and settings.device != "cpu" else "transformers"
    if choice == "vllm":
        if not vllm_available():
            raise SystemExit(
                "--engine vllm: vLLM is not installed in this Python environment "
                "(use the inference-server-vllm image, or `make install-vllm` and .venv-vllm)"
            )
        from inference_server.engine.vllm_engine import VllmEngine, reexec_with_openmp

        reexec_with_openmp()  # no return when the CPU build needs its OpenMP runtime preloaded
        engine: Engine = VllmEngine(settings, environ)
        return engine
    from inference_server.engine.transformers_engine import TransformersEngine

    return TransformersEngine(settings, environ)
