"""Pure helpers: conditions, predicates, expectations, store indexes, diffs, owner mapping."""

from __future__ import annotations

import datetime as dt

import pytest
from fake_clock import FakeClock

from kaito_common.controller.apply import is_subset
from kaito_common.controller.clock import parse_time
from kaito_common.controller.conditions import get_condition, is_true, set_condition
from kaito_common.controller.controller import controller_owner
from kaito_common.controller.expectations import Expectations
from kaito_common.controller.informer import WatchEvent
from kaito_common.controller.kinds import CONFIG_MAP, DEPLOYMENT, NODE, Kind, ObjectKey
from kaito_common.controller.meta import set_controller_reference
from kaito_common.controller.predicates import generation_changed, has_labels
from kaito_common.controller.status import merge_patch_diff
from kaito_common.controller.store import BY_OWNER, Store, parse_label_selector

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    conds = set_condition([], "Ready", False, "Waiting", "no nodes", observed_generation=1, now=T0)
    again = set_condition(
        conds, "Ready", False, "Waiting", "no nodes", observed_generation=1, now=T1
    )
    assert again == conds  # equal, so a status write can be skipped
    msg = set_condition(conds, "Ready", False, "Still", "1 node", observed_generation=2, now=T1)
    cond = get_condition(msg, "Ready")
    assert cond is not None
    assert cond["lastTransitionTime"] == "2025-01-01T00:00:00Z"
    assert (cond["reason"], cond["observedGeneration"]) == ("Still", 2)
    flipped = set_condition(msg, "Ready", True, "Done", now=T1)
    cond = get_condition(flipped, "Ready")
    assert cond is not None and cond["lastTransitionTime"] == "2025-01-01T00:05:00Z"
    assert is_true(flipped, "Ready") and not is_true(msg, "Ready")
    assert parse_time(cond["lastTransitionTime"]) == T1
    assert conds[0]["status"] == "False"  # inputs are not mutated


def test_set_condition_rejects_bad_status_and_keeps_other_types() -> None:
    conds = set_condition([], "A", True, "R", now=T0)
    conds = set_condition(conds, "B", "Unknown", "R", now=T0)
    assert [c["type"] for c in conds] == ["A", "B"]
    with pytest.raises(ValueError):
        set_condition(conds, "A", "Maybe", "R")


def test_generation_predicate_drops_status_only_updates() -> None:
    old = {"metadata": {"generation": 1, "resourceVersion": "1"}}
    status_only = {"metadata": {"generation": 1, "resourceVersion": "2"}, "status": {"x": 1}}
    spec = {"metadata": {"generation": 2, "resourceVersion": "3"}}
    assert not generation_changed(WatchEvent("MODIFIED", status_only, old))
    assert generation_changed(WatchEvent("MODIFIED", spec, old))
    assert generation_changed(WatchEvent("ADDED", spec))
    assert generation_changed(WatchEvent("DELETED", spec))


def test_label_predicate_passes_objects_that_had_or_have_the_labels() -> None:
    pred = has_labels({"app": "x"})
    labelled = {"metadata": {"labels": {"app": "x", "other": "1"}}}
    plain = {"metadata": {"labels": {"app": "y"}}}
    assert pred(WatchEvent("ADDED", labelled))
    assert not pred(WatchEvent("ADDED", plain))
    assert pred(WatchEvent("MODIFIED", plain, labelled))  # label removed: still of interest


def test_expectations_block_until_observed_or_expired() -> None:
    clock = FakeClock()
    exp = Expectations(clock, ttl_s=60)
    key = ObjectKey("ns", "ws")
    assert exp.satisfied(key)
    exp.expect_creations(key, ["nc1", "nc2"])
    assert not exp.satisfied(key)
    exp.creation_observed(key, "nc1")
    assert exp.pending(key) == (frozenset({"nc2"}), frozenset())
    exp.creation_observed(key, "nc2")
    assert exp.satisfied(key)
    exp.expect_deletions(key, ["nc1"])
    assert not exp.satisfied(key)
    clock.advance(61)
    assert exp.satisfied(key)  # a lost event does not block the key forever
    exp.expect_creations(key, ["nc3"])
    exp.forget(key)
    assert exp.satisfied(key)


def _cm(ns: str, name: str, rv: str, labels: dict[str, str] | None = None, owner: str = "") -> dict:
    meta: dict = {"namespace": ns, "name": name, "resourceVersion": rv, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "name": "o", "kind": "K", "apiVersion": "v1"}]
    return {"metadata": meta}


def test_store_indexes_follow_updates_and_replace_reports_the_diff() -> None:
    store = Store()
    store.upsert(_cm("a", "one", "1", {"app": "x"}, owner="u1"))
    store.upsert(_cm("a", "two", "1", {"app": "y"}))
    store.upsert(_cm("b", "one", "1", {"app": "x"}))
    assert [o["metadata"]["namespace"] for o in store.list(labels={"app": "x"})] == ["a", "b"]
    assert len(store.list(namespace="a")) == 2
    assert [o["metadata"]["name"] for o in store.by_index(BY_OWNER, "u1")] == ["one"]
    store.upsert(_cm("a", "one", "2", {"app": "y"}))  # relabelled, owner gone
    assert store.list(namespace="a", labels={"app": "x"}) == []
    assert store.by_index(BY_OWNER, "u1") == []
    copy = store.get(ObjectKey("a", "one"))
    assert copy is not None
    copy["metadata"]["name"] = "mutated"
    assert store.get(ObjectKey("a", "one"))["metadata"]["name"] == "one"  # type: ignore[index]
    added, updated, deleted = store.replace(
        [_cm("a", "one", "2"), _cm("a", "two", "5"), _cm("c", "new", "1")]
    )
    assert [ObjectKey.of(o) for o in added] == [ObjectKey("c", "new")]
    assert [ObjectKey.of(new) for _, new in updated] == [ObjectKey("a", "two")]
    assert [ObjectKey.of(o) for o in deleted] == [ObjectKey("b", "one")]
    assert len(store) == 3 and store.list(namespace="b") == []


def test_label_selector_parsing() -> None:
    assert parse_label_selector("a=b, c==d") == {"a": "b", "c": "d"}
    with pytest.raises(ValueError):
        parse_label_selector("a!=b")


def test_merge_patch_diff_sets_changes_and_nulls_removed_keys() -> None:
    old = {"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "gone": True}
    new = {"a": 1, "b": {"x": 1, "y": 3}, "c": [1, 2], "added": "z"}
    assert merge_patch_diff(old, new) == {"b": {"y": 3}, "c": [1, 2], "added": "z", "gone": None}


def test_is_subset_ignores_server_defaults_but_not_changes() -> None:
    live = {"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "type": "ClusterIP"}}
    assert is_subset({"spec": {"ports": [{"port": 80}]}}, live)
    assert not is_subset({"spec": {"ports": [{"port": 81}]}}, live)
    assert not is_subset({"spec": {"ports": [{"port": 80}, {"port": 81}]}}, live)
    assert not is_subset({"spec": {"selector": {"a": "b"}}}, live)


def test_kind_paths_and_owner_mapping() -> None:
    crd = Kind("kaito.sh", "v1beta1", "workspaces", "Workspace")
    assert (
        crd.object_path("w", "ns", "status")
        == "/apis/kaito.sh/v1beta1/namespaces/ns/workspaces/w/status"
    )
    assert CONFIG_MAP.collection_path(None) == "/api/v1/configmaps"
    assert NODE.object_path("n1") == "/api/v1/nodes/n1"
    with pytest.raises(ValueError):
        DEPLOYMENT.object_path("d")
    owner = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "w", "uid": "u", "namespace": "ns"},
    }
    child = set_controller_reference({"metadata": {"name": "c", "namespace": "ns"}}, owner)
    assert controller_owner(child, crd) == ObjectKey("ns", "w")
    assert controller_owner(child, DEPLOYMENT) is None
    other = {**owner, "metadata": {"name": "x", "uid": "u2"}}
    with pytest.raises(ValueError):
        set_controller_reference(child, other)
