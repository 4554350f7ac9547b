"""The tuning Job, built from the seed's workspace and its variants: golden files plus the
rules of the spec checked field by field (so a golden update cannot silently drop one)."""

from __future__ import annotations

from typing import Any

import pytest
from wc_helpers.golden import assert_golden
from wc_helpers.plans import tuning_plan_of
from wc_helpers.workspaces import tuning, tuning_volume

from kaito_common.api.workspace import Workspace
from kaito_common.controller.meta import controller_reference
from kaito_common.presets import default_catalog
from workspace_controller.manifests.configmap import tuning_params_copy
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.manifests.runner_access import RunnerAccess
from workspace_controller.tuning.config import TuningConfigError, output_dir_of
from workspace_controller.tuning.job import job_manifest
from workspace_controller.tuning.plan import TuningPlan, tuning_plan

CATALOG = default_catalog(include_test=True)
Obj = dict[str, Any]


def plan_of(obj: Obj, *, output_dir: str = "/mnt/results", provisioned: bool = True) -> TuningPlan:
    return tuning_plan_of(obj, output_dir=output_dir, provisioned=provisioned)


def by_name(items: list[Obj]) -> dict[str, Obj]:
    return {i["name"]: i for i in items}


def mounts(container: Obj) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in container["volumeMounts"]}


def test_seed_job_golden() -> None:
    obj = tuning()
    assert_golden("job-seed-tuning", job_manifest(plan_of(obj), controller_reference(obj)))


def test_seed_job_field_by_field() -> None:
    obj = tuning()
    job = job_manifest(plan_of(obj), controller_reference(obj))
    name = "workspace-tuning-phi-3"
    assert job["metadata"]["name"] == name
    assert job["metadata"]["labels"] == {"kaito.sh/workspace": name}
    assert job["metadata"]["annotations"] == {"workspace.kaito.io/revision": "1"}
    assert job["metadata"]["ownerReferences"][0]["controller"] is True
    spec = job["spec"]
    assert spec["backoffLimit"] == 2
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"] == {"kaito.sh/workspace": name}
    assert pod["restartPolicy"] == "Never"

    # download -> fetch -> trainer (init containers, in order), then the pusher.
    assert [c["name"] for c in pod["initContainers"]] == ["model-download", "fetch", "trainer"]
    assert [c["name"] for c in pod["containers"]] == ["pusher"]
    _download, fetch, trainer = pod["initContainers"]
    (pusher,) = pod["containers"]
    runner = "localhost/kaito/tuning-runner:dev"
    assert fetch["image"] == runner and pusher["image"] == runner
    url = obj["tuning"]["input"]["urls"][0]
    assert fetch["command"] == [
        "python", "-m", "tuning_runner", "--termination-log", "/dev/termination-log",
        "fetch", "--dest", "/mnt/data", "--url", url,
    ]  # fmt: skip
    assert mounts(fetch) == {"/mnt/data": "data", "/tmp": "tmp"}

    assert trainer["image"] == runner
    assert trainer["command"][5:] == [
        "train", "--config", "/mnt/config/training_config.yaml", "--data-dir", "/mnt/data",
        "--output-dir", "/mnt/results", "--root", "/mnt", "--metrics-port", "5000",
    ]  # fmt: skip
    assert trainer["resources"] == {
        "requests": {"nvidia.com/gpu": "1"},
        "limits": {"nvidia.com/gpu": "1"},
    }
    assert mounts(trainer) == {
        "/mnt/config": "config",
        "/mnt/data": "data",
        "/mnt/results": "results",
        "/dev/shm": "dshm",
        "/tmp": "tmp",
        "/workspace/weights": "weights",
    }
    env = {e["name"]: e.get("value") for e in trainer["env"]}
    assert env["KAITO_TUNING_DEFAULT_MODEL_PATH"] == "/workspace/weights"
    assert env["KAITO_TUNING_MODEL_NAME"] == "phi-3-mini-128k-instruct"
    assert env["KAITO_TUNING_DEFAULT_TARGET_MODULES"].startswith('["')
    assert trainer["ports"] == [{"name": "metrics", "containerPort": 5000, "protocol": "TCP"}]

    assert pusher["command"][5:] == [
        "push", "--image", "myacr.azurecr.io/adapter:0.0.1", "--output-dir", "/mnt/results",
        "--model-name", "phi-3-mini-128k-instruct", "--docker-config", "/etc/kaito/push-secret",
    ]  # fmt: skip
    assert mounts(pusher) == {
        "/mnt/results": "results",
        "/etc/kaito/push-secret": "push-secret",
        "/tmp": "tmp",
    }
    assert "resources" not in pusher, "the push step needs no GPU"

    volumes = by_name(pod["volumes"])
    assert volumes["push-secret"] == {"name": "push-secret", "secret": {"secretName": "acr-secret"}}
    assert volumes["config"]["configMap"] == {"name": f"{name}-tuning-params"}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert volumes["results"] == {"name": "results", "emptyDir": {}}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory"}

    # No privileged container anywhere (Kaito v0.3 pushed with docker-in-docker).
    for container in [*pod["initContainers"], *pod["containers"]]:
        security = container["securityContext"]
        assert security.get("privileged") is not True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }

    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    (term,) = terms["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": "app", "operator": "In", "values": ["tuning-phi-3"]},
        {"key": "kaito.sh/workspace", "operator": "In", "values": [name]},
    ]


def test_volume_input_and_output_need_no_fetch_or_push() -> None:
    obj = tuning_volume()
    job = job_manifest(plan_of(obj, output_dir="/mnt/out"), controller_reference(obj))
    pod = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["model-download"]
    (trainer,) = pod["containers"]
    assert trainer["name"] == "trainer"
    volumes = by_name(pod["volumes"])
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}
    assert volumes["results"] == {"name": "results", "persistentVolumeClaim": {"claimName": "out"}}
    assert "push-secret" not in volumes
    assert mounts(trainer)["/mnt/out"] == "results"
    data_mount = next(m for m in trainer["volumeMounts"] if m["name"] == "data")
    assert data_mount["readOnly"] is True
    assert_golden("job-volumes", job)


def test_image_input_pulls_with_its_secrets() -> None:
    obj = tuning()
    obj["tuning"]["input"] = {"image": "reg.io/data:1", "imagePullSecrets": ["data-pull"]}
    pod = job_manifest(plan_of(obj), controller_reference(obj))["spec"]["template"]["spec"]
    fetch = pod["initContainers"][1]
    assert fetch["command"][5:] == [
        "fetch", "--dest", "/mnt/data", "--image", "reg.io/data:1",
        "--docker-config", "/etc/kaito/pull-secrets/data-pull",
    ]  # fmt: skip
    assert mounts(fetch)["/etc/kaito/pull-secrets/data-pull"] == "pull-secret-data-pull"
    assert by_name(pod["volumes"])["pull-secret-data-pull"]["secret"] == {"secretName": "data-pull"}
    assert "imagePullSecrets" not in pod, "the runner pulls the data image, not the kubelet"


def test_loopback_setting_reaches_fetch() -> None:
    obj = tuning()
    ws = Workspace.model_validate(obj)
    preset = CATALOG.preset("phi-3-mini-128k-instruct")
    assert preset is not None
    plan = tuning_plan(
        ws, preset, None, revision="3", images=ImageSettings(runner="r:1"),
        config_map="c", output_dir="/mnt/results", metrics_port=9000, allow_loopback=True,
        backoff_limit=0, provisioned=False,
    )  # fmt: skip
    pod = job_manifest(plan, controller_reference(obj))["spec"]["template"]["spec"]
    assert pod["initContainers"][1]["command"][-1] == "--allow-loopback"
    assert pod["initContainers"][1]["image"] == "r:1"
    assert pod["initContainers"][2]["command"][-1] == "9000"
    expressions = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    keys = [e["key"] for e in expressions["nodeSelectorTerms"][0]["matchExpressions"]]
    assert "kaito.sh/workspace" not in keys, "existing nodes: only the user's selector"


def test_tuning_params_copy_is_owned_and_labelled() -> None:
    obj = tuning()
    owner = controller_reference(obj)
    template = {
        "metadata": {"name": "qlora-params-template"},
        "data": {"training_config.yaml": "x"},
    }
    copy = tuning_params_copy("ws", "ns", owner, template)
    assert copy["metadata"]["name"] == "ws-tuning-params"
    assert copy["metadata"]["labels"] == {"kaito.sh/workspace": "ws"}
    assert copy["metadata"]["ownerReferences"] == [owner]
    assert copy["data"] == {"training_config.yaml": "x"}


def _config(text: str) -> Obj:
    return {"metadata": {"name": "cfg"}, "data": {"training_config.yaml": text}}


def test_output_dir_of_config() -> None:
    assert output_dir_of(_config("training_config: {}")) == "/mnt/results"
    text = "training_config:\n  TrainingArguments:\n    output_dir: /mnt/out/./x/\n"
    assert output_dir_of(_config(text)) == "/mnt/out/x"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("training_config:\n  TrainingArguments: {output_dir: /tmp/x}", "under /mnt"),
        ("training_config:\n  TrainingArguments: {output_dir: /mnt/../etc}", "under /mnt"),
        ("training_config:\n  TrainingArguments: {output_dir: /mnt/data/r}", "overlaps"),
        ("other: 1", "top-level key training_config"),
        ("training_config: [", "not valid YAML"),
    ],
)
def test_output_dir_errors(text: str, words: str) -> None:
    with pytest.raises(TuningConfigError, match=words):
        output_dir_of(_config(text))
    with pytest.raises(TuningConfigError, match="no key"):
        output_dir_of({"metadata": {"name": "cfg"}, "data": {}})


def test_runner_access_reaches_fetch_and_push_only() -> None:
    obj = tuning()
    obj["tuning"]["input"] = {"urls": ["http://10.96.4.20/data/train.jsonl"]}
    obj["tuning"]["output"] = {"image": "192.0.2.2:5000/adapters/a:1", "imagePushSecret": "push"}
    ws = Workspace.model_validate(obj)
    preset = CATALOG.preset(ws.tuning.preset.name if ws.tuning else "")
    assert preset is not None
    access = RunnerAccess(
        allowed_data_networks=("10.96.0.0/12",),
        plain_http_registries=("192.0.2.2:5000",),
        ca_bundle_config_map="internal-ca",
    )
    plan = tuning_plan(
        ws, preset, None, revision="1", images=ImageSettings(runner_access=access),
        config_map="c", output_dir="/mnt/results", metrics_port=5000, allow_loopback=False,
        backoff_limit=0, provisioned=False,
    )  # fmt: skip
    pod = job_manifest(plan, controller_reference(obj))["spec"]["template"]["spec"]
    _download, fetch, trainer = pod["initContainers"]
    (pusher,) = pod["containers"]
    want_env = {
        "KAITO_TUNING_ALLOWED_DATA_NETWORKS": '["10.96.0.0/12"]',
        "KAITO_TUNING_PLAIN_HTTP_REGISTRIES": '["192.0.2.2:5000"]',
        "KAITO_TUNING_CA_FILE": "/etc/kaito/ca/ca.crt",
    }
    for container in (fetch, pusher):
        assert {e["name"]: e["value"] for e in container["env"]} == want_env
        assert mounts(container)["/etc/kaito/ca"] == "kaito-ca-bundle"
    assert not any(e["name"].startswith("KAITO_TUNING_ALLOWED") for e in trainer["env"])
    assert "/etc/kaito/ca" not in mounts(trainer)
    assert by_name(pod["volumes"])["kaito-ca-bundle"]["configMap"] == {
        "name": "internal-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    # Off by default: nothing added (the golden files hold the default Job).
    default = job_manifest(plan_of(obj), controller_reference(obj))["spec"]["template"]["spec"]
    assert "env" not in default["initContainers"][1] and "env" not in default["containers"][0]
    assert "kaito-ca-bundle" not in by_name(default["volumes"])
