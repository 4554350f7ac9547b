"""Fixtures: a tiny model, LoRA adapters built with peft, and real uvicorn servers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from inference_server.app import build_app
from inference_server.engine.transformers_engine import TransformersEngine
from inference_server.settings import ServerSettings
from kaito_testing.tiny_model import tiny_model_dir

MODEL_NAME = "tiny-llama"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


def build_lora(base: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # make the adapter matter: scale B up so greedy outputs change
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def adapters_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    root = tmp_path_factory.mktemp("adapters")
    build_lora(tiny_model, root / "alpha", seed=11)
    return root


@pytest.fixture(scope="session")
def spare_adapter(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    return build_lora(tiny_model, tmp_path_factory.mktemp("spare") / "beta", seed=22)


@dataclass
class RunningServer:
    url: str
    settings: ServerSettings
    engine: TransformersEngine

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


def wait_until(condition: object, timeout: float = 30.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@contextmanager
def serve(
    settings: ServerSettings, environ: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    """Run the real app under uvicorn in a thread on a free 127.0.0.1 port."""
    engine = TransformersEngine(settings, environ)
    app = build_app(settings, engine)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(url + "/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=120)
        yield RunningServer(url=url, settings=settings, engine=engine)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def server(tiny_model: Path, adapters_dir: Path) -> Iterator[RunningServer]:
    settings = ServerSettings(
        model=tiny_model,
        served_model_name=MODEL_NAME,
        adapters_dir=adapters_dir,
        max_batch_size=8,
        max_queue=64,
        default_max_tokens=16,
    )
    with serve(settings) as running:
        yield running


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total
