"""Units: which lifecycle steps a reconcile completed, and a failed launch in the cloud's words."""

from __future__ import annotations

from gpu_provisioner.claim_events import ClaimEvent, launch_failed, step_events
from gpu_provisioner.cloud.provider import QuotaExceededError, SkuNotAvailableError
from gpu_provisioner.conditions import ConditionSet

STATUS = {
    "providerID": "azure:///subscriptions/s/x/ws0123abcd",
    "capacity": {"nvidia.com/gpu": "2"},
    "nodeName": "aks-ws0123abcd-1-vmss000000",
}


def _conditions(*true: str) -> list[dict[str, object]]:
    cs = ConditionSet(None, generation=1, created=None)
    for type_ in true:
        cs.set_true(type_)
    return cs.conditions


def test_each_step_is_told_when_its_condition_turns_true() -> None:
    none, launched = _conditions(), _conditions("Launched")
    joined = _conditions("Launched", "Registered", "Initialized")
    assert step_events(none, launched, STATUS) == [
        ClaimEvent("Normal", "Launched", f"Launched instance {STATUS['providerID']}, 2 GPU(s)")
    ]
    node = STATUS["nodeName"]
    assert [e.reason for e in step_events(launched, joined, STATUS)] == [
        "Registered",
        "Initialized",
    ]
    assert step_events(launched, joined, STATUS)[0].message == f"Registered node {node}"
    assert step_events(joined, joined, STATUS) == []  # reconciled again: nothing new


def test_a_failed_launch_says_whether_it_is_retried() -> None:
    quota = launch_failed(QuotaExceededError("(QuotaExceeded) no cores", code="QuotaExceeded"))
    assert quota == ClaimEvent(
        "Warning",
        "LaunchFailed",
        "Launching the instance failed, retrying: (QuotaExceeded) no cores",
    )
    sku = launch_failed(SkuNotAvailableError("(SkuNotAvailable) not here", code="SkuNotAvailable"))
    assert sku.type == "Warning" and sku.reason == "LaunchFailed"
    assert sku.message.startswith("Launching the instance failed and will not be retried (")
    assert sku.message.endswith("): (SkuNotAvailable) not here")
