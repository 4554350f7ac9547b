"""Cloud chaos: 20% of ARM requests answered 429/500 with added latency, and the provisioner
process killed mid-create and started again: every NodeClaim ends Ready, no agent pool is
created twice and none leaks. `make chaos` runs the same with more claims
(bench/chaos/cloud.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gp_support import claim_name, kaito_nodeclaim

from kaito_common.controller.client import KubeClient
from kaito_testing.fakearm import FakeArm, Faults
from kaito_testing.fakearm.chaos import run_cloud_chaos

pytestmark = pytest.mark.full

RUNNER = Path(__file__).parent / "run_provisioner.py"
CLAIMS = 6


async def test_faults_and_a_restart_mid_create_end_ready_without_duplicates_or_leaks(
    kube: KubeClient, fake_arm: FakeArm, kubeconfig_path: Path, tmp_path: Path
) -> None:
    fake_arm.faults = Faults.chaos(
        0.2, latency_s=0.01, latency_jitter_s=0.05, seed=19, op_latency_s=1.0
    )
    names = [claim_name() for _ in range(CLAIMS)]
    result = await run_cloud_chaos(
        kube,
        fake_arm,
        kubeconfig=kubeconfig_path,
        runner=RUNNER,
        manifest=kaito_nodeclaim,
        names=names,
        log_dir=tmp_path / "logs",
        timeout_s=120,
    )
    print(f"cloud chaos: {result.as_dict()}")
    assert result.provisioner_kills == 1
    assert result.faults_injected > 0, "the fake injected no fault"
    assert (result.claims_ready, result.claims_total) == (CLAIMS, CLAIMS)
    assert result.pools_created_twice == 0
    assert result.leaked_pools == 0
    assert not fake_arm.pools, "pools left after the claims were deleted"
