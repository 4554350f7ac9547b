"""The server's conformance tests, run again on the vLLM engine.

The test functions are the transformers engine's own (imported, so they assert exactly the same
things); only the fixtures differ: `server` is the inference server on vLLM started from
.venv-vllm, and the tiny model and adapters are built for it. Left out: tests of one engine's
internals (batching, the fast decode path, merged adapters, which vLLM does not support) and
those that run a second server in-process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_adapters import (
    test_a_request_naming_an_adapter_uses_it_others_do_not,
    test_load_and_unload_at_run_time,
)
from .test_http_api import (
    test_chat_completion_non_streaming,
    test_chat_completion_streaming_matches_non_streaming,
    test_completions_list_prompt_stop_and_echo,
    test_kaito_chat_errors,
    test_kaito_chat_prompt_and_messages,
    test_malformed_json_is_a_400,
    test_metrics_agree_with_what_clients_received,
    test_openai_errors_name_the_field,
    test_root_health_models,
)
from .test_openai_client import test_async_client, test_sync_client
from .vllm_server import VllmServer, shared_vllm_server

CONFORMANCE = [
    test_root_health_models,
    test_kaito_chat_prompt_and_messages,
    test_kaito_chat_errors,
    test_chat_completion_non_streaming,
    test_chat_completion_streaming_matches_non_streaming,
    test_completions_list_prompt_stop_and_echo,
    test_openai_errors_name_the_field,
    test_malformed_json_is_a_400,
    test_metrics_agree_with_what_clients_received,
    test_sync_client,
    test_async_client,
    test_a_request_naming_an_adapter_uses_it_others_do_not,
    test_load_and_unload_at_run_time,
]


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> VllmServer:
    return shared_vllm_server(request, tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_model(server: VllmServer) -> Path:
    return Path(server.model)


@pytest.fixture(scope="module")
def adapters_dir(server: VllmServer) -> Path:
    return Path(server.adapters_dir)


@pytest.fixture(scope="module")
def spare_adapter(server: VllmServer) -> Path:
    return Path(server.spare_adapter)
