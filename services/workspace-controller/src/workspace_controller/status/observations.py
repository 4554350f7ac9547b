"""What one reconcile saw, step by step; unset parts keep their previous conditions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kaito_common.api.conditions import WorkspaceConditionType as C


@dataclass(frozen=True)
class Observed:
    """One condition as observed: status True/False/Unknown, a CamelCase reason, a message."""

    status: str
    reason: str
    message: str = ""

    @classmethod
    def of(cls, ok: bool, reason: str, message: str = "") -> Observed:
        return cls("True" if ok else "False", reason, message)


@dataclass
class Observations:
    conditions: dict[str, Observed] = field(default_factory=dict)
    target_node_count: int | None = None
    worker_nodes: list[str] | None = None
    deleting: bool = False
    error: str | None = None
    is_inference: bool = True
    # Tuning reports its own summary and state (from the Job), and the trainer's progress:
    # None keeps the previous value, {} removes it.
    summary: Observed | None = None
    state: str | None = None
    tuning_progress: dict[str, Any] | None = None

    def set(self, type_: C, observed: Observed) -> None:
        self.conditions[type_.value] = observed
