"""`make dev-up` installs the chart's own CRDs and default ConfigMaps (hack/dev/release-objects.sh),
so a Workspace meets the same objects with host-process controllers as after `helm install`."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml
from chart_support import REPO

Obj = dict[str, Any]
SHARED_KINDS = ("CustomResourceDefinition", "ConfigMap")


def _key(doc: Obj) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def test_dev_up_applies_what_the_chart_installs(rendered: list[Obj]) -> None:
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "dev" / "release-objects.sh"), "kaito-workspace"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    dev = {_key(d): d for d in yaml.safe_load_all(out) if d}
    chart = {
        _key(d): d
        for d in rendered
        if d["kind"] in SHARED_KINDS
        and "grafana_dashboard" not in (d["metadata"].get("labels") or {})
    }
    assert set(dev) == set(chart)
    assert {name for kind, name in dev if kind == "ConfigMap"} >= {
        "inference-params-template",
        "lora-params-template",
        "qlora-params-template",
    }
    for key, doc in chart.items():
        assert dev[key] == doc, f"{key}: dev-up would install something else than the chart"
