"""Wiring only: the manager, informers, the Workspace controller and the webhook."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException, load_incluster_config, load_kube_config
from prometheus_client import CollectorRegistry

from kaito_common.api import labels as L
from kaito_common.contracts.kinds import NODECLAIM, WORKSPACE
from kaito_common.controller import objects
from kaito_common.controller.apply import apply
from kaito_common.controller.client import KubeClient, is_not_found
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.expectations import Expectations
from kaito_common.controller.informer import Informer, WatchEvent
from kaito_common.controller.kinds import (
    CONFIG_MAP,
    CONTROLLER_REVISION,
    DEPLOYMENT,
    JOB,
    NODE,
    PERSISTENT_VOLUME_CLAIM,
    SERVICE,
    STATEFUL_SET,
    Kind,
    ObjectKey,
)
from kaito_common.controller.manager import Manager, ManagerSettings
from kaito_common.controller.objects import Obj
from kaito_common.controller.store import StoreReader
from kaito_common.presets import load_catalog
from kaito_common.presets.hub_client import HuggingFaceHubSource
from workspace_controller.caches import Caches
from workspace_controller.inference.reconcile import InferenceOptions, InferenceReconciler
from workspace_controller.kinds import FIELD_MANAGER, VALIDATING_WEBHOOK_CONFIGURATION
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.manifests.model_weights import WeightsCache
from workspace_controller.manifests.nodeclaim import NodeClassRef
from workspace_controller.metrics import CountingApiClient, WorkspaceCountCollector
from workspace_controller.nodes.provisioner import NodeClaimCreator
from workspace_controller.predicates import node_changed, workspace_changed, workspace_of_labels
from workspace_controller.settings import ControllerSettings
from workspace_controller.tuning.progress import MetricsProgressSource
from workspace_controller.tuning.reconcile import TuningOptions, TuningReconciler
from workspace_controller.webhook import certs
from workspace_controller.webhook.registration import webhook_configuration
from workspace_controller.webhook.rules import RuleContext
from workspace_controller.webhook.server import ApiConfigMapReader, WorkspaceValidator, serve
from workspace_controller.workspace.reconciler import ReconcilerOptions, WorkspaceReconciler

log = logging.getLogger(__name__)

BY_WORKER_NODE = "workerNode"
COMPONENT = "workspace-controller"
# One request to the Hugging Face hub when a repo id is resolved as a preset.
HUB_TIMEOUT_S = 10.0


async def _client_configuration(kubeconfig: str | None) -> Configuration:
    cfg = Configuration()
    if kubeconfig:
        await load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        return cfg
    try:
        load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except ConfigException:
        await load_kube_config(client_configuration=cfg)
    return cfg


async def api_installed(client: KubeClient, kind: Kind) -> bool:
    """Whether the API server serves `kind` (a CRD may be absent)."""
    try:
        await client._call("GET", kind.collection_path(), query=[("limit", 1)])
    except ApiException as err:
        if is_not_found(err):
            return False
        raise
    return True


def _worker_nodes(ws: Obj) -> list[str]:
    return [str(n) for n in (ws.get("status") or {}).get("workerNodes") or []]


@dataclass(frozen=True)
class _Watched:
    """The informers the controller's watches need beside the caches."""

    caches: Caches
    workspaces: Informer
    nodeclaims: Informer | None  # None when the NodeClaim API is not installed


async def _watch(manager: Manager, release_namespace: str) -> _Watched:
    """One informer per kind the reconciler reads; their stores are its caches."""
    workspaces = manager.informer(WORKSPACE)
    workspaces.add_indexer(BY_WORKER_NODE, _worker_nodes)
    nodeclaims = None
    if await api_installed(manager.client, NODECLAIM):
        nodeclaims = manager.informer(NODECLAIM, label_selector=L.LABEL_WORKSPACE)
    else:
        log.warning("NodeClaim API (karpenter.sh/v1) not installed; NodeClaims cannot be created")

    def store(kind: Kind, label: str) -> StoreReader:
        return manager.informer(kind, label_selector=label).store

    caches = Caches(
        workspaces=workspaces.store,
        nodes=manager.informer(NODE).store,
        nodeclaims=nodeclaims.store if nodeclaims else None,
        revisions=store(CONTROLLER_REVISION, L.LABEL_WORKSPACE_NAME),
        services=store(SERVICE, L.LABEL_WORKSPACE),
        deployments=store(DEPLOYMENT, L.LABEL_WORKSPACE),
        statefulsets=store(STATEFUL_SET, L.LABEL_WORKSPACE),
        jobs=store(JOB, L.LABEL_WORKSPACE),
        configmaps=store(CONFIG_MAP, L.LABEL_WORKSPACE),
        templates=manager.informer(CONFIG_MAP, namespace=release_namespace).store,
        claims=store(PERSISTENT_VOLUME_CLAIM, L.LABEL_WORKSPACE),
    )
    return _Watched(caches, workspaces, nodeclaims)


def _register(
    manager: Manager,
    watched: _Watched,
    creator: NodeClaimCreator,
    reconciler: WorkspaceReconciler,
    max_concurrent: int,
) -> None:
    """The workspace controller: its own kind, its children, nodes and NodeClaims."""
    workspaces = watched.workspaces.store

    def map_node(node: Obj) -> Iterable[ObjectKey]:
        keys = {ObjectKey.of(ws) for ws in workspaces.by_index(BY_WORKER_NODE, objects.name(node))}
        owner = workspace_of_labels(node)
        if owner is not None:
            keys.add(ObjectKey(*owner))
        return keys

    def map_claim(claim: Obj) -> Iterable[ObjectKey]:
        owner = workspace_of_labels(claim)
        return [ObjectKey(*owner)] if owner else []

    builder = (
        manager.controller("workspace")
        .for_(WORKSPACE, predicates=[workspace_changed])
        .owns(SERVICE, label_selector=L.LABEL_WORKSPACE)
        .owns(CONTROLLER_REVISION, label_selector=L.LABEL_WORKSPACE_NAME)
        .owns(DEPLOYMENT, label_selector=L.LABEL_WORKSPACE)
        .owns(STATEFUL_SET, label_selector=L.LABEL_WORKSPACE)
        .owns(JOB, label_selector=L.LABEL_WORKSPACE)
        .owns(CONFIG_MAP, label_selector=L.LABEL_WORKSPACE)
        .watches(NODE, map_node, predicates=[node_changed])
    )
    if watched.nodeclaims is not None:
        builder = builder.watches(NODECLAIM, map_claim, label_selector=L.LABEL_WORKSPACE)

        def observe(event: WatchEvent) -> None:
            if event.type != "DELETED":
                creator.observed(event.obj)

        watched.nodeclaims.add_handler(observe)
    builder.with_max_concurrent(max_concurrent).complete(reconciler.reconcile)


class WorkspaceApp:
    """Builds everything from settings; `run()` serves until SIGTERM."""

    def __init__(self, settings: ControllerSettings) -> None:
        self.settings = settings
        self.webhook_port: int | None = None
        self._webhook_runner: web.AppRunner | None = None

    async def _manager(self) -> Manager:
        s = self.settings
        manager_settings = ManagerSettings(
            name=COMPONENT,
            request_timeout_s=s.request_timeout_s,
            leader_election=s.leader_election,
            lease_namespace=s.leader_election_namespace,
            lease_name=f"{COMPONENT}-leader",
            http_port=s.metrics_port,
        )
        cfg = await _client_configuration(s.kubeconfig)
        registry = CollectorRegistry()
        manager = Manager(manager_settings, CountingApiClient(cfg, registry))
        manager.metrics.registry.register(_Delegate(registry))
        return manager

    def _images(self) -> ImageSettings:
        s = self.settings
        return ImageSettings(
            registry=s.weights_image_registry,
            tag=s.weights_image_tag,
            runner=s.runner_image,
            server=s.server_image,
            server_vllm=s.vllm_server_image,
            runner_access=s.runner_access,
            pull_secrets=tuple(s.image_pull_secrets),
            hf_endpoint=s.hf_endpoint,
            weights_cache=WeightsCache(
                storage_class=s.weights_cache_storage_class, size=s.weights_cache_size
            ),
        )

    def _tuning(
        self, client: KubeClient, caches: Caches, events: EventRecorder
    ) -> TuningReconciler:
        s = self.settings
        return TuningReconciler(
            client,
            caches,
            events,
            MetricsProgressSource(s.tuning_metrics_port, s.tuning_progress_timeout_s),
            TuningOptions(
                images=self._images(),
                release_namespace=s.release_namespace,
                metrics_port=s.tuning_metrics_port,
                allow_loopback=s.allow_loopback_urls,
                backoff_limit=s.tuning_backoff_limit,
            ),
        )

    def _reconciler(
        self, client: KubeClient, caches: Caches, creator: NodeClaimCreator, events: EventRecorder
    ) -> WorkspaceReconciler:
        s = self.settings
        inference_options = InferenceOptions(self._images(), s.release_namespace)
        return WorkspaceReconciler(
            client,
            caches,
            load_catalog(include_test=s.enable_test_presets),
            creator,
            InferenceReconciler(client, caches, events, inference_options),
            self._tuning(client, caches, events),
            events,
            ReconcilerOptions(
                byo=s.byo,
                vllm_gate=s.vllm_gate,
                nodes_requeue_s=s.nodes_requeue_s,
                inference_requeue_s=s.inference_requeue_s,
                tuning_requeue_s=s.tuning_requeue_s,
            ),
            hub=HuggingFaceHubSource(s.hf_endpoint, timeout_s=HUB_TIMEOUT_S),
        )

    async def build(self) -> Manager:
        s = self.settings
        manager = await self._manager()
        client = manager.client
        watched = await _watch(manager, s.release_namespace)
        manager.metrics.registry.register(
            WorkspaceCountCollector(watched.workspaces.store, watched.caches.claims)
        )
        events = EventRecorder(client, COMPONENT)
        creator = NodeClaimCreator(
            client,
            Expectations(manager.clock),
            events,
            NodeClassRef(s.node_class_group, s.node_class_kind, s.node_class_name),
        )
        reconciler = self._reconciler(client, watched.caches, creator, events)
        _register(manager, watched, creator, reconciler, s.max_concurrent_reconciles)
        return manager

    async def start_webhook(self, client: KubeClient) -> None:
        s = self.settings
        if s.webhook_cert_dir:
            cert = certs.load(Path(s.webhook_cert_dir))
        else:
            directory = Path(tempfile.mkdtemp(prefix="workspace-webhook-"))
            service = f"{s.webhook_service_name}.{s.webhook_service_namespace}"
            cert = certs.generate(
                directory,
                [service, f"{service}.svc", f"{service}.svc.cluster.local", "localhost"],
                ["127.0.0.1"],
            )
        ctx = RuleContext(
            catalog=load_catalog(include_test=s.enable_test_presets),
            byo=s.byo,
            test_presets=s.enable_test_presets,
            url_policy=s.url_policy,
            vllm_gate=s.vllm_gate,
        )
        # Reads for validation get a short timeout: the API server waits on this answer.
        reader = ApiConfigMapReader(KubeClient(client.api_client, request_timeout_s=2.0))
        runner, port = await serve(
            WorkspaceValidator(ctx, reader), cert, s.webhook_host, s.webhook_port
        )
        self._webhook_runner, self.webhook_port = runner, port
        if s.register_webhook:
            manifest = webhook_configuration(
                s.webhook_config_name,
                cert.ca_pem,
                url=s.webhook_url,
                service_name=s.webhook_service_name,
                service_namespace=s.webhook_service_namespace,
                timeout_s=s.webhook_timeout_s,
            )
            await apply(client, VALIDATING_WEBHOOK_CONFIGURATION, manifest, FIELD_MANAGER)
            log.info(
                "Registered the validating webhook configuration=%s url=%s",
                s.webhook_config_name,
                s.webhook_url or "(service)",
            )

    async def run(self) -> None:
        manager = await self.build()
        try:
            await self.start_webhook(manager.client)
            await manager.run_until_signal()
        finally:
            if self._webhook_runner is not None:
                await self._webhook_runner.cleanup()


class _Delegate:
    """Exposes a second registry's metrics through the manager's registry."""

    def __init__(self, registry: object) -> None:
        self._registry = registry

    def collect(self):  # type: ignore[no-untyped-def]
        yield from self._registry.collect()  # type: ignore[attr-defined]
