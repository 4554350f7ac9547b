"""The tuning Job's wiring, proven by running it: the exact container commands the controller
puts in the Job (`fetch` -> `train` -> `push`, same argv and env, the Job's paths mapped to a
temp dir) run on this machine with the tiny model, data served on loopback, the chart's default
qlora config (the seed's method) and a real registry with credentials. The adapter image must
end up in the registry, and an inference pod's adapter puller (built by the controller too)
must fetch it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wc_helpers.podrun import LocalPod

from kaito_common.api.workspace import Workspace
from kaito_common.controller.meta import controller_reference
from kaito_common.presets import default_catalog
from kaito_testing.dataserver import DataServer
from kaito_testing.gobuild import build_static
from kaito_testing.model_image import COPIER_SOURCE
from kaito_testing.ports import free_port
from kaito_testing.registry import LocalRegistry, RegistryUnavailableError
from kaito_testing.tiny_model import tiny_model_dir
from workspace_controller.inference.plan import inference_plan
from workspace_controller.inference.pod import pod_template
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.tuning.config import output_dir_of
from workspace_controller.tuning.job import job_manifest
from workspace_controller.tuning.plan import tuning_plan
from workspace_controller.tuning.progress import (
    MetricsProgressSource,
    TuningProgress,
    progress_from_termination,
)

REPO = Path(__file__).resolve().parents[4]
CHART_FILES = REPO / "charts" / "kaito" / "charts" / "workspace-controller" / "files"
CATALOG = default_catalog(include_test=True)
METHOD = "qlora"  # the seed's method: the chart's qlora config (4-bit NF4, on CPU here)
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    reg = LocalRegistry(tmp_path_factory.mktemp("registry"))
    try:
        reg.start()
    except RegistryUnavailableError as err:
        pytest.fail(f"{err} (make pytest installs it through TEST_DEPS)")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory)


def conversations(n: int) -> list[Obj]:
    """The seed's dolly-15k-oai-style rows: a `messages` column of role/content turns."""
    words = ["kaito", "tunes", "tiny", "models", "on", "loopback", "with", "lora", "adapters"]
    rows = []
    for i in range(n):
        question = " ".join(words[(i + k) % len(words)] for k in range(4))
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": "answer: " + question[::-1]},
                ]
            }
        )
    return rows


def tuning_workspace(url: str, image: str) -> Obj:
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "tune-tiny", "namespace": "default", "uid": "u-1"},
        "resource": {"count": 1, "labelSelector": {"matchLabels": {"app": "tiny"}}},
        "tuning": {
            "preset": {"name": "test-tiny-llama"},
            "method": METHOD,
            "input": {"urls": [url]},
            "output": {"image": image, "imagePushSecret": "push-secret"},
        },
    }


def manifest_annotations(registry: LocalRegistry, repository: str, tag: str) -> dict[str, str]:
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        headers={
            "Authorization": f"Basic {token}",
            "Accept": "application/vnd.oci.image.manifest.v1+json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return dict(json.loads(resp.read()).get("annotations") or {})


def test_job_commands_fetch_train_push_then_inference_pulls(
    tmp_path: Path, registry: LocalRegistry, tiny_model: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "dolly.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in conversations(24))
    )
    image = f"{registry.host}/tuned/tiny-adapter:0.0.1"
    with DataServer(served) as data:
        obj = tuning_workspace(data.url_for("dolly.jsonl?download=true"), image)
        ws = Workspace.model_validate(obj)
        preset = CATALOG.preset("test-tiny-llama")
        assert preset is not None
        # The ConfigMap the controller would copy: the chart's own default config.
        config_map = {
            "metadata": {"name": "tune-tiny-tuning-params"},
            "data": {
                "training_config.yaml": (CHART_FILES / f"{METHOD}-params-template.yaml").read_text()
            },
        }
        plan = tuning_plan(
            ws,
            preset,
            None,
            revision="1",
            images=ImageSettings(),
            config_map="tune-tiny-tuning-params",
            output_dir=output_dir_of(config_map),
            metrics_port=5000,
            allow_loopback=True,
            backoff_limit=2,
            provisioned=True,
        )
        spec = job_manifest(plan, controller_reference(obj))["spec"]["template"]["spec"]
        # The tiny preset's weights come in a model image: its entrypoint, the copier, runs
        # here as the same static binary, copying the tiny model into the weights volume.
        assert plan.weights.image is not None
        copier = build_static(COPIER_SOURCE, tmp_path / "copy-weights")
        pod = LocalPod(
            spec,
            tmp_path / "pod",
            ports={5000: free_port()},
            entrypoints={
                plan.weights.image: ([str(copier)], {"KAITO_WEIGHTS_SOURCE": str(tiny_model)})
            },
        )
        config_dir = pod.volume_dir("config")
        for key, text in config_map["data"].items():
            (config_dir / key).write_text(text)
        registry.write_docker_config(pod.volume_dir("push-secret") / ".dockerconfigjson")

        # While the trainer runs, the controller's progress reader scrapes it like a pod.
        seen: list[TuningProgress] = []
        local_pod = {
            "metadata": {"name": "tune-tiny-abcde"},
            "spec": {
                "initContainers": [
                    {
                        "name": "trainer",
                        "ports": [{"name": "metrics", "containerPort": pod.ports[5000]}],
                    }
                ],
            },
            "status": {
                "podIP": "127.0.0.1",
                "initContainerStatuses": [
                    {
                        "name": "trainer",
                        "state": {
                            "running": {
                                "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                            }
                        },
                    }
                ],
            },
        }
        reader = MetricsProgressSource(default_port=5000, timeout_s=1.0)

        def scrape(proc: subprocess.Popen[str]) -> None:
            while proc.poll() is None:
                progress = asyncio.run(reader.read(local_pod, "trainer"))
                if progress is not None:
                    seen.append(progress)
                time.sleep(0.1)

        ok = pod.run(while_running={"trainer": scrape})
        runs = {r.name: r for r in pod.runs}
        assert ok, {
            r.name: (r.returncode, r.termination_message, r.stderr[-3000:]) for r in pod.runs
        }
    assert [r.name for r in pod.runs] == ["model-weights", "fetch", "trainer", "pusher"]
    print("Container durations:", {r.name: round(r.seconds, 1) for r in pod.runs})

    # model-weights: the model image's files, in the volume the trainer read them from.
    assert runs["model-weights"].stdout.startswith("Copied "), runs["model-weights"]
    weights = pod.volume_dir("weights")
    for path in tiny_model.iterdir():
        assert (weights / path.name).read_bytes() == path.read_bytes(), path.name

    # fetch: the URL's file name without the query, in the data volume.
    assert (pod.volume_dir("data") / "dolly.jsonl").stat().st_size > 0
    # train: the chart's config, the preset's weights path and target modules from the env.
    assert "shape=conversational" in runs["trainer"].stderr
    results = pod.volume_dir("results")
    for name in ("adapter_config.json", "adapter_model.safetensors", "fine_tuning_completed.txt"):
        assert (results / name).is_file(), name
    adapter_config = json.loads((results / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == set(preset.tuning.target_modules)
    final = progress_from_termination(runs["trainer"].termination_message)
    assert final is not None and final.phase == "Completed"
    assert final.step == final.total_steps > 0 and final.loss is not None
    assert seen, "the progress reader never reached the trainer's metrics endpoint"
    assert all(p.step <= final.total_steps for p in seen)

    # push: the adapter image is in the registry, with Kaito's model-name annotation.
    annotations = manifest_annotations(registry, "tuned/tiny-adapter", "0.0.1")
    assert annotations.get("sh.kaito.model.name") == "test-tiny-llama"

    # Inference: a workspace using the pushed image as an adapter; its puller pulls it.
    inference = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "serve-tiny", "namespace": "default", "uid": "u-2"},
        "resource": {"count": 1, "labelSelector": {"matchLabels": {"app": "tiny"}}},
        "inference": {
            "preset": {"name": "test-tiny-llama"},
            "adapters": [
                {"source": {"name": "tuned", "image": image, "imagePullSecrets": ["push-secret"]}}
            ],
        },
    }
    serving = Workspace.model_validate(inference)
    iplan = inference_plan(
        serving,
        preset,
        None,
        runtime="transformers",
        revision="1",
        images=ImageSettings(),
        config_map=None,
        provisioned=True,
    )
    ispec = pod_template(iplan)["spec"]
    copy_weights, puller = ispec["initContainers"]
    assert copy_weights["name"] == "model-weights"
    ipod = LocalPod(ispec, tmp_path / "inference-pod")
    registry.write_docker_config(ipod.volume_dir("pull-secret-push-secret") / ".dockerconfigjson")
    run = ipod.run_container(puller)
    assert run.returncode == 0, run.stderr[-3000:]
    pulled = ipod.volume_dir("adapters") / "tuned"
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (pulled / name).read_bytes() == (results / name).read_bytes(), name
