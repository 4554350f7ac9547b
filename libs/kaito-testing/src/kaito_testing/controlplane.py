"""A real, local Kubernetes control plane for tests and development.

Profiles:

- ``apiserver``: etcd and kube-apiserver only (envtest-style; a few seconds to start).
- ``full``: also kube-controller-manager, kube-scheduler and kwok, with one kwok Node, so that
  Deployments become Pods that are scheduled and reported Running, and ownerReferences are
  garbage-collected.
- ``node``: ``full`` without the default kwok Node, plus one real node (containerd, CNI,
  kubelet, kube-proxy; :mod:`kaito_testing.realnode`) whose pods really run. The API
  server then also listens on the host's address (pods reach it through the ``kubernetes``
  Service) and reaches the kubelet with a client certificate (logs, exec).

Everything listens on free loopback ports, keeps its state and logs under the work directory,
and is stopped (process groups, SIGTERM then SIGKILL) by :meth:`ControlPlane.stop`. The
components' command lines are in :mod:`kaito_testing.controlplane_flags`, the HTTP calls in
:mod:`kaito_testing.apiserver_http`.
"""

from __future__ import annotations

import base64
import logging
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import yaml

from kaito_testing import certs as certs_mod
from kaito_testing import kwok
from kaito_testing.apiserver_http import AdminHttp, etcd_healthy, etcd_post
from kaito_testing.controlplane_flags import (
    CLIENT_KUBECONFIGS,
    CLIENTS,
    CLUSTER_NAME,
    SERVICE_CIDR,
    SERVICE_IP,
    apiserver_argv,
    controller_manager_argv,
    etcd_argv,
    kwok_argv,
    scheduler_argv,
)
from kaito_testing.kubeconfig import write_kubeconfig
from kaito_testing.ports import free_port
from kaito_testing.process import CommandError, Component, run
from kaito_testing.realnode import RealNode, host_ip
from kaito_testing.realnode_config import RealNodeConfig
from kaito_testing.testbin import ensure_testbin
from kaito_testing.waiting import wait_for

log = logging.getLogger(__name__)

Profile = Literal["apiserver", "full", "node"]

DEFAULT_NODE = "kwok-node-0"
START_TIMEOUT_S = 90.0
_RESTART_GRACE_S = 3.0
_CLIENT_COMPONENTS = ("kwok", "kube-scheduler", "kube-controller-manager")

# kubectl exited non-zero (the message carries its stderr).
KubectlError = CommandError


class ControlPlaneError(RuntimeError):
    """A component failed to start or exited while it was needed."""


class ControlPlane:
    """etcd + kube-apiserver (+ controller-manager, scheduler, kwok) on loopback.

    Usable as a context manager; :attr:`kubeconfig_path` reaches the cluster as an admin
    (``system:masters``)."""

    def __init__(
        self,
        profile: Profile = "apiserver",
        work_dir: Path | str = ".controlplane",
        *,
        bin_dir: Path | None = None,
        kwok_nodes: int | None = None,
        node_gpus: int = 1,
    ) -> None:
        if profile not in ("apiserver", "full", "node"):
            raise ValueError(f"unknown control plane profile {profile!r}")
        self.profile: Profile = profile
        self.work_dir = Path(work_dir).resolve()
        self.bin_dir: Path = bin_dir if bin_dir is not None else ensure_testbin()
        self.kwok_nodes = kwok_nodes if kwok_nodes is not None else (0 if profile == "node" else 1)
        self.node_gpus = node_gpus
        self.real_node: RealNode | None = None
        self.node_ip = host_ip() if profile == "node" else "127.0.0.1"
        self.kubeconfig_path: Path = self.work_dir / "kubeconfig"
        self.log_dir: Path = self.work_dir / "logs"
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.apiserver_port = free_port()
        self.server: str = f"https://127.0.0.1:{self.apiserver_port}"
        self.etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self._components: dict[str, Component] = {}
        self._certs: certs_mod.ControlPlaneCerts | None = None
        self._http_client: AdminHttp | None = None
        self._health_ports: dict[str, int] = {}
        self._lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Starts every component of the profile and waits until the cluster serves requests."""
        started = time.monotonic()
        try:
            self._prepare()
            self._start_etcd()
            self._start_apiserver()
            if self.profile in ("full", "node"):
                self._start_full()
            if self.profile == "node":
                self._start_real_node()
        except BaseException:
            logs = self.component_logs(lines=30)
            self.stop()
            for name, text in logs.items():
                log.error("Component log tail", extra={"component": name, "log": text})
            raise
        log.info(
            "Started control plane",
            extra={
                "profile": self.profile,
                "server": self.server,
                "kubeconfig": str(self.kubeconfig_path),
                "duration_s": round(time.monotonic() - started, 2),
            },
        )

    def stop(self) -> None:
        """Stops every component (clients first, etcd last); leaves no process behind."""
        with self._lock:
            if self.real_node is not None:
                self.real_node.stop()
                self.real_node = None
            clients = [c for n, c in self._components.items() if n not in ("apiserver", "etcd")]
            for component in clients:
                component.signal_group(signal.SIGTERM)
            for component in clients:
                component.stop(grace=10.0)
            for name in ("apiserver", "etcd"):
                if name in self._components:
                    self._components[name].stop(grace=15.0)
            self._components.clear()

    def running(self) -> dict[str, bool]:
        """Whether each started component's process is alive."""
        status = {name: c.running() for name, c in self._components.items()}
        if self.real_node is not None:
            status.update(self.real_node.running())
        return status

    def component_logs(self, lines: int = 40) -> dict[str, str]:
        """The tail of each component's log, keyed by component name."""
        out: dict[str, str] = {}
        for path in sorted(self.log_dir.glob("*.log")):
            component = Component(path.stem, [], path)
            out[path.stem] = component.log_tail(lines)
        if self.real_node is not None:
            out.update(self.real_node.component_logs(lines))
        return out

    # --- operations tests use -----------------------------------------------------------------

    def restart_apiserver(self, *, restart_components: bool = True) -> None:
        """Stops kube-apiserver and starts it again on the same port and etcd; waits healthy.

        The stop is SIGTERM and, after a short grace, SIGKILL: with clients' watches open the
        API server would otherwise hold on to them for its full shutdown timeout.

        In the ``full`` profile the controller-manager, scheduler and kwok are stopped first
        and started again afterwards (``restart_components``): left running, their client-go
        reflectors back off exponentially (up to a minute after a few restarts), which would
        stall every later test that needs a controller. Clients under test see the restart
        as it is."""
        clients = [
            self._components.pop(name)
            for name in _CLIENT_COMPONENTS
            if restart_components and name in self._components
        ]
        for component in clients:
            component.signal_group(signal.SIGTERM)
        for component in clients:
            component.stop(grace=_RESTART_GRACE_S)
        old = self._components.pop("apiserver")
        old.stop(grace=_RESTART_GRACE_S)
        self._run_apiserver(old.argv)
        if any(c.name == "kwok" for c in clients):
            released = kwok.release_node_leases(self._http)
            log.info("Released kwok node leases", extra={"leases": released})
        for component in clients:
            self._launch(component.name, component.argv)
        if clients:
            self._wait_clients_healthy()
        log.info(
            "Restarted kube-apiserver",
            extra={"server": self.server, "restarted": [c.name for c in clients]},
        )

    def compact_etcd(self, *, restart_apiserver: bool = True) -> int:
        """Compacts etcd to its current revision and returns that revision.

        The API server's watch cache keeps serving recent history from memory even after etcd
        has compacted it, so by default kube-apiserver is then restarted (as after an upgrade):
        its cache starts afresh at the current revision and every watch from an older
        resourceVersion gets 410 Gone, for built-in and custom resources alike. Open watches
        are cut, so clients resume from their last resourceVersion and see the 410."""
        key = base64.b64encode(b"/").decode()
        header = etcd_post(self.etcd_url, "/v3/kv/range", {"key": key})
        revision = int(header["header"]["revision"])
        etcd_post(self.etcd_url, "/v3/kv/compaction", {"revision": revision, "physical": True})
        log.info("Compacted etcd", extra={"revision": revision})
        if restart_apiserver:
            self.restart_apiserver()
        return revision

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against this cluster as admin; raises :class:`KubectlError` on a
        non-zero exit unless ``check`` is false."""
        argv = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig_path), *args]
        return run(argv, input=input, check=check, timeout=timeout)

    def add_kwok_node(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        capacity: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
        wait_ready: bool = True,
    ) -> None:
        """Creates a Node that kwok manages and (optionally) waits until it is Ready."""
        manifest = kwok.node_manifest(name, labels=labels, capacity=capacity, taints=taints)
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
        if wait_ready:
            wait_for(
                lambda: self._http.node_ready(name),
                timeout=30.0,
                what=f"kwok Node {name} to be Ready",
                alive=self._check_alive,
            )

    def request_json(self, method: str, path: str, body: Any = None) -> Any:
        """Sends one request to the API server as admin and decodes the JSON answer.

        Raises :class:`urllib.error.HTTPError` for an error status."""
        return self._http.request_json(method, path, body)

    def get_json(self, path: str) -> Any:
        """GET ``path`` from the API server as admin and decode the JSON body."""
        return self.request_json("GET", path)

    # --- internals ----------------------------------------------------------------------------

    @property
    def _http(self) -> AdminHttp:
        if self._http_client is None:
            raise ControlPlaneError("the control plane has not been started")
        return self._http_client

    def _prepare(self) -> None:
        for stale in ("pki", "kubeconfigs", "etcd", "kwok.yaml", "kube-controller-manager"):
            path = self.work_dir / stale
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        certs = certs_mod.generate(self.work_dir / "pki", service_ip=SERVICE_IP, clients=CLIENTS)
        self._certs = certs
        self._http_client = AdminHttp(self.server, certs.ca, certs.clients["admin"])
        write_kubeconfig(
            self.kubeconfig_path,
            server=self.server,
            ca_cert=certs.ca.cert,
            client=certs.clients["admin"],
            cluster_name=CLUSTER_NAME,
        )
        for name in CLIENT_KUBECONFIGS:
            write_kubeconfig(
                self.work_dir / "kubeconfigs" / f"{name}.kubeconfig",
                server=self.server,
                ca_cert=certs.ca.cert,
                client=certs.clients[name],
                cluster_name=CLUSTER_NAME,
                user_name=name,
            )

    def _launch(self, name: str, argv: list[str]) -> Component:
        component = Component(name, argv, self.log_dir / f"{name}.log")
        component.start()
        self._components[name] = component
        return component

    def _check_alive(self) -> None:
        for name, component in self._components.items():
            if not component.running():
                raise ControlPlaneError(
                    f"{name} exited with code {component.exit_code()}; "
                    f"log {component.log_path}:\n{component.log_tail(30)}"
                )

    def _start_etcd(self) -> None:
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        self._launch("etcd", etcd_argv(self.bin_dir, self.work_dir, self.etcd_url, peer))
        wait_for(
            lambda: etcd_healthy(self.etcd_url),
            timeout=START_TIMEOUT_S,
            what="etcd",
            alive=self._check_alive,
        )

    def _start_apiserver(self) -> None:
        assert self._certs is not None
        argv = apiserver_argv(
            self.bin_dir,
            self.work_dir,
            self._certs,
            etcd_url=self.etcd_url,
            port=self.apiserver_port,
            node_ip=self.node_ip if self.profile == "node" else None,
        )
        self._run_apiserver(argv)

    def _run_apiserver(self, argv: list[str]) -> None:
        self._launch("apiserver", argv)
        wait_for(
            lambda: self._http.ok("/readyz"),
            timeout=START_TIMEOUT_S,
            what="kube-apiserver /readyz",
            interval=0.2,
            alive=self._check_alive,
        )

    def _start_real_node(self) -> None:
        assert self._certs is not None
        self.real_node = RealNode(
            RealNodeConfig(
                work_dir=self.work_dir / "node",
                bin_dir=self.bin_dir,
                server=self.server,
                ca=self._certs.ca,
                admin_kubeconfig=self.kubeconfig_path,
                service_cidr=SERVICE_CIDR,
                node_ip=self.node_ip,
                gpus=self.node_gpus,
            )
        )
        self.real_node.start()

    def _start_full(self) -> None:
        assert self._certs is not None
        kcm_port = free_port()
        scheduler_port = free_port()
        self._launch(
            "kube-controller-manager",
            controller_manager_argv(self.bin_dir, self.work_dir, self._certs, kcm_port),
        )
        self._launch("kube-scheduler", scheduler_argv(self.bin_dir, self.work_dir, scheduler_port))
        self._launch("kwok", kwok_argv(self.bin_dir, self.work_dir))
        self._health_ports = {"kube-controller-manager": kcm_port, "kube-scheduler": scheduler_port}
        self._wait_clients_healthy()
        # The service-account controller creating `default` proves the controllers run.
        wait_for(
            lambda: self._http.exists("/api/v1/namespaces/default/serviceaccounts/default"),
            timeout=START_TIMEOUT_S,
            what="the controller-manager to create the default ServiceAccount",
            alive=self._check_alive,
        )
        for index in range(self.kwok_nodes):
            self.add_kwok_node(f"kwok-node-{index}")

    def _wait_clients_healthy(self) -> None:
        for name, port in self._health_ports.items():
            wait_for(
                self._healthz_probe(f"https://127.0.0.1:{port}"),
                timeout=START_TIMEOUT_S,
                what=f"{name} /healthz",
                interval=0.2,
                alive=self._check_alive,
            )

    def _healthz_probe(self, server: str) -> Callable[[], bool]:
        return lambda: self._http.ok("/healthz", server=server, verify=False)
