"""The table of invalid Workspaces and the message fragment each must be rejected with.

Shared by the unit test of the rules and the test through the real API server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wc_helpers.workspaces import phi3, tuning

Obj = dict[str, Any]


def edit(base: Callable[[], Obj], fn: Callable[[Obj], None]) -> Obj:
    obj = base()
    fn(obj)
    return obj


CASES: list[tuple[str, Obj, str]] = [
    ("neither", edit(phi3, lambda o: o.pop("inference")), "not neither"),
    ("both", edit(phi3, lambda o: o.update(tuning=tuning()["tuning"])), "but not both"),
    ("bad name", edit(phi3, lambda o: o["metadata"].update(name="a.b")), "DNS-1123"),
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
    (
        "no preset or template",
        edit(phi3, lambda o: o.update(inference={})),
        "Preset or Template must be specified",
    ),
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
        "This preset is private and requires a modelAccessSecret with HF_TOKEN key under "
        "presetOptions to download the model",
    ),
    (
        "access secret for a model image",
        edit(
            phi3,
            lambda o: (
                o["metadata"].update(annotations={"kaito.sh/weights-source": "image"}),
                o["inference"]["preset"].update(presetOptions={"modelAccessSecret": "hf"}),
            ),
        ),
        "This preset does not require a modelAccessSecret with HF_TOKEN key under "
        "presetOptions: its weights come from a model image",
    ),
    (
        "access secret for a private image",
        edit(
            phi3,
            lambda o: o["inference"]["preset"].update(
                accessMode="private",
                presetOptions={"image": "r/phi3-weights:1", "modelAccessSecret": "hf"},
            ),
        ),
        "its weights come from the private image r/phi3-weights:1",
    ),
    (
        "unknown aws sku",
        edit(phi3, lambda o: o["resource"].update(instanceType="g5.5xlarge")),
        "Unsupported instance type g5.5xlarge. Supported SKUs: ",
    ),
    (
        "vllm-only preset on transformers",
        edit(
            phi3,
            lambda o: (
                o["metadata"].update(annotations={"kaito.sh/runtime": "transformers"}),
                o["resource"].update(instanceType="Standard_NC40ads_H100_v5"),
                o["inference"]["preset"].update(name="gpt-oss-20b"),
            ),
        ),
        "preset gpt-oss-20b runs only on vllm, not on transformers",
    ),
    (
        "performance mode",
        edit(
            phi3,
            lambda o: o["metadata"].update(annotations={"kaito.sh/performance-mode": "throughput"}),
        ),
        "performance mode 'throughput' is not supported yet",
    ),
    (
        "node class name",
        edit(
            phi3,
            lambda o: o["metadata"].update(annotations={"kaito.sh/node-class-name": "gpu"}),
        ),
        "kaito.sh/node-class-name]: a NodeClass per Workspace ('gpu') is not supported yet",
    ),
    (
        "benchmark asked for",
        edit(
            phi3,
            lambda o: o["metadata"].update(annotations={"kaito.sh/disable-benchmark": "false"}),
        ),
        "post-load throughput benchmark, which is not supported yet",
    ),
    (
        "local weights",
        edit(
            phi3,
            lambda o: o["metadata"].update(annotations={"kaito.sh/use-local-weights": "true"}),
        ),
        "kaito.sh/use-local-weights]: weights at a directory derived from the preset name is "
        "not supported yet",
    ),
    (
        "inference role",
        edit(phi3, lambda o: o["metadata"].update(labels={"kaito.sh/inference-role": "decode"})),
        "prefill/decode disaggregated serving ('decode') is not supported yet",
    ),
    (
        "mig partition",
        edit(phi3, lambda o: o["resource"].update(partition={"profile": "1g.10gb"})),
        "resource.partition: GPU partitioning (MIG) is not supported yet",
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
