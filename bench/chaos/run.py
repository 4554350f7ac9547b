"""`make chaos`: controller chaos (this file, kaito_testing.chaos) and cloud chaos
(bench/chaos/cloud.py, when present), then ONE line:

RESULT controller_kills=K converged=C/20 duplicates=D orphans=O apiserver_restarts=R
leader_failover_s=S arm_fault_rate=F claims_ready=N/N leaked_pools=L

Details (what did not converge, relists on 410 Gone, the time taken) go to stderr. Not a test:
the pytest form is services/workspace-controller/tests/chaos/test_chaos.py.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from kaito_testing.chaos import ControllerChaos

HERE = Path(__file__).resolve().parent


def cloud_fields() -> str:
    """The cloud-chaos part (bench/chaos/cloud.py, `run_cloud_chaos()`), or n/a without it."""
    path = HERE / "cloud.py"
    if not path.is_file():
        print("cloud chaos: bench/chaos/cloud.py not present", file=sys.stderr)
        return "arm_fault_rate=n/a claims_ready=n/a leaked_pools=n/a"
    spec = importlib.util.spec_from_file_location("bench_chaos_cloud", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    result: Any = module.run_cloud_chaos()
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return (
        f"arm_fault_rate={float(result['arm_fault_rate']):.2f} "
        f"claims_ready={result['claims_ready']}/{result['claims_total']} "
        f"leaked_pools={result['leaked_pools']}"
    )


def _s(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.1f}s"


async def _await(awaitable: Any) -> Any:
    return await awaitable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workspaces", type=int, default=20)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-cloud", action="store_true", help="skip the cloud-chaos part")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="chaos-"))
    chaos = ControllerChaos(work, workspaces=args.workspaces, kills=args.kills, seed=args.seed)
    result = chaos.run()
    for line in result.details:
        print(line, file=sys.stderr)
    print(
        f"controller chaos: {result.seconds:.0f}s, relists on 410 Gone: "
        f"{result.relists_on_gone}, peak duplicates during the run: {result.peak_duplicates}, "
        f"leader killed {_s(result.renewed_before_kill_s)} after its last renewal, lease "
        f"taken over {_s(result.lease_takeover_s)} after the kill (lease duration 15 s), "
        f"handed over {_s(result.graceful_handover_s)} after SIGTERM to the leader, "
        f"logs in {work}",
        file=sys.stderr,
    )
    cloud = "arm_fault_rate=n/a claims_ready=n/a leaked_pools=n/a"
    if not args.no_cloud:
        try:
            cloud = cloud_fields()
        except Exception as err:  # the controller figures still print
            print(f"cloud chaos failed: {err!r}", file=sys.stderr)
    failover = f"{result.leader_failover_s:.1f}" if result.leader_failover_s is not None else "n/a"
    print(
        f"RESULT controller_kills={result.controller_kills} "
        f"converged={result.converged}/{result.total} duplicates={result.duplicates} "
        f"orphans={result.orphans} apiserver_restarts={result.apiserver_restarts} "
        f"leader_failover_s={failover} {cloud}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
