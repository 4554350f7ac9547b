"""The metric names a Grafana dashboard's PromQL uses, and the names the services export.

Exported names come from the services' own metric objects (registries walked as Prometheus
exposes them: counters with `_total`, histograms with `_bucket`/`_sum`/`_count`), so a renamed
metric breaks the dashboard test instead of a panel going silently empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

# PromQL words that are not metric names (aggregation modifiers, set operators).
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
     "bool", "offset"}
)  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are no function, keyword, label."""
    text = _VARIABLE.sub("", _STRING.sub('""', expr))
    text = _GROUPING.sub("", _RANGES.sub("", _MATCHERS.sub("", text)))
    names: set[str] = set()
    for match in _NAME.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call
        if match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def _panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def dashboard_metric_names(dashboard: dict[str, Any]) -> set[str]:
    """Every metric name the dashboard's panel queries and template variables use."""
    names: set[str] = set()
    for panel in _panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            names |= promql_metric_names(target.get("expr") or "")
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        names |= set(_LABEL_VALUES.findall(text))
    return names


def _exposed(family: Metric) -> set[str]:
    if family.type == "counter":
        return {f"{family.name}_total", f"{family.name}_created"}
    if family.type == "histogram":
        return {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
    return {family.name}


def registry_names(registry: CollectorRegistry) -> set[str]:
    return {name for family in registry.collect() for name in _exposed(family)}


def exported_metric_names() -> set[str]:
    """The names every Kaito service exposes on /metrics."""
    from gpu_provisioner.metrics import ProvisionerMetrics
    from inference_server.metrics import ServerMetrics
    from kaito_common.contracts.tuning_progress import METRIC_HELP
    from kaito_common.controller.metrics import ControllerMetrics
    from kaito_common.controller.store import Store
    from workspace_controller.metrics import WorkspaceCountCollector

    provisioner = ProvisionerMetrics()
    provisioner.watch_claims(list)
    controller = ControllerMetrics()
    controller.registry.register(WorkspaceCountCollector(Store()))
    names = set(METRIC_HELP)  # the tuning runner's gauges
    for registry in (ServerMetrics("model").registry, provisioner.registry, controller.registry):
        names |= registry_names(registry)
    return names
