"""The inference-server-vllm image: its Dockerfile stays in step (no build needed), and the built
image serves the tiny model on vLLM (CPU build) or at least imports vLLM (GPU build, no GPU here).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from kaito_testing.ports import free_port
from kaito_testing.tiny_model import cached_tiny_model
from kaito_testing.waiting import wait_for

from .conftest import ROOT, USER_ID, Container, buildah, image_name
from .test_dockerfiles import dockerfile, stages
from .test_smoke_images import http_status, post_json

IMAGE = "inference-server-vllm"
MakeContainer = Callable[[str], Container]


def image_exists(name: str) -> bool:
    try:
        buildah("inspect", "--type", "image", name)
    except RuntimeError:
        return False
    return True


def test_vllm_image_is_a_target_of_the_one_dockerfile() -> None:
    stage = stages()["inference-server-vllm"]
    assert "ARG VLLM_TARGET=gpu" in stage and "KAITO_ENGINE=vllm" in stage
    assert re.findall(r"^USER (\S+)$", stage, re.M)[-1] == f"{USER_ID}:{USER_ID}"
    assert 'ENTRYPOINT ["python", "-m", "inference_server"]' in stage
    # vLLM pins its own torch: the image has no /opt/torch layer.
    assert "/opt/torch" not in dockerfile(IMAGE)
    venv = stages()["venv-vllm"]
    for pins in re.findall(r"services/inference-server/vllm/[\w-]+\.txt", venv):
        assert (ROOT / pins).is_file(), pins
    assert "!services/inference-server/vllm/*.txt" in (ROOT / ".dockerignore").read_text()


@pytest.fixture(scope="module")
def vllm_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32-wide attention heads: vLLM's CPU attention has no kernel for the default 16."""
    return cached_tiny_model(tmp_path_factory.mktemp("vllm-model"), num_heads=2)


def test_vllm_image_serves_the_tiny_model(container: MakeContainer, vllm_tiny_model: Path) -> None:
    if not image_exists(image_name(IMAGE)):
        pytest.skip(
            f"{image_name(IMAGE)} is not built: `make image-vllm` builds it (not part of `make "
            "images`: its ~6 GB vLLM + torch layer needs ~20 GB of free disk to build)"
        )
    box = container(IMAGE)
    assert box.config.user == f"{USER_ID}:{USER_ID}"
    if box.config.env.get("KAITO_VLLM_TARGET") != "cpu":
        # The GPU build cannot serve without a GPU: check it imports and would pick vLLM.
        done = box.exec(["python", "-c", "import vllm, inference_server.engine.vllm_engine"])
        assert done.returncode == 0, done.stderr
        return
    port = free_port()
    box.start(
        ["--model=/workspace/weights", "--served-model-name=test-tiny", f"--port={port}",
         "--dtype=float32", "--max-model-len=512"],
        volumes=[f"{vllm_tiny_model}:/workspace/weights:ro"],
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: http_status(f"{base}/health") == 200,
        timeout=900,
        what="vLLM inference server /health",
        interval=1,
        alive=box.alive,
    )
    answer = post_json(
        f"{base}/chat",
        {"prompt": "hello kaito", "generate_kwargs": {"max_new_tokens": 8, "do_sample": False}},
    )
    assert isinstance(answer["Result"], str) and answer["Result"].startswith("hello kaito")
    models = json.loads(urllib.request.urlopen(f"{base}/v1/models", timeout=10).read())
    assert [m["id"] for m in models["data"]][:1] == ["test-tiny"]
    assert "Started vLLM engine" in box.log_tail(400)
