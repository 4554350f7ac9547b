"""The Event recorder against the real API server: repeats fold into one Event's series, a
cluster-scoped object's Events land in `default`, and an Event that cannot be written never
fails the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from kaito_common.controller.client import KubeClient
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.kinds import CONFIG_MAP, EVENT, NAMESPACE
from kaito_common.controller.objects import Obj
from kaito_testing.controllers import client_configuration


@pytest.fixture
async def kube(kubeconfig_path: Any) -> AsyncIterator[KubeClient]:
    cfg = await client_configuration(str(kubeconfig_path))
    async with ApiClient(configuration=cfg) as api:
        yield KubeClient(api, 10)


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def events_of(kube: KubeClient, obj: Obj, namespace: str) -> list[Obj]:
    uid = obj["metadata"]["uid"]
    events = await kube.list_all(EVENT, namespace)
    return sorted(
        (e for e in events if e["involvedObject"].get("uid") == uid),
        key=lambda e: (e["firstTimestamp"], e["metadata"]["name"]),
    )


async def test_repeats_fold_into_one_event_series(namespace: str, kube: KubeClient) -> None:
    cm = await kube.create(CONFIG_MAP, {"metadata": {"name": "evt", "namespace": namespace}})
    cm = {"apiVersion": "v1", "kind": "ConfigMap", **cm}
    clock = ManualClock()
    recorder = EventRecorder(
        kube, "events-test", instance="events-test-0", series_window_s=60, monotonic=clock
    )
    for _ in range(100):  # a level-triggered loop reporting the same thing
        await recorder.warning(cm, "ImagePullError", "cannot pull image x")
    await recorder.normal(cm, "Ready", "ready")

    events = await events_of(kube, cm, namespace)
    by_reason = {e["reason"]: e for e in events}
    assert sorted(by_reason) == ["ImagePullError", "Ready"] and len(events) == 2
    pull = by_reason["ImagePullError"]
    assert pull["type"] == "Warning" and pull["message"] == "cannot pull image x"
    assert pull["count"] == 100 and pull["series"]["count"] == 100
    assert pull["series"]["lastObservedTime"]
    assert pull["involvedObject"]["kind"] == "ConfigMap"
    assert pull["involvedObject"]["namespace"] == namespace
    assert pull["source"]["component"] == "events-test"
    assert pull["reportingComponent"] == "events-test"
    assert pull["reportingInstance"] == "events-test-0"
    assert by_reason["Ready"]["count"] == 1 and "series" not in by_reason["Ready"]

    # After a quiet spell longer than the window the same occurrence starts a new Event.
    clock.now += 61
    await recorder.warning(cm, "ImagePullError", "cannot pull image x")
    pulls = [e for e in await events_of(kube, cm, namespace) if e["reason"] == "ImagePullError"]
    assert sorted(e["count"] for e in pulls) == [1, 100]

    # Another message is another Event.
    await recorder.warning(cm, "ImagePullError", "cannot pull image y")
    pulls = [e for e in await events_of(kube, cm, namespace) if e["reason"] == "ImagePullError"]
    assert len(pulls) == 3


async def test_an_expired_event_is_created_again(namespace: str, kube: KubeClient) -> None:
    cm = await kube.create(CONFIG_MAP, {"metadata": {"name": "ttl", "namespace": namespace}})
    cm = {"apiVersion": "v1", "kind": "ConfigMap", **cm}
    recorder = EventRecorder(kube, "events-test")
    await recorder.normal(cm, "Tested", "once")
    (event,) = await events_of(kube, cm, namespace)
    await kube.delete(EVENT, event["metadata"]["name"], namespace)  # as the event TTL would
    await recorder.normal(cm, "Tested", "once")
    (again,) = await events_of(kube, cm, namespace)
    assert again["count"] == 1 and again["metadata"]["name"] != event["metadata"]["name"]


async def test_cluster_scoped_objects_get_events_in_default(
    namespace: str, kube: KubeClient
) -> None:
    ns = await kube.get(NAMESPACE, namespace)
    ns = {"apiVersion": "v1", "kind": "Namespace", **ns}
    recorder = EventRecorder(kube, "events-test")
    await recorder.normal(ns, "Tested", "cluster-scoped")
    await recorder.normal(ns, "Tested", "cluster-scoped")
    (event,) = await events_of(kube, ns, "default")
    assert event["count"] == 2 and "namespace" not in event["involvedObject"]
    await kube.delete(EVENT, event["metadata"]["name"], "default")


async def test_an_event_that_cannot_be_written_is_logged_not_raised(
    kube: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    missing = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "no-such-namespace-for-events", "uid": "u"},
    }
    recorder = EventRecorder(kube, "events-test")
    await recorder.warning(missing, "Tested", "lost")  # the namespace does not exist: 404
    assert "Event not recorded" in caplog.text and "reason=Tested" in caplog.text
