"""OpenMP waiting policy for torch's CPU thread pool, chosen before torch is imported.

libgomp's default lets idle pool threads spin for a while before sleeping. On a node whose cores
are shared (other pods, CPU limits, the runner's own metrics thread) a spinning thread holds a core
that the thread it waits for needs, and every parallel region stalls: measured on a loaded 2-core
machine, torch ran ~8x slower than with passive waiting. An operator's own
`OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` is left alone.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

_OPERATOR_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def prefer_passive_waiting(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set `OMP_WAIT_POLICY=PASSIVE` unless the operator chose a policy; True when it was set."""
    env = os.environ if environ is None else environ
    if any(key in env for key in _OPERATOR_KEYS):
        return False
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
