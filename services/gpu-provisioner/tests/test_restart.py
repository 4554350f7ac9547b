"""A provisioner process killed while a create is in flight: its successor adopts the pool."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from gp_support import StartProvisioner, claim_name, is_ready, kaito_nodeclaim

from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller.client import KubeClient
from kaito_testing.controllers import eventually
from kaito_testing.fakearm import FakeArm

pytestmark = pytest.mark.full

RUNNER = Path(__file__).parent / "run_provisioner.py"


async def test_killed_mid_create_then_restarted_adopts_the_pool(
    kube: KubeClient,
    fake_arm: FakeArm,
    start_provisioner: StartProvisioner,
    kubeconfig_path: Path,
    tmp_path: Path,
) -> None:
    fake_arm.faults.hold_creates = asyncio.Event()
    env = {
        **os.environ,
        **fake_arm.env(),
        "FAKE_ARM_TOKEN": fake_arm.token,
        "KUBECONFIG": str(kubeconfig_path),
        "GPU_PROVISIONER_CLOUD": "azure",
        "METRICS_PORT": "0",
        "ARM_POLLING_INTERVAL_S": "0.1",
    }
    log_path = tmp_path / "first.log"
    with log_path.open("wb") as log:
        first = await asyncio.create_subprocess_exec(
            sys.executable, str(RUNNER), env=env, stdout=log, stderr=log
        )
    try:
        name = claim_name()
        await kube.create(NODECLAIM, kaito_nodeclaim(name))
        await eventually(
            lambda: fake_arm.pools.get(name) is not None, timeout_s=30, what="the create to start"
        )
        assert fake_arm.pools[name].state == "Creating"
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()

    def pool_gets() -> int:
        path = f"/agentPools/{name}"
        return sum(1 for method, p, _ in fake_arm.requests if method == "GET" and p.endswith(path))

    before = pool_gets()
    await start_provisioner(arm=fake_arm)
    # The successor must find the pool still Creating (in flight), then the create finishes.
    await eventually(lambda: pool_gets() > before, timeout_s=20, what="the successor's lookup")
    assert fake_arm.pools[name].state == "Creating"
    fake_arm.faults.hold_creates.set()

    async def ready() -> bool:
        return is_ready(await kube.get_or_none(NODECLAIM, name))

    await eventually(ready, timeout_s=30, what="the claim to be Ready after the restart")
    assert list(fake_arm.pools) == [name]
    assert len(fake_arm.create_bodies[name]) == 1, "the pool was created twice"
