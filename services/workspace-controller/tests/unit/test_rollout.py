"""The surging update of a single-node preset's StatefulSet, step by step (inference/rollout.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kaito_common.api import labels as L
from workspace_controller.inference.readiness import workload_readiness
from workspace_controller.inference.rollout import SURGE_UNSCHEDULABLE_S, rollout_step

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def _sts(
    revision: str,
    replicas: int,
    partition: int = 0,
    *,
    ready: int,
    updated: int = 0,
    current: str = "ws-old",
    update: str = "ws-new",
    generation: int = 2,
    observed: int = 2,
) -> dict[str, Any]:
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "ws", "generation": generation},
        "spec": {
            "replicas": replicas,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
            "template": {"metadata": {"annotations": {L.ANNOTATION_WORKSPACE_REVISION: revision}}},
        },
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "currentRevision": current,
            "updateRevision": update,
        },
    }


def _pod(ordinal: int, hash_: str, *, ready: bool, unschedulable_s: float | None = None) -> Any:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable_s is not None:
        since = (NOW - dt.timedelta(seconds=unschedulable_s)).isoformat().replace("+00:00", "Z")
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "lastTransitionTime": since,
            }
        )
    return {
        "metadata": {"name": f"ws-{ordinal}", "labels": {"controller-revision-hash": hash_}},
        "status": {"conditions": conditions},
    }


def _step(live: Any, pods: list[Any] | None = None, count: int = 1) -> tuple[int, int, str]:
    step = rollout_step(live, "2", count, pods or [], now=NOW)
    return step.replicas, step.partition, step.phase


def test_a_new_statefulset_has_the_workspace_count() -> None:
    assert _step(None, count=2) == (2, 0, "create")


def test_steady_state_is_upstreams_shape() -> None:
    live = _sts("2", 1, ready=1, updated=1, current="ws-new")
    assert _step(live) == (1, 0, "steady")


def test_a_new_revision_surges_one_pod_above_the_old_ones() -> None:
    live = _sts("1", 1, ready=1, updated=1, current="ws-old", update="ws-old")
    assert _step(live) == (2, 1, "surge")
    assert _step(_sts("1", 3, ready=3), count=3) == (4, 3, "surge")


def test_nothing_serving_means_no_surge() -> None:
    live = _sts("1", 1, ready=0)
    assert _step(live) == (1, 0, "in-place")


def test_the_surge_waits_for_the_new_pod_then_replaces_the_rest() -> None:
    live = _sts("2", 2, 1, ready=1, updated=1)
    old = _pod(0, "ws-old", ready=True)
    assert _step(live, [old, _pod(1, "ws-new", ready=False)]) == (2, 1, "surge")
    assert _step(live, [old]) == (2, 1, "surge")  # not even created yet
    assert _step(live, [old, _pod(1, "ws-new", ready=True)]) == (2, 0, "replace")


def test_replacing_goes_on_until_every_old_pod_runs_the_new_revision() -> None:
    live = _sts("2", 2, 0, ready=1, updated=1)
    surge = _pod(1, "ws-new", ready=True)
    assert _step(live, [_pod(0, "ws-old", ready=True), surge]) == (2, 0, "replace")
    assert _step(live, [_pod(0, "ws-new", ready=False), surge]) == (2, 0, "replace")
    assert _step(live, [_pod(0, "ws-new", ready=True), surge]) == (1, 0, "settle")


def test_an_unobserved_change_keeps_the_current_step() -> None:
    live = _sts("2", 2, 1, ready=1, generation=3, observed=2)
    assert _step(live, [_pod(1, "ws-new", ready=True)]) == (2, 1, "wait")


def test_a_newer_revision_during_a_surge_surges_again() -> None:
    live = _sts("2", 2, 0, ready=2, updated=1)
    step = rollout_step(live, "3", 1, [], now=NOW)
    assert (step.replicas, step.partition, step.phase) == (2, 1, "surge")


def test_no_room_for_the_surge_pod_falls_back_to_replacing_in_place() -> None:
    live = _sts("2", 2, 1, ready=1)
    old = _pod(0, "ws-old", ready=True)
    waiting = _pod(1, "ws-new", ready=False, unschedulable_s=SURGE_UNSCHEDULABLE_S - 5)
    assert _step(live, [old, waiting]) == (2, 1, "surge")
    stuck = _pod(1, "ws-new", ready=False, unschedulable_s=SURGE_UNSCHEDULABLE_S + 1)
    assert _step(live, [old, stuck]) == (1, 0, "in-place")


def test_a_surging_statefulset_still_serves_the_workspace_count() -> None:
    surging = _sts("2", 2, 1, ready=1, updated=1)
    readiness = workload_readiness(surging, count=1)
    assert readiness.serving and not readiness.rolled_out
    settled = _sts("2", 1, ready=1, updated=1, current="ws-new")
    assert workload_readiness(settled, count=1).rolled_out
    assert not workload_readiness(
        _sts("2", 2, 0, ready=2, updated=2, current="ws-new"), 1
    ).rolled_out
