"""Wiring only: the manager, informers, the Workspace controller and the webhook."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException, load_incluster_config, load_kube_config

from kaito_common.api import labels as L
from kaito_common.controller.apply import apply
from kaito_common.controller.client import KubeClient, is_not_found
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.expectations import Expectations
from kaito_common.controller.informer import WatchEvent
from kaito_common.controller.kinds import (
    CONFIG_MAP,
    CONTROLLER_REVISION,
    DEPLOYMENT,
    JOB,
    NODE,
    SERVICE,
    STATEFUL_SET,
    Kind,
    Obj,
    ObjectKey,
)
from kaito_common.controller.manager import Manager, ManagerSettings
from kaito_common.presets import load_catalog
from workspace_controller.caches import Caches
from workspace_controller.inference.reconcile import InferenceOptions, InferenceReconciler
from workspace_controller.kinds import (
    FIELD_MANAGER,
    NODECLAIM,
    VALIDATING_WEBHOOK_CONFIGURATION,
    WORKSPACE,
)
from workspace_controller.manifests.nodeclaim import NodeClassRef
from workspace_controller.manifests.plan import ImageSettings
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


class WorkspaceApp:
    """Builds everything from settings; `run()` serves until SIGTERM."""

    def __init__(self, settings: ControllerSettings) -> None:
        self.settings = settings
        self.webhook_port: int | None = None
        self._webhook_runner: web.AppRunner | None = None

    async def build(self) -> Manager:
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
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry()
        api = CountingApiClient(cfg, registry)
        manager = Manager(manager_settings, api)
        manager.metrics.registry.register(_Delegate(registry))
        client = manager.client
        catalog = load_catalog(include_test=s.enable_test_presets)

        workspaces = manager.informer(WORKSPACE)
        workspaces.add_indexer(BY_WORKER_NODE, _worker_nodes)
        nodes = manager.informer(NODE)
        revisions = manager.informer(CONTROLLER_REVISION, label_selector=L.LABEL_WORKSPACE_NAME)
        services = manager.informer(SERVICE, label_selector=L.LABEL_WORKSPACE)
        deployments = manager.informer(DEPLOYMENT, label_selector=L.LABEL_WORKSPACE)
        statefulsets = manager.informer(STATEFUL_SET, label_selector=L.LABEL_WORKSPACE)
        jobs = manager.informer(JOB, label_selector=L.LABEL_WORKSPACE)
        configmaps = manager.informer(CONFIG_MAP, label_selector=L.LABEL_WORKSPACE)
        templates = manager.informer(CONFIG_MAP, namespace=s.release_namespace)
        claims_installed = await api_installed(client, NODECLAIM)
        nodeclaims = (
            manager.informer(NODECLAIM, label_selector=L.LABEL_WORKSPACE)
            if claims_installed
            else None
        )
        if not claims_installed:
            log.warning(
                "NodeClaim API (karpenter.sh/v1) not installed; NodeClaims cannot be created"
            )
        caches = Caches(
            workspaces=workspaces.store,
            nodes=nodes.store,
            nodeclaims=nodeclaims.store if nodeclaims else None,
            revisions=revisions.store,
            services=services.store,
            deployments=deployments.store,
            statefulsets=statefulsets.store,
            jobs=jobs.store,
            configmaps=configmaps.store,
            templates=templates.store,
        )
        manager.metrics.registry.register(WorkspaceCountCollector(workspaces.store))
        events = EventRecorder(client, COMPONENT)
        creator = NodeClaimCreator(
            client,
            Expectations(manager.clock),
            events,
            NodeClassRef(s.node_class_group, s.node_class_kind, s.node_class_name),
        )
        images = ImageSettings(
            registry=s.preset_registry,
            tag=s.preset_image_tag,
            runner=s.tuning_runner_image,
            server=s.inference_server_image,
            runner_access=s.runner_access,
        )
        inference = InferenceReconciler(
            client, caches, events, InferenceOptions(images, s.release_namespace)
        )
        tuning = TuningReconciler(
            client,
            caches,
            events,
            MetricsProgressSource(s.tuning_metrics_port, s.tuning_progress_timeout_s),
            TuningOptions(
                images=images,
                release_namespace=s.release_namespace,
                metrics_port=s.tuning_metrics_port,
                allow_loopback=s.allow_loopback_urls,
                backoff_limit=s.tuning_backoff_limit,
            ),
        )
        reconciler = WorkspaceReconciler(
            client,
            caches,
            catalog,
            creator,
            inference,
            tuning,
            events,
            ReconcilerOptions(
                byo=s.byo,
                default_runtime=s.default_runtime,
                nodes_requeue_s=s.nodes_requeue_s,
                inference_requeue_s=s.inference_requeue_s,
                tuning_requeue_s=s.tuning_requeue_s,
            ),
        )

        def map_node(node: Obj) -> Iterable[ObjectKey]:
            keys = {
                ObjectKey.of(ws) for ws in workspaces.store.by_index(BY_WORKER_NODE, _name(node))
            }
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
        if nodeclaims is not None:
            builder = builder.watches(NODECLAIM, map_claim, label_selector=L.LABEL_WORKSPACE)

            def observe(event: WatchEvent) -> None:
                if event.type != "DELETED":
                    creator.observed(event.obj)

            nodeclaims.add_handler(observe)
        builder.with_max_concurrent(s.max_concurrent_reconciles).complete(reconciler.reconcile)
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


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


class _Delegate:
    """Exposes a second registry's metrics through the manager's registry."""

    def __init__(self, registry: object) -> None:
        self._registry = registry

    def collect(self):  # type: ignore[no-untyped-def]
        yield from self._registry.collect()  # type: ignore[attr-defined]
