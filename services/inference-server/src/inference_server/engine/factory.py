"""Pick the engine the settings and the installed packages call for."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from inference_server.engine.protocol import Engine
from inference_server.kaito_config import with_transformers_section
from inference_server.settings import ServerSettings


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def engine_name(settings: ServerSettings) -> str:
    """`--engine`, with `auto` resolved: vllm when installed and not on the CPU."""
    if settings.engine != "auto":
        return settings.engine
    return "vllm" if vllm_available() and settings.device != "cpu" else "transformers"


def settings_for_engine(settings: ServerSettings) -> ServerSettings:
    """The settings the chosen engine runs with: the transformers engine takes the
    `transformers:` section of the Kaito config file on top of its flags (kaito_config.py);
    vLLM reads its own section when it starts."""
    if engine_name(settings) == "transformers":
        return with_transformers_section(settings)
    return settings


def create_engine(settings: ServerSettings, environ: Mapping[str, str]) -> Engine:
    choice = engine_name(settings)
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
