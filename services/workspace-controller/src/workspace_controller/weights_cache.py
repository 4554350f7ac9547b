"""Creates the Workspace's weights cache claim (manifests/weights_claim.py) when it is missing.

A claim's spec is immutable once bound, so it is created once and then left alone: a change of
`weightsCache.size` applies to Workspaces created afterwards (the claim goes with its Workspace).
"""

from __future__ import annotations

import logging

from kaito_common.controller.apply import apply
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import PERSISTENT_VOLUME_CLAIM
from kaito_common.controller.objects import Obj
from workspace_controller.manifests.model_weights import ModelWeights
from workspace_controller.manifests.weights_claim import (
    uses_weights_cache,
    weights_claim_manifest,
)

log = logging.getLogger(__name__)


async def ensure_weights_claim(
    client: KubeClient,
    weights: ModelWeights,
    workspace: str,
    namespace: str,
    owner: Obj,
    field_manager: str,
) -> None:
    if not uses_weights_cache(weights) or weights.claim is None:
        return
    if await client.get_or_none(PERSISTENT_VOLUME_CLAIM, weights.claim, namespace) is not None:
        return
    manifest = weights_claim_manifest(weights, workspace, namespace, owner)
    await apply(client, PERSISTENT_VOLUME_CLAIM, manifest, field_manager)
    log.info(
        "created the weights cache %s/%s (%s, storage class %s) for workspace %s",
        namespace,
        weights.claim,
        weights.cache_size,
        weights.cache_storage_class,
        workspace,
    )
