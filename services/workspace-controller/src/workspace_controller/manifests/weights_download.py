"""The init container that downloads a preset's weights from the Hugging Face hub at start.

It runs the pod's own runtime image (which holds `kaito_common.weights` and `huggingface_hub`)
as `python -m kaito_common.weights download`, into the weights volume: the repository at the
catalog's pinned commit, only the files a model needs. `HF_TOKEN` comes from the Workspace's
`modelAccessSecret` (gated repositories), `HF_ENDPOINT` from the controller's `--hf-endpoint`
(a mirror, or the tests' local hub). A download cut short resumes when the container restarts;
one that finished is not repeated (the weights cache keeps it across pods). Its progress is in the
container's log and on `:WEIGHTS_METRICS_PORT/metrics`; its failure reason in the termination
message.
"""

from __future__ import annotations

from kaito_common.controller.objects import Obj
from workspace_controller.manifests.model_weights import ModelWeights, hf_token_env
from workspace_controller.manifests.runner import TERMINATION_LOG, locked_down
from workspace_controller.manifests.weights_copy import WEIGHTS_VOLUME

DOWNLOAD_CONTAINER = "model-download"
SCRATCH_VOLUME = "weights-scratch"  # the downloader's /tmp (HF_HOME): the root is read-only
WEIGHTS_METRICS_PORT = 5002


def download_command(weights: ModelWeights, log_format: str = "text") -> list[str]:
    command = ["python", "-m", "kaito_common.weights"]
    if log_format != "text":
        command.append(f"--log-format={log_format}")
    command += [
        "download",
        f"--repo={weights.repo}",
        f"--revision={weights.revision}",
        f"--dest={weights.path}",
        f"--metrics-port={WEIGHTS_METRICS_PORT}",
        f"--termination-log={TERMINATION_LOG}",
    ]
    if weights.trust_remote_code:
        command.append("--trust-remote-code")
    return command


def download_container(
    weights: ModelWeights, hf_endpoint: str, token_secret: str | None, log_format: str = "text"
) -> Obj:
    env: list[Obj] = [
        # The runtime images are offline by default (HF_HUB_OFFLINE=1): this step is not.
        {"name": "HF_HUB_OFFLINE", "value": "0"},
        {"name": "HF_HOME", "value": "/tmp/hf"},
        {"name": "HF_HUB_DISABLE_PROGRESS_BARS", "value": "1"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    if hf_endpoint:
        env.append({"name": "HF_ENDPOINT", "value": hf_endpoint})
    if token_secret:
        env.append(hf_token_env(token_secret))
    return {
        "name": DOWNLOAD_CONTAINER,
        "image": weights.downloader_image,
        "imagePullPolicy": "IfNotPresent",
        "command": download_command(weights, log_format),
        "env": env,
        "ports": [
            {"name": "weights-metrics", "containerPort": WEIGHTS_METRICS_PORT, "protocol": "TCP"}
        ],
        "volumeMounts": [
            {"name": WEIGHTS_VOLUME, "mountPath": weights.path},
            {"name": SCRATCH_VOLUME, "mountPath": "/tmp"},
        ],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": locked_down(),
    }
