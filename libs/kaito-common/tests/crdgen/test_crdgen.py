"""The generated CRDs are structural, complete, and match what is committed in crds/."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaito_common.crdgen.__main__ import main as crdgen_main
from kaito_common.crdgen.crd import NODECLAIM_CRD, WORKSPACE_CRD, crd_document
from kaito_common.crdgen.render import render_all

FORBIDDEN_KEYS = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const"}


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, child in node.get("properties", {}).items():
            yield from walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}[*]")


@pytest.mark.parametrize("definition", [WORKSPACE_CRD, NODECLAIM_CRD], ids=lambda d: d.kind)
def test_schema_is_structural(definition: Any) -> None:
    doc = crd_document(definition)
    for version in doc["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        for path, node in walk(schema):
            assert not FORBIDDEN_KEYS & node.keys(), f"{path}: {FORBIDDEN_KEYS & node.keys()}"
            typed = "type" in node or node.get("x-kubernetes-int-or-string")
            assert typed, f"{path} has no type"
            assert node.get("additionalProperties") not in (True, False), path
            if node.get("x-kubernetes-preserve-unknown-fields"):
                assert "properties" not in node, path


def test_workspace_crd_shape() -> None:
    spec = crd_document(WORKSPACE_CRD)["spec"]
    assert spec["group"] == "kaito.sh"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["wk", "wks"]
    assert spec["names"]["categories"] == ["kaito"]
    assert spec["conversion"] == {"strategy": "None"}
    versions = {v["name"]: v for v in spec["versions"]}
    assert versions.keys() == {"v1alpha1", "v1beta1"}
    assert versions["v1beta1"]["storage"] and not versions["v1alpha1"]["storage"]
    # The schemas are the same but for upstream's v1alpha1 default of resource.instanceType.
    alpha = copy.deepcopy(versions["v1alpha1"]["schema"])
    instance_type = alpha["openAPIV3Schema"]["properties"]["resource"]["properties"]["instanceType"]
    assert instance_type.pop("default") == "Standard_NC24ads_A100_v4"
    assert alpha == versions["v1beta1"]["schema"]
    cols = [
        c["name"] for c in versions["v1alpha1"]["additionalPrinterColumns"] if "priority" not in c
    ]
    assert cols == [
        "Instance",
        "ResourceReady",
        "InferenceReady",
        "JobStarted",
        "WorkspaceSucceeded",
        "Age",
    ]
    beta = [c["name"] for c in versions["v1beta1"]["additionalPrinterColumns"]]
    assert beta == [*cols[:-1], "TargetNodeCount", "State", "Age"]  # as upstream's v1beta1
    schema = versions["v1beta1"]["schema"]["openAPIV3Schema"]
    assert "spec" not in schema["properties"]
    assert {"resource", "inference", "tuning", "status"} <= schema["properties"].keys()
    template = schema["properties"]["inference"]["properties"]["template"]
    assert template == {
        "description": "A PodTemplateSpec for a custom model.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    rules = [r["message"] for r in schema["x-kubernetes-validations"]]
    assert "Either Inference or Tuning must be specified, not neither" in rules
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert versions["v1beta1"]["subresources"] == {"status": {}}


def test_nodeclaim_crd_shape() -> None:
    spec = crd_document(NODECLAIM_CRD)["spec"]
    assert spec["group"] == "karpenter.sh" and spec["scope"] == "Cluster"
    (version,) = spec["versions"]
    assert version["name"] == "v1" and version["storage"]
    schema = version["schema"]["openAPIV3Schema"]
    nc_spec = schema["properties"]["spec"]
    assert {"rule": "self == oldSelf", "message": "spec is immutable"} in nc_spec[
        "x-kubernetes-validations"
    ]
    assert set(nc_spec["required"]) == {"nodeClassRef", "requirements"}
    assert nc_spec["properties"]["requirements"]["maxItems"] == 100
    status = schema["properties"]["status"]["properties"]
    assert "providerID" in status and "imageID" in status
    assert status["capacity"]["additionalProperties"] == {"x-kubernetes-int-or-string": True}
    cols = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert cols == ["Type", "Capacity", "Zone", "Node", "Ready", "Age"]


def test_committed_crds_are_current(repo_root: Path) -> None:
    rendered = render_all()
    for name, text in rendered.items():
        committed = repo_root / "crds" / name
        assert committed.read_text() == text, f"{committed} is stale: run `make crds`"
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"


def test_check_mode_detects_stale_files(tmp_path: Path) -> None:
    assert crdgen_main(["--out", str(tmp_path)]) == 0
    assert crdgen_main(["--out", str(tmp_path), "--check"]) == 0
    target = tmp_path / WORKSPACE_CRD.file_name
    target.write_text(target.read_text() + "# edited\n")
    assert crdgen_main(["--out", str(tmp_path), "--check"]) == 1
