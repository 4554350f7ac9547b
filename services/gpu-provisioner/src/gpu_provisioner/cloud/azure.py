"""The azure cloud: one NodeClaim = one AKS agent pool (a VM scale set of one node).

Uses the async `ContainerServiceClient.agent_pools` of azure-mgmt-containerservice, so a create
awaiting its long-running operation never blocks the event loop. Every create looks the pool up
by name first: a pool that exists is adopted (waited on while its operation runs), never
duplicated, which is what makes the provisioner restart-safe.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.transport import AioHttpTransport
from azure.mgmt.containerservice.aio import ContainerServiceClient
from azure.mgmt.containerservice.models import AgentPool

from gpu_provisioner.cloud.agentpool import agent_pool_body, is_owned, pool_instance
from gpu_provisioner.cloud.azure_errors import classify
from gpu_provisioner.cloud.provider import CloudError, Instance
from gpu_provisioner.metrics import ProvisionerMetrics
from gpu_provisioner.settings import AzureSettings
from kaito_common.api.labels import LABEL_AKS_AGENTPOOL, LABEL_AKS_AGENTPOOL_QUALIFIED
from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE
from kaito_common.controller.objects import Obj
from kaito_common.controller.store import StoreReader

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

log = logging.getLogger(__name__)

IN_PROGRESS_STATES = frozenset(
    {"creating", "updating", "scaling", "upgrading", "starting", "stopping", "accepted"}
)
IN_PROGRESS_CONFLICT = "there's an in progress create node pool operation"


def _with_provider_id(nodes: list[Obj]) -> list[Obj]:
    return [n for n in nodes if (n.get("spec") or {}).get("providerID")]


def _state(pool: dict[str, Any]) -> str:
    return str((pool.get("properties") or {}).get("provisioningState") or "").lower()


class CaBundleTransport(AioHttpTransport):  # type: ignore[misc]
    """azure-core's aiohttp transport, with one TLS context for a CA bundle.

    Given a CA bundle path, azure-core builds a new `SSLContext` for every request; aiohttp
    keys pooled connections by their context, so no connection is ever reused: every ARM call
    (each poll of a long-running operation included) paid a new TCP connection, TLS handshake
    and CA file load. One context, built once, lets connections be kept alive."""

    def __init__(self, ca_bundle: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ca_bundle = ca_bundle
        self._context = ssl.create_default_context(cafile=ca_bundle)

    def _build_ssl_config(self, cert: Any, verify: Any) -> Any:
        if not cert and verify == self._ca_bundle:
            return self._context
        return super()._build_ssl_config(cert, verify)


class AzureCloud:
    name = "azure"

    def __init__(
        self,
        settings: AzureSettings,
        credential: AsyncTokenCredential,
        kube: KubeClient,
        metrics: ProvisionerMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._credential = credential
        self._kube = kube
        self._metrics = metrics
        options: dict[str, Any] = {
            "polling_interval": settings.polling_interval_s,
            "retry_total": settings.retry_total,
            "retry_backoff_factor": settings.retry_backoff_factor,
            "retry_backoff_max": settings.retry_backoff_max_s,
            "read_timeout": settings.request_timeout_s,
            "connection_timeout": settings.request_timeout_s,
            "user_agent": "kaito-gpu-provisioner",
        }
        if settings.arm_ca_bundle:
            options["connection_verify"] = settings.arm_ca_bundle
            # The client hands these to the transport it builds; ours needs them directly.
            options["transport"] = CaBundleTransport(
                settings.arm_ca_bundle,
                connection_verify=settings.arm_ca_bundle,
                read_timeout=settings.request_timeout_s,
                connection_timeout=settings.request_timeout_s,
            )
        self._client = ContainerServiceClient(
            credential, settings.subscription_id, base_url=settings.arm_endpoint, **options
        )
        self._pools = self._client.agent_pools
        self._node_cache: StoreReader | None = None

    def use_node_cache(self, nodes: StoreReader) -> None:
        """Look for a pool's Node in this cache (the provisioner's Node informer) first, and
        ask the API server only when the cache does not show it (yet)."""
        self._node_cache = nodes

    async def close(self) -> None:
        await self._client.close()
        await self._credential.close()

    def _error(self, err: Exception, operation: str, action: str) -> CloudError:
        cloud_err = classify(err, action)
        if self._metrics is not None:
            self._metrics.cloud_errors.labels(self.name, operation, cloud_err.code).inc()
        return cloud_err

    async def _get_pool(self, name: str) -> dict[str, Any] | None:
        s = self._settings
        try:
            pool = await self._pools.get(s.resource_group, s.cluster_name, name)
        except ResourceNotFoundError:
            return None
        except Exception as err:
            raise self._error(err, "get", f"getting agent pool {name}") from err
        return pool.as_dict()

    # --- create ------------------------------------------------------------------------------

    async def create(self, claim: Obj) -> Instance:
        name = str(objects.meta(claim).get("name"))
        body = agent_pool_body(claim)
        pool = await self._get_pool(name)
        if pool is None or _state(pool) == "failed":
            pool = await self._create_pool(name, body)
        elif _state(pool) in IN_PROGRESS_STATES:
            log.info("Adopted agent pool in flight pool=%s state=%s", name, _state(pool))
            pool = await self._wait_pool(name)
        elif _state(pool) == "deleting":
            raise CloudError(f"agent pool {name} is being deleted", code="PoolDeleting")
        else:
            log.info("Adopted existing agent pool pool=%s state=%s", name, _state(pool))
        if _state(pool) != "succeeded":
            raise CloudError(
                f"agent pool {name} ended in state {_state(pool) or 'unknown'}",
                code="PoolNotSucceeded",
            )
        node = await self._wait_node(name)
        return pool_instance(pool, provider_id=str(node["spec"]["providerID"]), node=node)

    async def _create_pool(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        s = self._settings
        action = f"creating agent pool {name}"
        try:
            poller = await self._pools.begin_create_or_update(
                s.resource_group, s.cluster_name, name, AgentPool(body)
            )
            log.info(
                "Started agent pool creation pool=%s vmSize=%s", name, body["properties"]["vmSize"]
            )
            result = await poller.result()
        except HttpResponseError as err:
            if IN_PROGRESS_CONFLICT in str(err):
                log.info("Adopted agent pool creation in progress pool=%s", name)
                return await self._wait_pool(name)
            raise self._error(err, "create", action) from err
        except Exception as err:
            raise self._error(err, "create", action) from err
        log.info("Created agent pool pool=%s", name)
        return result.as_dict()

    async def _wait_pool(self, name: str) -> dict[str, Any]:
        """Poll the pool until its operation ends (a create this process did not start)."""
        while True:
            pool = await self._get_pool(name)
            if pool is None:
                raise CloudError(f"agent pool {name} disappeared while creating", code="NotFound")
            if _state(pool) not in IN_PROGRESS_STATES:
                return pool
            await asyncio.sleep(self._settings.polling_interval_s)

    async def _find_node(self, pool: str) -> Obj | None:
        if self._node_cache is not None:
            labels = {LABEL_AKS_AGENTPOOL: pool, LABEL_AKS_AGENTPOOL_QUALIFIED: pool}
            cached = _with_provider_id(self._node_cache.list(labels=labels))
            if len(cached) == 1:
                return cached[0]
        selector = f"{LABEL_AKS_AGENTPOOL}={pool},{LABEL_AKS_AGENTPOOL_QUALIFIED}={pool}"
        with_id = _with_provider_id(await self._kube.list_all(NODE, label_selector=selector))
        return with_id[0] if len(with_id) == 1 else None

    async def _wait_node(self, pool: str) -> Obj:
        """AKS registers the pool's Node shortly after the operation; take its providerID
        verbatim (Azure lower-cases the resource group in it, so never build one by hand)."""
        deadline = time.monotonic() + self._settings.node_wait_timeout_s
        while True:
            node = await self._find_node(pool)
            if node is not None:
                return node
            if time.monotonic() >= deadline:
                raise CloudError(
                    f"agent pool {pool} succeeded but its node has not registered with the "
                    f"cluster within {self._settings.node_wait_timeout_s:g}s",
                    code="NodeNotFound",
                )
            await asyncio.sleep(self._settings.node_wait_interval_s)

    # --- delete, get, list -------------------------------------------------------------------

    async def delete(self, name: str) -> bool:
        s = self._settings
        pool = await self._get_pool(name)
        if pool is None:
            return True
        if _state(pool) == "deleting":
            return False
        action = f"deleting agent pool {name}"
        try:
            poller = await self._pools.begin_delete(s.resource_group, s.cluster_name, name)
            log.info("Started agent pool deletion pool=%s", name)
            await poller.result()
        except ResourceNotFoundError:
            return True
        except Exception as err:
            raise self._error(err, "delete", action) from err
        log.info("Deleted agent pool pool=%s", name)
        return True

    async def get(self, name: str) -> Instance | None:
        pool = await self._get_pool(name)
        if pool is None:
            return None
        node = await self._find_node(name)
        provider_id = str(node["spec"]["providerID"]) if node is not None else ""
        return pool_instance(pool, provider_id=provider_id, node=node)

    async def list(self) -> list[Instance]:
        s = self._settings
        out: list[Instance] = []
        try:
            async for pool in self._pools.list(s.resource_group, s.cluster_name):
                raw = pool.as_dict()
                if is_owned(raw):
                    out.append(pool_instance(raw))
        except Exception as err:
            raise self._error(err, "list", "listing agent pools") from err
        return out


def credential_from_settings(settings: AzureSettings) -> AsyncTokenCredential:
    """Workload identity when its token file is mounted (self-hosted), else the default chain
    (managed identity, environment, Azure CLI)."""
    import os

    from azure.identity.aio import DefaultAzureCredential, WorkloadIdentityCredential

    token_file = os.environ.get("AZURE_FEDERATED_TOKEN_FILE")
    if settings.deployment_mode == "self-hosted" and token_file:
        return WorkloadIdentityCredential(
            tenant_id=settings.tenant_id or None,
            client_id=settings.client_id or None,
            token_file_path=token_file,
        )
    return DefaultAzureCredential(managed_identity_client_id=settings.client_id or None)
