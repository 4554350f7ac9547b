"""Model presets and GPU SKUs: data files validated at load, lookups and fit checks."""

from kaito_common.presets.catalog import Catalog, CatalogError, default_catalog, load_catalog
from kaito_common.presets.fit import inference_fit_errors, tuning_fit_errors
from kaito_common.presets.models import GPUSku, Preset

__all__ = [
    "Catalog",
    "CatalogError",
    "GPUSku",
    "Preset",
    "default_catalog",
    "inference_fit_errors",
    "load_catalog",
    "tuning_fit_errors",
]
