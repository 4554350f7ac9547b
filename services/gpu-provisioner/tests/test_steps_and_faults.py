"""Units: Kubernetes API errors named with status and reason, the claim-freshness record of the
lifecycle, and the fake ARM's seeded fault injection."""

from __future__ import annotations

import ssl
from collections import Counter
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from gpu_provisioner.controllers.lifecycle import WrittenClaims
from kaito_common.controller.apierrors import KubeApiError, api_step
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import ObjectKey
from kaito_testing.fakearm import FakeArm, Faults


def _conflict() -> ApiException:
    err = ApiException(status=409, reason="Conflict")
    err.body = (
        b'{"kind":"Status","status":"Failure","reason":"Conflict",'
        b'"message":"the object has been modified"}'
    )
    return err


async def test_api_errors_name_step_status_and_reason() -> None:
    async def fails() -> None:
        raise _conflict()

    with pytest.raises(KubeApiError) as caught:
        await api_step("write nodeclaim status", fails())
    err = caught.value
    assert (err.step, err.status, err.reason) == ("write nodeclaim status", 409, "Conflict")
    assert err.is_conflict
    assert "status=409 reason=Conflict" in repr(err)
    assert "the object has been modified" in str(err)
    assert repr(ApiException()) == "ApiException()"  # what the reconcile log used to show


def _claim(rv: str, uid: str = "u1") -> dict[str, Any]:
    return {"metadata": {"name": "c", "uid": uid, "resourceVersion": rv}}


def test_written_claims_replace_a_stale_cache_until_it_catches_up() -> None:
    written = WrittenClaims()
    key = ObjectKey("", "c")
    assert written.fresh(key, _claim("1")) == _claim("1")
    written.wrote(key, _claim("1"), _claim("2"))
    written.wrote(key, _claim("2"), _claim("3"))
    # The cache still shows versions our writes replaced: the last written claim is used.
    assert written.fresh(key, _claim("1")) == _claim("3")
    assert written.fresh(key, _claim("2")) == _claim("3")
    # Any other version is at least as new (never compared by order): the record is dropped.
    assert written.fresh(key, _claim("3")) == _claim("3")
    assert len(written) == 0
    written.wrote(key, _claim("4"), _claim("5"))
    assert written.fresh(key, _claim("4", uid="other")) == _claim("4", uid="other")


async def _statuses(arm: FakeArm, requests: int) -> list[int]:
    assert arm.ca_bundle is not None
    context = ssl.create_default_context(cafile=str(arm.ca_bundle))
    path = (
        f"/subscriptions/{arm.subscription}/resourceGroups/{arm.resource_group}/providers/"
        f"Microsoft.ContainerService/managedClusters/{arm.cluster}/agentPools/missing"
    )
    out = []
    headers = {"Authorization": f"Bearer {arm.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(requests):
            async with session.get(arm.endpoint + path, ssl=context) as response:
                out.append(response.status)
                if response.status == 429:
                    assert response.headers["Retry-After"] == "1"
    return out


async def test_fake_arm_faults_are_deterministic_with_the_seed(tmp_path: Path) -> None:
    runs = []
    for index, seed in enumerate((7, 7, 8)):
        faults = Faults.chaos(0.4, latency_s=0.001, seed=seed)
        arm = FakeArm(cast(KubeClient, None), tmp_path / f"arm{index}", faults=faults)
        await arm.start()
        try:
            runs.append(await _statuses(arm, 60))
            assert arm.added_latency_s > 0
        finally:
            await arm.stop()
    assert runs[0] == runs[1], "the same seed must fault the same requests"
    assert runs[0] != runs[2]
    tally = Counter(runs[0])
    print(f"60 requests at a 40% fault rate: {dict(tally)}")
    assert tally[429] > 0 and tally[500] > 0 and tally[404] > 0
