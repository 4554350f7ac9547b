"""Leader election against the real API server: a lease being renewed is never taken (whatever
times its holder writes), a dead holder is replaced one lease duration after its last renewal
(the standby's watch sees the renewal as it happens), a released lease is taken at once, and
expiry is counted from when the standby first saw the record, on its own clock (client-go's
semantics).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator

import pytest
from fake_clock import FakeClock
from kubernetes_asyncio.client import ApiClient

from kaito_common.controller.client import KubeClient
from kaito_common.controller.clock import rfc3339_micro, utc_now
from kaito_common.controller.kinds import LEASE
from kaito_common.controller.leaderelection import LeaderElector, LeaseConfig
from kaito_common.controller.objects import Obj
from kaito_testing.controllers import client_configuration, eventually

pytestmark = pytest.mark.controlplane

# Short but in client-go's proportions (its defaults are 15 s / 10 s / 2 s).
DURATION_S = 1.0


@pytest.fixture
async def kube(kubeconfig_path: object) -> AsyncIterator[KubeClient]:
    cfg = await client_configuration(str(kubeconfig_path))
    async with ApiClient(configuration=cfg) as api:
        yield KubeClient(api, 10)


@contextlib.asynccontextmanager
async def running(elector: LeaderElector) -> AsyncIterator[asyncio.Task[None]]:
    """`elector.run()` in the background; cancelled without releasing (as a crash would)."""
    task = asyncio.create_task(elector.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def elector(
    kube: KubeClient,
    namespace: str,
    identity: str,
    *,
    duration_s: float = DURATION_S,
    renew_deadline_s: float = 0.6,
    retry_s: float = 0.2,
) -> LeaderElector:
    config = LeaseConfig(
        namespace,
        "lock",
        identity,
        lease_duration_s=duration_s,
        renew_deadline_s=renew_deadline_s,
        retry_period_s=retry_s,
    )
    return LeaderElector(kube, config)


async def renew_time(kube: KubeClient, namespace: str) -> str:
    lease = await kube.get(LEASE, "lock", namespace)
    return str(lease["spec"].get("renewTime") or "")


async def renewed_since(kube: KubeClient, namespace: str, seen: str) -> bool:
    return await renew_time(kube, namespace) != seen


async def test_a_lease_being_renewed_is_never_taken_even_with_old_renew_times(
    kube: KubeClient, namespace: str
) -> None:
    # A 2 s lease renewed every 0.3 s: room for a slow API server on a busy machine (the
    # holder must not miss its own 1.5 s renew deadline, or the standby rightly takes over).
    timing = {"duration_s": 2.0, "renew_deadline_s": 1.5, "retry_s": 0.3}
    holder = elector(kube, namespace, "holder", **timing)
    standby = elector(kube, namespace, "standby", **timing)
    async with running(holder):
        await asyncio.wait_for(holder.leading.wait(), 5)
        async with running(standby):
            # Several lease durations of renewals: the standby never leads.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(standby.leading.wait(), 3 * timing["duration_s"])
    assert not standby.is_leader
    assert (await kube.get(LEASE, "lock", namespace))["spec"]["holderIdentity"] == "holder"

    # A holder whose clock is an hour behind keeps renewing: the renewTime values it writes
    # are long past, but the record keeps changing, so the standby still never takes it.
    lease = await kube.get(LEASE, "lock", namespace)
    lease["spec"]["holderIdentity"] = "skewed"
    await kube.replace(LEASE, lease)
    late = elector(kube, namespace, "late", **timing)

    async def skewed_renewals() -> None:
        while True:
            obj = await kube.get(LEASE, "lock", namespace)
            past = utc_now() - dt.timedelta(hours=1)
            obj["spec"]["renewTime"] = rfc3339_micro(past)
            await kube.replace(LEASE, obj)
            await asyncio.sleep(0.3)

    renewer = asyncio.create_task(skewed_renewals())
    try:
        async with running(late):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(late.leading.wait(), 3 * timing["duration_s"])
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
    assert (await kube.get(LEASE, "lock", namespace))["spec"]["holderIdentity"] == "skewed"


async def test_a_dead_holder_is_replaced_one_duration_after_its_last_renewal(
    kube: KubeClient, namespace: str
) -> None:
    holder = elector(kube, namespace, "holder")
    standby = elector(kube, namespace, "standby")
    async with running(holder) as holder_task:
        await asyncio.wait_for(holder.leading.wait(), 5)
        async with running(standby):
            await asyncio.sleep(0.5)  # the standby is reading the lease
            # Kill the holder right after a renewal: the worst case for failover.
            seen = await renew_time(kube, namespace)
            await eventually(lambda: renewed_since(kube, namespace, seen), 2, 0.01, "a renewal")
            renewed_at = time.monotonic()
            holder_task.cancel()  # no release: the lease must expire
            await asyncio.wait_for(standby.leading.wait(), 5)
            takeover_s = time.monotonic() - renewed_at
    print(f"RESULT takeover {takeover_s:.2f} s after the last renewal (lease {DURATION_S} s)")
    # Not before the lease expired, and promptly after.
    assert DURATION_S - 0.05 <= takeover_s <= DURATION_S + 0.3, takeover_s
    lease = (await kube.get(LEASE, "lock", namespace))["spec"]
    assert lease["holderIdentity"] == "standby"
    assert lease["leaseTransitions"] == 1


async def test_a_renewal_is_seen_as_it_happens_not_at_the_next_read(
    kube: KubeClient, namespace: str
) -> None:
    # Reads every 3 s, a 4 s lease. The holder (played by the test) renews once, 0.5 s after
    # the standby's first read, then dies. Seen through the watch, the renewal expires at about
    # 4.5 s; seen only at the next read (3 s), it would expire at 7 s.
    old = rfc3339_micro(utc_now())
    body: Obj = {
        "metadata": {"name": "lock", "namespace": namespace},
        "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 4, "renewTime": old},
    }
    await kube.create(LEASE, body)
    standby = elector(kube, namespace, "standby", duration_s=4, renew_deadline_s=3.5, retry_s=3)
    started = time.monotonic()
    async with running(standby):
        await asyncio.sleep(0.5)
        lease = await kube.get(LEASE, "lock", namespace)
        lease["spec"]["renewTime"] = rfc3339_micro(utc_now())
        await kube.replace(LEASE, lease)
        renewed_s = time.monotonic() - started
        await asyncio.wait_for(standby.leading.wait(), 10)
    takeover_s = time.monotonic() - started
    print(f"RESULT renewed at {renewed_s:.2f} s, taken over at {takeover_s:.2f} s (lease 4 s)")
    assert renewed_s + 4 - 0.05 <= takeover_s <= renewed_s + 4 + 0.5, (renewed_s, takeover_s)


async def test_a_released_lease_is_taken_at_once(kube: KubeClient, namespace: str) -> None:
    # client-go's defaults: without the watch the standby would see the release up to 2 s late.
    lease = {"duration_s": 15.0, "renew_deadline_s": 10.0, "retry_s": 2.0}
    holder = elector(kube, namespace, "holder", **lease)
    standby = elector(kube, namespace, "standby", **lease)
    async with running(holder) as holder_task:
        await asyncio.wait_for(holder.leading.wait(), 5)
        async with running(standby):
            await asyncio.sleep(0.5)  # the standby is watching
            holder_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder_task
            released_at = time.monotonic()
            await holder.release()
            released = (await kube.get(LEASE, "lock", namespace))["spec"]
            await asyncio.wait_for(standby.leading.wait(), 5)
            takeover_s = time.monotonic() - released_at
    print(f"RESULT takeover {takeover_s:.2f} s after a release (lease 15 s)")
    assert not holder.is_leader
    assert takeover_s < 0.5, takeover_s  # not the 15 s the lease would take to expire
    assert released.get("holderIdentity") in (None, "standby")
    if released.get("holderIdentity") is None:
        assert released["leaseDurationSeconds"] == 1


async def test_a_lease_left_by_a_dead_holder_is_taken_one_duration_after_first_sight(
    kube: KubeClient, namespace: str
) -> None:
    # A lease written by a holder that died long ago: its renewTime is an hour old, but the
    # standby cannot trust another machine's clock, so it waits a full duration from now.
    old = rfc3339_micro(utc_now() - dt.timedelta(hours=1))
    body: Obj = {
        "metadata": {"name": "lock", "namespace": namespace},
        "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 1, "renewTime": old},
    }
    await kube.create(LEASE, body)
    standby = elector(kube, namespace, "standby")
    started = time.monotonic()
    async with running(standby):
        await asyncio.wait_for(standby.leading.wait(), 5)
    waited_s = time.monotonic() - started
    assert DURATION_S <= waited_s <= DURATION_S + 0.5, waited_s
    spec = (await kube.get(LEASE, "lock", namespace))["spec"]
    assert spec["holderIdentity"] == "standby"
    assert spec["leaseTransitions"] == 1


async def test_expiry_counts_from_the_last_change_the_standby_saw(
    kube: KubeClient, namespace: str
) -> None:
    """Step by step on a fake clock, client-go's default 15 s lease."""
    holder = LeaderElector(kube, LeaseConfig(namespace, "lock", "holder"))
    clock = FakeClock()
    standby = LeaderElector(kube, LeaseConfig(namespace, "lock", "standby"), clock)
    assert await holder.try_acquire_or_renew()
    assert not await standby.try_acquire_or_renew()  # first sight of the record
    assert standby._standby_wait_s() == 2.0  # reads every retry period
    # (Steps exact in binary floating point, so "15 s" is exactly 15 s.)
    clock.advance(14.75)
    assert standby._standby_wait_s() == 0.25  # next read exactly at expiry
    assert not await standby.try_acquire_or_renew()
    assert await holder.try_acquire_or_renew()  # a renewal restarts the count
    clock.advance(0.5)  # 15.25 s since first sight, but the record has changed
    assert not await standby.try_acquire_or_renew()
    clock.advance(14.5)
    assert not await standby.try_acquire_or_renew()
    clock.advance(0.5)
    # Expired: were this attempt to fail (another candidate won, an API error), the next read
    # would be a full period later, not a busy loop.
    assert standby._standby_wait_s() == 2.0
    assert await standby.try_acquire_or_renew()
    assert (await kube.get(LEASE, "lock", namespace))["spec"]["holderIdentity"] == "standby"
    # The old holder's next renewal sees another holder and a fresh record: it does not win.
    assert not await holder.try_acquire_or_renew()


def test_lease_config_is_checked() -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeaderElector(None, LeaseConfig("ns", "n", "i", renew_deadline_s=20))  # type: ignore[arg-type]
