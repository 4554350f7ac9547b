"""Validation rules of a Workspace that a CRD schema cannot express (pure, no I/O).

Each error names the field path and keeps Kaito's wording, so users find the same messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kaito_common.api import labels as L
from kaito_common.api.workspace import MAX_ADAPTERS
from kaito_common.controller import objects
from kaito_common.controller.objects import Obj
from kaito_common.presets import Catalog, inference_fit_errors, tuning_fit_errors
from kaito_common.presets.hub_model import is_repo_id
from kaito_common.urlguard import UnsafeURLError, URLPolicy, check_url
from workspace_controller.inference.runtime import RUNTIMES, runtime_errors, select_runtime
from workspace_controller.manifests.model_weights import WeightsSourceError, weights_source
from workspace_controller.webhook.sku_policy import unknown_sku_accepted, unknown_sku_warning
from workspace_controller.webhook.upstream_keys import upstream_key_errors

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
IMAGE_REFERENCE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]*$")
TUNING_METHODS = ("lora", "qlora")
IMMUTABLE = "field is immutable"
# Upstream Kaito's modelAccessSecret messages (v0.12), kept word for word.
SECRET_REQUIRED = (
    "This preset is private and requires a modelAccessSecret with HF_TOKEN key under "
    "presetOptions to download the model"
)
SECRET_NOT_NEEDED = (
    "This preset does not require a modelAccessSecret with HF_TOKEN key under presetOptions"
)


@dataclass(frozen=True)
class RuleContext:
    catalog: Catalog
    byo: bool = False
    test_presets: bool = False
    url_policy: URLPolicy = field(default_factory=URLPolicy)
    vllm_gate: bool = True


def _preset(ctx: RuleContext, name: str) -> Any:
    preset = ctx.catalog.preset(name)
    if preset is None or (preset.test_only and not ctx.test_presets):
        return None
    return preset


def validate_name(obj: Obj) -> list[str]:
    name = objects.name(obj)
    if len(name) > 63 or not DNS1123_LABEL.match(name):
        return [
            f"metadata.name: {name!r} must be a DNS-1123 label (lower case letters, digits "
            "and '-', at most 63 characters)"
        ]
    return []


def validate_annotations(obj: Obj) -> list[str]:
    annotations = objects.annotations(obj)
    errors: list[str] = []
    runtime = annotations.get(L.ANNOTATION_RUNTIME)
    if runtime is not None and runtime not in RUNTIMES:
        errors.append(
            f"metadata.annotations[{L.ANNOTATION_RUNTIME}]: unsupported runtime {runtime!r}; "
            f"use {L.RUNTIME_TRANSFORMERS} or {L.RUNTIME_VLLM}"
        )
    family = annotations.get(L.ANNOTATION_NODE_IMAGE_FAMILY)
    if family is not None and family not in L.NODE_IMAGE_FAMILIES:
        errors.append(
            f"metadata.annotations[{L.ANNOTATION_NODE_IMAGE_FAMILY}]: unsupported node image "
            f"family {family!r}; use one of {', '.join(L.NODE_IMAGE_FAMILIES)}"
        )
    return errors + upstream_key_errors(obj)


def validate_resource(obj: Obj, ctx: RuleContext) -> list[str]:
    resource = obj.get("resource") or {}
    errors: list[str] = []
    instance_type = resource.get("instanceType")
    if not instance_type:
        if not ctx.byo:
            errors.append(
                "resource.instanceType: instanceType is required when node auto-provisioning "
                "is enabled"
            )
    elif ctx.catalog.sku(instance_type) is None and not unknown_sku_accepted(instance_type):
        errors.append(
            f"resource.instanceType: Unsupported instance type {instance_type}. Supported SKUs: "
            f"{', '.join(ctx.catalog.sku_names())}"
        )
    selector = resource.get("labelSelector") or {}
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        if expr.get("operator") != "In":
            errors.append(
                f"resource.labelSelector.matchExpressions[{i}]: Only allow matchLabels or 'IN' "
                "matchExpression"
            )
    keys = set(selector.get("matchLabels") or {}) | {
        e.get("key") for e in selector.get("matchExpressions") or []
    }
    if not keys - L.RESERVED_SELECTOR_KEYS:
        errors.append(
            "resource.labelSelector: needs at least one label that is not reserved for the "
            f"controller ({', '.join(sorted(L.RESERVED_SELECTOR_KEYS))})"
        )
    return errors


def _fit_errors(obj: Obj, ctx: RuleContext, preset: Any, method: str | None) -> list[str]:
    annotations = objects.annotations(obj)
    if L.ANNOTATION_BYPASS_RESOURCE_CHECKS in annotations:
        return []
    resource = obj.get("resource") or {}
    sku = ctx.catalog.sku(str(resource.get("instanceType") or ""))
    if sku is None:
        return []
    if method is None:
        errors = inference_fit_errors(sku, preset, int(resource.get("count") or 1))
    else:
        errors = tuning_fit_errors(sku, preset, method)
    return [f"resource.instanceType: {e}" for e in errors]


def validate_adapters(adapters: list[Obj]) -> list[str]:
    errors: list[str] = []
    if len(adapters) > MAX_ADAPTERS:
        errors.append(
            f"inference.adapters: Number of Adapters exceeds the maximum limit, maximum of "
            f"{MAX_ADAPTERS} allowed"
        )
    seen: set[str] = set()
    for i, adapter in enumerate(adapters):
        path = f"inference.adapters[{i}]"
        source = adapter.get("source") or {}
        name = str(source.get("name") or "")
        if not name:
            errors.append(f"{path}.source.name: an adapter needs a name")
        elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            errors.append(f"{path}.source.name: {name!r} must be a DNS-1123 subdomain")
        elif name in seen:
            errors.append(f"{path}.source.name: Duplicate adapter source name found: {name}")
        seen.add(name)
        if source.get("urls"):
            errors.append(f"{path}.source: URLs are not supported; use an image or a volume")
        elif not source.get("image") and not source.get("volumeSource"):
            errors.append(f"{path}.source: an adapter needs an image or a volumeSource")
        strength = adapter.get("strength")
        if strength is not None:
            try:
                value = float(strength)
            except (TypeError, ValueError):
                value = -1.0
            if not 0.0 <= value <= 1.0:
                errors.append(
                    f"{path}.strength: Strength value for Adapter '{name}' must be between 0 and 1"
                )
    return errors


def _runtime_errors(obj: Obj, ctx: RuleContext, preset: Any) -> list[str]:
    """vLLM's limits, for the runtime this workspace will get (inference/runtime.py)."""
    annotation = objects.annotations(obj).get(L.ANNOTATION_RUNTIME)
    if annotation is not None and annotation not in RUNTIMES:
        return []  # validate_annotations says so
    runtime = select_runtime(annotation, preset, ctx.vllm_gate)
    adapters = list((obj.get("inference") or {}).get("adapters") or [])
    strengths = [None if a.get("strength") is None else str(a["strength"]) for a in adapters]
    errors = runtime_errors(runtime, preset, strengths)
    if runtime not in preset.runtimes and preset.runtimes and not errors:
        # A vLLM-only preset (gpt-oss, deepseek-v3/r1, mistral-large) on transformers.
        why = "" if ctx.vllm_gate else " (the vLLM feature gate is off in this controller)"
        errors.append(
            f"inference.preset.name: preset {preset.name} runs only on "
            f"{', '.join(sorted(preset.runtimes))}, not on {runtime}{why}"
        )
    return errors


def _private_image(preset_spec: Obj) -> str | None:
    """The private weights image, as the controller reads it (inference/plan.py)."""
    options = preset_spec.get("presetOptions") or {}
    if preset_spec.get("accessMode") == "private" and options.get("image"):
        return str(options["image"])
    return None


def _model_access_errors(obj: Obj, preset: Any, preset_spec: Obj) -> list[str]:
    """Upstream's modelAccessSecret rules: a gated preset downloaded from the hub needs one; a
    preset whose weights are not downloaded (model image, volume, private image) takes none."""
    path = "inference.preset.presetOptions.modelAccessSecret"
    secret = (preset_spec.get("presetOptions") or {}).get("modelAccessSecret")
    private = _private_image(preset_spec)
    try:
        source = weights_source(preset, objects.annotations(obj), private is not None)
    except WeightsSourceError as err:
        return [str(err)]
    if source == "download":
        if preset.requires_model_access_secret and not secret:
            return [f"{path}: {SECRET_REQUIRED}"]
        return []
    if not secret:
        return []
    if private is not None:
        why = f"its weights come from the private image {private} (presetOptions.image)"
    elif source == "model-image":
        why = "its weights come from a model image, copied into the pod"
    else:
        why = "its weights come from a volume (kaito.sh/weights-source: volume)"
    return [
        f"{path}: {SECRET_NOT_NEEDED}: {why}, not from the Hugging Face hub, so no token is "
        "used. Remove modelAccessSecret"
    ]


def _hub_repo_errors(obj: Obj, name: str) -> list[str]:
    source = objects.annotations(obj).get(L.ANNOTATION_WEIGHTS_SOURCE, "").strip().lower()
    if source == "image":
        return [
            f"metadata.annotations[{L.ANNOTATION_WEIGHTS_SOURCE}]: the Hugging Face repository "
            f"{name} is not a catalog preset and has no weights image; use download or volume"
        ]
    return []


def validate_inference(obj: Obj, ctx: RuleContext) -> list[str]:
    inference = obj.get("inference") or {}
    errors: list[str] = []
    preset_spec = inference.get("preset")
    template = inference.get("template")
    if preset_spec and template:
        errors.append("inference: Preset and Template cannot be set at the same time")
    elif not preset_spec and not template:
        errors.append("inference: Preset or Template must be specified")
    if preset_spec:
        name = str(preset_spec.get("name") or "")
        preset = _preset(ctx, name)
        options = preset_spec.get("presetOptions") or {}
        if preset is None and is_repo_id(name):
            # A Hugging Face repository: the controller reads it from the hub (no network
            # here); its GPU fit and gate are reported in the Workspace's conditions.
            errors += _hub_repo_errors(obj, name)
        elif preset is None:
            errors.append(f"inference.preset.name: Unsupported inference preset name {name}")
        else:
            if preset.deprecated:
                errors.append(
                    f"inference.preset.name: Model {name} is deprecated and no longer supported"
                )
            errors += _model_access_errors(obj, preset, preset_spec)
            errors += _fit_errors(obj, ctx, preset, None)
            errors += _runtime_errors(obj, ctx, preset)
        if preset_spec.get("accessMode") == "private" and not options.get("image"):
            errors.append(
                "inference.preset.presetOptions.image: When AccessMode is private, an image "
                "must be provided in PresetOptions"
            )
    errors += validate_adapters(list(inference.get("adapters") or []))
    return errors


def validate_data_source(source: Obj, path: str, ctx: RuleContext) -> list[str]:
    kinds = [k for k in ("urls", "image", "volumeSource") if source.get(k)]
    if len(kinds) != 1:
        return [f"{path}: Exactly one of urls, image or volumeSource must be specified"]
    errors: list[str] = []
    for i, url in enumerate(source.get("urls") or []):
        try:
            check_url(str(url), ctx.url_policy, resolver=None)
        except UnsafeURLError as err:
            errors.append(f"{path}.urls[{i}]: {err}")
    image = source.get("image")
    if image and not IMAGE_REFERENCE.match(str(image)):
        errors.append(f"{path}.image: {image!r} is not a valid image reference")
    return errors


def validate_tuning(obj: Obj, ctx: RuleContext) -> list[str]:
    tuning = obj.get("tuning") or {}
    errors: list[str] = []
    preset_spec = tuning.get("preset")
    method = str(tuning.get("method") or "")
    if method.lower() not in TUNING_METHODS:
        errors.append(f"tuning.method: Invalid tuning method {method!r}; use lora or qlora")
    if not preset_spec:
        errors.append("tuning.preset: Preset must be specified")
    else:
        name = str(preset_spec.get("name") or "")
        preset = _preset(ctx, name)
        if preset is None:
            errors.append(f"tuning.preset.name: Unsupported tuning preset name {name}")
        elif not preset.supports_tuning(method.lower()):
            errors.append(
                f"tuning.preset.name: Preset {name} does not support tuning with method {method}"
            )
        else:
            errors += _fit_errors(obj, ctx, preset, method.lower())
    count = int((obj.get("resource") or {}).get("count") or 1)
    if count > 1:
        errors.append(
            "resource.count: Tuning does not currently support multinode configurations. "
            "Please set the node count to 1."
        )
    if not tuning.get("input"):
        errors.append("tuning.input: Input must be specified")
    else:
        errors += validate_data_source(tuning["input"], "tuning.input", ctx)
    output = tuning.get("output")
    if not output:
        errors.append("tuning.output: Output must be specified")
    else:
        if bool(output.get("image")) == bool(output.get("volumeSource")):
            errors.append("tuning.output: Exactly one of image or volumeSource must be specified")
        if output.get("image") and not output.get("imagePushSecret"):
            errors.append(
                "tuning.output.imagePushSecret: Must specify imagePushSecret with destination image"
            )
    return errors


def validate_create(obj: Obj, ctx: RuleContext) -> list[str]:
    errors = validate_name(obj) + validate_annotations(obj)
    has_inference = obj.get("inference") is not None
    has_tuning = obj.get("tuning") is not None
    if not has_inference and not has_tuning:
        errors.append("Either Inference or Tuning must be specified, not neither")
    elif has_inference and has_tuning:
        errors.append("Either Inference or Tuning must be specified, but not both")
    errors += validate_resource(obj, ctx)
    if has_inference and not has_tuning:
        errors += validate_inference(obj, ctx)
    if has_tuning and not has_inference:
        errors += validate_tuning(obj, ctx)
    return errors


def _selector_map(resource: Obj) -> Obj:
    return resource.get("labelSelector") or {}


def validate_immutable(old: Obj, new: Obj) -> list[str]:
    errors: list[str] = []
    for part in ("inference", "tuning"):
        if bool(old.get(part)) != bool(new.get(part)):
            errors.append(f"{part}: {part.capitalize()} field cannot be toggled once set")
    old_res, new_res = old.get("resource") or {}, new.get("resource") or {}
    if int(old_res.get("count") or 1) != int(new_res.get("count") or 1):
        errors.append(f"resource.count: {IMMUTABLE}")
    if _selector_map(old_res) != _selector_map(new_res):
        errors.append(f"resource.labelSelector: {IMMUTABLE}")
    if (old_res.get("instanceType") or "") != (new_res.get("instanceType") or ""):
        errors.append(f"resource.instanceType: {IMMUTABLE}")
    old_inf, new_inf = old.get("inference") or {}, new.get("inference") or {}
    if old_inf and new_inf:
        if old_inf.get("preset") != new_inf.get("preset"):
            errors.append(f"inference.preset: {IMMUTABLE}")
        if bool(old_inf.get("template")) != bool(new_inf.get("template")):
            errors.append("inference.template: Template cannot be set or unset once created")
    old_tun, new_tun = old.get("tuning") or {}, new.get("tuning") or {}
    if old_tun and new_tun:
        if old_tun.get("preset") != new_tun.get("preset"):
            errors.append(f"tuning.preset: {IMMUTABLE}")
        if str(old_tun.get("method") or "").lower() != str(new_tun.get("method") or "").lower():
            errors.append(f"tuning.method: {IMMUTABLE}")
    return errors


_CONTROLLER_ANNOTATIONS = (L.ANNOTATION_WORKSPACE_HASH, L.ANNOTATION_WORKSPACE_REVISION)


def _user_annotations(obj: Obj) -> Obj:
    annotations = objects.annotations(obj)
    return {k: v for k, v in annotations.items() if k not in _CONTROLLER_ANNOTATIONS}


def spec_changed(old: Obj, new: Obj) -> bool:
    """Whether the user's part changed (not the controller's finalizer or annotations)."""
    return any(old.get(k) != new.get(k) for k in ("resource", "inference", "tuning")) or (
        _user_annotations(old) != _user_annotations(new)
    )


def admission_warnings(obj: Obj, ctx: RuleContext) -> list[str]:
    """What the user should know about an accepted Workspace (AdmissionReview warnings)."""
    instance_type = str((obj.get("resource") or {}).get("instanceType") or "")
    known = ctx.catalog.sku(instance_type) is not None
    if instance_type and not known and unknown_sku_accepted(instance_type):
        return [unknown_sku_warning(instance_type)]
    return []


def validate_update(old: Obj, new: Obj, ctx: RuleContext) -> list[str]:
    """Immutability, then the create rules on the new object (only when the spec changed, so a
    finalizer or annotation write by a controller is never blocked)."""
    if objects.is_deleting(new) or not spec_changed(old, new):
        return []
    errors = validate_immutable(old, new)
    if errors:
        return errors
    return [e for e in validate_create(new, ctx) if not e.startswith("metadata.name")]
