"""Each built image started for real (`buildah run`), answering as its non-root user.

- inference server: `/health` and `/chat` on the tiny model mounted in;
- tuning runner: fetches tiny data over HTTP and trains a LoRA adapter on the tiny model;
- the two controllers: start against the local control plane, answer `/healthz` and become
  ready (`/readyz`: their informers listed and watched through the API server).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kaito_testing.controlplane import ControlPlane
from kaito_testing.dataserver import DataServer
from kaito_testing.ports import free_port
from kaito_testing.waiting import wait_for

from .conftest import ROOT, SERVICES, USER_ID, Container, image_config, shared_dir

MakeContainer = Callable[[str], Container]


def http_status(url: str, body: dict[str, Any] | None = None, timeout: float = 5) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (urllib.error.URLError, OSError):
        return 0


def post_json(url: str, body: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


@pytest.mark.parametrize("service", SERVICES)
def test_image_runs_as_its_non_root_user(service: str, container: MakeContainer) -> None:
    box = container(service)
    assert box.config.user == f"{USER_ID}:{USER_ID}"
    done = box.exec(["id", "-u"])
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) == USER_ID


@pytest.mark.parametrize("service", ["workspace-controller", "gpu-provisioner"])
def test_controller_images_have_no_torch(service: str, container: MakeContainer) -> None:
    done = container(service).exec(["python", "-c", "import torch"])
    assert done.returncode != 0 and "No module named 'torch'" in done.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_images_have_no_test_infrastructure(service: str, container: MakeContainer) -> None:
    """kaito-testing is dev-only: neither its package nor the old `testing` package of
    kaito-common is in an image."""
    box = container(service)
    for module in ("kaito_testing", "kaito_common.testing"):
        done = box.exec(["python", "-c", f"import {module}"])
        assert done.returncode != 0 and f"No module named '{module}'" in done.stderr, done.stderr


def test_ml_images_share_the_torch_layer() -> None:
    """The first layers up to torch's are the same blobs in both ML images."""
    inference, tuning = (image_config(s) for s in ("inference-server", "tuning-runner"))
    shared = [a for a, b in zip(inference.layers, tuning.layers, strict=False) if a == b]
    torch_layer = max(shared, key=lambda layer: layer.size)
    assert torch_layer.size > 500 * 1024**2, "the big shared layer should hold torch"


@pytest.fixture(scope="module")
def cluster_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The local control plane (etcd + kube-apiserver) with the CRDs, and a kubeconfig copy
    the images' user can read."""
    work = tmp_path_factory.mktemp("cluster")
    with ControlPlane("apiserver", work) as plane:
        plane.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        plane.kubectl("create", "namespace", "kaito-workspace")
        kube_dir = shared_dir(work / "kube")
        target = kube_dir / "config"
        shutil.copy(plane.kubeconfig_path, target)
        os.chown(target, USER_ID, USER_ID)
        yield kube_dir


def _wait_controller_ready(box: Container, port: int) -> None:
    for path in ("/healthz", "/readyz"):
        wait_for(
            lambda path=path: http_status(f"http://127.0.0.1:{port}{path}") == 200,  # type: ignore[misc]
            timeout=120,
            what=f"{box.service} {path}",
            interval=0.5,
            alive=box.alive,
        )


def test_workspace_controller_starts_against_the_control_plane(
    container: MakeContainer, cluster_kubeconfig: Path
) -> None:
    box = container("workspace-controller")
    port, webhook_port = free_port(), free_port()
    box.start(
        [
            "--kubeconfig=/kube/config",
            f"--metrics-port={port}",
            f"--webhook-port={webhook_port}",
            "--webhook-host=127.0.0.1",
            "--no-register-webhook",
        ],
        volumes=[f"{cluster_kubeconfig}:/kube:ro"],
    )
    _wait_controller_ready(box, port)
    assert "Starting workspace controller" in box.log_tail(200)


def test_gpu_provisioner_starts_against_the_control_plane(
    container: MakeContainer, cluster_kubeconfig: Path
) -> None:
    box = container("gpu-provisioner")
    port = free_port()
    box.start(
        ["--cloud=kwok", "--kubeconfig=/kube/config", f"--metrics-port={port}"],
        volumes=[f"{cluster_kubeconfig}:/kube:ro"],
    )
    _wait_controller_ready(box, port)


def test_inference_server_serves_the_tiny_model(container: MakeContainer, tiny_model: Path) -> None:
    box = container("inference-server")
    port = free_port()
    box.start(
        ["--model=/workspace/weights", "--served-model-name=test-tiny", f"--port={port}"],
        volumes=[f"{tiny_model}:/workspace/weights:ro"],
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: http_status(f"{base}/health") == 200,
        timeout=300,
        what="inference server /health",
        interval=0.5,
        alive=box.alive,
    )
    answer = post_json(
        f"{base}/chat",
        {"prompt": "hello kaito", "generate_kwargs": {"max_new_tokens": 8, "do_sample": False}},
    )
    assert isinstance(answer["Result"], str) and answer["Result"].startswith("hello kaito")
    models = json.loads(urllib.request.urlopen(f"{base}/v1/models", timeout=10).read())
    assert [m["id"] for m in models["data"]][:1] == ["test-tiny"]


def _conversations(n: int) -> str:
    words = ["kaito", "tiny", "model", "lora", "adapter", "hello", "world", "train"]
    rows = []
    for i in range(n):
        question = " ".join(words[(i + k) % len(words)] for k in range(4))
        answer = "kaito says " + " ".join(sorted(question.split()))
        messages = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
        rows.append(json.dumps({"messages": messages}))
    return "\n".join(rows) + "\n"


def _training_config() -> dict[str, Any]:
    return {
        "training_config": {
            "ModelConfig": {
                "torch_dtype": "bfloat16",
                "local_files_only": True,
                "device_map": "auto",
                "pretrained_model_name_or_path": "/workspace/tfs/weights",
            },
            "LoraConfig": {"r": 8, "lora_alpha": 8, "lora_dropout": 0.0},
            "TrainingArguments": {
                "output_dir": "/mnt/results",
                "save_strategy": "no",
                "per_device_train_batch_size": 2,
                "max_steps": 4,
                "learning_rate": 0.003,
                "logging_steps": 1,
                "max_length": 128,
            },
            "DatasetConfig": {"shuffle_dataset": True, "train_test_split": 1},
        }
    }


def test_tuning_runner_fetches_and_trains_on_tiny_data(
    container: MakeContainer, tiny_model: Path, tmp_path: Path
) -> None:
    mnt = shared_dir(tmp_path / "mnt")
    config_dir = shared_dir(mnt / "config")
    (config_dir / "training_config.yaml").write_text(json.dumps(_training_config()))
    served = tmp_path / "served"
    served.mkdir()
    (served / "dolly.jsonl").write_text(_conversations(24))
    env = {
        "KAITO_TUNING_METRICS_PORT": "0",
        "KAITO_TUNING_TERMINATION_LOG": "/mnt/termination-log",
        "KAITO_TUNING_ALLOW_LOOPBACK_URLS": "true",
    }
    volumes = [f"{mnt}:/mnt", f"{tiny_model}:/workspace/tfs/weights:ro"]

    fetcher = container("tuning-runner")
    with DataServer(served) as data:
        status = fetcher.run_entrypoint(
            ["fetch", "--url", data.url_for("dolly.jsonl")], volumes=volumes, env=env
        )
    assert status == 0, fetcher.log_tail()
    assert (mnt / "data" / "dolly.jsonl").stat().st_size > 0

    trainer = container("tuning-runner")
    status = trainer.run_entrypoint(["train"], volumes=volumes, env=env, timeout=600)
    assert status == 0, trainer.log_tail()
    results = mnt / "results"
    assert (results / "adapter_config.json").is_file(), sorted(os.listdir(results))
    assert (results / "adapter_model.safetensors").stat().st_uid == USER_ID
    final = json.loads((mnt / "termination-log").read_text())
    assert final["phase"] == "Completed" and final["step"] == 4
