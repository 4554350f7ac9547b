"""NodeClaim conditions with the semantics of Karpenter core (awslabs/operatorpkg status).

Root `Ready` over the dependents `Launched`, `Registered`, `Initialized`. Missing conditions start
as Unknown/AwaitingReconciliation dated at the object's creation; setting a condition to the
status it already has keeps its lastTransitionTime; `Ready` is recomputed after every change and
conditions are kept sorted by lastTransitionTime with the root last. Pure functions, no I/O.
"""

from __future__ import annotations

import datetime as dt

from kaito_common.api.conditions import NODECLAIM_DEPENDENT_CONDITIONS, NodeClaimConditionType
from kaito_common.controller.clock import rfc3339, utc_now
from kaito_common.controller.conditions import Condition, get_condition, set_condition

READY = NodeClaimConditionType.READY.value
LAUNCHED = NodeClaimConditionType.LAUNCHED.value
REGISTERED = NodeClaimConditionType.REGISTERED.value
INITIALIZED = NodeClaimConditionType.INITIALIZED.value
DEPENDENTS: tuple[str, ...] = tuple(c.value for c in NODECLAIM_DEPENDENT_CONDITIONS)

AWAITING_REASON = "AwaitingReconciliation"
AWAITING_MESSAGE = "object is awaiting reconciliation"
UNHEALTHY_DEPENDENTS = "UnhealthyDependents"
RECONCILING_DEPENDENTS = "ReconcilingDependents"


class ConditionSet:
    """A NodeClaim's conditions being edited; `conditions` is the result."""

    def __init__(
        self,
        conditions: list[Condition] | None,
        *,
        generation: int | None,
        created: dt.datetime | None,
        now: dt.datetime | None = None,
    ) -> None:
        self._generation = generation
        self._now = now or utc_now()
        self.conditions = [dict(c) for c in conditions or []]
        since = rfc3339(created or self._now)
        for type_ in (*DEPENDENTS, READY):
            if get_condition(self.conditions, type_) is None:
                cond: Condition = {
                    "type": type_,
                    "status": "Unknown",
                    "reason": AWAITING_REASON,
                    "message": AWAITING_MESSAGE,
                    "lastTransitionTime": since,
                }
                if generation is not None:
                    cond["observedGeneration"] = generation
                self.conditions.append(cond)
        self._recompute_root()

    def get(self, type_: str) -> Condition | None:
        return get_condition(self.conditions, type_)

    def status(self, type_: str) -> str:
        cond = self.get(type_)
        return str(cond.get("status")) if cond else "Unknown"

    def is_true(self, type_: str) -> bool:
        return self.status(type_) == "True"

    def set(self, type_: str, status: str, reason: str, message: str = "") -> None:
        self.conditions = set_condition(
            self.conditions,
            type_,
            status,
            reason,
            message,
            observed_generation=self._generation,
            now=self._now,
        )
        if type_ != READY:
            self._recompute_root()

    def set_true(self, type_: str) -> None:
        self.set(type_, "True", type_)

    def set_unknown(self, type_: str, reason: str, message: str) -> None:
        self.set(type_, "Unknown", reason, message)

    def set_false(self, type_: str, reason: str, message: str) -> None:
        self.set(type_, "False", reason, message)

    def _recompute_root(self) -> None:
        deps = [self.get(t) or {"type": t, "status": "Unknown"} for t in DEPENDENTS]
        unhealthy = [d for d in deps if d.get("status") == "False"]
        unknown = [d for d in deps if d.get("status") == "Unknown"]
        if unhealthy:
            message = ", ".join(f"{d['type']}={d['status']}" for d in unhealthy)
            self.set(READY, "False", UNHEALTHY_DEPENDENTS, message)
        elif unknown:
            message = ", ".join(f"{d['type']}={d['status']}" for d in unknown)
            self.set(READY, "Unknown", RECONCILING_DEPENDENTS, message)
        else:
            self.set(READY, "True", READY)
        self._sort()

    def _sort(self) -> None:
        root = [c for c in self.conditions if c.get("type") == READY]
        rest = [c for c in self.conditions if c.get("type") != READY]
        rest.sort(key=lambda c: str(c.get("lastTransitionTime") or ""))
        self.conditions = rest + root
