"""Controller chaos on the full local control plane (issue 19, "Controller chaos").

While Workspaces are created, updated and deleted, the workspace controller (a host process) is
SIGKILLed at random moments and started again, kube-apiserver is restarted once, etcd is
compacted (and the API server's watch cache dropped) so that every watch resumes into
`410 Gone`, and finally two replicas run with leader election and the leader is killed (then
the new leader is stopped with SIGTERM, which releases the Lease). The gpu-provisioner (kwok
cloud) makes the nodes. Afterwards :func:`audit` checks that every Workspace converged (kept
ones `WorkspaceSucceeded`, deleted ones gone), that no workspace has more NodeClaims or
workloads than it asks for, and that no object's owner is gone.

Used by `bench/chaos/run.py` (`make chaos`, 20 Workspaces, 20 kills) and by a reduced test in
services/workspace-controller/tests/chaos/. Only loopback addresses.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kaito_common.controller.client import KubeClient, is_not_found, status_of
from kaito_common.controller.clock import parse_time
from kaito_common.controller.kinds import (
    CONTROLLER_REVISION,
    DEPLOYMENT,
    JOB,
    LEASE,
    NODE,
    POD,
    SERVICE,
    STATEFUL_SET,
    Kind,
)
from kaito_testing.controllers import client_configuration
from kaito_testing.controlplane import ControlPlane
from kaito_testing.ports import free_port

log = logging.getLogger(__name__)

Obj = dict[str, Any]
T = TypeVar("T")

REPO = Path(__file__).resolve().parents[4]
CRDS = REPO / "crds"
INFERENCE_TEMPLATE = (
    REPO / "charts/kaito/charts/workspace-controller/files/inference-params-template.yaml"
)
RELEASE_NAMESPACE = "kaito-chaos-release"
LEASE_NAMESPACE = "kaito-workspace"
LEASE_NAME = "workspace-controller-leader"
NAMESPACE_NAME = "chaos"
SKU = "Standard_NC12s_v3"
PRESET = "test-tiny-llama"
WORKSPACE = Kind("kaito.sh", "v1beta1", "workspaces", "Workspace")
NODECLAIM = Kind("karpenter.sh", "v1", "nodeclaims", "NodeClaim", namespaced=False)
REPLICA_SET = Kind("apps", "v1", "replicasets", "ReplicaSet")
# Kinds whose objects the audit looks at in the workspaces' namespace.
NAMESPACED = (DEPLOYMENT, STATEFUL_SET, REPLICA_SET, POD, SERVICE, JOB, CONTROLLER_REVISION)
WORKLOADS = (DEPLOYMENT, STATEFUL_SET, JOB)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


class HostController:
    """`python -m <module>` as a restartable, SIGKILLable host process with /readyz."""

    def __init__(self, name: str, log_dir: Path, argv: Callable[[int], list[str]]) -> None:
        self.name = name
        self.log_dir = log_dir
        self.metrics_port = free_port()
        self._argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}-{self.starts}.log"

    def start(self, *, wait: bool = True) -> None:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self._argv(self.metrics_port),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            if _http_ok(f"http://127.0.0.1:{self.metrics_port}/readyz"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL to the process group: no graceful shutdown, no lease release."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def is_leader(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2
            ) as resp:
                text = resp.read().decode()
        except OSError:
            return False
        return any(
            line.startswith("leader_election_master_status") and line.endswith(" 1.0")
            for line in text.splitlines()
        )


def workspace_controller(
    plane: ControlPlane, log_dir: Path, name: str, *extra: str
) -> HostController:
    webhook_port = free_port()

    def argv(metrics_port: int) -> list[str]:
        return [
            sys.executable, "-m", "workspace_controller",
            f"--kubeconfig={plane.kubeconfig_path}",
            "--webhook-host=127.0.0.1", f"--webhook-port={webhook_port}",
            # The webhook is not registered: while the controller is down (killed on purpose)
            # the API server would refuse every Workspace write, which is not what is tested.
            "--no-register-webhook",
            f"--metrics-port={metrics_port}", "--enable-test-presets",
            "--nodes-requeue-s=0.5", "--inference-requeue-s=0.5",
            f"--release-namespace={RELEASE_NAMESPACE}", "--log-level=info", *extra,
        ]  # fmt: skip

    return HostController(name, log_dir, argv)


def gpu_provisioner(plane: ControlPlane, log_dir: Path) -> HostController:
    def argv(metrics_port: int) -> list[str]:
        return [
            sys.executable, "-m", "gpu_provisioner", "--cloud=kwok",
            f"--kubeconfig={plane.kubeconfig_path}", f"--metrics-port={metrics_port}",
        ]  # fmt: skip

    return HostController("gpu-provisioner", log_dir, argv)


def workspace_manifest(name: str) -> Obj:
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name, "namespace": NAMESPACE_NAME},
        "resource": {
            "count": 1,
            "instanceType": SKU,
            "labelSelector": {"matchLabels": {"chaos": f"{name}-{secrets.token_hex(3)}"}},
        },
        "inference": {"preset": {"name": PRESET}},
    }


def _conditions(obj: Obj) -> dict[str, str]:
    return {
        str(c.get("type")): str(c.get("status"))
        for c in (obj.get("status") or {}).get("conditions") or []
    }


def succeeded(ws: Obj) -> bool:
    return _conditions(ws).get("WorkspaceSucceeded") == "True"


async def retrying(call: Callable[[], Awaitable[T]], what: str, timeout_s: float = 90) -> T:
    """The driver's own API calls ride out API server restarts."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call()
        except Exception as err:
            if time.monotonic() > deadline:
                raise
            log.debug("retrying %s: %r", what, err)
            await asyncio.sleep(0.5)


@dataclass
class Audit:
    converged: int
    total: int
    duplicates: int
    orphans: int
    details: list[str] = field(default_factory=list)


async def audit(kube: KubeClient, kept: set[str], deleted: set[str]) -> Audit:
    """Convergence, duplicates (more NodeClaims or workloads per workspace than asked for) and
    orphans (an ownerReference to an object that no longer exists; NodeClaims of a gone
    workspace)."""
    details: list[str] = []
    workspaces = {
        ws["metadata"]["name"]: ws for ws in await kube.list_all(WORKSPACE, NAMESPACE_NAME)
    }
    converged = sum(1 for n in kept if n in workspaces and succeeded(workspaces[n]))
    converged += sum(1 for n in deleted if n not in workspaces)
    for n in sorted(kept):
        if n not in workspaces or not succeeded(workspaces[n]):
            got = _conditions(workspaces[n]) if n in workspaces else "missing"
            details.append(f"not converged: {n} {got}")
    for n in sorted(deleted & set(workspaces)):
        details.append(f"not deleted: {n}")

    objects: list[tuple[Kind, Obj]] = [(WORKSPACE, ws) for ws in workspaces.values()]
    for kind in NAMESPACED:
        objects += [(kind, o) for o in await kube.list_all(kind, NAMESPACE_NAME)]
    claims = await kube.list_all(NODECLAIM)
    nodes = await kube.list_all(NODE)
    objects += [(NODECLAIM, c) for c in claims] + [(NODE, n) for n in nodes]
    uids = {o["metadata"]["uid"] for _, o in objects}

    duplicates = 0
    per_ws: Counter[tuple[str, str]] = Counter()
    for kind, obj in objects:
        if kind is NODECLAIM:
            labels = obj["metadata"].get("labels") or {}
            per_ws[("NodeClaim", labels.get("kaito.sh/workspace", ""))] += 1
        elif kind in WORKLOADS:
            for ref in obj["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "Workspace":
                    per_ws[("workload", ref["name"])] += 1
    for (what, name), count in per_ws.items():
        allowed = 1  # resource.count is 1; an inference workspace has one workload
        if count > allowed:
            duplicates += count - allowed
            details.append(f"duplicate: {count} {what} for {name}")

    orphans = 0
    for kind, obj in objects:
        meta = obj["metadata"]
        for ref in meta.get("ownerReferences") or []:
            if ref.get("uid") not in uids:
                orphans += 1
                details.append(f"orphan: {kind.kind} {meta['name']} (owner {ref.get('kind')})")
                break
        if kind is NODECLAIM:
            labels = meta.get("labels") or {}
            owner = labels.get("kaito.sh/workspace")
            if labels.get("kaito.sh/workspacenamespace") == NAMESPACE_NAME and (
                owner not in workspaces
            ):
                orphans += 1
                details.append(f"orphan: NodeClaim {meta['name']} (workspace {owner} gone)")
    return Audit(converged, len(kept) + len(deleted), duplicates, orphans, details)


@dataclass
class ChaosResult:
    controller_kills: int
    converged: int
    total: int
    duplicates: int
    orphans: int
    apiserver_restarts: int
    leader_failover_s: float | None
    relists_on_gone: int
    seconds: float
    # Most NodeClaims/workloads beyond one per workspace seen at once during the run (sampled
    # every second), and the seconds from the leader's kill until the other held the Lease.
    peak_duplicates: int = 0
    lease_takeover_s: float | None = None
    # How long before its kill the leader had last renewed the Lease (a standby may take it
    # one lease duration after that renewal, so failover from the kill is shorter by this).
    renewed_before_kill_s: float | None = None
    # The seconds from SIGTERM to the leader until the other replica held the Lease (a clean
    # exit releases it).
    graceful_handover_s: float | None = None
    details: list[str] = field(default_factory=list)


class ControllerChaos:
    """One run: a full control plane of its own under `work`, torn down at the end."""

    def __init__(
        self,
        work: Path,
        *,
        workspaces: int = 20,
        kills: int = 20,
        seed: int | None = None,
        converge_timeout_s: float = 300,
        leader_failover: bool = True,
    ) -> None:
        self.work = work
        self.count = workspaces
        self.kills = kills
        self.rng = random.Random(seed)
        self.converge_timeout_s = converge_timeout_s
        self.leader_failover = leader_failover
        self.kill_count = 0
        self.apiserver_restarts = 0
        self.controllers: list[HostController] = []
        # Held by the killer around a kill and its restart, and by the API server restarts
        # (plus a moment after): the controller must be up to see its watches cut and resume.
        self._quiet = asyncio.Lock()
        self.peak_duplicates = 0
        self.lease_takeover_s: float | None = None
        self.renewed_before_kill_s: float | None = None
        self.graceful_handover_s: float | None = None

    def run(self) -> ChaosResult:
        return asyncio.run(self.run_async())

    async def run_async(self) -> ChaosResult:
        started = time.monotonic()
        plane = ControlPlane("full", self.work / "cluster", kwok_nodes=0)
        await asyncio.to_thread(plane.start)
        provisioner: HostController | None = None
        try:
            await asyncio.to_thread(self._install, plane)
            provisioner = gpu_provisioner(plane, self.work / "logs")
            await asyncio.to_thread(provisioner.start)
            cfg = await client_configuration(str(plane.kubeconfig_path))
            from kubernetes_asyncio.client import ApiClient

            async with ApiClient(cfg) as api:
                kube = KubeClient(api, request_timeout_s=10)
                result = await self._chaos(plane, kube, provisioner)
            result.seconds = time.monotonic() - started
            return result
        finally:
            for proc in self.controllers:
                proc.stop()
            if provisioner is not None:
                provisioner.stop()
            await asyncio.to_thread(plane.stop)

    def _install(self, plane: ControlPlane) -> None:
        plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
        plane.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            "crd/workspaces.kaito.sh", "crd/nodeclaims.karpenter.sh",
        )  # fmt: skip
        for ns in (RELEASE_NAMESPACE, LEASE_NAMESPACE, NAMESPACE_NAME):
            plane.kubectl("create", "namespace", ns, check=False)
        manifest = plane.kubectl(
            "create", "configmap", "inference-params-template", "-n", RELEASE_NAMESPACE,
            f"--from-file=inference_config.yaml={INFERENCE_TEMPLATE}",
            "--dry-run=client", "-o", "yaml",
        ).stdout  # fmt: skip
        plane.kubectl("apply", "-f", "-", input=manifest)
        deadline = time.monotonic() + 60  # pods are admitted once the default SA exists
        while plane.kubectl("get", "sa", "default", "-n", NAMESPACE_NAME, check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("no default ServiceAccount in the chaos namespace")
            time.sleep(0.2)

    async def _chaos(
        self, plane: ControlPlane, kube: KubeClient, provisioner: HostController
    ) -> ChaosResult:
        logs = self.work / "logs"
        # One replica without leader election while it is killed (a restarted leader would
        # wait out its own lease each time); two with leader election for the failover.
        main = workspace_controller(plane, logs, "wc-main")
        self.controllers.append(main)
        await asyncio.to_thread(main.start)

        names = [f"ws-{i:02d}" for i in range(self.count)]
        # The last workspace is created at the moment the leader is killed: its first
        # reconcile shows the new leader at work.
        late = names[-1] if self.leader_failover else None
        early = [n for n in names if n != late]
        deleted = {n for i, n in enumerate(early) if i % 4 == 3}
        updated = [n for i, n in enumerate(early) if i % 2 == 0 and n not in deleted]
        kept = set(names) - deleted

        sampler = asyncio.create_task(self._sample_duplicates(kube))
        killer = asyncio.create_task(self._killer(main))
        try:
            # Creates in waves, with updates and deletes in between, while the killer runs.
            for wave in range(0, len(early), 5):
                batch = early[wave : wave + 5]
                await asyncio.gather(*(self._create(kube, n) for n in batch))
                await asyncio.sleep(self.rng.uniform(0.5, 2.0))
                if wave == min(5, (len(early) - 1) // 5 * 5):
                    async with self._quiet:
                        await asyncio.to_thread(self._restart_apiserver, plane)
                        await asyncio.sleep(3)
            for n in updated:
                await self._update(kube, n, "1")
                await asyncio.sleep(self.rng.uniform(0.0, 0.5))
            await asyncio.sleep(2)
            # etcd compaction + a fresh watch cache: every watch resumes into 410 Gone.
            async with self._quiet:
                revision = await asyncio.to_thread(plane.compact_etcd)
                self.apiserver_restarts += 1
                await asyncio.sleep(5)
            log.info("compacted etcd at revision %d", revision)
            for n in sorted(deleted):
                await retrying(functools.partial(self._delete, kube, n), f"delete {n}")
                await asyncio.sleep(self.rng.uniform(0.0, 0.5))
            for n in updated:
                await self._update(kube, n, "2")
            # The killer finishes its count while the workspaces come up.
            await killer
        finally:
            if not killer.done():
                killer.cancel()
                await asyncio.gather(killer, return_exceptions=True)
        await asyncio.to_thread(main.wait_ready)

        failover: float | None = None
        try:
            if self.leader_failover and late is not None:
                main.stop()
                failover = await self._failover(plane, kube, late)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)

        deadline = time.monotonic() + self.converge_timeout_s
        result = await audit(kube, kept, deleted)
        while time.monotonic() < deadline and (
            result.converged < result.total or result.orphans or result.duplicates
        ):
            await asyncio.sleep(2)
            result = await retrying(lambda: audit(kube, kept, deleted), "audit")
        relists = 0
        for path in logs.glob("wc-*.log"):
            relists += path.read_text(errors="replace").count("410 Gone")
        return ChaosResult(
            controller_kills=self.kill_count,
            converged=result.converged,
            total=result.total,
            duplicates=result.duplicates,
            orphans=result.orphans,
            apiserver_restarts=self.apiserver_restarts,
            leader_failover_s=failover,
            relists_on_gone=relists,
            seconds=0.0,
            details=result.details,
            peak_duplicates=self.peak_duplicates,
            lease_takeover_s=self.lease_takeover_s,
            renewed_before_kill_s=self.renewed_before_kill_s,
            graceful_handover_s=self.graceful_handover_s,
        )

    async def _sample_duplicates(self, kube: KubeClient) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                claims = await kube.list_all(NODECLAIM)
                workloads = [
                    o for kind in WORKLOADS for o in await kube.list_all(kind, NAMESPACE_NAME)
                ]
            except Exception:  # the API server is restarting
                continue
            per_ws: Counter[tuple[str, str]] = Counter()
            for claim in claims:
                labels = claim["metadata"].get("labels") or {}
                per_ws[("claim", labels.get("kaito.sh/workspace", ""))] += 1
            for obj in workloads:
                for ref in obj["metadata"].get("ownerReferences") or []:
                    if ref.get("kind") == "Workspace":
                        per_ws[("workload", ref["name"])] += 1
            extra = sum(n - 1 for n in per_ws.values() if n > 1)
            self.peak_duplicates = max(self.peak_duplicates, extra)

    def _restart_apiserver(self, plane: ControlPlane) -> None:
        plane.restart_apiserver()
        self.apiserver_restarts += 1

    async def _killer(self, proc: HostController) -> None:
        """SIGKILL at random moments, start again at once (readiness waited for)."""
        while self.kill_count < self.kills:
            await asyncio.sleep(self.rng.uniform(0.5, 4.0))
            async with self._quiet:
                proc.kill()
                self.kill_count += 1
                await asyncio.to_thread(self._restart, proc)

    @staticmethod
    def _restart(proc: HostController) -> None:
        # The API server may be restarting: the controller may exit (it cannot list); retry.
        for _ in range(5):
            try:
                proc.start()
                return
            except RuntimeError as err:
                log.warning("controller start failed, again: %s", str(err)[-300:])
                proc.kill()
                time.sleep(2)
        proc.start()

    async def _create(self, kube: KubeClient, name: str) -> None:
        async def create() -> None:
            try:
                await kube.create(WORKSPACE, workspace_manifest(name), NAMESPACE_NAME)
            except Exception as err:
                if status_of(err) != 409:
                    raise

        await retrying(create, f"create {name}")

    async def _update(self, kube: KubeClient, name: str, gen: str) -> None:
        patch = {"metadata": {"annotations": {"chaos.kaito.sh/generation": gen}}}
        await retrying(lambda: kube.patch(WORKSPACE, name, patch, NAMESPACE_NAME), f"update {name}")

    async def _delete(self, kube: KubeClient, name: str) -> None:
        try:
            await kube.delete(WORKSPACE, name, NAMESPACE_NAME)
        except Exception as err:
            if not is_not_found(err):
                raise

    async def _failover(self, plane: ControlPlane, kube: KubeClient, late: str) -> float:
        """Two replicas with leader election; SIGKILL the leader; seconds from the kill until
        the other holds the Lease and has reconciled a Workspace created at the moment of the
        kill. Then the killed one comes back as the standby and the new leader gets SIGTERM:
        its clean exit releases the Lease (`graceful_handover_s`)."""
        first = workspace_controller(plane, self.work / "logs", "wc-a", "--leader-election")
        second = workspace_controller(plane, self.work / "logs", "wc-b", "--leader-election")
        self.controllers += [first, second]
        await asyncio.to_thread(first.start)
        await asyncio.to_thread(second.start)
        deadline = time.monotonic() + 60
        while not (first.is_leader() or second.is_leader()):
            if time.monotonic() > deadline:
                raise RuntimeError("no replica holds the lease")
            await asyncio.sleep(0.2)
        leader, standby = (first, second) if first.is_leader() else (second, first)
        # Let the standby run as one for a while, as it would in a cluster: a standby that has
        # only just started has not seen the lease change yet and (safely) waits a full
        # duration from its first look. The kill lands at a random point of the renewal cycle.
        await asyncio.sleep(self.rng.uniform(4.0, 6.0))
        lease = await kube.get(LEASE, LEASE_NAME, LEASE_NAMESPACE)
        old_holder = lease["spec"].get("holderIdentity")
        leader.kill()
        killed = time.monotonic()
        killed_wall = time.time()
        # A dead leader renews no more: the Lease now shows its last renewal (same host, so
        # its wall clock is ours).
        lease = await retrying(lambda: kube.get(LEASE, LEASE_NAME, LEASE_NAMESPACE), "lease")
        renew_time = lease["spec"].get("renewTime")
        if lease["spec"].get("holderIdentity") == old_holder and renew_time:
            self.renewed_before_kill_s = killed_wall - parse_time(renew_time).timestamp()
        await self._create(kube, late)
        holds = reconciled = None
        while time.monotonic() - killed < 120:
            if holds is None:
                lease = await retrying(
                    lambda: kube.get(LEASE, LEASE_NAME, LEASE_NAMESPACE), "lease"
                )
                if lease["spec"].get("holderIdentity") not in (None, old_holder):
                    holds = time.monotonic() - killed
            ws = await retrying(lambda: kube.get(WORKSPACE, late, NAMESPACE_NAME), "get")
            if holds is not None and (ws.get("status") or {}).get("conditions"):
                reconciled = time.monotonic() - killed
                break
            await asyncio.sleep(0.1)
        if reconciled is None:
            raise RuntimeError("no failover within 120 s")
        log.info(
            "lease taken over after %.1fs, reconciled after %.1fs (last renewal %.1fs before "
            "the kill)",
            holds,
            reconciled,
            self.renewed_before_kill_s or -1.0,
        )
        self.lease_takeover_s = holds
        # The killed leader comes back as the standby, as its pod would be restarted.
        await asyncio.to_thread(leader.start)
        current = standby if standby.is_leader() else leader
        self.graceful_handover_s = await self._graceful_handover(kube, current)
        # The stopped one comes back as the standby in turn.
        await asyncio.to_thread(current.start)
        return reconciled

    async def _graceful_handover(self, kube: KubeClient, leader: HostController) -> float:
        """SIGTERM the leader; seconds until another replica holds the Lease."""
        lease = await kube.get(LEASE, LEASE_NAME, LEASE_NAMESPACE)
        old_holder = lease["spec"].get("holderIdentity")
        stopping = asyncio.create_task(asyncio.to_thread(leader.stop))
        sent = time.monotonic()
        try:
            while time.monotonic() - sent < 60:
                lease = await retrying(
                    lambda: kube.get(LEASE, LEASE_NAME, LEASE_NAMESPACE), "lease"
                )
                if lease["spec"].get("holderIdentity") not in (None, old_holder):
                    handover = time.monotonic() - sent
                    log.info("lease handed over %.1fs after SIGTERM to the leader", handover)
                    return handover
                await asyncio.sleep(0.05)
            raise RuntimeError("no handover within 60 s of SIGTERM to the leader")
        finally:
            await stopping
