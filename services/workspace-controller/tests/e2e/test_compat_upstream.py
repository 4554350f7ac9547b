"""The compatibility suite: manifests written as upstream Kaito v0.12 documents them
(compat/upstream-v0.12.yaml) apply to the local control plane through the webhook and behave as
upstream says. One case per field, annotation, preset and SKU family; docs/compatibility.md is
the table they prove."""

from __future__ import annotations

import asyncio
import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from wc_helpers.cluster import WORKSPACE

from kaito_common.controller.client import KubeClient
from kaito_testing.controlplane import ControlPlane

pytestmark = pytest.mark.full

Obj = dict[str, Any]
SUITE = yaml.safe_load((Path(__file__).parent / "compat" / "upstream-v0.12.yaml").read_text())
CASES: list[Obj] = SUITE["cases"]


def _manifest(case: Obj, namespace: str, index: int) -> Obj:
    obj = copy.deepcopy(case.get("manifest") or SUITE["defaults"]["inference"])
    obj["metadata"] = {"name": f"compat-{index}", "namespace": namespace}
    if "annotations" in case:
        obj["metadata"]["annotations"] = case["annotations"]
    if "labels" in case:
        obj["metadata"]["labels"] = case["labels"]
    if "sku" in case:
        obj["resource"]["instanceType"] = case["sku"]
    obj["resource"].update(case.get("resource") or {})
    if "preset" in case:
        obj["inference"]["preset"]["name"] = case["preset"]
    if "presetOptions" in case:
        obj["inference"]["preset"]["presetOptions"] = case["presetOptions"]
    return obj


def _field(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize(
    ("index", "case"), list(enumerate(CASES)), ids=[re.sub(r"\s+", "-", c["case"]) for c in CASES]
)
async def test_upstream_manifest(
    kube: KubeClient, control_plane: ControlPlane, namespace: str, index: int, case: Obj
) -> None:
    obj = _manifest(case, namespace, index)
    # `kubectl create`, as a user applies it: the webhook's warnings come back on stderr.
    result = await asyncio.to_thread(
        subprocess.run,
        [str(control_plane.bin_dir / "kubectl"), f"--kubeconfig={control_plane.kubeconfig_path}",
         "create", "-f", "-"],
        input=yaml.safe_dump(obj), capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        assert case["expect"] == "refuse", f"refused: {result.stderr}"
        assert case["message"] in result.stderr, result.stderr
        return
    assert case["expect"] in ("accept", "warn"), f"accepted, but upstream refuses: {case}"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    if case["expect"] == "warn":
        assert any(case["message"] in line for line in warnings), result.stderr
    else:
        assert not warnings, warnings
    stored = await kube.get(WORKSPACE, obj["metadata"]["name"], namespace)
    for field, value in (case.get("stored") or {}).items():
        assert _field(stored, field) == value, (field, stored)
