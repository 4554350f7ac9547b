"""The inference server on the vLLM engine, run from .venv-vllm as a child process for tests.

vLLM pins its own torch, so it lives in its own venv (`make install-vllm`); the tests run in the
main venv and talk to `python -m inference_server --engine vllm` over 127.0.0.1. The server is
started once per test session (vLLM needs a minute or more to start on 2 cores) and shared by
every module that asks for it; it stops when the session ends.

`KAITO_VLLM_PYTHON` names the interpreter (the Makefile sets it, so a missing venv fails there);
without it the tests use `<repo>/.venv-vllm/bin/python` and skip when that does not exist.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from inference_server.settings import ServerSettings
from kaito_testing.ports import free_port
from kaito_testing.tiny_model import tiny_model_dir

from .conftest import MODEL_NAME, build_lora

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 900.0
# The vllm section of a Kaito inference_config.yaml, as the chart's template writes it: one key
# vLLM 0.32 no longer has (swap-space) must be dropped with a warning, not stop the server.
KAITO_CONFIG = """\
max_probe_steps: 6
vllm:
  swap-space: 4
  max-num-batched-tokens: 1024
  enforce-eager: true
"""


def vllm_python() -> Path:
    named = os.environ.get("KAITO_VLLM_PYTHON")
    python = Path(named) if named else REPO / ".venv-vllm" / "bin" / "python"
    if not python.exists():
        if named:
            pytest.fail(f"KAITO_VLLM_PYTHON={named} does not exist: run `make install-vllm`")
        pytest.skip(f"{python} does not exist: run `make install-vllm` for the vLLM tests")
    return python


def vllm_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test model with 32-wide heads: vLLM's CPU attention has no kernel for 16."""
    return tiny_model_dir(tmp_path_factory, num_heads=2)


@dataclass
class VllmServer:
    url: str
    settings: ServerSettings
    process: subprocess.Popen[bytes]
    log: Path
    model: Path
    adapters_dir: Path
    spare_adapter: Path
    extra: dict[str, object] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_vllm_server(root: Path, model: Path, adapters_dir: Path, spare: Path) -> VllmServer:
    python = vllm_python()
    config = root / "inference_config.yaml"
    config.write_text(KAITO_CONFIG)
    port = free_port()
    settings = ServerSettings(
        model=model,
        served_model_name=MODEL_NAME,
        adapters_dir=adapters_dir,
        port=port,
        host="127.0.0.1",
        engine="vllm",
        dtype="float32",
        max_batch_size=8,
        max_queue=64,
        max_model_len=512,
        default_max_tokens=16,
        kaito_config_file=config,
    )
    cmd = [
        str(python), "-m", "inference_server", "--engine", "vllm",
        "--model", str(model), "--served-model-name", MODEL_NAME,
        "--adapters-dir", str(adapters_dir), "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--max-batch-size", "8", "--max-queue", "64",
        "--max-model-len", "512", "--default-max-tokens", "16",
        "--kaito-config-file", str(config), "--log-level", "info",
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    log = root / "vllm-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    server = VllmServer(
        url=f"http://127.0.0.1:{port}", settings=settings, process=proc, log=log,
        model=model, adapters_dir=adapters_dir, spare_adapter=spare,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"the vLLM server exited with {proc.returncode}; log {log}:\n{server.log_tail()}"
            )
        try:
            if httpx.get(server.url + "/health", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    server.stop()
    raise AssertionError(f"the vLLM server was not healthy in {START_TIMEOUT_S:.0f}s:\n"
                         f"{server.log_tail()}")  # fmt: skip


_shared: list[VllmServer] = []


def shared_vllm_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> VllmServer:
    """One vLLM server for the whole session, with adapter `alpha` and a spare `beta`."""
    if _shared:
        if _shared[0].process.poll() is not None:
            raise AssertionError(f"the shared vLLM server died:\n{_shared[0].log_tail()}")
        return _shared[0]
    vllm_python()  # skip or fail before building anything
    model = vllm_tiny_model(tmp_path_factory)
    root = tmp_path_factory.mktemp("vllm")
    adapters = root / "adapters"
    build_lora(model, adapters / "alpha", seed=11)
    spare = build_lora(model, root / "spare" / "beta", seed=22)
    server = start_vllm_server(root, model, adapters, spare)
    _shared.append(server)

    def stop() -> None:
        server.stop()
        _shared.clear()

    request.config.add_cleanup(stop)
    return server
