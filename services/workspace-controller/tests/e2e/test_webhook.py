"""The validating webhook through the real API server: each invalid case is refused with its
message (by the CRD's CEL rules or by the webhook), the seed's manifests are accepted, and
immutable fields cannot change."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from wc_helpers.cluster import REPO, WORKSPACE
from wc_helpers.webhook_cases import CASES
from wc_helpers.workspaces import phi3, tuning

from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import CONFIG_MAP, Kind

pytestmark = pytest.mark.full

Obj = dict[str, Any]


# Where the CRD schema refuses first, the API server answers with the schema's words.
SCHEMA_MESSAGES = {
    "too many adapters": "must have at most 10 items",
}
# The test controller runs with --enable-test-presets and --allow-loopback-urls.
ACCEPTED_HERE = {"test preset without the setting", "localhost url"}


def kind_of(obj: Obj) -> Kind:
    group, _, version = str(obj.get("apiVersion") or WORKSPACE.api_version).partition("/")
    return Kind(group, version, WORKSPACE.plural, WORKSPACE.kind)


def placed(obj: Obj, namespace: str) -> Obj:
    obj = copy.deepcopy(obj)
    obj["metadata"]["namespace"] = namespace
    obj["metadata"].pop("uid", None)
    obj["metadata"].pop("generation", None)
    return obj


async def refused(kube: KubeClient, obj: Obj, namespace: str) -> str:
    with pytest.raises(ApiException) as err:
        await kube.create(kind_of(obj), obj, namespace)
    assert err.value.status in (400, 422), err.value
    return str(err.value.body)


@pytest.mark.parametrize(("case", "obj", "message"), CASES, ids=[c[0] for c in CASES])
async def test_invalid_workspace_is_refused(
    kube: KubeClient, namespace: str, case: str, obj: Obj, message: str
) -> None:
    if case in ACCEPTED_HERE:
        await kube.create(kind_of(obj), placed(obj, namespace), namespace)
        return
    body = await refused(kube, placed(obj, namespace), namespace)
    assert SCHEMA_MESSAGES.get(case, message) in body, body


async def test_seed_manifests_are_accepted(kube: KubeClient, namespace: str) -> None:
    import yaml

    for path in sorted((REPO / "examples").glob("kaito_workspace_*.yaml")):
        obj = yaml.safe_load(path.read_text())
        obj["metadata"]["namespace"] = namespace
        await kube.create(kind_of(obj), obj, namespace)  # v1alpha1 and v1beta1, unchanged
        await kube.delete(WORKSPACE, obj["metadata"]["name"], namespace)


async def test_immutable_fields_and_allowed_changes(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(WORKSPACE, placed(phi3(), namespace), namespace)
    name = created["metadata"]["name"]
    for patch, message in [
        ({"resource": {"count": 2}}, "resource.count: field is immutable"),
        ({"resource": {"instanceType": "Standard_NC12s_v3"}}, "field is immutable"),
        ({"inference": {"preset": {"name": "phi-3-mini-128k-instruct"}}}, "field is immutable"),
        ({"resource": {"labelSelector": {"matchLabels": {"x": "y"}}}}, "field is immutable"),
    ]:
        with pytest.raises(ApiException) as err:
            await kube.patch(WORKSPACE, name, patch, namespace)
        assert message in str(err.value.body), err.value.body
    adapters = [{"source": {"name": "a", "image": "registry.local/a:1"}}]
    await kube.patch(WORKSPACE, name, {"inference": {"adapters": adapters}}, namespace)
    await kube.delete(WORKSPACE, name, namespace)


async def test_config_maps_are_checked(kube: KubeClient, namespace: str) -> None:
    obj = placed(tuning(), namespace)
    obj["tuning"]["config"] = "train"
    body = await refused(kube, obj, namespace)
    assert f"ConfigMap 'train' specified in 'config' not found in namespace '{namespace}'" in body
    config = "training_config:\n  Bogus: {}\n  QuantizationConfig: {load_in_4bit: true}\n"
    await kube.create(
        CONFIG_MAP,
        {"metadata": {"name": "train"}, "data": {"training_config.yaml": config}},
        namespace,
    )
    assert "Unrecognized section: Bogus" in await refused(kube, obj, namespace)


async def test_loopback_tuning_urls_follow_the_test_setting(
    kube: KubeClient, namespace: str
) -> None:
    obj = placed(tuning(), namespace)
    obj["tuning"]["input"]["urls"] = ["http://127.0.0.1:8000/data.jsonl"]
    await kube.create(kind_of(obj), obj, namespace)  # the test controller allows loopback
    obj["metadata"]["name"] = "metadata-url"
    obj["tuning"]["input"]["urls"] = ["http://metadata.google.internal/computeMetadata/v1/"]
    assert "cloud metadata" in await refused(kube, obj, namespace)


async def test_manifests_written_for_upstream_v012_are_accepted(
    kube: KubeClient, namespace: str
) -> None:
    """Upstream-style manifests apply unchanged: a newer preset on an AWS size, `method: QLoRA`,
    an unknown Azure GPU size (no fit check), and the annotations whose meaning holds here."""
    gemma = placed(phi3(), namespace)
    gemma["metadata"]["name"] = "gemma-aws"
    gemma["metadata"]["annotations"] = {
        "kaito.sh/performance-mode": "balanced",
        "kaito.sh/disable-benchmark": "true",
    }
    gemma["resource"]["instanceType"] = "g5.4xlarge"
    gemma["inference"]["preset"] = {"name": "gemma-3-4b-instruct"}
    qlora = placed(tuning(), namespace)
    qlora["metadata"]["name"] = "qlora-upper"
    qlora["tuning"]["method"] = "QLoRA"
    unknown = placed(phi3(), namespace)
    unknown["metadata"]["name"] = "unknown-azure-size"
    unknown["resource"]["instanceType"] = "Standard_NC8ads_A10_v9"
    for obj in (gemma, qlora, unknown):
        created = await kube.create(kind_of(obj), obj, namespace)
        assert created["metadata"]["name"] == obj["metadata"]["name"]
    stored = await kube.get(WORKSPACE, "qlora-upper", namespace)
    assert stored["tuning"]["method"] == "QLoRA"  # kept as written; the controller reads qlora


async def test_mig_partition_reaches_the_webhook_and_is_refused(
    kube: KubeClient, namespace: str
) -> None:
    obj = placed(phi3(), namespace)
    obj["resource"]["partition"] = {"strategy": "single", "profile": "1g.10gb"}
    body = await refused(kube, obj, namespace)
    assert "resource.partition: GPU partitioning (MIG) is not supported yet" in body
