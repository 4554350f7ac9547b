"""The workspace gauges under upstream Kaito's names and label values, scraped from a registry."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from wc_helpers.workspaces import phi3, tuning

from kaito_common.controller.store import Store
from workspace_controller.metrics import WorkspaceCountCollector, workspace_phase

Obj = dict[str, Any]


def named(obj: Obj, name: str, *conditions: tuple[str, str], state: str = "") -> Obj:
    obj["metadata"]["name"] = name
    status: Obj = {"conditions": [{"type": t, "status": s} for t, s in conditions]}
    if state:
        status["state"] = state
    obj["status"] = status
    return obj


def scrape(*workspaces: Obj) -> dict[str, float]:
    store = Store()
    for ws in workspaces:
        store.upsert(ws)
    registry = CollectorRegistry()
    registry.register(WorkspaceCountCollector(store))
    samples: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    assert b"kaito_workspace_count" in generate_latest(registry)
    return samples


def test_phases_and_presets_as_upstream() -> None:
    deleting = named(phi3(), "d", ("WorkspaceDeleting", "True"))
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    samples = scrape(
        named(
            phi3(),
            "ready",
            ("InferenceReady", "True"),
            ("WorkspaceSucceeded", "True"),
            state="Ready",
        ),
        named(phi3(), "failed", ("WorkspaceSucceeded", "False"), state="NotReady"),
        named(tuning(), "tuning", ("JobStarted", "True"), state="Running"),
        deleting,
    )
    assert samples["kaito_workspace_count{phase=succeeded}"] == 1
    assert samples["kaito_workspace_count{phase=error}"] == 1
    assert samples["kaito_workspace_count{phase=pending}"] == 1
    assert samples["kaito_workspace_count{phase=deleting}"] == 1
    # Inference presets only, by the name the Workspace writes (upstream's label: preset_name).
    assert samples["kaito_workspace_preset_count{preset_name=phi-3-mini-4k-instruct}"] == 3
    assert not any("phi-3-mini-128k" in key for key in samples)
    assert samples["kaito_workspace_state_count{state=Ready}"] == 1
    assert samples["kaito_workspace_state_count{state=Running}"] == 1


def test_every_phase_is_exported_when_there_are_none() -> None:
    samples = scrape()
    assert {k: v for k, v in samples.items() if k.startswith("kaito_workspace_count")} == {
        "kaito_workspace_count{phase=deleting}": 0,
        "kaito_workspace_count{phase=error}": 0,
        "kaito_workspace_count{phase=pending}": 0,
        "kaito_workspace_count{phase=succeeded}": 0,
    }


def test_deletion_timestamp_counts_as_deleting_before_the_condition() -> None:
    ws = named(phi3(), "x", ("WorkspaceSucceeded", "True"))
    assert workspace_phase(ws) == "succeeded"
    ws["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert workspace_phase(ws) == "deleting"


def test_pvc_gauges_count_the_workspaces_claims_and_their_bytes() -> None:
    workspaces, claims = Store(), Store()
    bound = {
        "metadata": {"name": "weights-ws-0", "namespace": "default", "uid": "c1"},
        "spec": {"resources": {"requests": {"storage": "100Gi"}}},
        "status": {"capacity": {"storage": "128Gi"}},
    }
    pending = {
        "metadata": {"name": "ws-weights", "namespace": "default", "uid": "c2"},
        "spec": {"resources": {"requests": {"storage": "1Gi"}}},
    }
    for claim in (bound, pending):
        claims.upsert(claim)
    registry = CollectorRegistry()
    registry.register(WorkspaceCountCollector(workspaces, claims))
    assert registry.get_sample_value("kaito_workspace_pvc_count") == 2
    assert registry.get_sample_value("kaito_workspace_pvc_allocated_bytes") == (128 + 1) * 2**30
