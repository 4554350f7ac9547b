"""Every webhook rule, as a table: the object, and a fragment of the message it must produce."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from wc_helpers.workspaces import phi3, tuning

from kaito_common.presets import default_catalog
from kaito_common.urlguard import URLPolicy
from workspace_controller.webhook.configmaps import FakeConfigMapReader, check_config_maps
from workspace_controller.webhook.rules import RuleContext, validate_create, validate_update

CTX = RuleContext(catalog=default_catalog(include_test=True))
Obj = dict[str, Any]


def edit(base: Callable[[], Obj], fn: Callable[[Obj], None]) -> Obj:
    obj = base()
    fn(obj)
    return obj


CASES: list[tuple[str, Obj, str]] = [
    ("neither", edit(phi3, lambda o: o.pop("inference")), "not neither"),
    ("both", edit(phi3, lambda o: o.update(tuning=tuning()["tuning"])), "but not both"),
    ("bad name", edit(phi3, lambda o: o["metadata"].update(name="Bad_Name")), "DNS-1123"),
    (
        "unknown sku",
        edit(phi3, lambda o: o["resource"].update(instanceType="Standard_X")),
        "Unsupported instance type Standard_X. Supported SKUs: ",
    ),
    (
        "no sku",
        edit(phi3, lambda o: o["resource"].pop("instanceType")),
        "instanceType is required when node auto-provisioning is enabled",
    ),
    (
        "unknown preset",
        edit(phi3, lambda o: o["inference"]["preset"].update(name="nope")),
        "Unsupported inference preset name nope",
    ),
    (
        "test preset without the setting",
        edit(phi3, lambda o: o["inference"]["preset"].update(name="test-tiny-llama")),
        "Unsupported inference preset name test-tiny-llama",
    ),
    (
        "preset and template",
        edit(phi3, lambda o: o["inference"].update(template={"spec": {}})),
        "Preset and Template cannot be set at the same time",
    ),
    ("no preset or template", edit(phi3, lambda o: o.update(inference={})), "not neither"),
    (
        "template-less inference",
        edit(phi3, lambda o: o.update(inference={"config": "x"})),
        "Preset or Template must be specified",
    ),
    (
        "gpu count",
        edit(phi3, lambda o: o["inference"]["preset"].update(name="falcon-40b")),
        "Insufficient number of GPUs: Instance type Standard_NC6s_v3 provides 1, but preset "
        "falcon-40b requires at least 2",
    ),
    (
        "total memory",
        edit(phi3, lambda o: o["inference"]["preset"].update(name="phi-4")),
        "Insufficient total GPU memory: Instance type Standard_NC6s_v3 has a total of 16Gi, "
        "but preset phi-4 requires at least 40Gi",
    ),
    (
        "private without image",
        edit(phi3, lambda o: o["inference"]["preset"].update(accessMode="private")),
        "When AccessMode is private, an image must be provided in PresetOptions",
    ),
    (
        "too many adapters",
        edit(
            phi3,
            lambda o: o["inference"].update(
                adapters=[{"source": {"name": f"a{i}", "image": "r/a:1"}} for i in range(11)]
            ),
        ),
        "Number of Adapters exceeds the maximum limit, maximum of 10 allowed",
    ),
    (
        "duplicate adapters",
        edit(
            phi3,
            lambda o: o["inference"].update(
                adapters=[{"source": {"name": "a", "image": "r/a:1"}}] * 2
            ),
        ),
        "Duplicate adapter source name found: a",
    ),
    (
        "strength",
        edit(
            phi3,
            lambda o: o["inference"].update(
                adapters=[{"source": {"name": "a", "image": "r/a:1"}, "strength": "1.5"}]
            ),
        ),
        "Strength value for Adapter 'a' must be between 0 and 1",
    ),
    (
        "access secret",
        edit(
            phi3,
            lambda o: (
                o["resource"].update(instanceType="Standard_NC24ads_A100_v4"),
                o["inference"]["preset"].update(name="llama-3.1-8b-instruct"),
            ),
        ),
        "needs a modelAccessSecret with HF_TOKEN",
    ),
    (
        "method",
        edit(tuning, lambda o: o["tuning"].update(method="full")),
        "tuning.method: Invalid tuning method",
    ),
    (
        "push secret",
        edit(tuning, lambda o: o["tuning"]["output"].pop("imagePushSecret")),
        "Must specify imagePushSecret with destination image",
    ),
    (
        "multinode tuning",
        edit(tuning, lambda o: o["resource"].update(count=2)),
        "Tuning does not currently support multinode configurations",
    ),
    (
        "two inputs",
        edit(tuning, lambda o: o["tuning"]["input"].update(image="r/data:1")),
        "Exactly one of urls, image or volumeSource must be specified",
    ),
    (
        "metadata url",
        edit(
            tuning,
            lambda o: o["tuning"]["input"].update(urls=["http://169.254.169.254/latest/x"]),
        ),
        "cloud metadata",
    ),
    (
        "localhost url",
        edit(tuning, lambda o: o["tuning"]["input"].update(urls=["http://localhost:8000/d"])),
        "local machine",
    ),
    (
        "private url",
        edit(tuning, lambda o: o["tuning"]["input"].update(urls=["http://10.0.0.5/d.jsonl"])),
        "a private address",
    ),
    (
        "tuning memory",
        edit(
            tuning,
            lambda o: (o["tuning"].update(method="lora"),),
        ),
        "Insufficient",
    ),
    (
        "runtime annotation",
        edit(phi3, lambda o: o["metadata"].update(annotations={"kaito.sh/runtime": "tgi"})),
        "unsupported runtime 'tgi'",
    ),
    (
        "selector expression",
        edit(
            phi3,
            lambda o: o["resource"]["labelSelector"].update(
                matchExpressions=[{"key": "a", "operator": "NotIn", "values": ["b"]}]
            ),
        ),
        "Only allow matchLabels or 'IN' matchExpression",
    ),
]


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
