"""Wiring: settings -> manager, informers, cloud, controllers. No logic lives here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.config import ConfigException, load_incluster_config, new_client_from_config

from gpu_provisioner import claims
from gpu_provisioner.cloud.provider import CloudProvider
from gpu_provisioner.controllers.garbagecollection import GarbageCollector
from gpu_provisioner.controllers.launch import Launcher
from gpu_provisioner.controllers.lifecycle import (
    BY_PROVIDER_ID,
    LifecycleReconciler,
    claim_provider_ids,
    node_provider_ids,
)
from gpu_provisioner.controllers.repair import NodeRepair
from gpu_provisioner.metrics import ProvisionerMetrics
from gpu_provisioner.settings import Settings
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller.client import KubeClient
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.informer import Informer, WatchEvent
from kaito_common.controller.kinds import NODE
from kaito_common.controller.manager import Manager, ManagerSettings

log = logging.getLogger(__name__)

COMPONENT = "gpu-provisioner"  # the Events' source: what `kubectl describe nodeclaim` shows


def _managed(event: WatchEvent) -> bool:
    return claims.is_managed(event.obj)


def make_cloud(settings: Settings, kube: KubeClient, metrics: ProvisionerMetrics) -> CloudProvider:
    if settings.cloud == "kwok":
        from gpu_provisioner.cloud.kwok import KwokCloud

        return KwokCloud(kube)
    from gpu_provisioner.cloud.azure import AzureCloud, credential_from_settings

    missing = settings.azure.missing()
    if missing:
        raise ValueError(f"the azure cloud needs {', '.join(missing)} to be set")
    return AzureCloud(settings.azure, credential_from_settings(settings.azure), kube, metrics)


async def api_client_for(settings: Settings) -> ApiClient:
    if settings.kubeconfig:
        return await new_client_from_config(config_file=settings.kubeconfig)
    try:
        load_incluster_config()  # type: ignore[no-untyped-call]
    except ConfigException:
        return await new_client_from_config()
    return ApiClient()


@dataclass
class Provisioner:
    manager: Manager
    cloud: CloudProvider
    launcher: Launcher
    lifecycle: LifecycleReconciler
    garbage_collector: GarbageCollector
    metrics: ProvisionerMetrics

    async def run(self) -> None:
        """Run until stopped (SIGTERM/SIGINT when `handle_signals`)."""
        try:
            await self.manager.run()
        finally:
            await self.launcher.close()
            await self.cloud.close()

    async def run_until_signal(self) -> None:
        try:
            await self.manager.run_until_signal()
        finally:
            await self.launcher.close()
            await self.cloud.close()


CloudFactory = Callable[[KubeClient, ProvisionerMetrics], CloudProvider]


def _manager(settings: Settings, api_client: ApiClient) -> Manager:
    return Manager(
        ManagerSettings(
            name=COMPONENT,
            request_timeout_s=settings.request_timeout_s,
            leader_election=settings.leader_elect,
            lease_namespace=settings.lease_namespace,
            lease_name=settings.lease_name,
            http_port=settings.metrics_port,
        ),
        api_client,
    )


def _add_lifecycle(
    manager: Manager,
    settings: Settings,
    cloud: CloudProvider,
    launcher: Launcher,
    claim_informer: Informer,
    node_informer: Informer,
    metrics: ProvisionerMetrics,
    events: EventRecorder,
) -> LifecycleReconciler:
    """The NodeClaim lifecycle controller; the launcher wakes it when a launch ends."""
    lifecycle = LifecycleReconciler(
        manager.client,
        cloud,
        launcher,
        claim_informer.store,
        node_informer.store,
        poll_interval_s=settings.poll_interval_s,
        metrics=metrics,
        events=events,
    )
    controller = (
        manager.controller("nodeclaim.lifecycle")
        .for_(NODECLAIM, predicates=[_managed])
        .watches(NODE, lifecycle.claims_for_node)
        .with_max_concurrent(settings.workers)
        .complete(lifecycle.reconcile)
    )
    launcher.notify = controller.enqueue
    return lifecycle


def build(
    settings: Settings, api_client: ApiClient, cloud_factory: CloudFactory | None = None
) -> Provisioner:
    """Wire the provisioner; `cloud_factory` replaces the cloud the settings name (tests use
    it to hand the azure cloud a static-token credential)."""
    manager = _manager(settings, api_client)
    claim_informer = manager.informer(NODECLAIM)
    claim_informer.add_indexer(BY_PROVIDER_ID, claim_provider_ids)
    node_informer = manager.informer(NODE)
    node_informer.add_indexer(BY_PROVIDER_ID, node_provider_ids)

    metrics = ProvisionerMetrics(manager.metrics.registry)
    metrics.watch_claims(claim_informer.store.list)
    factory = cloud_factory or (lambda kube, m: make_cloud(settings, kube, m))
    cloud = factory(manager.client, metrics)
    use_node_cache = getattr(cloud, "use_node_cache", None)
    if use_node_cache is not None:
        use_node_cache(node_informer.store)
    launcher = Launcher(
        cloud,
        metrics,
        max_concurrent=settings.max_concurrent_launches,
        backoff_max_s=settings.launch_backoff_max_s,
    )
    events = EventRecorder(manager.client, COMPONENT)
    lifecycle = _add_lifecycle(
        manager, settings, cloud, launcher, claim_informer, node_informer, metrics, events
    )
    if settings.node_repair:
        repair = NodeRepair(
            manager.client,
            claim_informer.store,
            node_informer.store,
            after_s=settings.node_repair_after_s,
            events=events,
        )
        manager.controller("node.repair").for_(NODE).complete(repair.reconcile)
    gc = GarbageCollector(
        manager.client,
        cloud,
        claim_informer.store,
        node_informer.store,
        interval_s=settings.gc_interval_s,
        grace_s=settings.gc_instance_grace_s,
        events=events,
    )
    manager.add_runnable(gc.run)
    log.info(
        "Built gpu-provisioner cloud=%s leaderElection=%s nodeRepair=%s",
        cloud.name,
        settings.leader_elect,
        settings.node_repair,
    )
    return Provisioner(manager, cloud, launcher, lifecycle, gc, metrics)
