"""The informer caches the reconciler reads instead of asking the API server."""

from __future__ import annotations

from dataclasses import dataclass

from kaito_common.controller.store import StoreReader


@dataclass(frozen=True)
class Caches:
    workspaces: StoreReader
    nodes: StoreReader
    nodeclaims: StoreReader | None  # None when the NodeClaim API is not installed
    revisions: StoreReader
    services: StoreReader
    deployments: StoreReader
    statefulsets: StoreReader
    jobs: StoreReader  # tuning Jobs, labelled kaito.sh/workspace
    configmaps: StoreReader  # ConfigMaps labelled kaito.sh/workspace (our copies)
    templates: StoreReader  # ConfigMaps of the release namespace (the chart's templates)
    claims: StoreReader  # weights cache PersistentVolumeClaims labelled kaito.sh/workspace
