"""`PresetResolver`: the preset a Workspace names, from the catalog or from the Hugging Face hub.

A catalog name wins. A name written as a Hugging Face repo id (`owner/name`) that the catalog
does not have is read from the hub (config.json and the safetensors sizes) and becomes a preset
(`kaito_common.presets.hub_model.derive_preset`), for inference only.

Pinning: the first resolution reads the repository at `main` and records the commit it found in
the Workspace's annotation `kaito.sh/model-revision`; every later resolution (this process after
a cache miss, or a restarted controller) reads that commit, so the pods keep downloading the same
weights when the repository moves on. A user may set the annotation to choose a commit.
Resolutions are cached in memory per (repo, revision).
"""

from __future__ import annotations

import base64
import logging

import aiohttp

from kaito_common.api import labels as L
from kaito_common.api.workspace import Workspace
from kaito_common.contracts.kinds import WORKSPACE
from kaito_common.controller.client import KubeClient, status_of
from kaito_common.controller.kinds import SECRET
from kaito_common.controller.objects import Obj
from kaito_common.presets import Catalog, GPUSku, Preset, inference_fit_errors
from kaito_common.presets.hub_model import (
    GatedRepoError,
    HubModelError,
    HubModelSource,
    is_repo_id,
    preset_from_facts,
)
from workspace_controller.webhook.rules import SECRET_REQUIRED

log = logging.getLogger(__name__)

ANNOTATION_MODEL_REVISION = L.ANNOTATION_MODEL_REVISION
TOKEN_KEY = "HF_TOKEN"


class PresetError(Exception):
    """The Workspace's preset cannot be used; `reason` is the condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class HubUnavailableError(RuntimeError):
    """The hub did not answer now; the reconcile is tried again."""


class PresetResolver:
    def __init__(
        self, catalog: Catalog, hub: HubModelSource | None, client: KubeClient | None
    ) -> None:
        self._catalog = catalog
        self._hub = hub
        self._client = client
        self._cache: dict[tuple[str, str], Preset] = {}

    async def resolve(self, ws: Workspace, ws_obj: Obj, sku: GPUSku | None) -> Preset | None:
        """The preset of `ws` (None for a template Workspace); raises `PresetError`."""
        spec = (ws.inference.preset if ws.inference else None) or (
            ws.tuning.preset if ws.tuning else None
        )
        if spec is None:
            return None
        preset = self._catalog.preset(spec.name)
        if preset is not None:
            return preset
        if not is_repo_id(spec.name) or self._hub is None:
            raise PresetError("UnsupportedPreset", f"Unsupported preset name {spec.name}")
        if ws.tuning is not None:
            raise PresetError(
                "UnsupportedPreset",
                f"Tuning preset {spec.name} is not in the catalog: a Hugging Face repository "
                "can be named as an inference preset only; tuning needs a catalog preset that "
                "supports it",
            )
        options = spec.preset_options
        secret = options.model_access_secret if options else None
        preset = await self._hub_preset(spec.name, ws_obj, secret)
        if preset.requires_model_access_secret and not secret:
            raise PresetError("UnsupportedPreset", f"{spec.name}: {SECRET_REQUIRED}")
        annotations = (ws_obj.get("metadata") or {}).get("annotations") or {}
        if sku is not None and L.ANNOTATION_BYPASS_RESOURCE_CHECKS not in annotations:
            errors = inference_fit_errors(sku, preset, ws.resource.count or 1)
            if errors:
                raise PresetError("InsufficientGPUResources", "; ".join(errors))
        return preset

    async def _hub_preset(self, repo_id: str, ws_obj: Obj, secret: str | None) -> Preset:
        assert self._hub is not None
        meta = ws_obj["metadata"]
        pinned = (meta.get("annotations") or {}).get(ANNOTATION_MODEL_REVISION)
        revision = pinned or "main"
        preset = self._cache.get((repo_id, revision))
        if preset is None:
            token, note = await self._token(meta["namespace"], secret)
            try:
                facts = await self._hub.facts(repo_id, revision, token)
                preset = preset_from_facts(facts)
            except GatedRepoError as err:
                if not secret:  # upstream's message for a gated model without a secret
                    raise PresetError("UnsupportedPreset", f"{repo_id}: {SECRET_REQUIRED}") from err
                raise PresetError("UnsupportedPreset", f"{err}{note}") from err
            except HubModelError as err:
                raise PresetError("UnsupportedPreset", f"{err}{note}") from err
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                raise HubUnavailableError(
                    f"Reading Hugging Face repository {repo_id} at {revision} failed, trying "
                    f"again: {err or type(err).__name__}"
                ) from err
            self._cache[(repo_id, revision)] = preset
            self._cache[(repo_id, preset.source.revision)] = preset
            log.info(
                "Resolved Hugging Face repository repo=%s revision=%s commit=%s "
                "total_gpu_memory=%sGi gpus=%d token_limit=%d",
                repo_id,
                revision,
                preset.source.revision,
                preset.total_gpu_memory_gib,
                preset.gpu_count,
                preset.token_limit,
            )
        if not pinned and self._client is not None:
            body = {
                "metadata": {"annotations": {ANNOTATION_MODEL_REVISION: preset.source.revision}}
            }
            await self._client.patch(WORKSPACE, meta["name"], body, meta["namespace"])
            log.info(
                "Pinned model revision namespace=%s workspace=%s repo=%s commit=%s",
                meta["namespace"],
                meta["name"],
                repo_id,
                preset.source.revision,
            )
        return preset

    async def _token(self, namespace: str, secret: str | None) -> tuple[str | None, str]:
        """The modelAccessSecret's HF_TOKEN, and a note for messages when it cannot be read."""
        if not secret or self._client is None:
            return None, ""
        try:
            obj = await self._client.get(SECRET, secret, namespace)
        except Exception as err:
            why = f"HTTP {status_of(err)}" if status_of(err) else type(err).__name__
            log.warning(
                "Cannot read modelAccessSecret namespace=%s secret=%s error=%s",
                namespace,
                secret,
                why,
            )
            if status_of(err) == 403:
                # The chart grants the controller no access to Secrets, on purpose.
                return None, (
                    f" (the controller may not read Secret {namespace}/{secret}: the chart grants "
                    "it no access to Secrets, so a gated repository named by its id cannot be "
                    "resolved; use a catalog preset or a weights image for it)"
                )
            return None, f" (the controller could not read Secret {namespace}/{secret}: {why})"
        raw = (obj.get("data") or {}).get(TOKEN_KEY)
        if not raw:
            return None, f" (Secret {namespace}/{secret} has no {TOKEN_KEY} key)"
        return base64.b64decode(raw).decode().strip(), ""
