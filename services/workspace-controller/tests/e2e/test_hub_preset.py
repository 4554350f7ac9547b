"""End to end: a Hugging Face repo id as `inference.preset.name`, read from the local hub the
controller process is pointed at (`--hf-endpoint`), on the full local control plane."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from wc_helpers.cluster import WORKSPACE, ControllerProcess, fulfil_claim, session_hub
from wc_helpers.waits import claims_of, condition, wait_claims, wait_condition

from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import DEPLOYMENT, SECRET, STATEFUL_SET
from kaito_testing.controllers import eventually
from workspace_controller.presets_resolver import ANNOTATION_MODEL_REVISION
from workspace_controller.webhook.rules import SECRET_REQUIRED

pytestmark = pytest.mark.full

Obj = dict[str, Any]
REPO = "example-org/tiny-chat"
FIRST, SECOND, GATED = "1" * 40, "2" * 40, "3" * 40
LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 2048,
    "torch_dtype": "float32",
}


def tiny_repo(directory: Path) -> Path:
    """A tiny llama-shaped repository: config.json and one small safetensors file."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    (directory / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    return directory


def workspace(name: str, namespace: str, preset: str, **options: str) -> Obj:
    spec: Obj = {"name": preset}
    if options:
        spec["presetOptions"] = options
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name, "namespace": namespace},
        "resource": {
            "instanceType": "Standard_NC6s_v3",
            "labelSelector": {"matchLabels": {"apps": f"{name}-{secrets.token_hex(3)}"}},
        },
        "inference": {"preset": spec},
    }


async def workload(kube: KubeClient, name: str, namespace: str) -> Obj:
    for kind in (DEPLOYMENT, STATEFUL_SET):
        found = await kube.get_or_none(kind, name, namespace)
        if found is not None:
            return found
    raise AssertionError(f"no Deployment or StatefulSet {namespace}/{name}")


def download_args(obj: Obj) -> list[str]:
    init = obj["spec"]["template"]["spec"].get("initContainers") or []
    (download,) = [c for c in init if c["name"] == "model-download"]
    return [str(a) for a in [*download.get("command", []), *download.get("args", [])]]


async def test_repo_id_preset_is_downloaded_at_the_pinned_commit(
    kube: KubeClient, namespace: str, controller: ControllerProcess, tmp_path: Path
) -> None:
    hub = session_hub()
    hub.add_repo(REPO, tiny_repo(tmp_path / "first"), commit=FIRST)
    name = "hf-tiny-chat"
    await kube.create(WORKSPACE, workspace(name, namespace, REPO))

    (claim,) = await wait_claims(kube, name, namespace, 1)
    ws = await kube.get(WORKSPACE, name, namespace)
    assert ws["metadata"]["annotations"][ANNOTATION_MODEL_REVISION] == FIRST
    await fulfil_claim(kube, claim)
    await wait_condition(kube, name, namespace, "WorkspaceSucceeded", "True")
    args = download_args(await workload(kube, name, namespace))
    assert f"--repo={REPO}" in args and f"--revision={FIRST}" in args

    # The repository moves on; the Workspace keeps the commit it was pinned to, also after a
    # restart of the controller (the pin is in the annotation, not in memory).
    hub.add_repo(REPO, tiny_repo(tmp_path / "second"), commit=SECOND)
    controller.restart()
    await kube.patch(WORKSPACE, name, {"metadata": {"labels": {"touch": "1"}}}, namespace)
    await wait_condition(kube, name, namespace, "WorkspaceSucceeded", "True")
    assert f"--revision={FIRST}" in download_args(await workload(kube, name, namespace))


async def test_repo_the_hub_does_not_have(
    kube: KubeClient, namespace: str, controller: ControllerProcess
) -> None:
    name = "hf-missing"
    await kube.create(WORKSPACE, workspace(name, namespace, "example-org/not-there"))
    ws = await kube.get(WORKSPACE, name, namespace)

    async def refused() -> bool:
        nonlocal ws
        ws = await kube.get(WORKSPACE, name, namespace)
        return condition(ws, "WorkspaceSucceeded").get("reason") == "UnsupportedPreset"

    await eventually(refused, timeout_s=30, what="UnsupportedPreset on hf-missing")
    message = condition(ws, "WorkspaceSucceeded")["message"]
    assert "example-org/not-there not found at http://127.0.0.1" in message
    assert not await claims_of(kube, name, namespace)


async def test_gated_repo_without_model_access_secret(
    kube: KubeClient, namespace: str, controller: ControllerProcess, tmp_path: Path
) -> None:
    repo = "example-org/gated-chat"
    session_hub().add_repo(
        repo, tiny_repo(tmp_path / "gated"), commit=GATED, gated=True, tokens=["hf_ok"]
    )
    name = "hf-gated"
    await kube.create(WORKSPACE, workspace(name, namespace, repo))

    async def refused() -> bool:
        ws = await kube.get(WORKSPACE, name, namespace)
        found = condition(ws, "WorkspaceSucceeded")
        return found.get("reason") == "UnsupportedPreset" and SECRET_REQUIRED in found["message"]

    await eventually(refused, timeout_s=30, what="the modelAccessSecret refusal on hf-gated")

    # With a Secret whose HF_TOKEN the hub accepts, the controller reads the repository.
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hf-token", "namespace": namespace},
        "stringData": {"HF_TOKEN": "hf_ok"},
    }
    await kube.create(SECRET, secret)
    name = "hf-gated-with-token"
    await kube.create(WORKSPACE, workspace(name, namespace, repo, modelAccessSecret="hf-token"))
    await wait_claims(kube, name, namespace, 1)
    ws = await kube.get(WORKSPACE, name, namespace)
    assert ws["metadata"]["annotations"][ANNOTATION_MODEL_REVISION] == GATED


async def test_webhook_accepts_repo_ids_only(kube: KubeClient, namespace: str) -> None:
    with pytest.raises(ApiException) as refused:
        await kube.create(WORKSPACE, workspace("hf-bad-name", namespace, "not a/repo id"))
    assert "Unsupported inference preset name not a/repo id" in str(refused.value.body)
