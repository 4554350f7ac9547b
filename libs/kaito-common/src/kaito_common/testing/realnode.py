"""One real Kubernetes node joined to the local control plane.

containerd (CRI plugin, runc, cgroupfs), the CNI plugins (bridge + host-local + portmap), the
kubelet (client certificate from the launcher's CA, registered as ``system:node:<name>``) and
kube-proxy (iptables mode) run as child processes with every state directory under the work
directory, so pods really run and ClusterIPs really route. The node can advertise
``nvidia.com/gpu`` as an extended resource (patched into its status, the documented way without
a device plugin) so GPU pod specs schedule; their containers run on the CPU.

:meth:`RealNode.stop` removes what the node made: containers and their shims, mounts, the
pods' network (CNI DEL per sandbox, so the plugins' iptables rules go), the bridge,
kube-proxy's rules (``kube-proxy --cleanup``) and the pods' cgroups; :meth:`RealNode.leftovers`
lists anything still there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from kaito_common.pki import CertPair
from kaito_common.testing import cni, containerd, node_pki
from kaito_common.testing.kubeconfig import write_kubeconfig
from kaito_common.testing.pause_image import PAUSE_IMAGE, write_pause_archive
from kaito_common.testing.process import Component
from kaito_common.testing.waiting import wait_for

log = logging.getLogger(__name__)

NODE_NAME = "kaito-realnode"
POD_SUBNET = "10.85.0.0/24"
BRIDGE = "kaito-rn0"
GPU_RESOURCE = "nvidia.com/gpu"
READY_TIMEOUT_S = 120.0
_CGROUP_ROOT = Path("/sys/fs/cgroup")
LOCK_PATH = Path("/run/lock/kaito-realnode.lock")
_SYSCTLS = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}


class RealNodeError(RuntimeError):
    """A node component failed to start or the node did not become Ready."""


@dataclass(frozen=True)
class RealNodeConfig:
    """How the node joins: API server, CA, admin kubeconfig and the node's own settings."""

    work_dir: Path
    bin_dir: Path
    server: str
    ca: CertPair
    admin_kubeconfig: Path
    cluster_cidr: str = POD_SUBNET
    service_cidr: str = "10.96.0.0/16"
    node_name: str = NODE_NAME
    pod_subnet: str = POD_SUBNET
    bridge: str = BRIDGE
    node_ip: str | None = None
    gpus: int = 0
    max_pods: int = 40
    labels: Mapping[str, str] = field(default_factory=dict)
    # containerd's root (images, snapshots); None: the default cache, kept between runs so
    # that images are imported once per machine.
    image_store: Path | None = None


def default_image_store() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("KAITO_REALNODE_IMAGES") or cache / "kaito-realnode" / "containerd")


def host_ip() -> str:
    """The address the host uses for its default route (the node's InternalIP)."""
    out = subprocess.run(
        ["ip", "-j", "route", "get", "1.1.1.1"], capture_output=True, text=True, check=True
    ).stdout
    routes = json.loads(out)
    if not routes or "prefsrc" not in routes[0]:
        raise RealNodeError(f"cannot find the host's address from `ip route get`: {out}")
    return str(routes[0]["prefsrc"])


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        port: int = s.getsockname()[1]
        return port


class RealNode:
    """containerd + kubelet + kube-proxy on this machine, registered as one Node."""

    def __init__(self, config: RealNodeConfig) -> None:
        self.config = config
        self.name = config.node_name
        self.node_ip = config.node_ip or host_ip()
        self.dir = config.work_dir.resolve()
        self.log_dir = self.dir / "logs"
        self.containerd = containerd.Containerd(
            containerd.ContainerdPaths(
                self.dir / "containerd", config.image_store or default_image_store()
            ),
            self.log_dir / "containerd.log",
        )
        self.network = cni.PodNetwork(
            bridge=config.bridge,
            subnet=config.pod_subnet,
            conf_dir=self.dir / "cni" / "net.d",
            ipam_dir=self.dir / "cni" / "ipam",
            bin_dir=cni.find_bin_dir(),
        )
        self.kubelet_dir = self.dir / "kubelet"
        self._components: dict[str, Component] = {}
        self._saved_sysctls: dict[str, str] = {}
        self._lock_file: TextIO | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Starts containerd, kube-proxy and the kubelet; waits for the Node to be Ready."""
        started = time.monotonic()
        self._lock()
        self.cleanup()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._set_sysctls()
        cni.write_conflist(self.network)
        self.containerd.write_config(
            sandbox_image=PAUSE_IMAGE,
            cni_bin_dir=self.network.bin_dir,
            cni_conf_dir=self.network.conf_dir,
        )
        try:
            self.containerd.start()
            self.containerd.import_image(write_pause_archive(self.dir / "pause"))
            self._write_identities()
            self._start_kube_proxy()
            self._start_kubelet()
            wait_for(
                self._ready,
                timeout=READY_TIMEOUT_S,
                what=f"Node {self.name} to be Ready",
                interval=0.5,
                alive=self._check_alive,
            )
            if self.config.labels:
                self.label(dict(self.config.labels))
            if self.config.gpus:
                self.advertise_gpus(self.config.gpus)
        except BaseException:
            for name, text in self.component_logs(30).items():
                log.error("Node component log tail", extra={"component": name, "log": text})
            self.stop()
            raise
        log.info(
            "Started real node",
            extra={
                "node": self.name,
                "node_ip": self.node_ip,
                "pod_subnet": self.config.pod_subnet,
                "duration_s": round(time.monotonic() - started, 2),
            },
        )

    def stop(self) -> None:
        """Stops the node's processes and removes everything they made."""
        if self._lock_file is None:
            return  # never started (or another node holds the machine): nothing of ours
        started = time.monotonic()
        for name in ("kubelet", "kube-proxy"):
            component = self._components.pop(name, None)
            if component is not None:
                component.stop(grace=10.0)
        removed = self.cleanup()
        self._unlock()
        log.info(
            "Stopped real node",
            extra={
                "node": self.name,
                **removed,
                "duration_s": round(time.monotonic() - started, 2),
            },
        )

    def cleanup(self) -> dict[str, int]:
        """Removes containers, sandboxes' networks, shims, mounts, the bridge, kube-proxy's
        rules and the pods' cgroups (also those of an earlier run in the same directory)."""
        counts = {"containers": 0, "sandboxes": 0, "mounts": 0, "processes": 0}
        if self.containerd.paths.config.exists():
            if not self.containerd.running() and self._has_containers():
                with contextlib.suppress(containerd.ContainerdError, TimeoutError):
                    self.containerd.start()
            if self.containerd.running():
                counts["sandboxes"] = self._teardown_sandboxes()
                counts["containers"] = len(self.containerd.remove_everything())
                self.containerd.stop()
        # Whatever the sandboxes did not release (a crashed run): DEL by host-local's records,
        # then the processes left in the pods' cgroups, the shims and any rule of ours.
        for sandbox in set(cni.allocated_sandboxes(self.network).values()):
            self._cni_del(sandbox, "")
            counts["sandboxes"] += 1
        counts["processes"] = _kill_cgroup_processes("kubepods")
        containerd.kill_shims(self.containerd.paths)
        counts["mounts"] = len(containerd.unmount_under(self.dir))
        counts["mounts"] += len(containerd.unmount_under(self.containerd.paths.root))
        cni.delete_bridge(self.config.bridge)
        cni.remove_iptables_leftovers()
        self._kube_proxy_cleanup()
        _remove_kube_chains()
        _remove_cgroups("kubepods")
        self._restore_sysctls()
        for folder in (self.containerd.paths.state, self.kubelet_dir / "pods"):
            if folder.exists() and not containerd.mounts_under(folder):
                shutil.rmtree(folder, ignore_errors=True)
        return counts

    def _lock(self) -> None:
        """Takes the machine-wide real-node lock: two nodes would share the ``kubepods``
        cgroups, the kubelet's and kube-proxy's iptables chains and the image store, and each
        one's clean-up would remove the other's pods."""
        if self._lock_file is not None:
            return
        LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
        handle = LOCK_PATH.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise RealNodeError(
                f"another real node runs on this machine ({holder or 'unknown holder'}; lock "
                f"{LOCK_PATH}); stop it first (`make cluster-down` or its test session)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} work {self.dir}\n")
        handle.flush()
        self._lock_file = handle

    def _unlock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _has_containers(self) -> bool:
        paths = self.containerd.paths
        tasks = paths.state / "io.containerd.runtime.v2.task"
        sandboxes = paths.root / "io.containerd.grpc.v1.cri" / "sandboxes"
        return any(tasks.glob("*/*")) or any(sandboxes.glob("*"))

    def leftovers(self) -> list[str]:
        """What of the node is still on the machine (empty after a clean :meth:`stop`)."""
        found = [f"mount {p}" for p in containerd.mounts_under(self.dir)]
        found += [f"mount {p}" for p in containerd.mounts_under(self.containerd.paths.root)]
        found += [f"shim pid {p}" for p in containerd.shim_pids(self.containerd.paths)]
        if cni.bridge_exists(self.config.bridge):
            found.append(f"interface {self.config.bridge}")
        found += [f"iptables {rule}" for rule in cni.iptables_leftovers()]
        found += [f"iptables {rule}" for rule in _kube_proxy_rules()]
        found += [f"cgroup {p}" for p in _cgroups("kubepods")]
        found += [f"process {n}" for n, c in self._components.items() if c.running()]
        if self.containerd.running():
            found.append("process containerd")
        return found

    def running(self) -> dict[str, bool]:
        status = {name: c.running() for name, c in self._components.items()}
        status["containerd"] = self.containerd.running()
        return status

    def component_logs(self, lines: int = 40) -> dict[str, str]:
        logs = {name: c.log_tail(lines) for name, c in self._components.items()}
        logs["containerd"] = self.containerd.log_tail(lines)
        return logs

    # --- operations -----------------------------------------------------------------------

    def import_image(self, archive: Path) -> None:
        """Imports an image archive (OCI or docker) into containerd's ``k8s.io`` namespace."""
        self.containerd.import_image(archive)

    def images(self) -> list[str]:
        return self.containerd.image_names()

    def label(self, labels: Mapping[str, str]) -> None:
        """Sets labels on the Node as the admin (NodeRestriction forbids some to the kubelet)."""
        pairs = [f"{key}={value}" for key, value in labels.items()]
        self._kubectl("label", "node", self.name, "--overwrite", *pairs)

    def advertise_gpus(self, count: int) -> None:
        """Patches ``nvidia.com/gpu: count`` into the Node's status capacity and waits until the
        kubelet reports it allocatable."""
        path = "/status/capacity/" + GPU_RESOURCE.replace("/", "~1")
        patch = [{"op": "add", "path": path, "value": str(count)}]
        self._kubectl(
            "patch",
            "node",
            self.name,
            "--subresource=status",
            "--type=json",
            "-p",
            json.dumps(patch),
        )
        wait_for(
            lambda: self._allocatable(GPU_RESOURCE) == str(count),
            timeout=60.0,
            what=f"{GPU_RESOURCE} to be allocatable on {self.name}",
            interval=0.5,
        )
        log.info(
            "Advertised GPUs", extra={"node": self.name, "resource": GPU_RESOURCE, "count": count}
        )

    # --- internals ------------------------------------------------------------------------

    def _kubectl(self, *args: str) -> str:
        argv = [
            str(self.config.bin_dir / "kubectl"),
            f"--kubeconfig={self.config.admin_kubeconfig}",
        ]
        result = subprocess.run(
            [*argv, *args], capture_output=True, text=True, check=False, timeout=60
        )
        if result.returncode != 0:
            raise RealNodeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _node(self) -> dict[str, object] | None:
        try:
            out = self._kubectl("get", "node", self.name, "-o", "json")
        except RealNodeError:
            return None
        node: dict[str, object] = json.loads(out)
        return node

    def _ready(self) -> bool:
        node = self._node()
        if node is None:
            return False
        status = node.get("status")
        conditions = status.get("conditions", []) if isinstance(status, dict) else []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def _allocatable(self, resource: str) -> str | None:
        node = self._node()
        status = node.get("status") if node else None
        if not isinstance(status, dict):
            return None
        value = status.get("allocatable", {}).get(resource)
        return str(value) if value is not None else None

    def _launch(self, name: str, argv: Sequence[str]) -> None:
        component = Component(name, argv, self.log_dir / f"{name}.log")
        component.start()
        self._components[name] = component

    def _check_alive(self) -> None:
        for name, component in self._components.items():
            if not component.running():
                raise RealNodeError(
                    f"{name} exited with code {component.exit_code()}; "
                    f"log {component.log_path}:\n{component.log_tail(30)}"
                )
        if not self.containerd.running():
            raise RealNodeError(f"containerd exited:\n{self.containerd.log_tail(30)}")

    def _write_identities(self) -> None:
        pki = self.dir / "pki"
        for stem, identity in (
            ("kubelet", node_pki.kubelet_identity(self.name)),
            ("kube-proxy", node_pki.KUBE_PROXY_IDENTITY),
        ):
            pair = node_pki.issue_client_pair(self.config.ca, pki, stem, identity)
            write_kubeconfig(
                self.dir / f"{stem}.kubeconfig",
                server=self.config.server,
                ca_cert=self.config.ca.cert,
                client=pair,
                user_name=stem,
            )

    def _kubelet_config(self) -> dict[str, object]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.node_ip,
            "port": _free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": _free_port(),
            "cgroupDriver": "cgroupfs",
            # cgroup v1 is what this machine mounts; Kubernetes 1.35 refuses it by default.
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": self.containerd.endpoint,
            "imageServiceEndpoint": self.containerd.endpoint,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.config.ca.cert)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": "cluster.local",
            "maxPods": self.config.max_pods,
            "podCIDR": self.config.pod_subnet,
            "resolvConf": "/etc/resolv.conf",
            "serializeImagePulls": False,
            # The machine is shared and its disk fills with images: evict only when truly out.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "nodeStatusUpdateFrequency": "4s",
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "shutdownGracePeriod": "0s",
            "registerNode": True,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "logging": {"format": "text"},
        }

    def _start_kubelet(self) -> None:
        config_path = self.dir / "kubelet.yaml"
        config_path.write_text(yaml.safe_dump(self._kubelet_config(), sort_keys=False))
        self.kubelet_dir.mkdir(parents=True, exist_ok=True)
        self._launch(
            "kubelet",
            [
                str(self.config.bin_dir / "kubelet"),
                f"--config={config_path}",
                f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}",
                f"--root-dir={self.kubelet_dir}",
                f"--cert-dir={self.dir / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.node_ip}",
                "--v=1",
            ],
        )

    def _kube_proxy_config(self) -> dict[str, object]:
        return {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self.dir / "kube-proxy.kubeconfig")},
            "hostnameOverride": self.name,
            "clusterCIDR": self.config.cluster_cidr,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": f"127.0.0.1:{_free_port()}",
            "metricsBindAddress": f"127.0.0.1:{_free_port()}",
            "nodePortAddresses": [f"{self.node_ip}/32"],
            # Leave the host's conntrack sysctls alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"syncPeriod": "10s", "minSyncPeriod": "0s"},
        }

    def _start_kube_proxy(self) -> None:
        config_path = self.dir / "kube-proxy.yaml"
        config_path.write_text(yaml.safe_dump(self._kube_proxy_config(), sort_keys=False))
        self._launch(
            "kube-proxy",
            [str(self.config.bin_dir / "kube-proxy"), f"--config={config_path}", "--v=1"],
        )

    def _kube_proxy_cleanup(self) -> None:
        if not _kube_proxy_rules():
            return
        binary = self.config.bin_dir / "kube-proxy"
        result = subprocess.run(
            [str(binary), "--cleanup", "--v=0"], capture_output=True, text=True, check=False
        )
        log.info(
            "Removed kube-proxy rules",
            extra={"exit_code": result.returncode, "output": result.stderr[-400:]},
        )

    def _teardown_sandboxes(self) -> int:
        """CNI DEL for every sandbox while its network namespace still exists."""
        try:
            sandboxes = self.containerd.sandbox_ids()
        except containerd.ContainerdError as err:
            log.warning("Failed to list sandboxes", extra={"error": str(err)})
            return 0
        for sandbox in sandboxes:
            netns = ""
            with contextlib.suppress(containerd.ContainerdError, ValueError):
                netns = self.containerd.network_namespace(sandbox)
            self._cni_del(sandbox, netns)
        return len(sandboxes)

    def _cni_del(self, sandbox: str, netns: str) -> None:
        try:
            cni.teardown_sandbox(self.network, sandbox, netns)
        except cni.CniError as err:
            log.warning("Failed to tear down a sandbox's network", extra={"error": str(err)})

    def _set_sysctls(self) -> None:
        for key, value in _SYSCTLS.items():
            path = Path("/proc/sys") / key
            if not path.exists():
                continue
            current = path.read_text().strip()
            if current != value:
                self._saved_sysctls[key] = current
                path.write_text(value)

    def _restore_sysctls(self) -> None:
        for key, value in self._saved_sysctls.items():
            with contextlib.suppress(OSError):
                (Path("/proc/sys") / key).write_text(value)
        self._saved_sysctls.clear()


_IPTABLES = ("iptables", "ip6tables")
_TABLES = ("filter", "nat", "mangle")


def _kube_chains(binary: str, table: str) -> list[str]:
    result = subprocess.run(
        [f"{binary}-save", "-t", table], capture_output=True, text=True, check=False
    )
    return [line[1:].split()[0] for line in result.stdout.splitlines() if line.startswith(":KUBE-")]


def _kube_proxy_rules() -> list[str]:
    """The ``KUBE-*`` chains (kube-proxy's and the kubelet's) still in iptables."""
    return [
        f"{binary} {table}: {chain}"
        for binary in _IPTABLES
        for table in _TABLES
        for chain in _kube_chains(binary, table)
    ]


def _remove_kube_chains() -> None:
    """Removes the ``KUBE-*`` chains the kubelet makes (``KUBE-FIREWALL``, its canaries, the
    iptables hint) and any kube-proxy left: first every rule jumping to them, then the chains."""
    for binary in _IPTABLES:
        for table in _TABLES:
            chains = set(_kube_chains(binary, table))
            if not chains:
                continue
            rules = subprocess.run(
                [binary, "-t", table, "-S"], capture_output=True, text=True, check=False
            ).stdout.splitlines()
            for rule in rules:
                parts = shlex.split(rule)
                if parts[:1] == ["-A"] and parts[1] not in chains and "-j" in parts:
                    target = parts[parts.index("-j") + 1]
                    if target in chains:
                        subprocess.run(
                            [binary, "-t", table, "-D", *parts[1:]],
                            capture_output=True,
                            check=False,
                        )
            for chain in chains:
                subprocess.run([binary, "-t", table, "-F", chain], capture_output=True, check=False)
            for chain in chains:
                subprocess.run([binary, "-t", table, "-X", chain], capture_output=True, check=False)


def _cgroups(name: str) -> list[Path]:
    found = []
    if _CGROUP_ROOT.is_dir():
        for hierarchy in _CGROUP_ROOT.iterdir():
            if (hierarchy / name).is_dir():
                found.append(hierarchy / name)
    return found


def _kill_cgroup_processes(name: str) -> int:
    """SIGKILLs every process in the cgroup ``name`` and below (the pods' containers, whose
    shims are gone after a crash); returns how many there were."""
    pids: set[int] = set()
    for top in _cgroups(name):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(line) for line in procs.read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        wait_for(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids),
            timeout=15.0,
            what="the pods' processes to exit",
        )
    return len(pids)


def _remove_cgroups(name: str) -> None:
    """Removes the cgroup ``name`` in every hierarchy, children first (they must be empty)."""
    for top in _cgroups(name):
        folders = sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        for folder in [*folders, top]:
            with contextlib.suppress(OSError):
                folder.rmdir()
