"""Turn a pydantic model's JSON schema into a Kubernetes *structural* OpenAPI v3 schema.

Kubernetes accepts only a subset of JSON schema in a CRD: no ``$ref``, no ``anyOf`` null branches,
every node typed (unless it preserves unknown fields or is int-or-string), no ``title``. Pydantic
emits all of those, so we walk its output once and rewrite it.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

JSONSchema = dict[str, Any]

# Keys we keep from pydantic's output, in the order we write them; everything else (title,
# discriminator, ...) is dropped.
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "nullable",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-validations",
)
_KEPT_KEYS = frozenset(_KEY_ORDER)


class SchemaError(ValueError):
    """The model cannot be expressed as a structural schema."""


def structural_schema(model: type[BaseModel]) -> JSONSchema:
    """The structural OpenAPI v3 schema of ``model`` (by alias, i.e. camelCase)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, JSONSchema] = raw.pop("$defs", {})
    return _convert(raw, defs, path=model.__name__)


def _resolve(node: JSONSchema, defs: dict[str, JSONSchema], path: str) -> JSONSchema:
    """Inline ``$ref`` and collapse ``anyOf: [X, null]`` into X; sibling keys win."""
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        name = ref.rsplit("/", 1)[-1]
        if name not in defs:
            raise SchemaError(f"{path}: unresolved reference {ref}")
        node = {**copy.deepcopy(defs[name]), **node}
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        branches = [b for b in any_of if b != {"type": "null"}]
        if node.get("x-kubernetes-int-or-string"):
            return node
        if len(branches) != 1:
            raise SchemaError(
                f"{path}: anyOf with {len(branches)} non-null branches is not structural"
            )
        inner = _resolve(branches[0], defs, path)
        node = {**inner, **{k: v for k, v in node.items() if k != "default" or v is not None}}
    if node.get("default", ...) is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    return node


def _convert(node: JSONSchema, defs: dict[str, JSONSchema], path: str) -> JSONSchema:
    out = _convert_node(node, defs, path)
    return {key: out[key] for key in _KEY_ORDER if key in out}


def _convert_node(node: JSONSchema, defs: dict[str, JSONSchema], path: str) -> JSONSchema:
    node = _resolve(node, defs, path)
    out: JSONSchema = {k: v for k, v in node.items() if k in _KEPT_KEYS}

    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        return out

    if out.get("x-kubernetes-preserve-unknown-fields"):
        # Schemaless passthrough (pod template, volume source): an object of anything.
        out["type"] = "object"
        out.pop("additionalProperties", None)
        out.pop("properties", None)
        return out

    if "enum" in out and "type" not in out:
        out["type"] = _enum_type(out["enum"], path)

    kind = out.get("type")
    if kind is None:
        raise SchemaError(f"{path}: untyped schema node {node!r}")

    if kind == "object":
        props = out.get("properties")
        if props is not None:
            out["properties"] = {
                name: _convert(child, defs, f"{path}.{name}") for name, child in props.items()
            }
        extra = out.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = _convert(extra, defs, f"{path}[*]")
        elif extra is not None:
            # `true`/`false` are not structural; an untyped map must preserve unknown fields.
            del out["additionalProperties"]
            if props is None and extra is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
        if not out.get("required"):
            out.pop("required", None)
    elif kind == "array":
        items = out.get("items")
        if items is None:
            raise SchemaError(f"{path}: array without items")
        out["items"] = _convert(items, defs, f"{path}[]")
    return out


def _enum_type(values: list[Any], path: str) -> str:
    kinds = {type(v) for v in values}
    if kinds == {str}:
        return "string"
    if kinds == {int}:
        return "integer"
    if kinds == {bool}:
        return "boolean"
    raise SchemaError(f"{path}: enum of mixed types {values!r}")
