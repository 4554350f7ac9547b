"""Upstream Kaito (v0.12) Workspace annotations, labels and fields that this project does not act
on the same way: each is honoured where its meaning is already ours, else refused with a message
saying it is not supported yet. None is silently ignored (docs/compatibility.md).

Pure functions of the object; the webhook (rules.py) adds their errors to its own.
"""

from __future__ import annotations

from kaito_common.api import labels as L
from kaito_common.controller import objects
from kaito_common.controller.objects import Obj

# Upstream's annotation and label keys (api/v1beta1/labels.go upstream).
ANNOTATION_PERFORMANCE_MODE = "kaito.sh/performance-mode"
ANNOTATION_NODE_CLASS_NAME = "kaito.sh/node-class-name"
ANNOTATION_DISABLE_BENCHMARK = "kaito.sh/disable-benchmark"
ANNOTATION_RUN_BENCHMARK = "kaito.sh/run-benchmark"  # before upstream turned the benchmark on
ANNOTATION_USE_LOCAL_WEIGHTS = "kaito.sh/use-local-weights"
LABEL_INFERENCE_ROLE = "kaito.sh/inference-role"

# Upstream's performance modes; `balanced` is its default, the engine flags we render anyway.
PERFORMANCE_MODES = ("balanced", "interactivity", "throughput")
PERFORMANCE_MODE_DEFAULT = "balanced"

_NOT_YET = "is not supported yet"


def _truthy(value: str) -> bool:
    return value.strip().lower() == "true"


def _performance_mode(value: str) -> list[str]:
    where = f"metadata.annotations[{ANNOTATION_PERFORMANCE_MODE}]"
    mode = value.strip().lower()
    if mode not in PERFORMANCE_MODES:
        return [f"{where}: {value!r} is not one of {', '.join(PERFORMANCE_MODES)}"]
    if mode != PERFORMANCE_MODE_DEFAULT:
        return [
            f"{where}: performance mode {mode!r} {_NOT_YET}; only {PERFORMANCE_MODE_DEFAULT!r} "
            "(upstream's default, what the vLLM runtime here runs with) is accepted. Remove the "
            "annotation or set it to balanced"
        ]
    return []


def _node_class_name(value: str) -> list[str]:
    return [
        f"metadata.annotations[{ANNOTATION_NODE_CLASS_NAME}]: a NodeClass per Workspace "
        f"({value!r}) {_NOT_YET}; every NodeClaim names the NodeClass the controller is "
        "configured with (workspace-controller chart value nodeClassRef.name). Remove the "
        "annotation"
    ]


def _disable_benchmark(value: str) -> list[str]:
    if _truthy(value):
        return []  # no post-load benchmark runs here: the annotation's meaning already holds
    return [
        f"metadata.annotations[{ANNOTATION_DISABLE_BENCHMARK}]: {value!r} asks for the post-load "
        f"throughput benchmark, which {_NOT_YET}; the inference pod becomes Ready when the model "
        'has loaded. Remove the annotation or set it to "true"'
    ]


def _run_benchmark(value: str) -> list[str]:
    if not _truthy(value):
        return []  # no benchmark: what the annotation asks
    return [
        f"metadata.annotations[{ANNOTATION_RUN_BENCHMARK}]: the post-load throughput benchmark "
        f"{_NOT_YET}. Remove the annotation"
    ]


def _use_local_weights(value: str) -> list[str]:
    if not _truthy(value):
        return []  # weights arrive the preset's usual way: what the annotation asks
    return [
        f"metadata.annotations[{ANNOTATION_USE_LOCAL_WEIGHTS}]: weights at a directory derived "
        f"from the preset name {_NOT_YET}; to load weights already on the node, set "
        f"{L.ANNOTATION_WEIGHTS_SOURCE}: volume and {L.ANNOTATION_WEIGHTS_HOST_PATH}: <directory>"
    ]


_ANNOTATION_RULES = {
    ANNOTATION_PERFORMANCE_MODE: _performance_mode,
    ANNOTATION_NODE_CLASS_NAME: _node_class_name,
    ANNOTATION_DISABLE_BENCHMARK: _disable_benchmark,
    ANNOTATION_RUN_BENCHMARK: _run_benchmark,
    ANNOTATION_USE_LOCAL_WEIGHTS: _use_local_weights,
}

UPSTREAM_ANNOTATIONS = tuple(_ANNOTATION_RULES)


def upstream_key_errors(obj: Obj) -> list[str]:
    """Errors for the upstream annotations, labels and fields whose meaning is not ours yet."""
    errors: list[str] = []
    annotations = objects.annotations(obj)
    for key, rule in _ANNOTATION_RULES.items():
        if key in annotations:
            errors += rule(str(annotations[key]))
    role = objects.labels(obj).get(LABEL_INFERENCE_ROLE)
    if role is not None:
        errors.append(
            f"metadata.labels[{LABEL_INFERENCE_ROLE}]: prefill/decode disaggregated serving "
            f"({role!r}) {_NOT_YET}. Remove the label"
        )
    partition = (obj.get("resource") or {}).get("partition")
    if partition is not None:
        errors.append(
            f"resource.partition: GPU partitioning (MIG) {_NOT_YET}; a Workspace gets whole "
            "GPUs. Remove resource.partition"
        )
    return errors
