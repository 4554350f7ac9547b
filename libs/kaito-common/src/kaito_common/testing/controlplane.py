"""A real, local Kubernetes control plane for tests and development.

Profiles:

- ``apiserver``: etcd and kube-apiserver only (envtest-style; a few seconds to start).
- ``full``: also kube-controller-manager, kube-scheduler and kwok, with one kwok Node, so that
  Deployments become Pods that are scheduled and reported Running, and ownerReferences are
  garbage-collected.
- ``node``: ``full`` without the default kwok Node, plus one real node (containerd, CNI,
  kubelet, kube-proxy; :mod:`kaito_common.testing.realnode`) whose pods really run. The API
  server then also listens on the host's address (pods reach it through the ``kubernetes``
  Service) and reaches the kubelet with a client certificate (logs, exec).

Everything listens on free loopback ports, keeps its state and logs under the work directory,
and is stopped (process groups, SIGTERM then SIGKILL) by :meth:`ControlPlane.stop`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import yaml

from kaito_common.testing import certs as certs_mod
from kaito_common.testing import kwok
from kaito_common.testing.kubeconfig import write_kubeconfig
from kaito_common.testing.process import Component
from kaito_common.testing.realnode import RealNode, RealNodeConfig, host_ip
from kaito_common.testing.testbin import ensure_testbin
from kaito_common.testing.waiting import wait_for

log = logging.getLogger(__name__)

Profile = Literal["apiserver", "full", "node"]

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
CLUSTER_NAME = "kaito-local"
DEFAULT_NODE = "kwok-node-0"
START_TIMEOUT_S = 90.0
_RESTART_GRACE_S = 3.0

_ADMISSION_PLUGINS = ",".join(
    [
        "NamespaceLifecycle",
        "LimitRanger",
        "ServiceAccount",
        "NodeRestriction",
        "TaintNodesByCondition",
        "Priority",
        "DefaultTolerationSeconds",
        "DefaultStorageClass",
        "StorageObjectInUseProtection",
        "RuntimeClass",
        "DefaultIngressClass",
        "PodSecurity",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionWebhook",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionWebhook",
        "ResourceQuota",
    ]
)

_CONTROLLERS = ",".join(
    [
        "garbage-collector-controller",
        "clusterrole-aggregation-controller",
        "serviceaccount-token-controller",
        "serviceaccount-controller",
        "root-ca-certificate-publisher-controller",
        "namespace-controller",
        "deployment-controller",
        "replicaset-controller",
        "statefulset-controller",
        "daemonset-controller",
        "job-controller",
        "cronjob-controller",
        "ttl-after-finished-controller",
        "endpoints-controller",
        "endpointslice-controller",
        "disruption-controller",
        "resourcequota-controller",
        "pod-garbage-collector-controller",
        "node-lifecycle-controller",
        "taint-eviction-controller",
        "service-cidr-controller",
        "validatingadmissionpolicy-status-controller",
    ]
)

_CLIENT_COMPONENTS = ("kwok", "kube-scheduler", "kube-controller-manager")

_CLIENTS = {
    "admin": certs_mod.ClientIdentity("kaito-admin", ("system:masters",)),
    # With --use-service-account-credentials=false every controller acts as the
    # controller-manager itself, which therefore needs full rights.
    "controller-manager": certs_mod.ClientIdentity(
        "system:kube-controller-manager", ("system:masters",)
    ),
    "scheduler": certs_mod.ClientIdentity("system:kube-scheduler"),
    "kwok": certs_mod.ClientIdentity("kwok-controller", ("system:masters",)),
    # The API server's identity towards the real node's kubelet (node profile).
    "kubelet-client": certs_mod.ClientIdentity(
        "kube-apiserver-kubelet-client", ("system:masters",)
    ),
}


class ControlPlaneError(RuntimeError):
    """A component failed to start or exited while it was needed."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; the message carries its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
        self._ssl: ssl.SSLContext | None = None
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
            self._release_kwok_leases()
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
        header = self._etcd_post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
        revision = int(header["header"]["revision"])
        self._etcd_post("/v3/kv/compaction", {"revision": revision, "physical": True})
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
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

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
                lambda: self._node_ready(name),
                timeout=30.0,
                what=f"kwok Node {name} to be Ready",
                alive=self._check_alive,
            )

    def request_json(self, method: str, path: str, body: Any = None) -> Any:
        """Sends one request to the API server as admin and decodes the JSON answer.

        Raises :class:`urllib.error.HTTPError` for an error status."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.server + path, data=data, headers=headers, method=method
        )
        with urllib.request.urlopen(request, context=self._ssl_context(), timeout=10) as resp:
            return json.loads(resp.read())

    def get_json(self, path: str) -> Any:
        """GET ``path`` from the API server as admin and decode the JSON body."""
        return self.request_json("GET", path)

    # --- internals ----------------------------------------------------------------------------

    def _prepare(self) -> None:
        for stale in ("pki", "kubeconfigs", "etcd", "kwok.yaml", "kube-controller-manager"):
            path = self.work_dir / stale
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._certs = certs_mod.generate(
            self.work_dir / "pki", service_ip=SERVICE_IP, clients=_CLIENTS
        )
        self._ssl = None
        write_kubeconfig(
            self.kubeconfig_path,
            server=self.server,
            ca_cert=self._certs.ca.cert,
            client=self._certs.clients["admin"],
            cluster_name=CLUSTER_NAME,
        )
        for name in ("controller-manager", "scheduler", "kwok"):
            write_kubeconfig(
                self.work_dir / "kubeconfigs" / f"{name}.kubeconfig",
                server=self.server,
                ca_cert=self._certs.ca.cert,
                client=self._certs.clients[name],
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
        self._launch(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=kaito",
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=kaito={peer}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        wait_for(self._etcd_healthy, timeout=START_TIMEOUT_S, what="etcd", alive=self._check_alive)

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _etcd_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.etcd_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def _apiserver_argv(self) -> list[str]:
        assert self._certs is not None
        c = self._certs
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            *self._apiserver_address_args(),
            f"--secure-port={self.apiserver_port}",
            f"--cert-dir={self.work_dir / 'pki'}",
            f"--tls-cert-file={c.serving.cert}",
            f"--tls-private-key-file={c.serving.key}",
            f"--client-ca-file={c.ca.cert}",
            f"--service-account-key-file={c.service_account_pub}",
            f"--service-account-signing-key-file={c.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            f"--enable-admission-plugins={_ADMISSION_PLUGINS}",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=0",
        ]

    def _apiserver_address_args(self) -> list[str]:
        if self.profile != "node":
            return [
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # The default reconciler would publish 127.0.0.1 as the `kubernetes` Service's
                # endpoint, which validation rejects (loopback); nothing in-cluster dials it.
                "--endpoint-reconciler-type=none",
            ]
        assert self._certs is not None
        kubelet_client = self._certs.clients["kubelet-client"]
        # Real pods dial the `kubernetes` Service, so the API server listens on the host's
        # address too and publishes it as that Service's endpoint.
        return [
            "--bind-address=0.0.0.0",
            f"--advertise-address={self.node_ip}",
            "--endpoint-reconciler-type=lease",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
        ]

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

    def _run_apiserver(self, argv: list[str]) -> None:
        self._launch("apiserver", argv)
        wait_for(
            lambda: self._http_ok("/readyz"),
            timeout=START_TIMEOUT_S,
            what="kube-apiserver /readyz",
            interval=0.2,
            alive=self._check_alive,
        )

    def _start_apiserver(self) -> None:
        self._run_apiserver(self._apiserver_argv())

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            assert self._certs is not None
            context = ssl.create_default_context(cafile=str(self._certs.ca.cert))
            admin = self._certs.clients["admin"]
            context.load_cert_chain(str(admin.cert), str(admin.key))
            self._ssl = context
        return self._ssl

    def _http_ok(self, path: str, server: str | None = None, verify: bool = True) -> bool:
        if verify:
            context = self._ssl_context()
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(
                (server or self.server) + path, context=context, timeout=5
            ) as resp:
                return bool(resp.status == 200)
        except (OSError, ValueError):
            return False

    def _start_full(self) -> None:
        assert self._certs is not None
        c = self._certs
        kubeconfigs = self.work_dir / "kubeconfigs"
        kcm_port = free_port()
        scheduler_port = free_port()
        self._launch(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfigs / 'controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={self.work_dir / 'kube-controller-manager'}",
                "--leader-elect=false",
                f"--controllers={_CONTROLLERS}",
                f"--service-account-private-key-file={c.service_account_key}",
                f"--root-ca-file={c.ca.cert}",
                "--use-service-account-credentials=false",
                f"--cluster-name={CLUSTER_NAME}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--v=0",
            ],
        )
        self._launch(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={kubeconfigs / 'scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={scheduler_port}",
                "--leader-elect=false",
                "--v=0",
            ],
        )
        self._launch(
            "kwok",
            [
                str(self.bin_dir / "kwok"),
                f"--kubeconfig={kubeconfigs / 'kwok.kubeconfig'}",
                f"--config={kwok.write_config(self.work_dir / 'kwok.yaml')}",
                f"--manage-nodes-with-annotation-selector={kwok.MANAGE_SELECTOR}",
                f"--cidr={kwok.POD_CIDR}",
                f"--node-ip={kwok.NODE_IP}",
                "--node-lease-duration-seconds=40",
            ],
        )
        self._health_ports = {"kube-controller-manager": kcm_port, "kube-scheduler": scheduler_port}
        self._wait_clients_healthy()
        # The service-account controller creating `default` proves the controllers run.
        wait_for(
            lambda: self._exists("/api/v1/namespaces/default/serviceaccounts/default"),
            timeout=START_TIMEOUT_S,
            what="the controller-manager to create the default ServiceAccount",
            alive=self._check_alive,
        )
        for index in range(self.kwok_nodes):
            self.add_kwok_node(f"kwok-node-{index}")

    def _release_kwok_leases(self) -> None:
        """Deletes the node Leases the stopped kwok held.

        A new kwok process has a new identity (hostname plus a random suffix) and only plays
        the Pods of Nodes whose Lease it holds, so it would otherwise wait for the old Leases
        to expire (40 s) before moving any Pod."""
        prefix = f"{socket.gethostname()}_"
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        released = []
        for lease in self.get_json(path).get("items", []):
            holder = lease.get("spec", {}).get("holderIdentity") or ""
            if holder.startswith(prefix):
                name = lease["metadata"]["name"]
                with contextlib.suppress(urllib.error.HTTPError):
                    self.request_json("DELETE", f"{path}/{name}")
                released.append(name)
        log.info("Released kwok node leases", extra={"leases": released})

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
        return lambda: self._http_ok("/healthz", server=server, verify=False)

    def _exists(self, path: str) -> bool:
        try:
            self.get_json(path)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return False
            raise
        except OSError:
            return False
        return True

    def _node_ready(self, name: str) -> bool:
        try:
            node = self.get_json(f"/api/v1/nodes/{name}")
        except OSError:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
