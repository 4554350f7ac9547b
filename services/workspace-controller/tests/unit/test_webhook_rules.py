"""Every webhook rule, as a table: the object, and a fragment of the message it must produce."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from wc_helpers.fakes import FakeConfigMapReader
from wc_helpers.webhook_cases import CASES
from wc_helpers.workspaces import phi3, tuning

from kaito_common.presets import default_catalog
from kaito_common.urlguard import URLPolicy
from workspace_controller.settings import parse_settings
from workspace_controller.webhook.configmaps import check_config_maps
from workspace_controller.webhook.rules import RuleContext, validate_create, validate_update

CTX = RuleContext(catalog=default_catalog(include_test=True))
Obj = dict[str, Any]


@pytest.mark.parametrize(("case", "obj", "message"), CASES, ids=[c[0] for c in CASES])
def test_rejections(case: str, obj: Obj, message: str) -> None:
    errors = validate_create(obj, CTX)
    assert any(message in e for e in errors), errors


def test_seed_manifests_are_accepted() -> None:
    assert validate_create(phi3(), CTX) == []
    assert validate_create(tuning(), CTX) == []


def test_bypass_annotation_skips_fit_checks() -> None:
    obj = phi3()
    obj["inference"]["preset"]["name"] = "phi-4"
    obj["metadata"]["annotations"] = {"kaito.sh/bypass-resource-checks": "true"}
    assert validate_create(obj, CTX) == []


def test_loopback_urls_only_with_the_test_setting() -> None:
    obj = tuning()
    obj["tuning"]["input"]["urls"] = ["http://127.0.0.1:8080/data.jsonl"]
    assert validate_create(obj, CTX)
    lenient = RuleContext(catalog=CTX.catalog, url_policy=URLPolicy(allow_loopback=True))
    assert validate_create(obj, lenient) == []


def test_in_cluster_urls_only_with_the_operators_allow_list() -> None:
    obj = tuning()
    obj["tuning"]["input"]["urls"] = [
        "http://10.96.4.20/data/train.jsonl",
        "http://minio.storage.svc:9000/bucket/more.jsonl",
    ]
    errors = validate_create(obj, CTX)
    assert any("urls[0]" in e and "a private address" in e for e in errors), errors
    settings = parse_settings(["--tuning-allowed-data-networks=10.96.0.0/12, minio.storage.svc"])
    allowing = RuleContext(catalog=CTX.catalog, url_policy=settings.url_policy)
    assert validate_create(obj, allowing) == []
    obj["tuning"]["input"]["urls"] = ["http://169.254.169.254/latest/meta-data/train.jsonl"]
    wide = parse_settings(["--tuning-allowed-data-networks=0.0.0.0/0"])
    errors = validate_create(obj, RuleContext(catalog=CTX.catalog, url_policy=wide.url_policy))
    assert any("metadata" in e for e in errors), errors


@pytest.mark.parametrize(
    ("field", "change", "message"),
    [
        ("count", lambda o: o["resource"].update(count=2), "resource.count: field is immutable"),
        (
            "selector",
            lambda o: o["resource"].update(labelSelector={"matchLabels": {"x": "y"}}),
            "resource.labelSelector: field is immutable",
        ),
        (
            "sku",
            lambda o: o["resource"].update(instanceType="Standard_NC12s_v3"),
            "resource.instanceType: field is immutable",
        ),
        (
            "preset",
            lambda o: o["inference"]["preset"].update(name="phi-3-mini-128k-instruct"),
            "inference.preset: field is immutable",
        ),
        (
            "toggle",
            lambda o: (o.pop("inference"), o.update(tuning=tuning()["tuning"])),
            "Inference field cannot be toggled once set",
        ),
    ],
)
def test_immutable_fields(field: str, change: Callable[[Obj], Any], message: str) -> None:
    old = phi3()
    new = copy.deepcopy(old)
    change(new)
    assert any(message in e for e in validate_update(old, new, CTX))


def test_adapters_may_change_and_controller_writes_pass() -> None:
    old = phi3()
    new = copy.deepcopy(old)
    new["inference"]["adapters"] = [{"source": {"name": "a", "image": "r/a:1"}}]
    assert validate_update(old, new, CTX) == []
    annotated = copy.deepcopy(old)
    annotated["metadata"]["annotations"] = {"workspace.kaito.io/revision": "2"}
    annotated["metadata"]["finalizers"] = ["workspace.finalizer.kaito.sh"]
    old["resource"]["instanceType"] = "Standard_Unknown"  # even an invalid old object
    annotated["resource"]["instanceType"] = "Standard_Unknown"
    assert validate_update(old, annotated, CTX) == []


TRAINING = """
training_config:
  ModelConfig: {torch_dtype: bfloat16}
  QuantizationConfig: {load_in_4bit: %s, load_in_8bit: false}
  TrainingArguments: {output_dir: %s}
  %s
"""


@pytest.mark.parametrize(
    ("method", "four", "out", "extra", "message"),
    [
        ("qlora", "true", "/mnt/results", "", None),
        ("lora", "false", "/mnt/results", "", None),
        ("qlora", "false", "/mnt/results", "", "qlora needs load_in_4bit"),
        ("lora", "true", "/mnt/results", "", "lora does not quantize"),
        ("qlora", '"yes"', "/mnt/results", "", "must be booleans"),
        ("qlora", "true", "/tmp/out", "", "Invalid output_dir specified: '/tmp/out'"),
        ("qlora", "true", "/mnt/results", "Extra: {}", "Unrecognized section: Extra"),
    ],
)
async def test_tuning_config_map(
    method: str, four: str, out: str, extra: str, message: str | None
) -> None:
    obj = tuning()
    obj["tuning"].update(method=method, config="train")
    data = {"training_config.yaml": TRAINING % (four, out, extra)}
    reader = FakeConfigMapReader({("default", "train"): {"data": data}})
    errors = await check_config_maps(obj, reader)
    if message is None:
        assert errors == []
    else:
        assert any(message in e for e in errors), errors


async def test_inference_config_map() -> None:
    obj = phi3()
    obj["inference"]["config"] = "params"
    errors = await check_config_maps(obj, FakeConfigMapReader())
    assert errors == [
        "inference.config: ConfigMap 'params' specified in 'config' not found in namespace "
        "'default'"
    ]
    bad = FakeConfigMapReader({("default", "params"): {"data": {"inference_config.yaml": ": ["}}})
    assert "not valid YAML" in (await check_config_maps(obj, bad))[0]
    good = FakeConfigMapReader(
        {("default", "params"): {"data": {"inference_config.yaml": "max_length: 10"}}}
    )
    assert await check_config_maps(obj, good) == []


async def test_max_model_len_within_the_presets_token_limit() -> None:
    obj = phi3()  # phi-3-mini-4k-instruct: token limit 4096
    obj["inference"]["config"] = "params"

    def reader(text: str) -> FakeConfigMapReader:
        return FakeConfigMapReader(
            {("default", "params"): {"data": {"inference_config.yaml": text}}}
        )

    ok = reader("vllm: {max-model-len: 4096}\ntransformers: {max-model-len: 96}\n")
    assert await check_config_maps(obj, ok, CTX.catalog) == []
    (error,) = await check_config_maps(
        obj, reader("transformers: {max-model-len: 8192}"), CTX.catalog
    )
    assert "transformers.max-model-len 8192 is larger than the preset's token limit 4096" in error
    (error,) = await check_config_maps(obj, reader("vllm: {max_model_len: -1}"), CTX.catalog)
    assert "vllm.max-model-len must be a positive integer" in error
