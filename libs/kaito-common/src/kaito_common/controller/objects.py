"""Kubernetes objects as plain JSON dicts, and the small readers every controller needs.

`Obj` is defined here and only here. The readers never raise on a missing field: an object
without labels has `labels(obj) == {}`, one without a name has `name(obj) == ""`.
It needs only the standard library (and `clock.parse_time`), so any service may use it.
"""

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from kaito_common.controller.clock import parse_time

Obj = dict[str, Any]
"""A Kubernetes object as decoded JSON. Objects handed out by the framework are plain dicts."""


def meta(obj: Obj) -> Obj:
    """`metadata`, or an empty dict when the object has none."""
    result: Obj = obj.get("metadata") or {}
    return result


def name(obj: Obj) -> str:
    return str(meta(obj).get("name") or "")


def namespace(obj: Obj) -> str:
    """The namespace, "" for cluster-scoped objects."""
    return str(meta(obj).get("namespace") or "")


def labels(obj: Obj) -> dict[str, str]:
    """A copy of the labels (changing it does not change the object)."""
    return dict(meta(obj).get("labels") or {})


def annotations(obj: Obj) -> dict[str, str]:
    """A copy of the annotations (changing it does not change the object)."""
    return dict(meta(obj).get("annotations") or {})


def is_deleting(obj: Obj) -> bool:
    """Whether deletion was requested (the object waits on finalizers)."""
    return bool(meta(obj).get("deletionTimestamp"))


def created_at(obj: Obj) -> dt.datetime | None:
    """`creationTimestamp` as an aware UTC datetime, None when unset."""
    stamp = meta(obj).get("creationTimestamp")
    return parse_time(stamp) if stamp else None


def condition(obj: Obj, type_: str) -> Obj | None:
    """A copy of the `status.conditions` entry of that type, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def condition_true(obj: Obj, type_: str) -> bool:
    cond = condition(obj, type_)
    return cond is not None and cond.get("status") == "True"


_SUFFIXES: dict[str, Decimal] = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)$"
)


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity ("1024Gi", "500m", "2") as a number; ValueError when malformed."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"invalid quantity {text!r}")
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation as err:
        raise ValueError(f"invalid quantity {text!r}") from err


def parse_count(quantity: Any) -> int:
    """A whole-number resource quantity ("1", 2, "1k"), rounded down; unparsable counts as 0."""
    try:
        return int(parse_quantity(quantity or 0))
    except ValueError:
        return 0
