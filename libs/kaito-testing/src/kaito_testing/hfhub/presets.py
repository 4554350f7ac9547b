"""Serving a model directory under a preset's real repository id and pinned revision."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kaito_common.presets import Catalog, default_catalog
from kaito_testing.hfhub.server import LocalHub

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ServedPreset:
    """What the hub now serves for a preset: the catalog's repository and revision, and the
    commit that revision resolves to (the revision itself when the catalog pins a commit)."""

    preset: str
    repo_id: str
    revision: str
    commit: str
    gated: bool


def serve_preset(
    hub: LocalHub,
    preset_name: str,
    model_dir: Path,
    *,
    gated: bool | None = None,
    tokens: Iterable[str] = (),
    catalog: Catalog | None = None,
) -> ServedPreset:
    """Adds `model_dir` to `hub` as the repository the preset's catalog entry names
    (`source.repo`) at its `source.revision`. A pinned commit is served as that commit (and as
    `main`); a branch name as that branch. Gated when the preset needs a `modelAccessSecret`,
    unless `gated` says otherwise; `tokens` open it."""
    catalog = catalog or default_catalog(include_test=True)
    preset = catalog.preset(preset_name)
    if preset is None:
        raise KeyError(f"preset {preset_name!r} is not in the catalog")
    source = preset.source
    is_gated = preset.requires_model_access_secret if gated is None else gated
    if _COMMIT.match(source.revision):
        commit = hub.add_repo(
            source.repo, model_dir, commit=source.revision, gated=is_gated, tokens=tokens
        )
    else:
        commit = hub.add_repo(
            source.repo, model_dir, branch=source.revision, gated=is_gated, tokens=tokens
        )
    return ServedPreset(
        preset=preset.name,
        repo_id=source.repo,
        revision=source.revision,
        commit=commit,
        gated=is_gated,
    )
