"""Load and look up the preset and SKU catalogs (case-insensitive)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kaito_common.presets.models import GPUSku, Preset, PresetFile, SkuFile

_DATA = "kaito_common.presets.data"
PRESET_FILES = ("models.yaml",)
TEST_PRESET_FILES = ("test-models.yaml",)
SKU_FILES = ("skus.yaml",)


class CatalogError(ValueError):
    """A catalog file is malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class Catalog:
    presets: dict[str, Preset]  # keyed by lower-case name
    skus: dict[str, GPUSku]  # keyed by lower-case name

    def preset(self, name: str) -> Preset | None:
        return self.presets.get(name.lower())

    def sku(self, name: str) -> GPUSku | None:
        return self.skus.get(name.lower())

    def sku_names(self) -> list[str]:
        return sorted(sku.name for sku in self.skus.values())


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{origin}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(f"{origin}: expected a mapping at the top level")
    # Keys starting with "x-" hold YAML anchors shared by entries; they are not data.
    return {k: v for k, v in data.items() if not str(k).startswith("x-")}


def _parse_presets(text: str, origin: str) -> list[Preset]:
    try:
        return PresetFile.model_validate(_read_yaml(text, origin)).presets
    except ValueError as exc:
        raise CatalogError(f"{origin}: {exc}") from exc


def _parse_skus(text: str, origin: str) -> list[GPUSku]:
    try:
        return SkuFile.model_validate(_read_yaml(text, origin)).skus
    except ValueError as exc:
        raise CatalogError(f"{origin}: {exc}") from exc


def _packaged(name: str) -> str:
    return resources.files(_DATA).joinpath(name).read_text(encoding="utf-8")


def load_catalog(*, include_test: bool = False, extra_files: Iterable[Path] = ()) -> Catalog:
    """The shipped catalogs, plus the test family and user files (a mounted ConfigMap) if asked.

    A user file may hold ``presets:`` and/or ``skus:``; its entries replace shipped ones of the
    same name.
    """
    presets: dict[str, Preset] = {}
    skus: dict[str, GPUSku] = {}
    for name in PRESET_FILES + (TEST_PRESET_FILES if include_test else ()):
        for preset in _parse_presets(_packaged(name), name):
            presets[preset.name] = preset
    for name in SKU_FILES:
        for sku in _parse_skus(_packaged(name), name):
            skus[sku.name.lower()] = sku
    for path in extra_files:
        data = _read_yaml(path.read_text(encoding="utf-8"), str(path))
        unknown = set(data) - {"presets", "skus"}
        if unknown:
            raise CatalogError(f"{path}: unknown top-level keys {sorted(unknown)}")
        if "presets" in data:
            for preset in _parse_presets(yaml.safe_dump({"presets": data["presets"]}), str(path)):
                presets[preset.name] = preset
        if "skus" in data:
            for sku in _parse_skus(yaml.safe_dump({"skus": data["skus"]}), str(path)):
                skus[sku.name.lower()] = sku
    return Catalog(presets=presets, skus=skus)


@cache
def default_catalog(include_test: bool = False) -> Catalog:
    """The shipped catalog, loaded once per process."""
    return load_catalog(include_test=include_test)
