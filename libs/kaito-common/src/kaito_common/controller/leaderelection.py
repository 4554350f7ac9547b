"""Leader election on a `coordination.k8s.io/v1` Lease (client-go's algorithm).

A candidate takes the Lease when it is free (no holder) or when its record has not changed for
`lease_duration_s` as measured on this process's monotonic clock (so clock skew between
machines does not matter). The holder renews every `retry_period_s`; if it cannot renew within
`renew_deadline_s` it has lost the lease. On a clean stop it releases the lease by clearing the
holder, so a standby takes over at its next retry instead of waiting out the duration.
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
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock.now()
        if holder and holder != cfg.identity:
            duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration_s)
            if self._clock.now() - self._observed_at < duration:
                return False
        lease["spec"] = self._spec(lease)
        try:
            await self._client.replace(LEASE, lease)
        except ApiException as err:
            if is_conflict(err):
                return False
            raise
        return True

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
        while True:
            if await self._attempt():
                break
            await asyncio.sleep(cfg.retry_period_s)
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

    async def release(self) -> None:
        """Give the lease up if this process holds it."""
        if not self._is_leader:
            return
        self._is_leader = False
        cfg = self.config
        with contextlib.suppress(Exception):
            lease = await self._client.get(LEASE, cfg.name, cfg.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != cfg.identity:
                return
            spec.update(holderIdentity=None, leaseDurationSeconds=1, renewTime=None)
            spec.pop("acquireTime", None)
            try:
                await self._client.replace(LEASE, lease)
                log.info(
                    "Released lease lease=%s/%s identity=%s", cfg.namespace, cfg.name, cfg.identity
                )
            except ApiException as err:
                if not is_not_found(err):
                    raise
