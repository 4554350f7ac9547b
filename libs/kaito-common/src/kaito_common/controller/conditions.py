"""Status conditions (metav1.Condition) as plain dicts: pure functions, no I/O."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kaito_common.controller.clock import rfc3339, utc_now

Condition = dict[str, Any]


def get_condition(conditions: list[Condition] | None, type_: str) -> Condition | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def is_true(conditions: list[Condition] | None, type_: str) -> bool:
    cond = get_condition(conditions, type_)
    return cond is not None and cond.get("status") == "True"


def set_condition(
    conditions: list[Condition] | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: dt.datetime | None = None,
) -> list[Condition]:
    """A new list with `type_` set. `lastTransitionTime` moves only when the status changes,
    so re-setting an unchanged condition yields an equal list (and no status write)."""
    if isinstance(status, bool):
        status = "True" if status else "False"
    if status not in ("True", "False", "Unknown"):
        raise ValueError(f"condition status must be True, False or Unknown, not {status!r}")
    out = [dict(c) for c in conditions or []]
    existing = get_condition(out, type_)
    new: Condition = {"type": type_, "status": status, "reason": reason, "message": message}
    if observed_generation is not None:
        new["observedGeneration"] = observed_generation
    if existing is not None and existing.get("status") == status:
        new["lastTransitionTime"] = existing.get("lastTransitionTime") or rfc3339(now or utc_now())
        existing.clear()
        existing.update(new)
        return out
    new["lastTransitionTime"] = rfc3339(now or utc_now())
    if existing is not None:
        existing.clear()
        existing.update(new)
    else:
        out.append(new)
    return out
