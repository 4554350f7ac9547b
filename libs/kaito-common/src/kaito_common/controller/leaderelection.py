"""Leader election on a `coordination.k8s.io/v1` Lease (client-go's algorithm).

A candidate takes the Lease when it is free (no holder) or when its record has not changed for
`lease_duration_s` as measured on this process's monotonic clock from the moment it first saw
the current record (so clock skew between machines does not matter, and a lease that is being
renewed is never taken). The holder renews every `retry_period_s`; if it cannot renew within
`renew_deadline_s` it has lost the lease. On a clean stop it releases the lease (no holder, a
duration of 1 s, as client-go's ReleaseOnCancel), so a standby takes over at once instead of
waiting out the duration.

A standby reads the Lease every `retry_period_s` as client-go does, and also watches it: it sees
each renewal as it happens rather than up to a period later, so it counts the expiry from (just
after) the holder's last renewal, and it tries again exactly when that record expires, or at
once when the lease is released. A holder that dies is then replaced one lease duration after
its last renewal, not up to a duration plus two periods. Should the watch fail, the reads alone
still elect a leader, as in client-go.
Written times are aware UTC (`metav1.MicroTime`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from kubernetes_asyncio.client.exceptions import ApiException

from kaito_common.controller.client import KubeClient, is_conflict, is_not_found
from kaito_common.controller.clock import Clock, MonotonicClock, rfc3339_micro, utc_now
from kaito_common.controller.kinds import LEASE
from kaito_common.controller.objects import Obj

log = logging.getLogger(__name__)

# Server-side timeout of the standby's watch on the Lease; it is then started again.
WATCH_TIMEOUT_S = 300


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0


class LeaderElector:
    def __init__(self, client: KubeClient, config: LeaseConfig, clock: Clock | None = None) -> None:
        if not config.retry_period_s < config.renew_deadline_s < config.lease_duration_s:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self._client = client
        self.config = config
        self._clock = clock or MonotonicClock()
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._observed_duration = config.lease_duration_s
        self._released = asyncio.Event()  # set when a read or the watch finds no holder
        self._is_leader = False
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._is_leader

    def _spec(self, old: Obj | None) -> Obj:
        now = rfc3339_micro(utc_now())
        spec = dict((old or {}).get("spec") or {})
        transitions = int(spec.get("leaseTransitions") or 0)
        if spec.get("holderIdentity") != self.config.identity:
            spec["acquireTime"] = now
            if old is not None and spec.get("holderIdentity"):
                transitions += 1
        spec.update(
            holderIdentity=self.config.identity,
            leaseDurationSeconds=max(1, round(self.config.lease_duration_s)),
            renewTime=now,
            leaseTransitions=transitions,
        )
        return spec

    async def try_acquire_or_renew(self) -> bool:
        cfg = self.config
        lease = await self._client.get_or_none(LEASE, cfg.name, cfg.namespace)
        if lease is None:
            body = {"metadata": {"name": cfg.name, "namespace": cfg.namespace}}
            body["spec"] = self._spec(None)
            try:
                await self._client.create(LEASE, body)
            except ApiException as err:
                if err.status == 409:
                    return False
                raise
            return True
        holder = self._see(lease)
        held_by_other = bool(holder) and holder != cfg.identity
        if held_by_other and self._clock.now() - self._observed_at < self._observed_duration:
            return False
        lease["spec"] = self._spec(lease)
        try:
            await self._client.replace(LEASE, lease)
        except ApiException as err:
            if is_conflict(err):
                return False
            raise
        return True

    def _see(self, lease: Obj) -> str:
        """Note the Lease's record (its holder, returned): a change restarts the expiry count
        from now, on this process's clock."""
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock.now()
            if not holder:
                self._released.set()
        duration = spec.get("leaseDurationSeconds") or self.config.lease_duration_s
        self._observed_duration = float(duration)
        return holder

    async def _watch(self) -> None:
        """Follow the Lease while standing by so each change is seen as it happens. The Leases
        of the namespace are watched (a watch by name needs a field selector) from the version
        of a read of this one; any failure starts over from a fresh read after a period."""
        cfg = self.config
        while True:
            try:
                lease = await self._client.get_or_none(LEASE, cfg.name, cfg.namespace)
                if lease is not None:
                    self._see(lease)
                    version = str(lease["metadata"]["resourceVersion"])
                    events = self._client.watch(
                        LEASE, cfg.namespace, version, timeout_s=WATCH_TIMEOUT_S
                    )
                    async with contextlib.aclosing(events):
                        async for event in events:
                            obj: Obj = event.get("object") or {}
                            name = (obj.get("metadata") or {}).get("name")
                            if event.get("type") in ("ADDED", "MODIFIED") and name == cfg.name:
                                self._see(obj)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # 410 Gone, a dropped connection, an API server restart
                log.debug("Watch of lease %s/%s ended: %r", cfg.namespace, cfg.name, err)
            await asyncio.sleep(cfg.retry_period_s)

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.warning("Lease update failed lease=%s error=%r", self.config.name, err)
            return False

    async def run(self) -> None:
        """Acquire, then renew until the lease is lost (returns) or the task is cancelled."""
        cfg = self.config
        watch = asyncio.create_task(self._watch())
        try:
            while True:
                self._released.clear()
                if await self._attempt():
                    break
                # The next read: after a period, when the observed record expires if sooner,
                # or at once when the lease is released.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), self._standby_wait_s())
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        self._is_leader = True
        self.leading.set()
        log.info("Acquired lease lease=%s/%s identity=%s", cfg.namespace, cfg.name, cfg.identity)
        last_renew = self._clock.now()
        while True:
            await asyncio.sleep(cfg.retry_period_s)
            # A renewal hanging on a dead connection must not outlive the renew deadline, or
            # this process would still act as leader after a standby took over.
            left = cfg.renew_deadline_s - (self._clock.now() - last_renew)
            try:
                renewed = await asyncio.wait_for(self._attempt(), max(left, 0.001))
            except TimeoutError:
                renewed = False
            if renewed:
                last_renew = self._clock.now()
            elif self._clock.now() - last_renew >= cfg.renew_deadline_s:
                self._is_leader = False
                self.lost.set()
                log.error(
                    "Lost lease lease=%s/%s identity=%s", cfg.namespace, cfg.name, cfg.identity
                )
                return

    def _standby_wait_s(self) -> float:
        """Until the next read: one period, or less when the observed record expires sooner
        (so the standby does not overshoot the expiry by up to a period)."""
        poll = self.config.retry_period_s
        if self._observed is None:
            return poll
        expires_in = self._observed_at + self._observed_duration - self._clock.now()
        # Already expired and still not taken (a conflict with another candidate, an API
        # error): read again after a full period, not in a busy loop.
        return min(poll, expires_in) if expires_in > 0 else poll

    async def release(self) -> None:
        """Give the lease up if this process holds it (client-go's ReleaseOnCancel): the holder
        is cleared and the duration set to 1 s, so a watching standby takes over at once."""
        if not self._is_leader:
            return
        self._is_leader = False
        cfg = self.config
        try:
            lease = await self._client.get(LEASE, cfg.name, cfg.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != cfg.identity:
                return
            spec.update(holderIdentity=None, leaseDurationSeconds=1, renewTime=None)
            spec.pop("acquireTime", None)
            lease["spec"] = spec
            await self._client.replace(LEASE, lease)
        except Exception as err:
            if is_not_found(err):
                return
            log.warning(
                "Could not release lease; a standby takes over when it expires lease=%s/%s "
                "identity=%s error=%r",
                cfg.namespace,
                cfg.name,
                cfg.identity,
                err,
            )
            return
        log.info("Released lease lease=%s/%s identity=%s", cfg.namespace, cfg.name, cfg.identity)
