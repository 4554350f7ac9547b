"""The framework against the real API server (the `control_plane` fixture), driving a sample
controller: a `Sample` custom resource that owns a ConfigMap carrying its message."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import aiohttp
import pytest
from kubernetes_asyncio.client import ApiClient

from kaito_common.controller.apply import apply_if_changed
from kaito_common.controller.client import KubeClient
from kaito_common.controller.conditions import is_true, set_condition
from kaito_common.controller.controller import Controller, Result
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.informer import Informer
from kaito_common.controller.kinds import (
    CONFIG_MAP,
    CUSTOM_RESOURCE_DEFINITION,
    EVENT,
    LEASE,
    Kind,
    ObjectKey,
)
from kaito_common.controller.manager import LeaderElectionLost, Manager, ManagerSettings
from kaito_common.controller.meta import (
    add_finalizer,
    controller_reference,
    has_finalizer,
    remove_finalizer,
)
from kaito_common.controller.objects import Obj
from kaito_common.controller.status import patch_status_if_changed
from kaito_testing.controllers import (
    CountingApiClient,
    TcpProxy,
    client_configuration,
    eventually,
)

SAMPLE = Kind("framework.test.kaito.sh", "v1", "samples", "Sample")
CHILD_LABEL = "framework.test.kaito.sh/sample"


def sample_crd() -> Obj:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"message": {"type": "string"}},
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    return {
        "metadata": {"name": f"{SAMPLE.plural}.{SAMPLE.group}"},
        "spec": {
            "group": SAMPLE.group,
            "scope": "Namespaced",
            "names": {"plural": SAMPLE.plural, "singular": "sample", "kind": SAMPLE.kind},
            "versions": [
                {
                    "name": SAMPLE.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


class SampleReconciler:
    """The sample controller: a Sample owns a ConfigMap `<name>-child` carrying spec.message,
    and its status reports the message applied with a Ready condition."""

    def __init__(self, manager: Manager, namespace: str, work_s: float = 0.0) -> None:
        self.client = manager.client
        self.namespace = namespace
        self.work_s = work_s
        self.samples = manager.informer(SAMPLE, namespace=namespace)
        self.children = manager.informer(CONFIG_MAP, namespace=namespace)
        self.calls: Counter[ObjectKey] = Counter()
        self.controller: Controller = (
            manager.controller(f"sample-{namespace}")
            .for_(SAMPLE, namespace=namespace)
            .owns(CONFIG_MAP, namespace=namespace)
            .with_max_concurrent(3)
            .complete(self.reconcile)
        )

    async def reconcile(self, key: ObjectKey) -> Result | None:
        self.calls[key] += 1
        if self.work_s:
            await asyncio.sleep(self.work_s)  # stands in for a reconcile doing real work
        sample = self.samples.store.get(key)
        if sample is None:
            return None
        message = str((sample.get("spec") or {}).get("message", ""))
        child_key = ObjectKey(key.namespace, f"{key.name}-child")
        desired = {
            "metadata": {
                "name": child_key.name,
                "namespace": key.namespace,
                "labels": {CHILD_LABEL: key.name},
                "ownerReferences": [controller_reference(sample)],
            },
            "data": {"message": message},
        }
        await apply_if_changed(
            self.client, CONFIG_MAP, desired, self.children.store.get(child_key), "sample"
        )
        status = dict(sample.get("status") or {})
        generation = int(sample["metadata"].get("generation", 0))
        status["conditions"] = set_condition(
            status.get("conditions"), "Ready", True, "ChildApplied", observed_generation=generation
        )
        status["message"] = message
        await patch_status_if_changed(self.client, SAMPLE, sample, status)
        return None


ManagerFactory = Callable[..., Awaitable[tuple[Manager, CountingApiClient]]]


@pytest.fixture(scope="session")
async def sample_kind(kubeconfig_path: Any) -> AsyncIterator[Kind]:
    cfg = await client_configuration(str(kubeconfig_path))
    async with ApiClient(configuration=cfg) as api:
        client = KubeClient(api, 10)
        if (
            await client.get_or_none(CUSTOM_RESOURCE_DEFINITION, sample_crd()["metadata"]["name"])
            is None
        ):
            await client.create(CUSTOM_RESOURCE_DEFINITION, sample_crd())

        async def established() -> bool:
            try:
                await client.list(SAMPLE, "default", limit=1)
            except Exception:
                return False
            return True

        await eventually(established, 30, 0.1, "the Sample CRD to be served")
    yield SAMPLE


@pytest.fixture
async def kube(kubeconfig_path: Any) -> AsyncIterator[KubeClient]:
    """A client of the test itself (not counted, not proxied)."""
    cfg = await client_configuration(str(kubeconfig_path))
    async with ApiClient(configuration=cfg) as api:
        yield KubeClient(api, 10)


@pytest.fixture
async def proxy(control_plane: Any) -> AsyncIterator[TcpProxy]:
    target = urlparse(str(control_plane.server))
    p = TcpProxy(target.hostname or "127.0.0.1", target.port or 443)
    await p.start()
    yield p
    await p.close()


@pytest.fixture
async def make_manager(kubeconfig_path: Any) -> AsyncIterator[ManagerFactory]:
    """Builds managers (each with its own counting ApiClient); stops and closes them after."""
    made: list[tuple[Manager, CountingApiClient]] = []

    async def factory(
        host: str | None = None, **settings: Any
    ) -> tuple[Manager, CountingApiClient]:
        cfg = await client_configuration(str(kubeconfig_path), host)
        api = CountingApiClient(cfg)
        defaults: dict[str, Any] = {"http_host": "127.0.0.1", "http_port": 0, "watch_timeout_s": 60}
        manager = Manager(ManagerSettings(**{**defaults, **settings}), api)
        made.append((manager, api))
        return manager, api

    yield factory
    for manager, _api in made:
        manager.stop()
    await asyncio.sleep(0)
    for _, api in made:
        await api.close()


async def call_control_plane(method: Callable[[], Any]) -> None:
    """Call a control plane operation, sync (in a thread) or async alike."""
    if inspect.iscoroutinefunction(method):
        await method()
    else:
        await asyncio.to_thread(method)


@contextlib.asynccontextmanager
async def running(manager: Manager) -> AsyncIterator[asyncio.Task[None]]:
    """Run the manager in the background for the block; stop it and surface its error after."""
    task = asyncio.create_task(manager.run())
    try:
        yield task
    finally:
        manager.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


pytestmark = pytest.mark.controlplane


def sample(namespace: str, name: str, message: str) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"message": message}}


async def converged(kube: KubeClient, kind: Kind, namespace: str, name: str, message: str) -> bool:
    obj = await kube.get_or_none(kind, name, namespace)
    child = await kube.get_or_none(CONFIG_MAP, f"{name}-child", namespace)
    if obj is None or child is None:
        return False
    status = obj.get("status") or {}
    return bool(
        (child.get("data") or {}).get("message") == message
        and status.get("message") == message
        and is_true(status.get("conditions"), "Ready")
        and child["metadata"]["labels"].get(CHILD_LABEL) == name
    )


async def cache_matches_server(kube: KubeClient, informer: Informer, namespace: str) -> bool:
    live = await kube.list_all(informer.kind, namespace)
    want = {ObjectKey.of(o): o["metadata"]["resourceVersion"] for o in live}
    have = {}
    for key in informer.store.list_keys():
        obj = informer.store.get(key)
        assert obj is not None
        assert "managedFields" not in obj["metadata"]
        have[key] = obj["metadata"]["resourceVersion"]
    return want == have


async def test_sample_converges_and_child_deletion_wakes_the_owner(
    sample_kind: Kind, namespace: str, kube: KubeClient, make_manager: ManagerFactory
) -> None:
    manager, api = await make_manager()
    rec = SampleReconciler(manager, namespace)
    async with running(manager):
        await kube.create(sample_kind, sample(namespace, "one", "hello"))
        await eventually(lambda: converged(kube, sample_kind, namespace, "one", "hello"))
        child = await kube.get(CONFIG_MAP, "one-child", namespace)
        owners = child["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o["controller"]) for o in owners] == [
            ("Sample", "one", True)
        ]

        # Deleting the child is seen through the owner reference; the owner recreates it.
        calls_before = rec.calls[ObjectKey(namespace, "one")]
        await kube.delete(CONFIG_MAP, "one-child", namespace)

        async def recreated() -> bool:
            again = await kube.get_or_none(CONFIG_MAP, "one-child", namespace)
            return again is not None and again["metadata"]["uid"] != child["metadata"]["uid"]

        await eventually(recreated, what="the child to be recreated")
        assert rec.calls[ObjectKey(namespace, "one")] > calls_before

        # A spec change converges too.
        await kube.patch(sample_kind, "one", {"spec": {"message": "bye"}}, namespace)
        await eventually(lambda: converged(kube, sample_kind, namespace, "one", "bye"))

        # Health, readiness and metrics are served.
        assert manager.http_port
        base = f"http://127.0.0.1:{manager.http_port}"
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz", "/readyz"):
                async with http.get(base + path) as resp:
                    assert resp.status == 200
            async with http.get(base + "/metrics") as resp:
                text = await resp.text()
        assert (
            f'controller_runtime_reconcile_total{{controller="sample-{namespace}",result="success"}}'
            in text
        )
        assert "workqueue_depth" in text and "informer_relists_total" in text
    assert api.requests["GET"] > 0


async def test_second_reconcile_of_a_converged_object_writes_nothing(
    sample_kind: Kind, namespace: str, kube: KubeClient, make_manager: ManagerFactory
) -> None:
    manager, api = await make_manager()
    rec = SampleReconciler(manager, namespace)
    async with running(manager):
        await kube.create(sample_kind, sample(namespace, "calm", "steady"))
        await eventually(lambda: converged(kube, sample_kind, namespace, "calm", "steady"))
        key = ObjectKey(namespace, "calm")

        # Let the watch deliver our own writes back, then reconcile once more on purpose.
        async def caches_current() -> bool:
            return await cache_matches_server(kube, rec.samples, namespace) and (
                await cache_matches_server(kube, rec.children, namespace)
            )

        await eventually(caches_current, what="caches to catch up")
        await eventually(
            lambda: not rec.controller.queue.processing and len(rec.controller.queue) == 0
        )
        writes, calls = api.writes, rec.calls[key]
        rec.controller.enqueue(key)
        await eventually(
            lambda: rec.calls[key] == calls + 1 and not rec.controller.queue.processing
        )
        assert api.writes == writes, api.requests


async def test_a_burst_of_changes_is_reconciled_far_fewer_times_and_ends_correct(
    sample_kind: Kind, namespace: str, kube: KubeClient, make_manager: ManagerFactory
) -> None:
    manager, _ = await make_manager()
    rec = SampleReconciler(manager, namespace, work_s=0.05)
    async with running(manager):
        await kube.create(sample_kind, sample(namespace, "busy", "v0"))
        await eventually(lambda: converged(kube, sample_kind, namespace, "busy", "v0"))
        key = ObjectKey(namespace, "busy")
        before = rec.calls[key]
        for i in range(1, 101):
            await kube.patch(sample_kind, "busy", {"spec": {"message": f"v{i}"}}, namespace)
        await eventually(lambda: converged(kube, sample_kind, namespace, "busy", "v100"))
        burst_reconciles = rec.calls[key] - before
        print(f"RESULT burst: {burst_reconciles} reconciles for 100 changes")
        assert burst_reconciles < 50, burst_reconciles


async def test_cut_watch_connections_resume_and_converge(
    sample_kind: Kind,
    namespace: str,
    kube: KubeClient,
    make_manager: ManagerFactory,
    proxy: TcpProxy,
) -> None:
    manager, _ = await make_manager(host=f"https://127.0.0.1:{proxy.port}")
    rec = SampleReconciler(manager, namespace)
    async with running(manager):
        await kube.create(sample_kind, sample(namespace, "a", "1"))
        await eventually(lambda: converged(kube, sample_kind, namespace, "a", "1"))
        assert proxy.cut(refuse=True) >= 1  # the watch connections are gone
        # The world changes while the controller is cut off.
        await kube.create(sample_kind, sample(namespace, "b", "2"))
        await kube.patch(sample_kind, "a", {"spec": {"message": "changed"}}, namespace)
        proxy.restore()
        await eventually(lambda: converged(kube, sample_kind, namespace, "a", "changed"))
        await eventually(lambda: converged(kube, sample_kind, namespace, "b", "2"))
        for informer in (rec.samples, rec.children):
            await eventually(lambda i=informer: cache_matches_server(kube, i, namespace))


async def test_compacted_history_forces_a_relist_and_the_cache_recovers(
    sample_kind: Kind,
    namespace: str,
    kube: KubeClient,
    make_manager: ManagerFactory,
    proxy: TcpProxy,
    control_plane: Any,
) -> None:
    manager, _ = await make_manager(host=f"https://127.0.0.1:{proxy.port}")
    rec = SampleReconciler(manager, namespace)
    async with running(manager):
        await kube.create(sample_kind, sample(namespace, "keep", "1"))
        await kube.create(sample_kind, sample(namespace, "drop", "1"))
        await eventually(lambda: converged(kube, sample_kind, namespace, "keep", "1"))
        await eventually(lambda: converged(kube, sample_kind, namespace, "drop", "1"))
        relists = rec.samples.relists
        proxy.cut(refuse=True)
        await kube.patch(sample_kind, "keep", {"spec": {"message": "2"}}, namespace)
        await kube.delete(sample_kind, "drop", namespace)
        await kube.create(sample_kind, sample(namespace, "late", "3"))
        # Churn so the resourceVersion the informer holds falls out of the history.
        for i in range(20):
            await kube.create(
                CONFIG_MAP, {"metadata": {"name": f"churn-{i}", "namespace": namespace}}
            )
        await call_control_plane(control_plane.compact_etcd)
        proxy.restore()
        await eventually(lambda: rec.samples.relists > relists, what="a relist after 410 Gone")
        await eventually(lambda: converged(kube, sample_kind, namespace, "keep", "2"))
        await eventually(lambda: converged(kube, sample_kind, namespace, "late", "3"))
        await eventually(lambda: rec.samples.store.get(ObjectKey(namespace, "drop")) is None)
        for informer in (rec.samples, rec.children):
            await eventually(lambda i=informer: cache_matches_server(kube, i, namespace))


async def test_apiserver_restart_ends_with_a_correct_cache_and_converged_controller(
    sample_kind: Kind,
    namespace: str,
    kube: KubeClient,
    make_manager: ManagerFactory,
    control_plane: Any,
) -> None:
    manager, _ = await make_manager()
    rec = SampleReconciler(manager, namespace)
    async with running(manager):
        await kube.create(sample_kind, sample(namespace, "r", "before"))
        await eventually(lambda: converged(kube, sample_kind, namespace, "r", "before"))
        await call_control_plane(control_plane.restart_apiserver)

        async def patched() -> bool:
            try:
                await kube.patch(sample_kind, "r", {"spec": {"message": "after"}}, namespace)
            except Exception:
                return False
            return True

        await eventually(patched, 60, 0.2, "the API server to accept writes again")
        await kube.delete(CONFIG_MAP, "r-child", namespace)
        await eventually(lambda: converged(kube, sample_kind, namespace, "r", "after"), 60)
        for informer in (rec.samples, rec.children):
            await eventually(lambda i=informer: cache_matches_server(kube, i, namespace), 30)


async def test_two_managers_one_lease_only_the_leader_reconciles_and_hands_over(
    sample_kind: Kind, namespace: str, kube: KubeClient, make_manager: ManagerFactory
) -> None:
    lease = {
        "leader_election": True,
        "lease_namespace": namespace,
        "lease_name": "sample-lock",
        "lease_duration_s": 2.0,
        "renew_deadline_s": 1.5,
        "retry_period_s": 0.2,
    }
    first, _ = await make_manager(identity="first", **lease)
    second, _ = await make_manager(identity="second", **lease)
    rec_first = SampleReconciler(first, namespace)
    rec_second = SampleReconciler(second, namespace)
    second_task = asyncio.create_task(second.run())
    try:
        async with running(first):
            await eventually(lambda: first.is_leader or second.is_leader, what="a leader")
            leader, standby = (first, second) if first.is_leader else (second, first)
            rec_lead, rec_standby = (
                (rec_first, rec_second) if leader is first else (rec_second, rec_first)
            )
            await kube.create(sample_kind, sample(namespace, "led", "x"))
            await eventually(lambda: converged(kube, sample_kind, namespace, "led", "x"))
            assert sum(rec_lead.calls.values()) > 0
            assert sum(rec_standby.calls.values()) == 0
            assert not standby.is_leader
            held = await kube.get(LEASE, "sample-lock", namespace)
            assert held["spec"]["holderIdentity"] == leader.settings.identity

            # Stop the leader: the standby takes over well within the lease duration.
            stopped_at = time.monotonic()
            leader.stop()
            await eventually(lambda: standby.is_leader, 5, 0.02, "the standby to lead")
            handover_s = time.monotonic() - stopped_at
            print(f"RESULT lease handover: {handover_s:.2f} s (lease duration 2 s)")
            assert handover_s < lease["lease_duration_s"], handover_s
            await kube.patch(sample_kind, "led", {"spec": {"message": "y"}}, namespace)
            await eventually(lambda: converged(kube, sample_kind, namespace, "led", "y"))
            assert sum(rec_standby.calls.values()) > 0
    finally:
        second.stop()
        await asyncio.wait_for(second_task, 15)


async def test_finalizers_and_events_on_the_real_api(namespace: str, kube: KubeClient) -> None:
    cm = await kube.create(CONFIG_MAP, {"metadata": {"name": "fin", "namespace": namespace}})
    stale = dict(cm)
    # Someone else changes the object: the helper's conditional patch conflicts and retries.
    await kube.patch(CONFIG_MAP, "fin", {"data": {"k": "v"}}, namespace)
    updated = await add_finalizer(kube, CONFIG_MAP, stale, "test.kaito.sh/fin")
    assert has_finalizer(updated, "test.kaito.sh/fin")
    assert updated["data"] == {"k": "v"}
    assert await add_finalizer(kube, CONFIG_MAP, updated, "test.kaito.sh/fin") is updated
    removed = await remove_finalizer(kube, CONFIG_MAP, updated, "test.kaito.sh/fin")
    assert not has_finalizer(removed, "test.kaito.sh/fin")

    recorder = EventRecorder(kube, "framework-test")
    await recorder.normal(removed, "Tested", "a message")
    await recorder.normal(removed, "Tested", "a message")
    events = await kube.list_all(EVENT, namespace)
    mine = [e for e in events if e["involvedObject"]["name"] == "fin"]
    assert [(e["reason"], e["count"], e["type"]) for e in mine] == [("Tested", 2, "Normal")]


async def test_manager_without_leader_election_stops_cleanly(make_manager: ManagerFactory) -> None:
    manager, api = await make_manager()
    assert isinstance(manager, Manager)
    async with running(manager):
        await eventually(lambda: manager.http_port is not None)
    assert api.writes == 0


async def test_a_leader_cut_off_from_the_api_stops_and_the_standby_takes_over(
    sample_kind: Kind,
    namespace: str,
    kube: KubeClient,
    make_manager: ManagerFactory,
    proxy: TcpProxy,
) -> None:
    lease = {
        "leader_election": True,
        "lease_namespace": namespace,
        "lease_name": "cut-lock",
        "lease_duration_s": 2.0,
        "renew_deadline_s": 1.5,
        "retry_period_s": 0.2,
    }
    leader, _ = await make_manager(host=f"https://127.0.0.1:{proxy.port}", identity="a", **lease)
    standby, _ = await make_manager(identity="b", **lease)
    rec_leader = SampleReconciler(leader, namespace)
    rec_standby = SampleReconciler(standby, namespace)
    leader_task = asyncio.create_task(leader.run())
    await eventually(lambda: leader.is_leader, what="the first manager to lead")
    async with running(standby):
        await kube.create(sample_kind, sample(namespace, "s", "1"))
        await eventually(lambda: converged(kube, sample_kind, namespace, "s", "1"))
        assert sum(rec_standby.calls.values()) == 0
        cut_at = time.monotonic()
        proxy.cut(refuse=True)  # the leader can no longer renew (nor release) its lease
        with pytest.raises(LeaderElectionLost):
            await asyncio.wait_for(leader_task, 10)
        lost_s = time.monotonic() - cut_at
        assert not leader.is_leader
        await eventually(lambda: standby.is_leader, 10, 0.02, "the standby to lead")
        takeover_s = time.monotonic() - cut_at
        print(
            f"RESULT cut-off leader stopped after {lost_s:.2f} s, standby led at {takeover_s:.2f} s"
        )
        # Renewals stop at the cut; the lease expires one duration after the last one.
        assert takeover_s < lease["lease_duration_s"] + 1.0, takeover_s
        calls_leader = sum(rec_leader.calls.values())
        await kube.patch(sample_kind, "s", {"spec": {"message": "2"}}, namespace)
        await eventually(lambda: converged(kube, sample_kind, namespace, "s", "2"))
        assert sum(rec_standby.calls.values()) > 0
        assert sum(rec_leader.calls.values()) == calls_leader
