"""Cloud chaos: a provisioner process against a faulty fake ARM, killed mid-create.

The fake ARM answers a share of the requests with 429/500 and adds latency (deterministic with
the seed); the provisioner runs as its own process, is SIGKILLed while creates are in flight and
started again. Afterwards every NodeClaim must be Ready, no agent pool created twice (two
creations of the same name, not a retried or adopted one) and none leaked (a pool without its
NodeClaim). Used by the gpu-provisioner test suite (a few claims) and `make chaos` (more).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller.client import KubeClient
from kaito_common.controller.objects import Obj
from kaito_testing.fakearm.server import FakeArm

log = logging.getLogger(__name__)


@dataclass
class CloudChaosResult:
    arm_fault_rate: float
    claims_total: int
    claims_ready: int
    leaked_pools: int
    pools_created_twice: int
    faults_injected: int
    arm_requests: int
    provisioner_kills: int
    seconds: float

    def as_dict(self) -> dict[str, float | int]:
        return dict(vars(self))


def _ready(claim: Obj | None) -> bool:
    for cond in ((claim or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def provisioner_env(arm: FakeArm, kubeconfig: Path) -> dict[str, str]:
    """A provisioner process's environment: the fake ARM, quick polls and short backoffs."""
    return {
        **os.environ,
        **arm.env(),
        "FAKE_ARM_TOKEN": arm.token,
        "KUBECONFIG": str(kubeconfig),
        "GPU_PROVISIONER_CLOUD": "azure",
        "METRICS_PORT": "0",
        "GPU_PROVISIONER_LAUNCH_BACKOFF_MAX_S": "2",
        "GPU_PROVISIONER_POLL_INTERVAL_S": "0.2",
        "ARM_POLLING_INTERVAL_S": "0.1",
        "ARM_RETRY_TOTAL": "2",
        "ARM_RETRY_BACKOFF_FACTOR": "0.05",
        "ARM_RETRY_BACKOFF_MAX_S": "1",
        "AZURE_NODE_WAIT_INTERVAL_S": "0.1",
    }


def _log_file(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


async def _start(
    command: list[str], env: Mapping[str, str], log_path: Path
) -> asyncio.subprocess.Process:
    with _log_file(log_path) as out:
        return await asyncio.create_subprocess_exec(*command, env=dict(env), stdout=out, stderr=out)


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        await process.wait()


async def run_cloud_chaos(
    kube: KubeClient,
    arm: FakeArm,
    *,
    kubeconfig: Path,
    runner: Path,
    manifest: Callable[[str], Obj],
    names: list[str],
    log_dir: Path,
    timeout_s: float = 180.0,
) -> CloudChaosResult:
    """Create `names` as NodeClaims (`manifest(name)`), kill the provisioner (`runner`, a
    script run with this interpreter) once creates are in flight, start it again, wait for
    every claim to be Ready, then delete them all and wait until they are gone. The caller
    has set `arm.faults`."""
    env = provisioner_env(arm, kubeconfig)
    command = [sys.executable, str(runner)]
    started = time.monotonic()
    process = await _start(command, env, log_dir / "provisioner-1.log")
    kills = 0
    try:
        for name in names:
            await kube.create(NODECLAIM, manifest(name))
        # Mid-create: some pool's operation is still running.
        deadline = time.monotonic() + timeout_s
        while not any(p.state == "Creating" for p in arm.pools.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("no agent pool create started")
            await asyncio.sleep(0.05)
        creating = sorted(n for n, p in arm.pools.items() if p.state == "Creating")
        log.info("Killing the provisioner mid-create creating=%s", ",".join(creating))
        await _kill(process)
        kills += 1
        process = await _start(command, env, log_dir / "provisioner-2.log")

        async def ready_count() -> int:
            claims = await asyncio.gather(*(kube.get_or_none(NODECLAIM, n) for n in names))
            return sum(1 for c in claims if _ready(c))

        ready = 0
        while time.monotonic() < deadline:
            ready = await ready_count()
            if ready == len(names):
                break
            await asyncio.sleep(0.2)
        leaked = sorted(set(arm.pools) - set(names))
        twice = sorted(n for n, count in arm.creations.items() if count > 1)
        result = CloudChaosResult(
            arm_fault_rate=arm.faults.fault_rate,
            claims_total=len(names),
            claims_ready=ready,
            leaked_pools=len(leaked),
            pools_created_twice=len(twice),
            faults_injected=sum(arm.injected.values()),
            arm_requests=arm.answered,
            provisioner_kills=kills,
            seconds=time.monotonic() - started,
        )
        if leaked or twice:
            log.warning("Cloud chaos: leaked=%s createdTwice=%s", leaked, twice)
        # Clean up through the provisioner (finalizers), faults and all.
        for name in names:
            with contextlib.suppress(Exception):
                await kube.delete(NODECLAIM, name)
        while time.monotonic() < deadline + 60:
            left = await asyncio.gather(*(kube.get_or_none(NODECLAIM, n) for n in names))
            if not any(left):
                break
            await asyncio.sleep(0.2)
        return result
    finally:
        await _kill(process)
